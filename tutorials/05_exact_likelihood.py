r"""Chapter 5: exact likelihoods, the probability-flow ODE and the variational bound.

Run:  python tutorials/05_exact_likelihood.py [--quick] [--out DIR]
Writes: 05_ode_vs_vlb.png (per-point log-likelihoods of the ODE and the bound against the
truth, for the exact denoiser and the trained MLP), 05_vlb_terms.png (the bound's terms
along the chain), 05_nll_vs_entropy.png (test NLL against the true entropy of the toy sets),
05_variance_terms.png (the bound's terms under each reverse variance) and 05_variance_map.png
(the per-point variance over the plane).
Reuses the model chapter 4 saved in the same output folder (trains it again if absent).
"""

# ---------------------------------------------------------------------------------------------
# A generative model is also a density, and the density is how we grade it: the expected
# negative log-likelihood of fresh data, E[-log p_model(x)], is at least the data's entropy
# H = E[-log p_data(x)], and the difference is KL(p_data || p_model) >= 0. The toy sets of
# npdiff.data.toy2d know their true log-density, so this chapter can do better than
# comparing with other models: it reports the *paired gap*, the mean over the same test
# points of log p_data(x) - log p_model(x), with its standard error. It estimates that KL
# directly and, being a paired difference, is far less noisy than NLL - H.
#
# 1. The probability-flow ODE is a normalizing flow
#
# The ODE dx/dt = f(x, t) = -beta/2 (x - eps(x, t) / sigma) of chapter 3 maps noise to data
# deterministically and invertibly. Along any such flow the log-density obeys the
# instantaneous change of variables (Chen et al. 2018, Thm. 1):
#
#     d/dt log p_t(x_t) = -div f(x_t, t),      div f = -beta/2 (D - tr(d eps / d x) / sigma).
#
# Integrate from the data point at t_min up to t_max, where p is N(0, I):
#
#     log p_model(x) = log N(x_{t_max}; 0, I) + integral from t_min to t_max of div f dt
#
# (Song et al. 2021, Eq. 39). Both the path x_t and the accumulated divergence come out of
# one ODE solve (npdiff.likelihood.ode_log_likelihood, RK45). The divergence is the exact
# trace, closed-form for an oracle and by D forward-mode passes for the MLP (chapter 4), so
# the only errors are the solver's and the prior's (q_{t_max} is not exactly N(0, I); the
# KL of chapter 1 says by how little). With the exact denoiser the result should be the
# true log-density, point by point: the first check.
#
# 2. The variational bound
#
# DDPM's own likelihood (Ho et al. 2020, Eq. 5; Sohl-Dickstein et al. 2015) is a bound on the
# discrete chain of T steps:
#
#     -log p(x_0) <= L_T + sum_{t=2..T} L_{t-1} + L_0,
#     L_T     = KL(q(x_T | x_0) || N(0, I))                          the prior term
#     L_{t-1} = E_q KL(q(x_{t-1} | x_t, x_0) || p(x_{t-1} | x_t))   chapter 2's posterior
#     L_0     = -E_q log p(x_0 | x_1)                                 the decoder.
#
# Every KL is between Gaussians and closed-form; the expectations are one-sample Monte Carlo.
# It is only a bound: the reverse steps are Gaussians with a *fixed* variance, while the true
# reverse kernel q(x_{t-1} | x_t) is not Gaussian, and the gap closes only as T grows (and
# with the right variance: beta_t, "large", tightens; beta_tilde_t, "small", does not on
# continuous data, see npdiff.likelihood.vlb). The second figure plots the terms along the
# chain: a third of the KL is paid in the first 10 of 1000 steps, where the data's fine
# structure is decided. The right panel accumulates the paired differences from the exact
# denoiser's bound (all three bounds use the same draws of x_t): the small-variance bound
# loses in the very first steps, the trained network a little later, around t = 0.1, where
# chapter 4 found its largest excess. (On continuous data the decoder
# term L_0 is negative: it is minus the log of a narrow Gaussian's *density*, which exceeds 1;
# the KL terms make up for it. On K-level data the decoder is the discretized Gaussian of
# chapter 2 and L_0 >= 0.)
#
# 3. Reading the numbers
#
# For the exact denoiser the ODE's paired gap should be ~0 (to solver tolerance), and the
# VLB's mean should sit at or slightly above the true NLL. For the trained MLP the gap is
# positive: that is what training has not yet learned, in nats (the full run of chapter 4
# gets within about 0.1 nats on 8gaussians; the quick one is coarser). The last figure
# runs the ODE with the oracles of the other toy sets and lands on their true entropies,
# which validates estimator and entropies together. Pinwheel has no closed-form noised
# marginal and so no oracle; its bar is the plain Monte Carlo estimate -mean log p(x).
#
# 4. The reverse variance: optimal, per point, from the exact trace
#
# Section 2 blamed the bound's looseness on the fixed variance. How wrong is it? Average
# chapter 2's posterior q(x_{t-1} | x_t, x_0) = N(c_1 x_0 + c_2 x_t, beta_tilde_t I) over
# x_0 | x_t: the true reverse kernel has covariance beta_tilde_t I + c_1^2 Cov[x_0 | x_t] (the
# law of total covariance). Cov[x_0 | x_t] is what x_t leaves unknown about x_0. "small" sets
# it to 0, "large" to sigma_t^2 I (right only for x_0 ~ N(0, I)). Two better answers come
# from the denoiser itself, with no training:
#
#   - Analytic-DPM (Bao et al. 2022, Thm. 1): the best isotropic variance on average uses
#     v_t = E tr Cov[x_0 | x_t] / D = (sigma_t^2 / alpha_bar_t)(1 - E||eps(x_t, t)||^2 / D),
#     the mean of ||eps||^2 estimated once, on training data (never the points being scored);
#   - per point: differentiate Tweedie's formula E[x_0 | x_t] = (x_t - sigma_t eps) / sqrt(alpha_bar_t)
#     once more and Cov[x_0 | x_t] = (sigma_t^2 / alpha_bar_t)(I - sigma_t d eps / dx), whose
#     trace needs exactly the divergence the ODE likelihood already computes.
#
# The first is the average of the second (integrate by parts: E||score||^2 = -E laplacian), and
# both are clipped to Bao et al.'s bounds, 0 <= v_t <= sigma_t^2 / alpha_bar_t. Any variance that
# depends on x_t alone keeps the bound a bound. The fifth figure puts the four choices side by
# side along a short chain: the fixed ones overpay in the first steps, the model-based ones
# do not. The last figure draws v_t(x) over the plane, as a fraction of its upper bound: near
# a mode x_t pins x_0 down to that mode's spread; on the ridges between two modes it does not
# (there v even exceeds the averaged bound, and the clip holds it); the trained MLP has
# learned that picture from denoising alone.
# ---------------------------------------------------------------------------------------------

from __future__ import annotations

from _common import Chapter, np, plt, toy_model_recipe
from matplotlib.patches import Patch

from npdiff import checkpoint
from npdiff.data import toy2d
from npdiff.likelihood import ode_log_likelihood, vlb
from npdiff.reverse import chain_for
from npdiff.reverse_variance import VARIANCES, eps_moments, x0_variance_from_divergence
from npdiff.train import train

ch = Chapter(5, "exact likelihood")
data = toy2d.load("8gaussians")
oracle = data.oracle()
n = ch.pick(200, 2000)
T = ch.pick(200, 1000)
x = data.sample(n, ch.rng(0))  # (n, 2) test points, fresh from the seed
log_p_true = data.log_prob(x)  # (n,)
H = data.entropy
ch.section("8gaussians: the true density")
ch.show("true entropy H (nats)", H)
ch.show("mean -log p_true(test points)", -log_p_true.mean(), f"Monte Carlo estimate of H, +- {log_p_true.std() / np.sqrt(n):.2g}")


def paired(log_p_model: np.ndarray) -> tuple[float, float]:
    r"""The paired gap mean(log p_true - log p_model) over the test points, and its standard error."""
    d = log_p_true - log_p_model
    return float(d.mean()), float(d.std(ddof=1) / np.sqrt(d.size))


results = {}  # name -> (ode log p, vlb result)

# -- 1. the exact denoiser: the ODE recovers the true density, the bound sits above it ----------------
ch.section("1. the exact denoiser (GaussianMixture oracle)")
ode = ode_log_likelihood(oracle, x)
gap, se = paired(ode.log_p)
ch.show("oracle ODE: NLL (nats)", -ode.log_p.mean(), f"{ode.nfe} evaluations")
ch.show("oracle ODE: paired gap", gap, f"+- {se:.2g}; 0 up to the solver")
ch.show("oracle ODE: max |log p_ODE - log p_true| over the points", np.abs(ode.log_p - log_p_true).max())
bound = vlb(oracle, x, T, rng=ch.rng(1))
gap, se = paired(-bound.total)
ch.show(f"oracle VLB (T = {T}, large variance): mean bound (nats)", bound.total.mean())
ch.show("oracle VLB: paired gap", gap, f"+- {se:.2g}; >= 0 up to noise: it is a bound")
small = vlb(oracle, x, T, rng=ch.rng(1), variance="small")  # the same draws of x_t: differences are paired
ch.show("oracle VLB, small variance: paired gap", paired(-small.total)[0], "much looser: the omitted posterior spread")
ch.show("oracle VLB: prior term L_T", bound.prior.mean(), "nats, as in chapter 1")
results["exact denoiser"] = (ode.log_p, bound)

# -- 2. the trained MLP ------------------------------------------------------------------------------------
ch.section("2. the trained MLP of chapter 4")
ckpt = ch.out / ("04_model_quick.npz" if ch.quick else "04_model.npz")  # written by chapter 4
if ckpt.exists():
    model = checkpoint.load(ckpt).model
    print(f"  loaded {ckpt}")
else:
    config, train_kw, schedule = toy_model_recipe(ch.quick)
    print(f"  {ckpt} not found: training it as chapter 4 does ({train_kw['steps']} steps)")
    model, _ = train(config, data, rng=np.random.default_rng([ch.seed, 4, 1]), schedule=schedule, progress=False,
                     **train_kw)
ode_m = ode_log_likelihood(model, x)
gap, se = paired(ode_m.log_p)
ch.show("MLP ODE: NLL (nats)", -ode_m.log_p.mean(), f"{ode_m.nfe} evaluations")
ch.show("MLP ODE: paired gap", gap, f"+- {se:.2g}: the KL still to learn")
bound_m = vlb(model, x, T, rng=ch.rng(1))  # the oracle's draws of x_t again (common random numbers)
gap_v, se_v = paired(-bound_m.total)
ch.show(f"MLP VLB (T = {T}): mean bound (nats)", bound_m.total.mean())
ch.show("MLP VLB: paired gap", gap_v, f"+- {se_v:.2g}")
extra = bound_m.total - bound.total  # the same x_t draws as the oracle's bound: most of the noise cancels
ch.show("MLP VLB - oracle VLB, paired", extra.mean(), f"+- {extra.std(ddof=1) / np.sqrt(n):.2g}: the network's excess")
results["trained MLP"] = (ode_m.log_p, bound_m)

fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
ax = axes[0]
lo, hi = np.percentile(log_p_true, 0.5) - 0.5, log_p_true.max() + 0.3
ax.plot([lo, hi], [lo, hi], color="0.5", lw=0.8)
for (name, (lp, _)), color in zip(results.items(), ["C0", "C3"]):
    ax.scatter(log_p_true, lp, s=7, alpha=0.6, color=color, zorder=3 if color == "C0" else 2,
               label=f"{name}: paired gap {paired(lp)[0]:+.3f} nats")
ax.set(xlim=(lo, hi), ylim=(lo, hi), xlabel=r"true $\log p(x)$", ylabel=r"ODE $\log p_{model}(x)$",
       title="the ODE likelihood, point by point")
ax.legend(fontsize=8, loc="lower right")
ax.grid(alpha=0.3)
ax = axes[1]
diffs = {f"ODE, {name}": log_p_true - lp for name, (lp, _) in results.items()}
diffs.update({f"VLB (T={T}), {name}": log_p_true + b.total for name, (_, b) in results.items()})
bins = np.linspace(-4, 4, 81)
for (label, d), color, ls in zip(diffs.items(), ["C0", "C3", "C0", "C3"], ["-", "-", ":", ":"]):
    ax.hist(np.clip(d, -4, 4), bins=bins, histtype="step", color=color, ls=ls, lw=1.5,
            label=f"{label}: mean {d.mean():+.3f}")
ax.set(xlabel=r"$\log p_{true}(x) - \log p_{model}(x)$ per test point (clipped to $\pm 4$)", ylabel="points",
       title="the ODE is exact per point; the one-sample VLB only on average")
ax.legend(fontsize=8, loc="upper left")
fig.tight_layout()
ch.save(fig, "ode_vs_vlb")

# -- the bound's terms along the chain ---------------------------------------------------------------------
fig, axes = plt.subplots(1, 2, figsize=(14, 4.6))
steps = np.arange(1, T)  # the KL terms L_1 .. L_{T-1}
ax = axes[0]
for (label, b), style in zip([("exact denoiser, large variance", bound), ("exact denoiser, small variance", small),
                              ("trained MLP, large variance", bound_m)], ["-", ":", "--"]):
    ax.loglog(steps, np.maximum(b.terms[:, 1:T].mean(axis=0), 1e-8), style, lw=1.2,
              label=f"{label}: L_0 = {b.decoder.mean():.2f}, sum = {b.total.mean():.2f}")
ax.set(xlabel=f"step t of the chain (T = {T})", ylabel=r"mean $L_{t-1}$ (nats)",
       title=r"where the bound is paid: KL$(q(x_{t-1}|x_t,x_0)\,\|\,p(x_{t-1}|x_t))$ per step")
ax.legend(fontsize=8)
ax.grid(alpha=0.3, which="both")
# the terms above look alike; what differs is small and early: accumulate the paired differences
ax = axes[1]
for (label, b), color in zip([("small variance, exact denoiser", small), ("trained MLP, large variance", bound_m)],
                             ["C1", "C2"]):
    ax.semilogx(steps, np.cumsum((b.terms[:, 1:T] - bound.terms[:, 1:T]).mean(axis=0)), color=color, label=label)
ax.axhline(0.0, color="0.5", lw=0.8)
ax.set(xlabel="step t", ylabel="nats", title="cumulative extra cost over the exact denoiser's bound, steps 1..t")
ax.legend(fontsize=8)
ax.grid(alpha=0.3, which="both")
fig.tight_layout()
ch.save(fig, "vlb_terms")
kl_terms = bound.terms[:, 1:T].sum(axis=1).mean()
ch.show("oracle VLB: sum of the KL terms L_1..L_{T-1}", kl_terms)
ch.show("oracle VLB: share of it paid in the first 10 steps", bound.terms[:, 1:11].sum(axis=1).mean() / kl_terms)
ch.show("oracle VLB: decoder L_0", bound.decoder.mean(), "negative: a narrow Gaussian's density exceeds 1")

# -- 3. NLL against the true entropy, set by set -------------------------------------------------------------
ch.section("3. the ODE with each set's oracle against its true entropy")
names = ch.pick(["8gaussians", "checkerboard", "rings", "circles", "pinwheel"], list(toy2d.NAMES))
n_set = ch.pick(100, 500)  # 2spirals' oracle is a mixture of 960 boxes: 500 points take a minute
rows = []
for k, name in enumerate(names):
    d = toy2d.load(name)
    pts = d.sample(n_set, ch.rng(10 + k))
    lp_true = d.log_prob(pts)
    try:
        o = d.oracle()
    except NotImplementedError:  # pinwheel: no oracle, only the Monte Carlo estimate of H
        nll = -lp_true.mean()
        rows.append((name, d.entropy, nll, lp_true.std(ddof=1) / np.sqrt(n_set), "Monte Carlo -log p_true", None, None))
        ch.show(f"{name}: H", d.entropy)
        ch.show(f"{name}: mean -log p_true (no oracle)", nll)
        continue
    lp = ode_log_likelihood(o, pts).log_p
    diff = lp_true - lp
    rows.append((name, d.entropy, -lp.mean(), lp.std(ddof=1) / np.sqrt(n_set), "ODE with the oracle",
                 diff.mean(), diff.std(ddof=1) / np.sqrt(n_set)))
    ch.show(f"{name}: H", d.entropy)
    ch.show(f"{name}: ODE NLL with the oracle", -lp.mean())
    ch.show(f"{name}: paired gap of the oracle ODE", diff.mean(), f"+- {diff.std(ddof=1) / np.sqrt(n_set):.2g}")

fig, axes = plt.subplots(1, 2, figsize=(13, 4.6))
ax = axes[0]
pos = np.arange(len(rows))
has_oracle = [r[5] is not None for r in rows]
ax.bar(pos - 0.2, [r[1] for r in rows], width=0.4, color="0.6", label="true entropy H")
ax.bar(pos + 0.2, [r[2] for r in rows], width=0.4, yerr=[r[3] for r in rows], capsize=3,
       color=["C0" if o else "C1" for o in has_oracle], label="NLL: ODE with the exact denoiser (+- s.e.)")
ax.set_xticks(pos, [r[0] for r in rows], rotation=20)
ax.set(ylabel="nats", title=f"test NLL against the true entropy ({n_set} points per set)")
ax.set_ylim(0, max(r[2] for r in rows) * 1.3)
handles, _ = ax.get_legend_handles_labels()
handles.append(Patch(color="C1", label="no oracle: Monte Carlo -mean log p_true"))
ax.legend(handles=handles, fontsize=8, loc="upper left")
ax = axes[1]
idx = [i for i, o in enumerate(has_oracle) if o]
ax.errorbar(idx, [rows[i][5] for i in idx], yerr=[rows[i][6] for i in idx], fmt="o", color="C0", capsize=3,
            label="exact denoiser: mean (log p_true - log p_ODE) +- s.e.")
gap_m, se_m = paired(ode_m.log_p)
ax.errorbar([names.index("8gaussians")], [gap_m], yerr=[se_m], fmt="s", color="C3", capsize=3,
            label=f"trained MLP (chapter 4), on the {n} test points of section 2")
ax.axhline(0.0, color="0.5", lw=0.8)
ax.set_yscale("symlog", linthresh=1e-4)
top = max(gap_m + se_m, *(rows[i][5] + rows[i][6] for i in idx))
ax.set_ylim(-1e-3, 10 * top)
ax.set_xticks(pos, [r[0] for r in rows], rotation=20)
ax.set(ylabel="nats (symmetric log scale)", title="the paired gap: an estimate of KL(data || model)")
ax.legend(fontsize=8, loc="lower right")
ax.grid(alpha=0.3)
fig.tight_layout()
ch.save(fig, "nll_vs_entropy")

# -- 4. the reverse variance -----------------------------------------------------------------------------------
T_few = ch.pick(20, 50)
ch.section(f"4. the reverse variance on a chain of T = {T_few} steps")
train_x = data.sample(n, ch.rng(2))  # Analytic-DPM's E||eps||^2 comes from training data, never the test points
few = {}  # (denoiser name, variance) -> VLBResult
for name, den in (("oracle", oracle), ("MLP", model)):
    moments = eps_moments(den, train_x, chain_for(den.schedule, T_few), ch.rng(3))
    for variance in VARIANCES:  # the same draws of x_t for every variance: the differences are paired
        few[name, variance] = vlb(den, x, T_few, rng=ch.rng(4), variance=variance, eps_moments=moments)
        ch.show(f"{name} VLB, {variance} variance: paired gap", paired(-few[name, variance].total)[0])
    for variance in ("analytic", "trace"):
        d = few[name, variance].total - few[name, "large"].total
        ch.show(f"{name} VLB, {variance} - large, paired", d.mean(), f"+- {d.std(ddof=1) / np.sqrt(n):.2g}")
t_check = 0.1  # integration by parts: Analytic-DPM's v is the average of the per-point v from the trace
ab = float(oracle.schedule.alpha_bar(t_check))
x_t = np.sqrt(ab) * train_x + np.sqrt(1 - ab) * ch.rng(5).standard_normal(train_x.shape)  # (n, 2) ~ q_t
eps_t, div_t = oracle.eps_and_divergence(x_t, t_check)
m_trace = np.sqrt(1 - ab) * div_t / 2  # sigma tr(d eps/dx) / D per point
d = np.sum(eps_t**2, axis=1) / 2 - m_trace
ch.show(f"oracle at t = {t_check}: E||eps||^2 / D - sigma E[tr d eps/dx] / D", d.mean(),
        f"+- {d.std(ddof=1) / np.sqrt(n):.2g}; 0 by integration by parts")

fig, axes = plt.subplots(1, 2, figsize=(13, 4.6), sharey=True)
for ax, name in zip(axes, ("oracle", "MLP")):
    base = few[name, "large"]
    for variance, color in zip(("small", "analytic", "trace"), ["C1", "C2", "C3"]):
        b = few[name, variance]
        extra = np.cumsum((b.terms[:, 1:T_few] - base.terms[:, 1:T_few]).mean(axis=0))  # (T_few - 1,) paired
        ax.plot(np.arange(1, T_few), extra, color=color, marker=".",
                label=f"{variance}: bound {b.total.mean():.3f} (L_0 {b.decoder.mean():+.3f})")
    ax.axhline(0.0, color="C0", lw=1.2, label=f"large: bound {base.total.mean():.3f} (L_0 {base.decoder.mean():+.3f})")
    ax.set_yscale("symlog", linthresh=0.01)
    ax.set(xlabel=f"step t of the chain (T = {T_few})", title=f"{name}: the KL terms 1..t, minus the large variance's")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
axes[0].set_ylabel("cumulative paired difference (nats, symlog)")
fig.tight_layout()
ch.save(fig, "variance_terms")

grid_n = ch.pick(40, 120)
g = np.linspace(-4.5, 4.5, grid_n)
gx, gy = np.meshgrid(g, g, indexing="xy")
plane = np.stack([gx.ravel(), gy.ravel()], 1)  # (G*G, 2) points x_t
times = (0.05, 0.15, 0.4)
fig, axes = plt.subplots(2, 3, figsize=(13, 8.4))
for row, (name, den) in enumerate((("oracle", oracle), ("MLP", model))):
    for ax, t in zip(axes[row], times):
        ab = float(den.schedule.alpha_bar(t))
        v = x0_variance_from_divergence(den.eps_and_divergence(plane, t)[1], ab, 2)  # (G*G,) Tweedie's second moment
        frac = np.clip(v / ((1 - ab) / ab), 0.0, 1.0).reshape(gx.shape)  # of its upper bound sigma^2 / alpha_bar
        im = ax.pcolormesh(gx, gy, frac, cmap="viridis", vmin=0, vmax=1, shading="auto")
        ax.set(title=f"{name}, t = {t}", aspect="equal")
fig.suptitle(r"the per-point variance $\mathrm{tr}\,\mathrm{Cov}[x_0|x_t] / D$ from the exact trace, "
             r"as a fraction of its upper bound $\sigma_t^2/\bar\alpha_t$")
fig.colorbar(im, ax=axes, shrink=0.8, label="fraction of the upper bound (Bao et al. 2022, Thm. 2)")
ch.save(fig, "variance_map")
ch.done()
