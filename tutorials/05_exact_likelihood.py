r"""
Chapter 5: exact likelihoods, the probability-flow ODE and the variational bound
================================================================================

A generative model is also a density, and the density is how we grade it: the expected
negative log-likelihood of fresh data, :math:`\mathbb E[-\log p_\text{model}(x)]`, is at
least the data's entropy :math:`H = \mathbb E[-\log p_\text{data}(x)]`, and the
difference is :math:`\mathrm{KL}(p_\text{data}\,\|\,p_\text{model}) \ge 0`. This chapter
computes the likelihood two ways, exactly by the probability-flow ODE and as a bound by
the chain of DDPM, first with the exact denoiser and then with the MLP trained in
chapter 4, and ends with the reverse variance that makes the bound tight.

Run::

    python tutorials/05_exact_likelihood.py [--quick] [--out DIR]

It reuses the model chapter 4 saved in the same output folder (and trains it again if
that file is absent).
"""

# %%
# The paired gap
# --------------
#
# The toy sets of ``npdiff.data.toy2d`` know their true log-density, so this chapter can
# do better than comparing with other models. It reports the *paired gap*, the mean over
# the same test points :math:`x_1, \dots, x_n` of
#
# .. math::
#
#    \widehat{\mathrm{KL}} = \frac1n \sum_{i=1}^n
#    \big[\log p_\text{data}(x_i) - \log p_\text{model}(x_i)\big],
#
# with its standard error. It estimates the KL directly and, being a paired difference,
# is far less noisy than :math:`\mathrm{NLL} - H`.

from __future__ import annotations

import json

from _common import (
    REPO_ROOT,
    Chapter,
    mean_se,
    np,
    paired_gap,
    plt,
    save_figure,
    toy_model_recipe,
)
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
ch.show("mean -log p_true(test points)", -log_p_true.mean(),
        f"Monte Carlo estimate of H, +- {log_p_true.std() / np.sqrt(n):.2g}")


def paired(log_p_model: np.ndarray) -> tuple[float, float]:
    r"""The paired gap over the test points, and its standard error."""
    return paired_gap(log_p_true, log_p_model)


# %%
# 1. The probability-flow ODE is a normalizing flow
# -------------------------------------------------
#
# The ODE of chapter 3,
#
# .. math::
#
#    \frac{dx}{dt} = f(x, t) = -\frac{\beta(t)}{2}
#    \Big(x - \frac{\epsilon(x, t)}{\sigma_t}\Big),
#
# maps noise to data deterministically and invertibly. Along any such flow the
# log-density obeys the instantaneous change of variables :cite:p:`chen2018neuralode`
# (Thm. 1),
#
# .. math::
#
#    \frac{d}{dt} \log p_t(x_t) = -\nabla\!\cdot f(x_t, t), \qquad
#    \nabla\!\cdot f = -\frac{\beta(t)}{2}
#    \Big(D - \frac{\operatorname{tr}(\partial\epsilon / \partial x)}{\sigma_t}\Big).
#
# Integrate from the data point at :math:`t_\min` up to :math:`t_\max`, where :math:`p`
# is :math:`\mathcal N(0, I)` :cite:p:`song2021sde` (Eq. 39):
#
# .. math::
#
#    \log p_\text{model}(x) = \log \mathcal N(x_{t_\max}; 0, I)
#    + \int_{t_\min}^{t_\max} \nabla\!\cdot f(x_t, t)\, dt .
#
# Both the path :math:`x_t` and the accumulated divergence come out of one ODE solve
# (``ode_log_likelihood``, RK45). The divergence is the exact trace, closed-form for an
# oracle and by :math:`D` forward-mode passes for the MLP (chapter 4), so the only
# errors are the solver's and the prior's (:math:`q_{t_\max}` is not exactly
# :math:`\mathcal N(0, I)`; the KL of chapter 1 says by how little). With the exact
# denoiser the result should be the true log-density, point by point.

ch.section("1. the exact denoiser: the probability-flow ODE")
ode = ode_log_likelihood(oracle, x)
gap, se = paired(ode.log_p)
ch.show("oracle ODE: NLL (nats)", -ode.log_p.mean(), f"{ode.nfe} evaluations")
ch.show("oracle ODE: paired gap", gap, f"+- {se:.2g}; 0 up to the solver")
ch.show("oracle ODE: max |log p_ODE - log p_true| over the points",
        np.abs(ode.log_p - log_p_true).max())

# %%
# 2. The variational bound
# ------------------------
#
# DDPM's own likelihood :cite:p:`ho2020ddpm,sohl2015` is a bound on the discrete chain
# of :math:`T` steps (Ho et al., Eq. 5):
#
# .. math::
#
#    -\log p(x_0) \le L_T + \sum_{t=2}^{T} L_{t-1} + L_0,
#
# with the prior term, chapter 2's posterior against the reverse step, and the decoder,
#
# .. math::
#
#    L_T &= \mathrm{KL}\big(q(x_T \mid x_0)\,\|\,\mathcal N(0, I)\big), \\
#    L_{t-1} &= \mathbb E_q\, \mathrm{KL}\big(q(x_{t-1} \mid x_t, x_0)\,\|\,
#    p(x_{t-1} \mid x_t)\big), \\
#    L_0 &= -\mathbb E_q \log p(x_0 \mid x_1).
#
# Every KL is between Gaussians and closed-form; the expectations are one-sample Monte
# Carlo. It is only a bound: the reverse steps are Gaussians with a *fixed* variance,
# while the true reverse kernel :math:`q(x_{t-1} \mid x_t)` is not Gaussian, and the gap
# closes only as :math:`T` grows, and with the right variance: :math:`\beta_t` ("large")
# tightens it; :math:`\tilde\beta_t` ("small") does not on continuous data. Both bounds
# below use the same draws of :math:`x_t`, so their difference is paired.

ch.section("2. the exact denoiser: the variational bound")
bound = vlb(oracle, x, T, rng=ch.rng(1))
gap, se = paired(-bound.total)
ch.show(f"oracle VLB (T = {T}, large variance): mean bound (nats)", bound.total.mean())
ch.show("oracle VLB: paired gap", gap, f"+- {se:.2g}; >= 0 up to noise: it is a bound")
small = vlb(oracle, x, T, rng=ch.rng(1), variance="small")  # the same draws of x_t
ch.show("oracle VLB, small variance: paired gap", paired(-small.total)[0],
        "much looser: the omitted posterior spread")
ch.show("oracle VLB: prior term L_T", bound.prior.mean(), "nats, as in chapter 1")

# %%
# 3. The trained MLP
# ------------------
#
# The same two estimators on the network chapter 4 trained. Its paired gap is what
# training has not yet learned, in nats (the full run of chapter 4 gets within about 0.1
# nats on 8gaussians; the quick one is coarser). Its bound uses the oracle's draws of
# :math:`x_t` again (common random numbers), so the excess
# :math:`L^\text{MLP} - L^\text{oracle}` is measured with little noise; no network can
# make it negative in expectation, since each term is minimized by the exact denoiser.

ch.section("3. the trained MLP of chapter 4")
ckpt = ch.out / ("04_model_quick.npz" if ch.quick else "04_model.npz")  # chapter 4's
if ckpt.exists():
    model = checkpoint.load(ckpt).model
    print(f"  loaded {ckpt.name}")
else:
    config, train_kw, schedule = toy_model_recipe(ch.quick)
    print(f"  {ckpt.name} not found: training it as chapter 4 does "
          f"({train_kw['steps']} steps)")
    model, _ = train(config, data, rng=np.random.default_rng([ch.seed, 4, 1]),
                     schedule=schedule, progress=False, **train_kw)
ode_m = ode_log_likelihood(model, x)
gap, se = paired(ode_m.log_p)
ch.show("MLP ODE: NLL (nats)", -ode_m.log_p.mean(), f"{ode_m.nfe} evaluations")
ch.show("MLP ODE: paired gap", gap, f"+- {se:.2g}: the KL still to learn")
bound_m = vlb(model, x, T, rng=ch.rng(1))  # the oracle's draws of x_t again
gap_v, se_v = paired(-bound_m.total)
ch.show(f"MLP VLB (T = {T}): mean bound (nats)", bound_m.total.mean())
ch.show("MLP VLB: paired gap", gap_v, f"+- {se_v:.2g}")
extra = bound_m.total - bound.total  # paired: most of the noise cancels
ch.show("MLP VLB - oracle VLB, paired", extra.mean(),
        f"+- {extra.std(ddof=1) / np.sqrt(n):.2g}: the network's excess")
results = {"exact denoiser": (ode.log_p, bound), "trained MLP": (ode_m.log_p, bound_m)}

# %%
# The ODE likelihood point by point (left), and the per-point differences of both
# estimators (right): the ODE of the exact denoiser is exact for every point, the
# one-sample bound only on average.

fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
ax = axes[0]
lo, hi = np.percentile(log_p_true, 0.5) - 0.5, log_p_true.max() + 0.3
ax.plot([lo, hi], [lo, hi], color="0.5", lw=0.8)
for (name, (lp, _)), color in zip(results.items(), ["C0", "C3"]):
    ax.scatter(log_p_true, lp, s=7, alpha=0.6, color=color,
               zorder=3 if color == "C0" else 2,
               label=f"{name}: paired gap {paired(lp)[0]:+.3f} nats")
ax.set(xlim=(lo, hi), ylim=(lo, hi), xlabel=r"true $\log p(x)$",
       ylabel=r"ODE $\log p_{model}(x)$", title="the ODE likelihood, point by point")
ax.legend(fontsize=8, loc="lower right")
ax.grid(alpha=0.3)
ax = axes[1]
diffs = {f"ODE, {name}": log_p_true - lp for name, (lp, _) in results.items()}
for name, (_, b) in results.items():
    diffs[f"VLB (T={T}), {name}"] = log_p_true + b.total
bins = np.linspace(-4, 4, 81)
styles = zip(["C0", "C3", "C0", "C3"], ["-", "-", ":", ":"])
for (label, d), (color, ls) in zip(diffs.items(), styles):
    ax.hist(np.clip(d, -4, 4), bins=bins, histtype="step", color=color, ls=ls, lw=1.5,
            label=f"{label}: mean {d.mean():+.3f}")
ax.set(xlabel=r"$\log p_{true}(x) - \log p_{model}(x)$ per point (clipped to $\pm 4$)",
       ylabel="points",
       title="the ODE is exact per point; the one-sample VLB only on average")
ax.legend(fontsize=8, loc="upper left")
fig.tight_layout()
save_figure(ch, fig, "ode_vs_vlb")

# %%
# 4. Where the bound is paid
# --------------------------
#
# The terms :math:`L_{t-1}` along the chain (left): a large share of the KL (printed
# below) is paid in the first 10 steps, where the data's fine structure is decided. The
# right panel accumulates the paired differences from the exact denoiser's bound,
# :math:`\sum_{s \le t} \mathbb E\,[L_{s-1} - L^\text{oracle}_{s-1}]`: the
# small-variance bound loses in the very first steps, the trained network a little
# later, around :math:`t = 0.1`, where chapter 4 found its largest excess. On continuous
# data the decoder term :math:`L_0` is negative: it is minus the log of a narrow
# Gaussian's *density*, which exceeds 1; the KL terms make up for it. (On
# :math:`K`-level data the decoder is the discretized Gaussian of chapter 2 and
# :math:`L_0 \ge 0`.)

ch.section("4. where the bound is paid")
fig, axes = plt.subplots(1, 2, figsize=(14, 4.6))
steps = np.arange(1, T)  # the KL terms L_1 .. L_{T-1}
lines = [("exact denoiser, large variance", bound, "-"),
         ("exact denoiser, small variance", small, ":"),
         ("trained MLP, large variance", bound_m, "--")]
for label, b, style in lines:
    axes[0].loglog(steps, np.maximum(b.terms[:, 1:T].mean(axis=0), 1e-8), style, lw=1.2,
                   label=f"{label}: L_0 = {b.decoder.mean():.2f}, "
                         f"sum = {b.total.mean():.2f}")
axes[0].set(xlabel=f"step t of the chain (T = {T})", ylabel=r"mean $L_{t-1}$ (nats)",
            title=r"where the bound is paid: "
                  r"KL$(q(x_{t-1}|x_t,x_0)\,\|\,p(x_{t-1}|x_t))$")
for (label, b), color in zip([("small variance, exact denoiser", small),
                              ("trained MLP, large variance", bound_m)], ["C1", "C2"]):
    paired_terms = (b.terms[:, 1:T] - bound.terms[:, 1:T]).mean(axis=0)
    axes[1].semilogx(steps, np.cumsum(paired_terms), color=color, label=label)
axes[1].axhline(0.0, color="0.5", lw=0.8)
axes[1].set(xlabel="step t", ylabel="nats",
            title="cumulative extra cost over the exact denoiser's bound, steps 1..t")
for ax in axes:
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
fig.tight_layout()
save_figure(ch, fig, "vlb_terms")
kl_terms = bound.terms[:, 1:T].sum(axis=1).mean()
ch.show("oracle VLB: sum of the KL terms L_1..L_{T-1}", kl_terms)
ch.show("oracle VLB: share of it paid in the first 10 steps",
        bound.terms[:, 1:11].sum(axis=1).mean() / kl_terms)
ch.show("oracle VLB: decoder L_0", bound.decoder.mean(),
        "negative: a narrow Gaussian's density exceeds 1")

# %%
# 5. The likelihood against the true entropy, set by set
# ------------------------------------------------------
#
# The ODE with the oracle of every other toy set lands on its true entropy :math:`H`,
# which validates estimator and entropies together. Pinwheel has no closed-form noised
# marginal and so no oracle; its bar is the plain Monte Carlo estimate
# :math:`-\frac1n\sum_i \log p_\text{data}(x_i)`.

ch.section("5. the ODE with each set's oracle against its true entropy")
names = ch.pick(["8gaussians", "checkerboard", "rings", "circles", "pinwheel"],
                list(toy2d.NAMES))
n_set = ch.pick(100, 500)  # 2spirals' oracle mixes 960 boxes: 500 points take a minute
rows = []
for k, name in enumerate(names):
    d = toy2d.load(name)
    pts = d.sample(n_set, ch.rng(10 + k))
    lp_true = d.log_prob(pts)
    try:
        o = d.oracle()
    except NotImplementedError:  # pinwheel: no oracle, only a Monte Carlo estimate of H
        nll, se_nll = mean_se(-lp_true)
        rows.append((name, d.entropy, nll, se_nll, None, None))
        ch.show(f"{name}: H", d.entropy)
        ch.show(f"{name}: mean -log p_true (no oracle)", nll)
        continue
    lp = ode_log_likelihood(o, pts).log_p
    gap_set, se_set = paired_gap(lp_true, lp)
    rows.append((name, d.entropy, *mean_se(-lp), gap_set, se_set))
    ch.show(f"{name}: H", d.entropy)
    ch.show(f"{name}: ODE NLL with the oracle", -lp.mean())
    ch.show(f"{name}: paired gap of the oracle ODE", gap_set, f"+- {se_set:.2g}")

# %%
# The NLL beside the entropy (left) and the paired gap, an estimate of
# :math:`\mathrm{KL}(p_\text{data}\,\|\,p_\text{model})`, on a symmetric log scale
# (right).

fig, axes = plt.subplots(1, 2, figsize=(13, 4.6))
ax = axes[0]
pos = np.arange(len(rows))
has_oracle = [r[4] is not None for r in rows]
ax.bar(pos - 0.2, [r[1] for r in rows], width=0.4, color="0.6", label="true entropy H")
ax.bar(pos + 0.2, [r[2] for r in rows], width=0.4, yerr=[r[3] for r in rows], capsize=3,
       color=["C0" if o else "C1" for o in has_oracle],
       label="NLL: ODE with the exact denoiser (+- s.e.)")
ax.set_xticks(pos, [r[0] for r in rows], rotation=20)
ax.set(ylabel="nats", title=f"test NLL against the true entropy ({n_set} points a set)")
ax.set_ylim(0, max(r[2] for r in rows) * 1.3)
handles, _ = ax.get_legend_handles_labels()
handles.append(Patch(color="C1", label="no oracle: Monte Carlo -mean log p_true"))
ax.legend(handles=handles, fontsize=8, loc="upper left")
ax = axes[1]
idx = [i for i, o in enumerate(has_oracle) if o]
ax.errorbar(idx, [rows[i][4] for i in idx], yerr=[rows[i][5] for i in idx], fmt="o",
            color="C0", capsize=3,
            label="exact denoiser: mean (log p_true - log p_ODE) +- s.e.")
gap_m, se_m = paired(ode_m.log_p)
ax.errorbar([names.index("8gaussians")], [gap_m], yerr=[se_m], fmt="s", color="C3",
            capsize=3,
            label=f"trained MLP (chapter 4), on the {n} test points of section 3")
ax.axhline(0.0, color="0.5", lw=0.8)
ax.set_yscale("symlog", linthresh=1e-4)
top = max(gap_m + se_m, *(rows[i][4] + rows[i][5] for i in idx))
ax.set_ylim(-1e-3, 10 * top)
ax.set_xticks(pos, [r[0] for r in rows], rotation=20)
ax.set(ylabel="nats (symmetric log scale)",
       title="the paired gap: an estimate of KL(data || model)")
ax.legend(fontsize=8, loc="lower right")
ax.grid(alpha=0.3)
fig.tight_layout()
save_figure(ch, fig, "nll_vs_entropy")

# %%
# 6. The reverse variance: optimal, per point, from the exact trace
# -----------------------------------------------------------------
#
# Section 2 blamed the bound's looseness on the fixed variance. How wrong is it? Average
# chapter 2's posterior
# :math:`q(x_{t-1} \mid x_t, x_0) = \mathcal N(c_1 x_0 + c_2 x_t,\ \tilde\beta_t I)`
# over :math:`x_0 \mid x_t`: by the law of total covariance the true reverse kernel has
# covariance
#
# .. math::
#
#    \tilde\beta_t I + c_1^2 \operatorname{Cov}[x_0 \mid x_t].
#
# :math:`\operatorname{Cov}[x_0 \mid x_t]` is what :math:`x_t` leaves unknown about
# :math:`x_0`. "small" sets it to 0, "large" to :math:`\sigma_t^2 I` (right only for
# :math:`x_0 \sim \mathcal N(0, I)`). Two better answers come from the denoiser itself,
# with no training. Analytic-DPM :cite:p:`bao2022analytic` (Thm. 1): the best isotropic
# variance on average uses
#
# .. math::
#
#    v_t = \frac{\mathbb E \operatorname{tr} \operatorname{Cov}[x_0 \mid x_t]}{D}
#    = \frac{\sigma_t^2}{\bar\alpha_t}
#    \Big(1 - \frac{\mathbb E\,\|\epsilon(x_t, t)\|^2}{D}\Big),
#
# the mean of :math:`\|\epsilon\|^2` estimated once, on training data (never the points
# being scored). Per point: differentiate Tweedie's formula :cite:p:`efron2011tweedie`
# :math:`\mathbb E[x_0 \mid x_t] = (x_t - \sigma_t \epsilon) / \sqrt{\bar\alpha_t}` once
# more,
#
# .. math::
#
#    \operatorname{Cov}[x_0 \mid x_t] = \frac{\sigma_t^2}{\bar\alpha_t}
#    \Big(I - \sigma_t \frac{\partial \epsilon}{\partial x}\Big),
#
# whose trace needs exactly the divergence the ODE likelihood already computes. Both are
# clipped to Bao et al.'s bounds, :math:`0 \le v_t \le \sigma_t^2 / \bar\alpha_t`. Any
# variance that depends on :math:`x_t` alone keeps the bound a bound. The four choices
# below share their draws of :math:`x_t`, so their differences are paired.

T_few = ch.pick(20, 50)
ch.section(f"6. the reverse variance on a chain of T = {T_few} steps")
train_x = data.sample(n, ch.rng(2))  # E||eps||^2 from training data, not test points
few = {}  # (denoiser name, variance) -> VLBResult
for name, den in (("oracle", oracle), ("MLP", model)):
    moments = eps_moments(den, train_x, chain_for(den.schedule, T_few), ch.rng(3))
    for variance in VARIANCES:  # the same draws of x_t for every variance
        few[name, variance] = vlb(den, x, T_few, rng=ch.rng(4), variance=variance,
                                  eps_moments=moments)
        ch.show(f"{name} VLB, {variance} variance: paired gap",
                paired(-few[name, variance].total)[0])
    for variance in ("analytic", "trace"):
        d = few[name, variance].total - few[name, "large"].total
        ch.show(f"{name} VLB, {variance} - large, paired", d.mean(),
                f"+- {d.std(ddof=1) / np.sqrt(n):.2g}")

# %%
# The first is the average of the second: integrating by parts,
# :math:`\mathbb E\|\nabla \log q_t\|^2 = -\mathbb E\, \Delta \log q_t`, that is
#
# .. math::
#
#    \frac{\mathbb E\,\|\epsilon(x_t, t)\|^2}{D}
#    = \frac{\sigma_t\, \mathbb E \operatorname{tr}(\partial \epsilon / \partial x)}{D},
#
# checked here at :math:`t = 0.1` on the points :math:`x_t \sim q_t`.

t_check = 0.1
ab = float(oracle.schedule.alpha_bar(t_check))
noise = ch.rng(5).standard_normal(train_x.shape)
x_t = np.sqrt(ab) * train_x + np.sqrt(1 - ab) * noise  # (n, 2) ~ q_t
eps_t, div_t = oracle.eps_and_divergence(x_t, t_check)
m_trace = np.sqrt(1 - ab) * div_t / 2  # sigma tr(d eps/dx) / D per point
d = np.sum(eps_t**2, axis=1) / 2 - m_trace
ch.show(f"oracle at t = {t_check}: E||eps||^2 / D - sigma E[tr d eps/dx] / D", d.mean(),
        f"+- {d.std(ddof=1) / np.sqrt(n):.2g}; 0 by integration by parts")

# %%
# The four variances side by side along the short chain, as the cumulative paired
# difference from the large variance's KL terms: the fixed ones overpay in the first
# steps, the model-based ones do not.

fig, axes = plt.subplots(1, 2, figsize=(13, 4.6), sharey=True)
for ax, name in zip(axes, ("oracle", "MLP")):
    base = few[name, "large"]
    for variance, color in zip(("small", "analytic", "trace"), ["C1", "C2", "C3"]):
        b = few[name, variance]
        diff = (b.terms[:, 1:T_few] - base.terms[:, 1:T_few]).mean(axis=0)  # (T_few-1,)
        ax.plot(np.arange(1, T_few), np.cumsum(diff), color=color, marker=".",
                label=f"{variance}: bound {b.total.mean():.3f} "
                      f"(L_0 {b.decoder.mean():+.3f})")
    ax.axhline(0.0, color="C0", lw=1.2,
               label=f"large: bound {base.total.mean():.3f} "
                     f"(L_0 {base.decoder.mean():+.3f})")
    ax.set_yscale("symlog", linthresh=0.01)
    ax.set(xlabel=f"step t of the chain (T = {T_few})",
           title=f"{name}: the KL terms 1..t, minus the large variance's")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
axes[0].set_ylabel("cumulative paired difference (nats, symlog)")
fig.tight_layout()
save_figure(ch, fig, "variance_terms")

# %%
# 7. The per-point variance over the plane
# ----------------------------------------
#
# :math:`\operatorname{tr}\operatorname{Cov}[x_0 \mid x_t] / D` from the exact trace, as
# a fraction of its upper bound :math:`\sigma_t^2 / \bar\alpha_t`
# :cite:p:`bao2022analytic` (Thm. 2). Near a mode, :math:`x_t` pins :math:`x_0` down to
# that mode's spread; on the ridges between two modes it does not (there :math:`v` even
# exceeds the averaged bound, and the clip holds it). The trained MLP has learned that
# picture from denoising alone.

ch.section("7. the per-point variance over the plane")
grid_n = ch.pick(40, 120)
g = np.linspace(-4.5, 4.5, grid_n)
gx, gy = np.meshgrid(g, g, indexing="xy")
plane = np.stack([gx.ravel(), gy.ravel()], 1)  # (G*G, 2) points x_t
fig, axes = plt.subplots(2, 3, figsize=(13, 8.4))
for row, (name, den) in enumerate((("oracle", oracle), ("MLP", model))):
    for ax, t in zip(axes[row], (0.05, 0.15, 0.4)):
        ab = float(den.schedule.alpha_bar(t))
        div = den.eps_and_divergence(plane, t)[1]
        v = x0_variance_from_divergence(div, ab, 2)  # (G*G,) Tweedie's second moment
        frac = np.clip(v / ((1 - ab) / ab), 0.0, 1.0).reshape(gx.shape)
        im = ax.pcolormesh(gx, gy, frac, cmap="viridis", vmin=0, vmax=1, shading="auto")
        ax.set(title=f"{name}, t = {t}", aspect="equal")
fig.suptitle(r"the per-point variance $\mathrm{tr}\,\mathrm{Cov}[x_0|x_t] / D$ from "
             r"the exact trace, as a fraction of its upper bound "
             r"$\sigma_t^2/\bar\alpha_t$")
fig.colorbar(im, ax=axes, shrink=0.8,
             label="fraction of the upper bound (Bao et al. 2022, Thm. 2)")
save_figure(ch, fig, "variance_map")

# %%
# 8. Where in time the gap is paid
# --------------------------------
#
# The ODE of section 1 carries the prior to the data through the field of
# :math:`\hat\epsilon` at every time between. On a toy set the exact
# :math:`\epsilon^*` is known, so one flow can take the model's field on part of the
# time axis and the exact one on the rest:
#
# .. math::
#
#    \epsilon_{t^*}(x, t) =
#    \begin{cases} \hat\epsilon(x, t), & t < t^*, \\
#                   \epsilon^*(x, t), & t \ge t^*. \end{cases}
#
# Its exact likelihood is still one ODE solve, and its paired gap is what the model's
# errors below :math:`t^*` cost when everything above is exact: 0 at
# :math:`t^* = t_\min`, the model's whole gap at :math:`t^* = t_\max`. The gaps of
# two parts do not add exactly, since an early error moves the points a later one acts
# on. ``benchmarks/gap_by_time.py`` measures this for the recipe's models of three sets
# on two seeds (2,000 points each, the same points in every flow of a seed); the figure
# reads its results file.

ch.section("8. the gap by time, from the results file")
gap_file = REPO_ROOT / "benchmarks" / "results" / "gap_by_time.json"
if gap_file.is_file():
    rows = json.loads(gap_file.read_text())["rows"]
    fig, ax = plt.subplots(figsize=(7.5, 4.4))
    for k, name in enumerate(dict.fromkeys(r["set"] for r in rows)):
        for seed in sorted({r["seed"] for r in rows if r["set"] == name}):
            mine = sorted((r for r in rows if (r["set"], r["seed"]) == (name, seed)),
                          key=lambda r: r["t_star"])
            t_star = np.array([r["t_star"] for r in mine])  # (S,) split times
            below = np.array([r["model_below"] for r in mine])
            se = np.array([r["model_below_se"] for r in mine])
            shift = 1.06 if seed else 1.0  # side by side, not on top of each other
            ax.errorbar(t_star * shift, below, yerr=2 * se, marker="o", ms=4, capsize=3,
                        color=f"C{k}", ls="--" if seed else "-",
                        label=f"{name}, seed {seed}: whole gap {below[-1]:.3f}")
    ax.axhline(0.0, color="0.5", lw=0.8)
    ax.set_xscale("log")
    ax.set_xticks([r["t_star"] for r in mine],
                  [f"{r['t_star']:g}\n$\\sigma$ {r['sigma']:.2f}" for r in mine])
    ax.set(xlabel=r"split time $t^*$ and its noise $\sigma(t^*)$",
           ylabel="paired gap, model below t* (nats)",
           title="what the model's errors below each noise level cost (+- 2 SE)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    save_figure(ch, fig, "gap_by_time")
else:
    print(f"  {gap_file.name} not found: run benchmarks/gap_by_time.py")

# %%
# On checkerboard about a quarter of the gap is paid below :math:`\sigma = 0.01` and
# the rest over the noise levels above: mass moved across a square's edge, whenever it
# was moved, blurs the edge. Rings and 8gaussians pay almost nothing below
# :math:`\sigma = 0.05` on either seed; their errors are in how the mass is split
# between rings or modes, at large noise. The recipes page holds the table.

ch.done()
