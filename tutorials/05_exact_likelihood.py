r"""Chapter 5: exact likelihoods, the probability-flow ODE and the variational bound.

Run:  python tutorials/05_exact_likelihood.py [--quick] [--out DIR]
Writes: 05_ode_vs_vlb.png (per-point log-likelihoods of the ODE and the bound against the
truth, for the exact denoiser and the trained MLP), 05_vlb_terms.png (the bound's terms
along the chain) and 05_nll_vs_entropy.png (test NLL against the true entropy of the toy sets).
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
# ---------------------------------------------------------------------------------------------

from __future__ import annotations

from _common import Chapter, np, plt, toy_model_recipe
from matplotlib.patches import Patch

from npdiff import checkpoint
from npdiff.data import toy2d
from npdiff.likelihood import ode_log_likelihood, vlb
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
ch.done()
