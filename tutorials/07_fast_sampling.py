r"""Chapter 7: fast sampling, scored by the exact divergence of what the sampler samples.

Run:  python tutorials/07_fast_sampling.py [--quick] [--out DIR]
Writes: 07_trajectories.png (a 10-evaluation sampler's steps over the exact flow's paths),
07_kl_vs_nfe.png (the exact KL of each sampler to the data against its evaluations) and
07_halves.png (where a sampler's error is made: in the noisy half of the flow or the clean half).
"""

# ---------------------------------------------------------------------------------------------
# Chapter 3 sampled with RK45, which spent ~250 evaluations of the denoiser per sample. The
# samplers people use spend 10 to 20. This chapter says how, and measures the price exactly.
#
# 1. A deterministic sampler is a map
#
# The probability-flow ODE dx/dt = -beta/2 (x - eps(x, t) / sigma) carries N(0, I) at t_max
# onto q_{t_min}, the data blurred by the noise sigma(t_min) (0.01 at t_min = 1e-3). A solver of
# K steps replaces that flow by a composition of K explicit updates: a map x = F(z) of the
# starting noise. Where F is invertible (every solver of the flow, for small enough steps),
# its samples have an exact density, by the change of variables of chapter 5:
#
#     log p_F(x) = log N(z; 0, I) - log |det dF/dz|,       x = F(z),
#
# and in 2D the Jacobian costs four more runs of the sampler (central differences in float64,
# npdiff.likelihood.sampler_log_density). With the data's true density q that gives the exact
# divergence of the sampler from the data, KL(p_F || q) = E_z[log p_F(F(z)) - log q(F(z))],
# paired with its standard error: the true cost of fewer evaluations, without FID's network,
# its bias or its sample-size dependence. The terms delta = log p_F - log q vanish for an exact
# sampler, and because q is normalized, E[e^{-delta}] = 1: the estimator E[delta + e^{-delta} - 1]
# has the same mean with far less noise (and the mean of e^{-delta} checks the computation).
#
# 2. Exponential integrators
#
# The flow is semi-linear: its linear part -beta x / 2 is known exactly. DPM-Solver (Lu et al.
# 2022a) integrates it analytically. In lambda = log(alpha / sigma), half the log-SNR of chapter 1,
#
#     x_t = (alpha_t / alpha_s) x_s - alpha_t int_{lambda_s}^{lambda_t} e^{-lambda} eps(x_lambda) dlambda,
#
# so only the smooth function lambda -> eps along the path is left to approximate. Holding eps
# constant over a step is DDIM (Song et al. 2021): DPM-Solver-1. Expanding it to first or second
# order in lambda, with evaluations inside the step (singlestep DPM-Solver-2 and -3) or reused
# from the steps before (multistep, one evaluation a step), gives higher orders. DPM-Solver++
# (Lu et al. 2022b) writes the same integral with the predicted clean data x0 instead of eps,
#
#     x_t = (sigma_t / sigma_s) x_s + sigma_t int e^{lambda} x0(x_lambda) dlambda,
#
# which behaves better when x0 changes fast; UniPC (Zhao et al. 2023) adds a corrector that
# reuses the evaluation the next step needs anyway. EDM (Karras et al. 2022) is Heun's method on
# x / sqrt(alpha_bar) in the noise level sigma = sqrt((1 - alpha_bar) / alpha_bar), whose slope is
# eps itself. The order of a method is how fast its error falls as the steps shrink; section 2
# measures it on Gaussian data, where the flow is linear and known in closed form. (One
# finding: the widely copied third-order multistep update gives its second difference half the
# weight the expansion asks for, which makes it second order; npdiff's dpmpp3m uses the full
# weight, and the reference's is dpmpp_multistep(..., reference_3m=True).)
#
# 3. Where the steps go
#
# The grid of step times matters as much as the method: uniform in t (DDPM's), uniform in
# lambda (DPM-Solver's advice for low-dimensional data), Karras's rho = 7 levels (crowded near
# the data) or uniform in sqrt(t). Section 4 asks where a sampler's error is made: run the
# exact flow on one half of the log-SNR range and a coarse sampler on the other. On the thin
# rings (width 0.08) the clean half, at noise below the rings' width, makes almost all of it;
# on 8gaussians' fat blobs the noisy half does. The last steps at small noise decide how
# sharp a density comes out.
# ---------------------------------------------------------------------------------------------

from __future__ import annotations

from _common import Chapter, np, plt

from npdiff import sample
from npdiff.analytic import GaussianData
from npdiff.data import toy2d
from npdiff.likelihood import sampler_kl
from npdiff.plot import plot_kl_vs_nfe
from npdiff.sample.grids import log_snr_grid, time_of_log_snr

ch = Chapter(7, "fast sampling")
T_MIN = 1e-3


def fast_map(model, name: str, nfe: int, grid: str | None = None):
    r"""z -> the sampler's state at T_MIN (no final denoising: the density is compared with q_{T_MIN})."""
    return lambda z: sample.fast_sample(model, None, ch.rng(0), sampler=name, nfe=nfe, grid=grid, t_min=T_MIN,
                                        denoise=False, x_T=z).x


# -- 1. ten evaluations beside the exact flow ----------------------------------------------------------
ch.section("1. a 10-evaluation sampler beside the exact flow")
oracle = toy2d.load("8gaussians").oracle()
z = ch.rng(1).standard_normal((ch.pick(40, 80), 2))
exact = sample.ode_sample(oracle, None, ch.rng(0), x_T=z, rtol=1e-8, atol=1e-8, t_min=T_MIN, denoise=False, record=True)
fig, axes = plt.subplots(1, 2, figsize=(10, 5))
for ax, (name, grid) in zip(axes, [("ddim", "uniform"), ("dpmpp2m", "log_snr")]):
    res = sample.fast_sample(oracle, None, ch.rng(0), sampler=name, nfe=10, grid=grid, t_min=T_MIN, denoise=False,
                             x_T=z, record=True)
    err = np.linalg.norm(res.x - exact.x, axis=1)  # (n,) distance to the exact flow's end point
    ch.show(f"{name} ({grid} grid), 10 evaluations: median distance to the exact flow", np.median(err))
    for k in range(z.shape[0]):
        ax.plot(exact.trajectory[:, k, 0], exact.trajectory[:, k, 1], color="0.7", lw=0.8)
        ax.plot(res.trajectory[:, k, 0], res.trajectory[:, k, 1], "-o", color="C3", ms=2.5, lw=0.8)
    ax.scatter(exact.x[:, 0], exact.x[:, 1], s=14, color="k", zorder=3, label="exact flow's end")
    ax.set(xlim=(-4.5, 4.5), ylim=(-4.5, 4.5), aspect="equal",
           title=f"{name} on the {grid} grid: 10 evaluations (red)\nover the exact flow (grey)")
    ax.legend(fontsize=8, loc="lower right")
fig.tight_layout()
ch.save(fig, "trajectories")

# -- 2. orders of convergence on Gaussian data -----------------------------------------------------------
ch.section("2. each method's order, on Gaussian data where the flow is linear and exact")
data = GaussianData(np.array([1.0, -0.5]), np.array([[0.29, 0.06], [0.06, 0.09]]))
zg = ch.rng(2).standard_normal((64, 2))
lam, rot = np.linalg.eigh(data.cov)
ab_T, ab_0 = float(data.schedule.alpha_bar(data.schedule.t_max)), float(data.schedule.alpha_bar(T_MIN))
# x_t - m_t = Sigma_t^{1/2} Sigma_s^{-1/2} (x_s - m_s) in C's eigenbasis, Sigma_t = alpha_bar C + (1 - alpha_bar) I
scale = np.sqrt((ab_0 * lam + 1 - ab_0) / (ab_T * lam + 1 - ab_T))
x_exact = np.sqrt(ab_0) * data.mean + (((zg - np.sqrt(ab_T) * data.mean) @ rot) * scale) @ rot.T
for name in sample.FAST_SAMPLERS:
    errs = [np.abs(fast_map(data, name, k, "log_snr")(zg) - x_exact).max() for k in (20, 40, 80)]
    ch.show(f"{name}: observed order", np.log2(errs[1] / errs[2]),
            f"stated {sample.fast.ORDERS[name]}; max error {errs[2]:.1e} at 80 evaluations")

# -- 3. the exact KL against evaluations -------------------------------------------------------------------
ch.section("3. the exact KL(p_F || q) of each sampler, against its evaluations")
nfes = ch.pick([5, 10, 20], [5, 8, 10, 15, 20, 50, 100])
n_kl = ch.pick(400, 4000)
lineup = [("ddim", "uniform"), ("ddim", "log_snr"), ("edm", "karras"), ("dpm3", "log_snr"), ("dpmpp2m", "log_snr"),
          ("dpmpp3m", "log_snr"), ("unipc", "log_snr")]
panels = {}
for set_name in ch.pick(["8gaussians", "checkerboard"], ["8gaussians", "checkerboard", "rings"]):
    o = toy2d.load(set_name).oracle()
    zk = ch.rng(3).standard_normal((n_kl, 2))  # the same noise for every sampler: paired comparisons

    def log_q(x, o=o):
        return o.log_prob(x, T_MIN)

    flow = sampler_kl(lambda zz, o=o: sample.ode_sample(o, None, ch.rng(0), x_T=zz, rtol=1e-8, atol=1e-8, t_min=T_MIN,
                                                        denoise=False).x, zk, log_q)
    ch.show(f"{set_name}: KL of the exact flow (RK45)", flow.kl_cv, f"+- {flow.se_cv:.1g}: the prior's mismatch, ~0")
    curves = {}
    for name, grid in lineup:
        pts = []
        for k in nfes:
            r = sampler_kl(fast_map(o, name, k, grid), zk, log_q)
            pts.append((k, r.kl_cv, r.se_cv))
            ch.show(f"{set_name}: {name} ({grid}) KL at {k} evaluations", r.kl_cv, f"+- {r.se_cv:.1g}")
            ch.show(f"{set_name}: {name} ({grid}) E[q/p_F] - 1 in standard errors at {k}",
                    (r.ratio - 1) / r.ratio_se, "|.| < 4: the density is right")
        curves[f"{name} ({grid})"] = np.array(pts).T
    panels[f"{set_name} oracle"] = (curves, flow.kl_cv)
plot_kl_vs_nfe(panels, ch.path("kl_vs_nfe.png"))
print(f"figure: {ch.path('kl_vs_nfe.png')}")

# -- 4. where the error is made: the noisy half or the clean half ---------------------------------------
ch.section("4. the last steps at small noise decide sharp densities")
k_half = ch.pick(5, 5)
fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
for ax, set_name in zip(axes, ["rings", "8gaussians"]):
    o = toy2d.load(set_name).oracle()
    s = o.schedule
    t_mid = float(time_of_log_snr(s, 0.5 * (s.log_snr(s.t_max) + s.log_snr(T_MIN))))  # SNR 1: the middle in lambda

    def exact_part(x, a, b, o=o):
        return sample.solve_flow(o, x, a, b, rtol=1e-8, atol=1e-8).x

    def coarse_part(x, a, b, o=o, s=s):
        return sample.dpmpp_multistep(o, x, log_snr_grid(s, k_half, b, a), order=2).x

    maps = {"coarse noisy half": lambda zz, s=s, t=t_mid: exact_part(coarse_part(zz, s.t_max, t), t, T_MIN),
            "coarse clean half": lambda zz, s=s, t=t_mid: coarse_part(exact_part(zz, s.t_max, t), t, T_MIN),
            "coarse both": lambda zz, s=s, t=t_mid: coarse_part(coarse_part(zz, s.t_max, t), t, T_MIN)}
    zk = ch.rng(4).standard_normal((n_kl, 2))
    kls = {}
    for label, F in maps.items():
        r = sampler_kl(F, zk, lambda x, o=o: o.log_prob(x, T_MIN))
        kls[label] = (r.kl_cv, r.se_cv)
        ch.show(f"{set_name}: KL with {label} ({k_half} DPM-Solver++(2M) steps)", r.kl_cv, f"+- {r.se_cv:.1g}")
    ax.bar(range(3), [v[0] for v in kls.values()], yerr=[v[1] for v in kls.values()], color=["C0", "C3", "0.5"])
    ax.set_xticks(range(3), list(kls), fontsize=8)
    ax.set(ylabel="KL(p_F || q) (nats)", title=f"{set_name}: the flow split at SNR = 1 (t = {t_mid:.2f})")
fig.tight_layout()
ch.save(fig, "halves")
ch.done()
