r"""
Chapter 7: fast sampling, scored by the exact divergence of what the sampler samples
====================================================================================

Chapter 3 sampled with RK45, which spent about 250 evaluations of the denoiser per
sample. The samplers people use spend 10 to 20. This chapter says how, and measures the
price exactly: a deterministic sampler is a map of its starting noise, and in two
dimensions the density of its samples, and so its KL divergence from the data, can be
computed rather than estimated through a feature network, and so can be minimized: the
last section chooses the step times by it.

Run::

    python tutorials/07_fast_sampling.py [--quick] [--out DIR]
"""

# %%
# 1. Ten evaluations beside the exact flow
# ----------------------------------------
#
# The probability-flow ODE :cite:p:`song2021sde`,
#
# .. math::
#
#    \frac{dx}{dt} = -\frac{\beta(t)}{2}\Big(x - \frac{\epsilon(x, t)}{\sigma_t}\Big),
#
# carries :math:`\mathcal N(0, I)` at :math:`t_\max` onto :math:`q_{t_\min}`, the data
# blurred by the noise :math:`\sigma(t_\min)` (0.01 at :math:`t_\min = 10^{-3}`). A
# solver of :math:`K` steps replaces that flow by a composition of :math:`K` explicit
# updates: a map :math:`x = F(z)` of the starting noise. Below, two samplers of 10
# evaluations (red) over the exact flow's paths (grey), from the same starting points,
# with the exact denoiser of 8gaussians.

from __future__ import annotations

from _common import Chapter, np, plt, save_figure, show_kl, show_png

from npdiff import sample
from npdiff.analytic import GaussianData
from npdiff.data import toy2d
from npdiff.likelihood import sampler_kl
from npdiff.plot import plot_kl_vs_nfe
from npdiff.sample.grids import GRIDS, log_snr_grid, time_grid, time_of_log_snr
from npdiff.sample.step_search import optimize_steps, steps_kl

ch = Chapter(7, "fast sampling")
T_MIN = 1e-3


def fast_map(model, name: str, nfe: int, grid: str | None = None, t_min: float = T_MIN):
    r"""z -> the sampler's state at t_min (not denoised: its density is q_{t_min}'s)."""
    return lambda z: sample.fast_sample(model, None, ch.rng(0), sampler=name, nfe=nfe,
                                        grid=grid, t_min=t_min, denoise=False, x_T=z).x


ch.section("1. a 10-evaluation sampler beside the exact flow")
oracle = toy2d.load("8gaussians").oracle()
z = ch.rng(1).standard_normal((ch.pick(40, 80), 2))
exact = sample.ode_sample(oracle, None, ch.rng(0), x_T=z, rtol=1e-8, atol=1e-8,
                          t_min=T_MIN, denoise=False, record=True)
fig, axes = plt.subplots(1, 2, figsize=(10, 5))
for ax, (name, grid) in zip(axes, [("ddim", "uniform"), ("dpmpp2m", "log_snr")]):
    res = sample.fast_sample(oracle, None, ch.rng(0), sampler=name, nfe=10, grid=grid,
                             t_min=T_MIN, denoise=False, x_T=z, record=True)
    err = np.linalg.norm(res.x - exact.x, axis=1)  # (n,) distance to the flow's end
    ch.show(f"{name} ({grid} grid), 10 evaluations: median distance to the exact flow",
            np.median(err))
    for k in range(z.shape[0]):
        ax.plot(*exact.trajectory[:, k].T, color="0.7", lw=0.8)
        ax.plot(*res.trajectory[:, k].T, "-o", color="C3", ms=2.5, lw=0.8)
    ax.scatter(exact.x[:, 0], exact.x[:, 1], s=14, color="k", zorder=3,
               label="exact flow's end")
    ax.set(xlim=(-4.5, 4.5), ylim=(-4.5, 4.5), aspect="equal",
           title=f"{name} on the {grid} grid: 10 evaluations (red)\n"
                 "over the exact flow (grey)")
    ax.legend(fontsize=8, loc="lower right")
fig.tight_layout()
save_figure(ch, fig, "trajectories")

# %%
# 2. Exponential integrators, and their orders
# --------------------------------------------
#
# The flow is semi-linear: its linear part :math:`-\beta x / 2` is known exactly.
# DPM-Solver :cite:p:`lu2022dpmsolver` integrates it analytically. In the half log-SNR
# :math:`\lambda/2 = \log(\alpha_t / \sigma_t)` (with
# :math:`\alpha_t = \sqrt{\bar\alpha_t}` and :math:`\lambda` the log-SNR of chapter 1),
#
# .. math::
#
#    x_t = \frac{\alpha_t}{\alpha_s}\, x_s - \alpha_t \int_{\lambda_s}^{\lambda_t}
#    e^{-\lambda/2}\, \hat\epsilon(x_\lambda)\, \frac{d\lambda}{2},
#
# so only the smooth function :math:`\lambda \mapsto \hat\epsilon` along the path is
# left to approximate. Holding :math:`\hat\epsilon` constant over a step of
# :math:`h = (\lambda_t - \lambda_s)/2` is DDIM :cite:p:`song2021ddim`, DPM-Solver-1:
#
# .. math::
#
#    x_t = \frac{\alpha_t}{\alpha_s}\, x_s - \sigma_t\, (e^{h} - 1)\, \hat\epsilon(x_s).
#
# Expanding it to first or second order in :math:`\lambda`, with evaluations inside the
# step (singlestep DPM-Solver-2 and -3) or reused from the steps before (multistep, one
# evaluation a step), gives higher orders. DPM-Solver++ :cite:p:`lu2022dpmpp` writes the
# same integral with the predicted clean data :math:`\hat x_0` instead of
# :math:`\hat\epsilon`,
#
# .. math::
#
#    x_t = \frac{\sigma_t}{\sigma_s}\, x_s + \sigma_t \int_{\lambda_s}^{\lambda_t}
#    e^{\lambda/2}\, \hat x_0(x_\lambda)\, \frac{d\lambda}{2},
#
# which behaves better when :math:`\hat x_0` changes fast; UniPC :cite:p:`zhao2023unipc`
# adds a corrector that reuses the evaluation the next step needs anyway. EDM
# :cite:p:`karras2022edm` is Heun's method on :math:`x / \sqrt{\bar\alpha}` in the noise
# level :math:`\tilde\sigma = \sqrt{(1 - \bar\alpha)/\bar\alpha} = e^{-\lambda/2}`,
# whose slope is :math:`\hat\epsilon` itself:
#
# .. math::
#
#    \frac{d}{d\tilde\sigma}\, \frac{x}{\sqrt{\bar\alpha}} = \hat\epsilon(x, t).
#
# The order :math:`p` of a method is how fast its error falls as the steps shrink,
# :math:`\text{error} \propto K^{-p}` for :math:`K` evaluations, measured as
# :math:`\log_2(\text{error}_{40} / \text{error}_{80})` on Gaussian data
# :math:`\mathcal N(m, C)`, where the flow is linear and known in closed form: with
# :math:`m_t = \sqrt{\bar\alpha_t}\, m` and
# :math:`\Sigma_t = \bar\alpha_t C + (1 - \bar\alpha_t) I`,
#
# .. math::
#
#    x_t - m_t = \Sigma_t^{1/2} \Sigma_s^{-1/2} (x_s - m_s).
#
# (One finding: the widely copied third-order multistep update gives its second
# difference half the weight the expansion asks for, which makes it second order;
# npdiff's dpmpp3m uses the full weight, and the reference's is ``dpmpp_multistep(...,
# reference_3m=True)``.)

ch.section("2. each method's order on Gaussian data, where the flow is exact")
data = GaussianData(np.array([1.0, -0.5]), np.array([[0.29, 0.06], [0.06, 0.09]]))
zg = ch.rng(2).standard_normal((64, 2))
lam, rot = np.linalg.eigh(data.cov)  # C = rot diag(lam) rot^T


def exact_gaussian_map(z: np.ndarray, t_min: float) -> np.ndarray:
    r"""The exact flow of N(m, C) from t_max to t_min, in C's eigenbasis."""
    s = data.schedule
    ab_T, ab_0 = float(s.alpha_bar(s.t_max)), float(s.alpha_bar(t_min))
    scale = np.sqrt((ab_0 * lam + 1 - ab_0) / (ab_T * lam + 1 - ab_T))  # eigenvalues
    x_s = (z - np.sqrt(ab_T) * data.mean) @ rot  # x_s - m_s in C's eigenbasis
    return np.sqrt(ab_0) * data.mean + (x_s * scale) @ rot.T


def observed_order(name: str, t_min: float = T_MIN) -> tuple[float, float]:
    r"""log2 of the error ratio from 40 to 80 evaluations, and the error at 80."""
    x_exact = exact_gaussian_map(zg, t_min)
    errs = [np.abs(fast_map(data, name, k, "log_snr", t_min)(zg) - x_exact).max()
            for k in (20, 40, 80)]
    return np.log2(errs[1] / errs[2]), errs[2]


for name in sample.FAST_SAMPLERS:
    order, err80 = observed_order(name)
    ch.show(f"{name}: observed order", order,
            f"stated {sample.fast.ORDERS[name]}; "
            f"max error {err80:.1e} at 80 evaluations")

# %%
# Two figures differ from the stated order. dpm3 spends its budget in DPM-Solver-fast's
# layout, whose lower-order last steps make it second order on budgets that need a
# first-order step (20, 40 and 80 are not multiples of 3). And dpmpp3m converges
# *faster* than third order: that is the boundary, not the method. As
# :math:`t_\min \to 0` the log-SNR grid's last steps reach far into the clean end,
# where, for Gaussian data, :math:`\hat x_0` along the path is nearly constant in
# :math:`\lambda` and the factor :math:`\sigma_t/\sigma_s` of the update damps every
# earlier error, so the coefficient of the leading :math:`h^3` error term shrinks and at
# these step counts the :math:`h^4` term dominates. Stop the flow earlier and the stated
# order shows: at :math:`t_\min = 10^{-2}` the observed order falls from 3.8 towards 3
# as the steps shrink (3.83, 3.46, 3.28 from 20 to 160 evaluations), and at
# :math:`t_\min = 0.1` it is 3 (2.96, 3.05, 3.04):

order, err80 = observed_order("dpmpp3m", t_min=0.1)
ch.show("dpmpp3m at t_min = 0.1: observed order", order,
        f"stated 3; max error {err80:.1e} at 80 evaluations")

# %%
# 3. The exact density of a sampler's samples
# -------------------------------------------
#
# Where :math:`F` is invertible (every solver of the flow, for small enough steps), its
# samples have an exact density, by the change of variables of chapter 5:
#
# .. math::
#
#    \log p_F(x) = \log \mathcal N(z; 0, I)
#    - \log\Big|\det \frac{\partial F}{\partial z}\Big|, \qquad x = F(z),
#
# and in 2D the Jacobian costs four more runs of the sampler (central differences in
# float64, ``sampler_log_density``). With the data's true density :math:`q` that gives
# the exact divergence of the sampler from the data,
#
# .. math::
#
#    \mathrm{KL}(p_F\,\|\,q) = \mathbb E_z\big[\log p_F(F(z)) - \log q(F(z))\big],
#
# paired with its standard error: the true cost of fewer evaluations, without FID's
# network, its bias or its sample-size dependence. The terms
# :math:`\delta = \log p_F - \log q` vanish for an exact sampler, and because :math:`q`
# is normalized, :math:`\mathbb E_{p_F}[e^{-\delta}] = 1`: the estimator
#
# .. math::
#
#    \mathrm{KL}(p_F\,\|\,q) = \mathbb E_{p_F}\big[\delta + e^{-\delta} - 1\big]
#
# has the same mean with far less noise, and the mean of :math:`e^{-\delta} = q/p_F`
# checks the computation. Every sampler below starts from the same noise, so the
# comparisons are paired.
#
# The change of variables needs :math:`F` to be one-to-one, and a sampler with too large
# steps can fold space: two starting points cross and land on the same side,
# :math:`\det \partial F / \partial z \le 0` for some :math:`z`. There the formula
# counts one preimage only, :math:`\log p_F` is not the density of the samples and the
# figure is not a KL: such rows are marked "not estimable" (with how many of the points
# fold) and left out of the figure.

ch.section("3. the exact KL(p_F || q) of each sampler, against its evaluations")
nfes = ch.pick([5, 10, 20], [5, 8, 10, 15, 20, 50, 100])
n_kl = ch.pick(400, 4000)
lineup = [("ddim", "uniform"), ("ddim", "log_snr"), ("edm", "karras"),
          ("dpm3", "log_snr"), ("dpmpp2m", "log_snr"), ("dpmpp3m", "log_snr"),
          ("unipc", "log_snr")]
panels = {}
set_names = ch.pick(["8gaussians", "checkerboard"],
                    ["8gaussians", "checkerboard", "rings"])
for set_name in set_names:
    o = toy2d.load(set_name).oracle()
    zk = ch.rng(3).standard_normal((n_kl, 2))  # the same noise for every sampler

    def log_q(x, o=o):
        return o.log_prob(x, T_MIN)

    def flow_map(zz, o=o):
        return sample.ode_sample(o, None, ch.rng(0), x_T=zz, rtol=1e-8, atol=1e-8,
                                 t_min=T_MIN, denoise=False).x

    flow = sampler_kl(flow_map, zk, log_q)
    ch.show(f"{set_name}: KL of the exact flow (RK45)", flow.kl_cv,
            f"+- {flow.se_cv:.1g}: the prior's mismatch, ~0")
    curves = {}
    for name, grid in lineup:
        pts = []
        for k in nfes:
            r = sampler_kl(fast_map(o, name, k, grid), zk, log_q)
            row = f"{set_name}: {name} ({grid})"
            kl = show_kl(f"{row} KL at {k} evaluations", r)
            pts.append((k, kl, r.se_cv if r.estimable else np.nan))
            ch.show(f"{row} E[q/p_F] - 1 in standard errors at {k}",
                    (r.ratio - 1) / r.ratio_se, "|.| < 4: the density is right")
        curves[f"{name} ({grid})"] = np.array(pts).T
    panels[f"{set_name} oracle"] = (curves, flow.kl_cv)

# %%
# The exact KL of each sampler against its evaluations (rows that fold are left out).
#
# In the quick run (400 points), EDM's 5-evaluation map is one-to-one, so its 4.85 nats
# on 8gaussians and 97 on the checkerboard are KLs, large ones; at 10 evaluations it
# folds 14% of the points of 8gaussians and 60% of the checkerboard's, and those rows
# say "not estimable" instead of a number. By 20 evaluations the folds are gone on
# 8gaussians (0.22 nats), while 2% of the checkerboard's points still fold. dpm3 folds
# at 5 and 10 evaluations on both. The self-normalization check
# :math:`\mathbb E[q/p_F] - 1` alone does not catch a fold: where the map folds, its
# own standard error grows as fast as its error (on 8gaussians, EDM at 10 evaluations
# is -1.1 standard errors away), so the sign of the Jacobian says it.

plot_kl_vs_nfe(panels, ch.path("kl_vs_nfe.png"))  # the library draws it into its file
print(f"figure: {ch.path('kl_vs_nfe.png').name}")
fig = show_png(ch.path("kl_vs_nfe.png"))  # and shown here

# %%
# 4. Where the error is made: the noisy half or the clean half
# ------------------------------------------------------------
#
# The grid of step times matters as much as the method: uniform in :math:`t` (DDPM's),
# uniform in :math:`\lambda` (DPM-Solver's advice for low-dimensional data), Karras's
# :math:`\rho = 7` levels (crowded near the data) or uniform in :math:`\sqrt t`. Where
# is a sampler's error made? Run the exact flow on one half of the log-SNR range and a
# coarse sampler (5 steps of DPM-Solver++(2M)) on the other, split at the middle,
#
# .. math::
#
#    \lambda(t_\text{mid}) = \tfrac12\big(\lambda(t_\max) + \lambda(t_\min)\big),
#
# near SNR 1. On the thin rings (width 0.08) the clean half, at noise below the rings'
# width, makes almost all of it; on 8gaussians' fat blobs the noisy half does. The last
# steps at small noise decide how sharp a density comes out.

ch.section("4. the last steps at small noise decide sharp densities")
k_half = ch.pick(5, 5)


def exact_part(o, x, a, b):
    r"""The exact flow of the oracle o from time a down to time b."""
    return sample.solve_flow(o, x, a, b, rtol=1e-8, atol=1e-8).x


def coarse_part(o, x, a, b):
    r"""k_half steps of DPM-Solver++(2M) from time a down to time b, even in log-SNR."""
    times = log_snr_grid(o.schedule, k_half, b, a)
    return sample.dpmpp_multistep(o, x, times, order=2).x


fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
for ax, set_name in zip(axes, ["rings", "8gaussians"]):
    o = toy2d.load(set_name).oracle()
    s = o.schedule
    t_mid = float(time_of_log_snr(s, 0.5 * (s.log_snr(s.t_max) + s.log_snr(T_MIN))))
    t_max = s.t_max
    maps = {
        "coarse noisy half": lambda zz, o=o, t=t_mid, tm=t_max: exact_part(
            o, coarse_part(o, zz, tm, t), t, T_MIN),
        "coarse clean half": lambda zz, o=o, t=t_mid, tm=t_max: coarse_part(
            o, exact_part(o, zz, tm, t), t, T_MIN),
        "coarse both": lambda zz, o=o, t=t_mid, tm=t_max: coarse_part(
            o, coarse_part(o, zz, tm, t), t, T_MIN),
    }
    zk = ch.rng(4).standard_normal((n_kl, 2))
    kls = {}
    for label, F in maps.items():
        r = sampler_kl(F, zk, lambda x, o=o: o.log_prob(x, T_MIN))
        name = f"{set_name}: KL with {label} ({k_half} DPM-Solver++(2M) steps)"
        kl = show_kl(name, r)
        kls[label] = (kl, r.se_cv if r.estimable else np.nan)
    ax.bar(range(3), [v[0] for v in kls.values()], yerr=[v[1] for v in kls.values()],
           color=["C0", "C3", "0.5"])
    ax.set_xticks(range(3), list(kls), fontsize=8)
    ax.set(ylabel="KL(p_F || q) (nats)",
           title=f"{set_name}: the flow split at mid log-SNR (t = {t_mid:.2f})")
fig.tight_layout()
save_figure(ch, fig, "halves")

# %%
# 5. Step times chosen by the exact KL
# ------------------------------------
#
# The four grids are guesses about where a sampler errs. With an exact KL we can
# *choose* the :math:`K - 1` interior times instead. Write them in the log-SNR, as
# :math:`K` positive shares of its span
# :math:`\Lambda = \lambda(t_\min) - \lambda(t_\max)` made by a softmax of free numbers
# :math:`\theta` (with :math:`\theta_1 = 0`),
#
# .. math::
#
#    \lambda_k = \lambda(t_\max) + \Lambda \sum_{j \le k}
#    \frac{e^{\theta_j}}{\sum_{i=1}^K e^{\theta_i}},
#    \qquad t_k = \lambda^{-1}(\lambda_k),
#
# so that every :math:`\theta \in \mathbb R^{K-1}` is a strictly decreasing grid with
# its ends held, and minimize the estimator of section 3 on :math:`N` starting points
# :math:`z_n` held fixed (so the objective is a deterministic function of
# :math:`\theta`):
#
# .. math::
#
#    \theta^\star = \arg\min_\theta \frac1N \sum_{n=1}^N
#    \delta_n + e^{-\delta_n} - 1, \qquad
#    \delta_n = \log p_{F_\theta}(F_\theta(z_n)) - \log q(F_\theta(z_n)),
#
# with SciPy's Powell method, which needs no gradient; a candidate that folds space
# scores a penalty instead of a false KL. The result is scored on fresh points, the
# same ones for every grid. Align Your Steps :cite:p:`sabour2024ays` minimizes a bound
# on the KL between the true and the discretized SDE, :cite:t:`xue2024` the solver's
# distance to the exact solution, GITS :cite:p:`chen2024gits` a teacher trajectory's
# local errors: surrogates, where in two dimensions the divergence itself is at hand.

ch.section("5. step times chosen by the exact KL")
opt_nfes = ch.pick([5, 10], [5, 8, 10, 15, 20])
n_fit, n_check = ch.pick(200, 400), ch.pick(400, 2000)
trials = ch.pick(300, 1500)
searched, step_panels = {}, {}
for set_name in ["8gaussians", "rings"]:
    o = toy2d.load(set_name).oracle()

    def log_q(x, o=o):
        return o.log_prob(x, T_MIN)

    zc = ch.rng(5).standard_normal((n_check, 2))  # fresh points: every grid's score
    curves = {grid: [] for grid in (*GRIDS, "optimized")}
    for k in opt_nfes:
        found = optimize_steps(o, log_q, ch.rng(6), sampler="dpmpp2m", nfe=k,
                               n_fit=n_fit, n_check=n_check, t_min=T_MIN,
                               max_evaluations=trials)
        searched[set_name, k] = found.times
        for grid in curves:
            times = (found.times if grid == "optimized"
                     else time_grid(o.schedule, k, grid, T_MIN))
            kl, se, folded = steps_kl(o, log_q, zc, times, sampler="dpmpp2m", nfe=k)
            curves[grid].append((k, kl if not folded else np.nan, se))
            row = f"{set_name}: dpmpp2m ({grid}) KL at {k} evaluations"
            if folded:
                print(f"  {row}: not estimable (the map folds {folded} of {n_check})")
            else:
                ch.show(row, kl, f"+- {se:.1g}")
        ch.show(f"{set_name}: search at {k} evaluations, trials of the times",
                found.evaluations, f"{found.seconds:.1f} s")
    step_panels[set_name] = {g: np.array(v).T for g, v in curves.items()}

# %%
# Where the steps go, in log-SNR, for each grid at 10 evaluations (left), and the KL on
# fresh points against the evaluations (right; the same 2M update on every grid).

k_show = 10
widths = {"8gaussians": 0.5 / 1.414, "rings": 0.08}  # each set's mode width s
colors = {"uniform": "C0", "log_snr": "C1", "karras": "C2", "quadratic": "C4",
          "optimized": "C3"}
fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
rows = [(g, time_grid(oracle.schedule, k_show, g, T_MIN)) for g in GRIDS]
rows += [(f"optimized, {s}", searched[s, k_show]) for s in widths]
for y, (label, times) in enumerate(rows):
    axes[0].plot(oracle.schedule.log_snr(times), np.full(times.size, y), "o", ms=4,
                 color="C3" if label.startswith("optimized") else "0.3")
for s, width in widths.items():
    axes[0].axvline(-2 * np.log(width), ls="--", lw=0.8, color="0.5")
    axes[0].text(-2 * np.log(width), -0.6, f"noise = {s}'s width ", fontsize=7,
                 ha="right", rotation=90, va="bottom", color="0.4")
axes[0].set_yticks(range(len(rows)), [r[0] for r in rows], fontsize=8)
axes[0].set_ylim(-0.8, len(rows) - 0.5)
axes[0].set(xlabel="log-SNR $\\lambda$ of the step times (noise on the left)",
            title=f"dpmpp2m's {k_show} steps")
for ax, (s, curves) in zip(axes[1:], step_panels.items()):
    for g, (ks, kl, se) in curves.items():
        ax.errorbar(ks, kl, yerr=se, marker="o", ms=3, capsize=2, label=g,
                    color=colors[g], lw=2 if g == "optimized" else 1)
    ax.set(xlabel="denoiser evaluations", ylabel="KL(p_F || q) (nats)", yscale="log",
           title=f"{s} oracle, dpmpp2m on each grid")
    ax.legend(fontsize=8)
fig.tight_layout()
save_figure(ch, fig, "steps")

# %%
# Why the last steps at small noise decide sharp densities
# --------------------------------------------------------
#
# Take one mode of the data, :math:`\mathcal N(m, s^2 I)`. Along the flow its points
# spread as :math:`\Sigma_t = \bar\alpha_t s^2 + 1 - \bar\alpha_t`, and the log-density
# of the samples is the log-determinant of the map (section 3), which for this mode is
#
# .. math::
#
#    \log\Big|\det\frac{\partial F}{\partial z}\Big| =
#    \frac D2 \log\frac{\Sigma_{t_\min}}{\Sigma_{t_\max}}, \qquad
#    \log \Sigma_t = \log(1 - \bar\alpha_t) + \log\big(1 + s^2 e^{\lambda_t}\big).
#
# The second term is flat while the noise is wider than the mode
# (:math:`s^2 e^{\lambda} \ll 1`: the denoiser's :math:`\hat x_0` is the centre
# :math:`m`) and grows with slope 1 once the mode is resolved
# (:math:`s^2 e^{\lambda} \gg 1`: :math:`\hat x_0 = x / \sqrt{\bar\alpha}`); on both
# sides the update of section 2 is nearly exact. The bend, at
#
# .. math::
#
#    \lambda^\star = -2 \log s,
#
# is where a coarse step misjudges how much the mode contracts, an error in
# :math:`\log p_F` itself and so in the KL. 8gaussians' modes are wide
# (:math:`s = 0.35`, :math:`\lambda^\star = 2.1`); the rings are thin (:math:`s = 0.08`,
# :math:`\lambda^\star = 5.1`, near the clean end of the span). The optimized steps
# bracket each set's bend with their last interior times, the rings' further into the
# clean end than 8gaussians', and leave one long step from just past the bend to
# :math:`t_\min`, where nothing is left to resolve. (Their other cluster, around
# :math:`\lambda \approx 0`, is where the noise is as wide as the data and each sample
# chooses its mode.) A fixed grid cannot know :math:`s`: the quadratic grid suits the
# wide modes and the log-SNR grid the thin ones. The sharper the density, the more the
# density of the samples is decided by the last steps, at small noise; this is what
# section 4 found by halves.

for s, width in widths.items():
    lam = oracle.schedule.log_snr(searched[s, k_show])  # (11,) from noise to data
    ch.show(f"{s}: lambda* = -2 log s", -2 * np.log(width), f"s = {width:.3g}")
    ch.show(f"{s}: optimized steps, last two interior log-SNRs", lam[-2],
            f"and {lam[-3]:.2f}; all: " + ", ".join(f"{v:.1f}" for v in lam))
ch.done()
