r"""
Chapter 8: conditional generation and guidance, and what guidance really samples
================================================================================

A conditional model samples :math:`p(x \mid y)` for a label :math:`y`, and guidance
pushes its samples further towards the label. This chapter builds both on an oracle
whose every density is known, measures exactly what guided samplers sample (it is not
the distribution they are said to), and then trains conditional networks on 8gaussians
and on the digits.

Run::

    python tutorials/08_guidance.py [--quick] [--out DIR]

The full run trains the ``"2d"`` recipe with labels on 8gaussians and the ``"images"``
recipe with labels on the digits (about 10 minutes of CPU on one core); ``--quick``
trains small networks briefly (about a minute).
"""

# %%
# 1. How a label enters
# ---------------------
#
# In a diffusion model a conditional model is a conditional denoiser
# :math:`\epsilon(x, t, y)`, and npdiff keeps one protocol for both: ``eps(x, t,
# y=None)``, where ``y = None`` is the unconditional model. So every sampler and the
# exact likelihood run on a conditional denoiser without knowing it.
#
# For a labelled mixture the answer is closed-form: give every component a label, and
# the class-conditional :math:`q_t(x \mid y)` is the mixture of that label's components
# (weights divided by :math:`\pi_y`, the label's total weight), while
# :math:`q_t(x) = \sum_y \pi_y\, q_t(x \mid y)` is the whole mixture. Bayes' rule then
# gives the exact classifier of noisy points at every noise level,
#
# .. math::
#
#    \log q_t(y \mid x) &= \log \pi_y + \log q_t(x \mid y) - \log q_t(x), \\
#    \nabla_x \log q_t(x \mid y) &= \nabla_x \log q_t(x) + \nabla_x \log q_t(y \mid x).
#
# Call these two identities (1). The toy sets label themselves with their generator's
# own discrete choice: 8gaussians the component, 2spirals the spiral, rings the ring
# (``sample_labelled``).

from __future__ import annotations

import dataclasses
import time

import _common
from _common import Chapter, np, plt, save_figure, tile_images, toy_model_recipe
from scipy.integrate import solve_ivp
from sklearn.linear_model import LogisticRegression  # images extra: ships the digits

from npdiff.analytic import GaussianData, TiltedTarget
from npdiff.data import toy2d
from npdiff.data.images import digits
from npdiff.guidance import classifier_guided, guided
from npdiff.likelihood import image_bpd, ode_log_likelihood
from npdiff.nn import MLPConfig
from npdiff.nn.classifier import NoisyClassifier, train_classifier
from npdiff.nn.model import DiffusionMLP
from npdiff.recipes import recipe
from npdiff.sample import ddpm_sample, ode_sample
from npdiff.train import TrainConfig, Trainer, train

ch = Chapter(8, "conditional generation and guidance")
data = toy2d.load("8gaussians")
oracle = data.oracle()  # labelled: component k has label k
LABEL = 0
LIM = 4.8  # wide enough for the guided ODE, which pushes label 0 out to x ~ 4.3

ch.section("1. a labelled oracle: conditional, unconditional and Bayes' rule")
rng = ch.rng(0)
x = rng.standard_normal((500, 2)) * 2.0
t = rng.uniform(0.01, 0.99, 500)
cond = np.stack([oracle.log_prob(x, t, c) for c in range(8)], axis=1)  # (n, 8) q_t(x|c)
mix = np.log(np.sum(oracle.class_weights * np.exp(cond), axis=1))
ch.show("max |log q_t(x) - log sum_y pi_y q_t(x|y)|",
        np.abs(oracle.log_prob(x, t) - mix).max(), "0: the mixture by labels")
posterior = np.exp(oracle.class_log_prob(x, t))
ch.show("max |sum_y q_t(y|x) - 1|", np.abs(posterior.sum(axis=1) - 1).max())
grad_y = oracle.class_log_prob_grad(x, t, LABEL)
ch.show("max |score(x|y) - score(x) - grad log q_t(y|x)|",
        np.abs(oracle.score(x, t, LABEL) - oracle.score(x, t) - grad_y).max(),
        "Bayes' rule (1)")

# %%
# In the network (``npdiff.nn.mlp``) the label is one learned row :math:`E[y]` of a
# table with :math:`C + 1` rows added to the first layer's pre-activation: one more bias
# per class. Its gradient is the first bias's gradient split by label, and it does not
# move with :math:`x`, so the exact trace is unchanged. Row :math:`C` means "no label":
# :cite:t:`ho2022cfg` (Alg. 1) train one network for both models by replacing each label
# by "no label" with probability :math:`p_\text{uncond}` (0.1 here).
#
# The three score fields at one noise level: the conditional, the unconditional and the
# guided one of the next section, each over its density.

t_show, w_show = 0.25, 2.0
g = np.linspace(-LIM, LIM, 121)
gx, gy = np.meshgrid(g, g, indexing="xy")
grid = np.stack([gx.ravel(), gy.ravel()], 1)  # (G^2, 2)
q = np.linspace(-LIM, LIM, 19)
qx, qy = np.meshgrid(q, q, indexing="xy")
arrows = np.stack([qx.ravel(), qy.ravel()], 1)
sig = float(oracle.schedule.sigma(t_show))
tilted_t = TiltedTarget(oracle, LABEL, w_show, half_width=LIM, spacing=2 * LIM / 121,
                        t=t_show)
fields = [("q_t(x | y = 0)", oracle.log_prob(grid, t_show, LABEL),
           -oracle.eps(arrows, t_show, LABEL) / sig),
          ("q_t(x), no label", oracle.log_prob(grid, t_show),
           -oracle.eps(arrows, t_show) / sig),
          (f"guided, w = {w_show:g}: q_t(x|y)^(1+w) q_t(x)^-w", tilted_t.log_prob(grid),
           -guided(oracle, LABEL, w_show).eps(arrows, t_show) / sig)]
fig, axes = plt.subplots(1, 3, figsize=(13.5, 4.5))
for ax, (title, log_p, score) in zip(axes, fields):
    ax.pcolormesh(gx, gy, np.exp(log_p).reshape(gx.shape), cmap="Blues", shading="auto")
    ax.quiver(arrows[:, 0], arrows[:, 1], score[:, 0], score[:, 1], color="C3",
              angles="xy", scale_units="xy",
              scale=np.percentile(np.hypot(*score.T), 95) / 0.4,
              width=0.004)
    ax.set(title=f"{title}, t = {t_show}", xlim=(-LIM, LIM), ylim=(-LIM, LIM),
           xticks=[], yticks=[], aspect="equal")
fig.tight_layout()
save_figure(ch, fig, "score_fields")

# %%
# 2. Guidance
# -----------
#
# Classifier-free guidance :cite:p:`ho2022cfg` (Eq. 6) runs the sampler on
#
# .. math::
#
#    \epsilon_w(x, t) = (1 + w)\, \epsilon(x, t, y) - w\, \epsilon(x, t, \varnothing),
#
# that is, by (1), on the score
# :math:`\nabla \log q_t(x \mid y) + w\, \nabla \log q_t(y \mid x)`: the conditional
# pushed further along the classifier's gradient. Classifier guidance
# :cite:p:`dhariwal2021adm` adds :math:`s\, \nabla \log p(y \mid x_t)` of a separately
# trained classifier of noisy inputs to an unconditional score,
#
# .. math::
#
#    \nabla \log q_t(x) + s\, \nabla \log p(y \mid x_t);
#
# with the exact classifier, :math:`s = 1` is exactly the conditional model and
# :math:`s = 1 + w` is exactly classifier-free guidance with weight :math:`w`.
# ``npdiff.guidance`` builds both as denoisers of the plain protocol, their exact
# divergence the same linear combination of divergences.

ch.section("2. classifier-free and classifier guidance on the exact denoiser")
x_probe, t_probe = x[:50], t[:50]
for w in (0.0, 1.0, 4.0):
    eps_y, eps_none = oracle.eps(x_probe, t_probe, LABEL), oracle.eps(x_probe, t_probe)
    eps_w = (1 + w) * eps_y - w * eps_none
    got = guided(oracle, LABEL, w).eps(x_probe, t_probe)
    _common.require_close(got, eps_w, f"guided, w = {w}")
unconditional = toy2d.load("8gaussians").oracle()  # the same mixture, through eps only
s1 = classifier_guided(unconditional, oracle, LABEL, 1.0).eps(x_probe, t_probe)
s3 = classifier_guided(unconditional, oracle, LABEL, 3.0).eps(x_probe, t_probe)
ch.show("exact classifier, scale 1: max |eps - eps(x, t, y)|",
        np.abs(s1 - oracle.eps(x_probe, t_probe, LABEL)).max(),
        "0: the conditional model")
ch.show("exact classifier, scale 3: max |eps - classifier-free w = 2|",
        np.abs(s3 - guided(oracle, LABEL, 2.0).eps(x_probe, t_probe)).max(),
        "0: s = 1 + w")

# %%
# 3. What does guidance sample?
# -----------------------------
#
# It is often said that guidance samples the "sharpened" conditional
#
# .. math::
#
#    p_w(x \mid y) = \frac{p(x \mid y)^{1+w}\, p(x)^{-w}}{Z_w}
#    = \frac{p(x \mid y)\, p(y \mid x)^w}{\pi_y^w\, Z_w},
#
# which is what one gets by applying the guided score at :math:`t = 0`. But the guided
# score at time :math:`t` is the score of :math:`q_t(x \mid y)^{1+w}\, q_t(x)^{-w}`, and
# raising to a power does not commute with adding noise: these tilted marginals are not
# the marginals of any diffusion of :math:`p_w` (Bradley and Nakkiran, 2024; Chidambaram
# et al., 2024). So neither sampler samples :math:`p_w`, and the ODE and DDPM samplers,
# which agree whenever the field is a true score, sample different things. Below, guided
# samples of label 0 (points) over the tilted target :math:`p_w` (contours) they are
# said to sample.

WS = ch.pick((0.0, 1.0, 4.0), (0.0, 0.5, 1.0, 2.0, 4.0))
n = ch.pick(400, 4000)
targets, ode_runs, ddpm_runs = {}, {}, {}
for w in WS:
    targets[w] = TiltedTarget(oracle, LABEL, w, half_width=6.5, spacing=0.05)
    gw = guided(oracle, LABEL, w)
    ode_runs[w] = ode_sample(gw, n, ch.rng(10 + int(10 * w)), t_min=1e-5, denoise=False)
    ddpm_runs[w] = ddpm_sample(gw, n, ch.rng(20 + int(10 * w)),
                               steps=ch.pick(250, 1000))
fig, axes = plt.subplots(2, len(WS), figsize=(3.2 * len(WS), 6.6), squeeze=False)
for j, w in enumerate(WS):
    dens = np.exp(targets[w].log_prob(grid)).reshape(gx.shape)
    for i, (name, res) in enumerate((("ODE", ode_runs[w]), ("DDPM", ddpm_runs[w]))):
        ax = axes[i, j]
        ax.contour(gx, gy, dens, levels=dens.max() * np.array([0.05, 0.25, 0.5, 0.75]),
                   colors="0.5", linewidths=0.6)
        ax.scatter(res.x[:, 0], res.x[:, 1], s=1.5, c="C0" if i == 0 else "C1",
                   alpha=0.5, linewidths=0)
        ax.set(title=f"{name}, w = {w:g}", xlim=(-LIM, LIM), ylim=(-LIM, LIM),
               xticks=[], yticks=[], aspect="equal")
fig.suptitle("guided samples of label 0 (points) over the tilted target p_w (contours) "
             "it is said to sample", fontsize=10)
fig.tight_layout()
save_figure(ch, fig, "guided_samples")

# %%
# npdiff can say exactly how far. In 2D, :math:`p_w` is computed by quadrature on a grid
# (``TiltedTarget``), normalizer included. The guided probability-flow ODE is a flow
# from :math:`\mathcal N(0, I)`, so the exact log-density of its samples is the flow's
# likelihood (chapter 5: ``ode_log_likelihood`` on the guided denoiser), and
#
# .. math::
#
#    \mathrm{KL}(p_\text{ODE}\,\|\,p_w)
#    = \mathbb E_{x \sim p_\text{ODE}}\big[\log p_\text{ODE}(x) - \log p_w(x)\big]
#
# over the ODE's samples. At :math:`w = 0` it must vanish; for :math:`w > 0` it measures
# how far guidance is from its textbook description. For both samplers,
# :math:`\mathbb E[\log p_w] + H(p_w)` is 0 for samples of :math:`p_w`.

ch.section("3. KL(guided ODE samples || p_w), exactly")
kl = {}
for w in WS:
    ll = ode_log_likelihood(guided(oracle, LABEL, w), ode_runs[w].x, t_min=1e-5)
    d = ll.log_p - targets[w].log_prob(ode_runs[w].x)  # the samples' exact log-density
    kl[w] = (d.mean(), d.std() / np.sqrt(n))
    ch.show(f"w = {w:g}: KL(ODE || p_w)", kl[w][0],
            f"+- {kl[w][1]:.2g} nats; log Z_w = {targets[w].log_normalizer:.3f}")
    lp_ode = targets[w].log_prob(ode_runs[w].x)
    lp_ddpm = targets[w].log_prob(ddpm_runs[w].x)
    ch.show(f"w = {w:g}: mean log p_w of ODE samples + H(p_w)",
            lp_ode.mean() + targets[w].entropy,
            f"+- {lp_ode.std() / np.sqrt(n):.2g}; 0 for samples of p_w")
    ch.show(f"w = {w:g}: mean log p_w of DDPM samples + H(p_w)",
            lp_ddpm.mean() + targets[w].entropy, f"+- {lp_ddpm.std() / np.sqrt(n):.2g}")

# %%
# The exact density of the guided ODE's samples on a grid beside :math:`p_w`, for the
# largest :math:`w`, and the KL as :math:`w` grows. The DDPM sampler, on the other hand,
# stays much closer to :math:`p_w`'s bulk.

w_big = WS[-1]
centre = oracle.means[LABEL]  # a window of side 4 around the label's component
side = np.linspace(-2, 2, ch.pick(41, 81))
cx, cy = np.meshgrid(centre[0] + side, centre[1] + side, indexing="xy")
cells = np.stack([cx.ravel(), cy.ravel()], 1)
log_p_ode = ode_log_likelihood(guided(oracle, LABEL, w_big), cells, t_min=1e-5,
                               rtol=1e-4, atol=1e-4).log_p
fig, axes = plt.subplots(1, 3, figsize=(13.5, 4.3))
maps = ((f"tilted target p_w, w = {w_big:g}", targets[w_big].log_prob(cells)),
        (f"what the guided ODE samples, w = {w_big:g} (exact)", log_p_ode))
for ax, (title, lp) in zip(axes[:2], maps):
    ax.pcolormesh(cx, cy, np.exp(lp).reshape(cx.shape), cmap="magma", shading="auto")
    ax.set(title=title, aspect="equal")
axes[2].errorbar(np.array(WS), [kl[w][0] for w in WS], yerr=[2 * kl[w][1] for w in WS],
                 fmt="o-", capsize=3)
axes[2].set(xlabel="guidance weight w", ylabel="nats",
            title="KL(guided ODE samples || p_w), exact")
axes[2].grid(alpha=0.3)
fig.tight_layout()
save_figure(ch, fig, "tilted_vs_ode")

# %%
# For two Gaussians the whole story is closed-form. Take
# :math:`p(x \mid y) = \mathcal N(\mu, \operatorname{diag} v)` and
# :math:`p(x) = \mathcal N(0, I)`; at time :math:`t` their noised variances are
# :math:`v_c(t) = \bar\alpha_t v + \sigma_t^2` and
# :math:`v_u(t) = \bar\alpha_t + \sigma_t^2`. The guided ODE is linear, coordinate by
# coordinate,
#
# .. math::
#
#    \frac{dx}{dt} = A(t)\, x + b(t), \qquad
#    A = -\frac{\beta(t)}{2}\Big(1 - \frac{1 + w}{v_c(t)} + \frac{w}{v_u(t)}\Big),
#    \qquad b = -\frac{\beta(t)}{2}\, \frac{(1 + w)\sqrt{\bar\alpha_t}\, \mu}{v_c(t)},
#
# so its output is Gaussian, with mean and variance from two moment equations,
#
# .. math::
#
#    \frac{dm}{dt} = A m + b, \qquad \frac{dS}{dt} = 2 A S,
#
# started at :math:`m = 0, S = 1` at :math:`t_\max`. The tilted Gaussian
# :math:`p(x \mid y)^{1+w} p(x)^{-w}` has precision :math:`(1 + w)/v - w` and mean
# :math:`(1 + w)\,\mu / v` over that precision; the guided ODE's output is much
# narrower.

sched, w_g, t_min_g = oracle.schedule, 2.0, 1e-4
mu_c, v_c = np.array([1.0, -0.5]), np.array([0.25, 0.5])


class TwoGaussians:
    r"""A conditional denoiser whose p(x | y) and p(x) are both Gaussian."""

    num_classes, dim, schedule = 1, 2, sched
    cond = GaussianData(mu_c, v_c, sched)
    uncond = GaussianData(np.zeros(2), np.ones(2), sched)

    def eps(self, x, t, y=None):
        return (self.uncond if y is None else self.cond).eps(x, t)

    def eps_and_divergence(self, x, t, y=None):
        return (self.uncond if y is None else self.cond).eps_and_divergence(x, t)


def moments(t, z):
    r"""d/dt of (m, S), the guided flow's mean and variance per coordinate."""
    a, s2, beta = np.sqrt(sched.alpha_bar(t)), sched.sigma(t) ** 2, sched.beta(t)
    pc, pu = 1.0 / (a * a * v_c + s2), 1.0 / (a * a + s2)  # 1 / v_c(t), 1 / v_u(t)
    A = -0.5 * beta * (1.0 - (1 + w_g) * pc + w_g * pu)
    b = -0.5 * beta * (1 + w_g) * pc * a * mu_c
    return np.concatenate([A * z[:2] + b, 2 * A * z[2:]])


sol = solve_ivp(moments, (sched.t_max, t_min_g), np.array([0.0, 0.0, 1.0, 1.0]),
                rtol=1e-12, atol=1e-12)
m_ode, S_ode = sol.y[:2, -1], sol.y[2:, -1]
z = ch.rng(4).standard_normal((200, 2))
out = ode_sample(guided(TwoGaussians(), 0, w_g), None, ch.rng(5), x_T=z, t_min=t_min_g,
                 denoise=False, rtol=1e-9, atol=1e-9).x
ch.show("Gaussian, w = 2: max |sampler - closed-form affine map|",
        np.abs(out - (m_ode + np.sqrt(S_ode) * z)).max())
prec = (1 + w_g) / v_c - w_g
print(f"  guided ODE: mean {np.round(m_ode, 4)}, variance {np.round(S_ode, 4)}; "
      f"tilted Gaussian: mean {np.round((1 + w_g) * mu_c / v_c / prec, 4)}, "
      f"variance {np.round(1 / prec, 4)}")
ch.show("Gaussian, w = 2: guided ODE variance / tilted variance, first coordinate",
        S_ode[0] * prec[0], "1 if guidance sampled p_w")

# %%
# 4. A trained conditional network
# --------------------------------
#
# A conditional network trained with label dropout is measured as chapter 5 measured its
# unconditional one: the exact :math:`\log p_\text{model}(x \mid y)` of fresh labelled
# points against the true :math:`\log p(x \mid y)`, class by class, and its
# unconditional mode (:math:`y = \varnothing`) against :math:`\log p(x)`.

ch.section("4. a conditional MLP on 8gaussians, trained with label dropout")
config, train_kw, schedule = toy_model_recipe(ch.quick)
config = dataclasses.replace(config, num_classes=8)
train_kw["p_uncond"] = 0.1
t0 = time.perf_counter()
model, history = train(config, data, rng=ch.rng(6), schedule=schedule, progress=False,
                       **train_kw)
ch.show("training seconds", time.perf_counter() - t0,
        f"{train_kw['steps']} steps, width {config.width}")
n_test = ch.pick(80, 500)  # per class
x_test, y_test = data.sample_labelled(8 * n_test, ch.rng(7))
# one label per point: w = 0 is the conditional model
log_p_cond = ode_log_likelihood(guided(model, y_test, 0.0), x_test).log_p
gap_cond = data.log_prob(x_test, y_test) - log_p_cond
per_class = [gap_cond[y_test == c].mean() for c in range(8)]
print("  paired gap log p(x|y) - log p_model(x|y) per class: "
      + ", ".join(f"{g:.3f}" for g in per_class))
ch.show("conditional: paired gap, mean over classes", np.mean(per_class),
        f"+- {gap_cond.std() / np.sqrt(gap_cond.size):.2g}")
gap_u = data.log_prob(x_test) - ode_log_likelihood(model, x_test).log_p
ch.show("unconditional mode (y = None): paired gap", gap_u.mean(),
        f"+- {gap_u.std() / np.sqrt(gap_u.size):.2g}")

# %%
# Guided samples of the trained model (:math:`w = 4`) land on their label's component;
# and a noisy classifier :math:`p(y \mid x_t)`, trained on noised labelled points,
# guides the unconditional mode with :math:`s = 1`.

print(
    "  (a guided sample of the trained model, w = 4, lands on its label's component:)"
)
labels8 = np.repeat(np.arange(8), 25)
samples = ddpm_sample(guided(model, labels8, 4.0), 200, ch.rng(8),
                      steps=ch.pick(250, 1000)).x
nearest = np.argmin(((samples[:, None, :] - oracle.means[None]) ** 2).sum(2), axis=1)
ch.show("trained model, w = 4: share of samples nearest their label's centre",
        np.mean(nearest == labels8))

body = MLPConfig(dim=2, width=ch.pick(32, 64), depth=2, emb_dim=32,
                 coords="raw+sinusoidal", coord_scale=8.0, time_scale=100.0)
clf = NoisyClassifier(body, 8, schedule, rng=ch.rng(9))
t0 = time.perf_counter()
clf_loss = train_classifier(clf, data, ch.rng(10), steps=ch.pick(600, 4000))
ch.show("classifier training seconds", time.perf_counter() - t0)
xs, ys = data.sample_labelled(2000, ch.rng(11))
ch.show("classifier accuracy on clean points",
        np.mean(clf.class_log_prob(xs, 1e-3).argmax(1) == ys))
cg = ddpm_sample(classifier_guided(model, clf, labels8, 1.0), 200, ch.rng(12),
                 steps=ch.pick(250, 1000)).x
nearest_cg = np.argmin(((cg[:, None, :] - oracle.means[None]) ** 2).sum(2), axis=1)
ch.show("classifier guidance (s = 1) of the unconditional mode: "
        "share nearest their label", np.mean(nearest_cg == labels8))
fig, axes = plt.subplots(1, 3, figsize=(12, 4.2))
uncond_samples = ode_sample(model, 1000, ch.rng(13)).x
panels = (("unconditional mode (y = None), ODE", uncond_samples, None),
          ("classifier-free, w = 4, DDPM", samples, labels8),
          ("classifier guidance, s = 1, DDPM", cg, labels8))
for ax, (title, pts, col) in zip(axes, panels):
    colour = ({"c": "0.3"} if col is None
              else {"c": col, "cmap": "tab10", "vmin": 0, "vmax": 9})
    ax.scatter(pts[:, 0], pts[:, 1], s=3, linewidths=0, **colour)
    ax.set(title=title, xlim=(-LIM, LIM), ylim=(-LIM, LIM), xticks=[], yticks=[],
           aspect="equal")
fig.tight_layout()
save_figure(ch, fig, "trained")

# %%
# 5. Guided digits
# ----------------
#
# On the digits the labels come with the data. A class-conditional model of chapter 6's
# recipe, scored by the exact ODE in bits/dim with and without its label: for exact
# models the difference is the mutual information of image and label per pixel,
#
# .. math::
#
#    \frac{I(x; y)}{D} \le \frac{\log_2 10}{64} \approx 0.052 \text{ bits/dim}.
#
# A trained pair need not respect that bound (its unconditional mode is not the mixture
# of its conditional ones), and the quick run's coarse model does not.

ch.section("5. a class-conditional model of the digits, guided")
d = digits()
model_kw, img_kw, img_schedule = recipe("images")
if ch.quick:  # a narrower network and a short run: seconds, and coarse digits
    model_kw.update(width=128)
    img_kw.update(steps=1500, lr=2e-3)
img_config = MLPConfig(dim=d.dim, num_classes=10, **model_kw)
rng = ch.rng(14)
trainer = Trainer(DiffusionMLP(img_config, img_schedule, rng=rng),
                  d.sample_dequantized_labelled, TrainConfig(**img_kw), rng)
t0 = time.perf_counter()
trainer.run(progress=False)
digit_model = trainer.denoiser(ema=True)
ch.show("digits: training seconds", time.perf_counter() - t0,
        f"{img_kw['steps']} steps, width {img_config.width}")
reader = LogisticRegression(max_iter=2000).fit(d.train, d.train_labels)  # real digits
ch.show("logistic regression: accuracy on real test digits",
        reader.score(d.test, d.test_labels))
n_img = ch.pick(3, 36)  # per digit
pick = np.concatenate([np.flatnonzero(d.test_labels == c)[:n_img] for c in range(10)])
bpd_c = np.concatenate([
    image_bpd(guided(digit_model, c, 0.0), d.test[pick[c * n_img:(c + 1) * n_img]], d.K,
              ch.rng(15), method="ode").ode.bpd
    for c in range(10)])  # each image with its label
bpd_u = image_bpd(digit_model, d.test[pick], d.K, ch.rng(15), method="ode").ode.bpd
ch.show("digits: conditional test bits/dim", np.nanmean(bpd_c),
        f"{pick.size} test images")
ch.show("digits: unconditional (y = None) test bits/dim", np.nanmean(bpd_u))
ch.show("digits: unconditional - conditional (bits/dim)", np.nanmean(bpd_u - bpd_c),
        "for exact models the mutual information, "
        f"in [0, log2(10)/64 = {np.log2(10) / 64:.3f}]")

# %%
# Guided samples of each digit, scored by a logistic-regression classifier of real
# digits: guidance raises the share recognized as their label, and what it costs is
# diversity (the samples of one digit crowd together: the mean distance to the nearest
# other sample of the same digit shrinks as :math:`w` grows).

DW = (0.0, 1.0, 2.0, 4.0)
per = ch.pick(4, 10)  # samples per digit and weight
labels = np.repeat(np.arange(10), per)
grids = {}


def nearest_other(images: np.ndarray) -> float:
    r"""Mean distance from each image (n, D) to its nearest other image of the set."""
    dist = np.linalg.norm(images[:, None] - images[None], axis=2)  # (n, n)
    return np.sort(dist, axis=1)[:, 1].mean()


for w in DW:
    xs = ddpm_sample(guided(digit_model, labels, w), labels.size, ch.rng(16),
                     steps=ch.pick(100, 1000)).x
    grids[w] = np.clip(xs, -1, 1)
    ch.show(f"digits, w = {w:g}: share classified as their label",
            np.mean(reader.predict(grids[w]) == labels))
    ch.show(f"digits, w = {w:g}: mean distance to the nearest other sample of its "
            "digit", np.mean([nearest_other(grids[w][labels == c]) for c in range(10)]))
real_dist = [nearest_other(d.test[d.test_labels == c][:per]) for c in range(10)]
ch.show("real test digits: mean distance to the nearest other of its digit",
        np.mean(real_dist), f"{per} per digit")
show = min(per, 4)
fig, axes = plt.subplots(1, len(DW), figsize=(2.4 * len(DW), 5.4))
for ax, w in zip(axes, DW):
    imgs = np.concatenate([grids[w][labels == c][:show] for c in range(10)])  # by digit
    ax.imshow(np.ma.masked_invalid(tile_images(imgs, show)),
              cmap=plt.get_cmap("gray").with_extremes(bad="#6f8fb3"), vmin=-1, vmax=1,
              interpolation="nearest")
    ax.set(xticks=[], yticks=[], title=f"w = {w:g}")
fig.suptitle("guided DDPM samples: rows digits 0-9, columns the guidance weight",
             fontsize=10)
fig.tight_layout()
save_figure(ch, fig, "digits")
ch.done()
