r"""
Chapter 11: editing
===================

A trained diffusion model is a prior over images, and editing asks it for something
other than a fresh sample: the missing part of a picture (inpainting), a realistic
version of a rough one (image to image), a guided sample that stays in range
(thresholding). None of these needs a new network; each is a different way of walking
the reverse chain. In 2-D the answer inpainting should give, the conditional density
:math:`p(x_2 \mid x_1 = a)`, is one quadrature away, so each method is first measured
against the truth with the exact denoiser; then they edit the 8x8 digits.

Run::

    python tutorials/11_editing.py [--quick] [--out DIR]

The full run trains the ``"images"`` recipe on the digits (its 48,000 steps take a few
minutes of CPU on one core); ``--quick`` trains a small network briefly (seconds). The
tables and curves over many digits are read from the benchmarks' results files
(``benchmarks/results/inpaint_2d.json``, ``digits_editing.json``, ``digits_sdedit.json``
and ``thresholding.json``), written by the scripts of the same names.
"""

from __future__ import annotations

import json
import time

import _common
from _common import Chapter, np, plt, save_figure, tile_images

from npdiff.data import toy2d
from npdiff.data.images import digits
from npdiff.edit import (
    dps_sample,
    exact_conditional,
    repaint_sample,
    replacement_sample,
)
from npdiff.edit.coarse import COARSE_KINDS, coarse_digits
from npdiff.edit.mask import IMAGE_MASKS, image_mask, keep_known
from npdiff.edit.sdedit import sdedit
from npdiff.nn import MLPConfig
from npdiff.nn.model import DiffusionMLP
from npdiff.recipes import recipe
from npdiff.thresholding import threshold_x0
from npdiff.train import TrainConfig, Trainer

ch = Chapter(11, "editing")
RESULTS = _common.REPO_ROOT / "benchmarks" / "results"
GREY = plt.get_cmap("gray").with_extremes(bad="#6f8fb3")  # white ink, blue gutters


# %%
# 1. The target: an exact conditional in 2-D
# ------------------------------------------
#
# Inpainting knows some coordinates, :math:`y = m \odot x` for a mask
# :math:`m \in \{0, 1\}^D`, and should draw the rest from the model's conditional.
# On a 2-D set with a known density the target is exact: with :math:`x_1 = a` known,
#
# .. math::
#
#    p(x_2 \mid x_1 = a) = \frac{p(a, x_2)}{\int p(a, u)\, du},
#
# and the integral is a trapezoid rule on a fine grid
# (:func:`npdiff.edit.exact_conditional`). A method's error is then the exact
# Wasserstein-1 distance of its samples to this law,
# :math:`W_1 = \int |F_n(u) - F(u)|\, du`, read against the same distance for as
# many exact draws (its floor). The denoiser is the set's exact oracle, so what shows
# is the method's error alone.

ch.section("1. the exact conditional p(x2 | x1 = a) on 8gaussians")
data = toy2d.load("8gaussians")
oracle = data.oracle()
A = 1.0  # x1 = 1: between two modes of the marginal of x1
exact = exact_conditional(data, A, known=0)
n2d = ch.pick(600, 3000)
floor = exact.wasserstein1(exact.sample(n2d, ch.rng(0)))
ch.show("exact draws: W1 to p(x2 | x1 = 1)", floor, f"the floor at n = {n2d}")
known, mask = np.array([A, 0.0]), np.array([True, False])

# %%
# 2. Replacement: forward-noise the known part
# --------------------------------------------
#
# The simplest inpainter walks the ancestral chain and, at every step, overwrites the
# known coordinates with a fresh draw of the forward process at the new noise level
# (:cite:t:`song2021sde`, App. I.2; :cite:t:`lugmayr2022repaint`, Eqs. 8-10):
#
# .. math::
#
#    x_{t-1}^{\text{known}} \sim \mathcal N\big(\sqrt{\bar\alpha_{t-1}}\, y,\
#        (1 - \bar\alpha_{t-1}) I\big), \qquad
#    x_{t-1}^{\text{unknown}} \sim p_\theta(x_{t-1} \mid x_t), \qquad
#    x_{t-1} = m \odot x_{t-1}^{\text{known}} + (1 - m) \odot x_{t-1}^{\text{unknown}}.
#
# It is not exact: the known part of :math:`x_t` is drawn independently of the
# unknown part, while under the joint the two are correlated, so the unknown part is
# steered by noise that does not agree with it.

steps = ch.pick(100, 250)
rng = ch.rng(1)
res_repl = replacement_sample(oracle, known, mask, n2d, rng, steps=steps)
w1 = {"replacement": (exact.wasserstein1(res_repl.x[:, 1]), res_repl.nfe)}
ch.show("replacement: W1 to p(x2 | x1 = 1)", w1["replacement"][0],
        f"{res_repl.nfe} evaluations")

# %%
# 3. RePaint: go back up, and come down again
# -------------------------------------------
#
# RePaint :cite:p:`lugmayr2022repaint` lets the two parts agree by resampling: at
# regular points of the chain the state is sent back up ``jump_length`` steps by the
# forward process, one step at a time,
#
# .. math::
#
#    x_t \sim q(x_t \mid x_{t-1}) = \mathcal N\big(\sqrt{1 - \beta_t}\, x_{t-1},\
#        \beta_t I\big),
#
# and stepped down again by replacement, ``resamplings - 1`` times at each point. Each
# pass down lets the unknown part react to the known one, at the price of more
# evaluations.

res_rp = repaint_sample(oracle, known, mask, n2d, ch.rng(2), steps=steps // 5,
                        jump_length=5, resamplings=5)
w1["RePaint"] = (exact.wasserstein1(res_rp.x[:, 1]), res_rp.nfe)
ch.show("RePaint (j = 5, r = 5): W1 to p(x2 | x1 = 1)", w1["RePaint"][0],
        f"{res_rp.nfe} evaluations")

# %%
# 4. DPS: the gradient through the prediction of x0
# -------------------------------------------------
#
# Diffusion posterior sampling :cite:p:`chung2023dps` never pastes the known values.
# After each ancestral step it steps down the gradient of the data fit of the
# predicted clean data :math:`\hat x_0(x_t) = (x_t - \sigma_t\epsilon_\theta)/\alpha_t`:
#
# .. math::
#
#    x_{t-1} \leftarrow x_{t-1} - \frac{\zeta}{\lVert m \odot (y - \hat x_0)\rVert}\,
#        \nabla_{x_t} \lVert m \odot (y - \hat x_0(x_t)) \rVert^2, \qquad
#    \nabla_{x_t} L = -\frac{2}{\alpha_t}\big(r - \sigma_t J^\top r\big),
#
# with :math:`r = m \odot (y - \hat x_0)` and :math:`J = \partial\epsilon_\theta /
# \partial x_t`: one vector-Jacobian product, the protocol's ``eps_vjp``, so two
# evaluations a step.

res_dps = dps_sample(oracle, known, mask, n2d, ch.rng(3), steps=steps, scale=0.1)
w1["DPS"] = (exact.wasserstein1(res_dps.x[:, 1]), res_dps.nfe)
ch.show("DPS (zeta = 0.1): W1 to p(x2 | x1 = 1)", w1["DPS"][0],
        f"{res_dps.nfe} evaluations")
ch.show("DPS: mean |x1 - a|", np.abs(res_dps.x[:, 0] - A).mean(),
        "the known coordinate is only approached")

# %%
# The three against the truth: the histogram of :math:`x_2` beside the exact
# conditional density. At :math:`x_1 = 1`, between two modes, the conditional has two
# bumps of different weight; replacement gets their weights wrong.

fig, axes = plt.subplots(1, 3, figsize=(12, 3.4), sharey=True)
for ax, (name, res) in zip(axes, [("replacement", res_repl), ("RePaint", res_rp),
                                  ("DPS", res_dps)]):
    ax.hist(res.x[:, 1], bins=60, range=(-4, 4), density=True, color="C0",
            alpha=0.6, label=f"{name} ({res.nfe} evaluations)")
    ax.plot(exact.grid, exact.density, "k", lw=1.2, label="exact p(x2 | x1 = 1)")
    ax.set_xlim(-4, 4)
    ax.set_title(f"{name}: W1 = {w1[name][0]:.3f} (floor {floor:.3f})", fontsize=9)
    ax.set_xlabel("x2")
    ax.legend(fontsize=7)
save_figure(ch, fig, "inpaint_2d")

# %%
# The benchmark (``benchmarks/inpaint_2d.py``) measures the same on three sets, three
# known values each, against a budget of evaluations; :math:`\overline{W_1}` below is
# the mean over the three values of :math:`x_1` with the exact oracle.


def results(name: str) -> dict | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


inpaint = results("inpaint_2d")
rows = [r for r in inpaint["rows"] if r["model"] == "oracle"] if inpaint else []
methods = sorted({r["method"] for r in rows})
sets = sorted({r["data"] for r in rows})
fig, axes = plt.subplots(1, max(len(sets), 1), figsize=(4.2 * max(len(sets), 1), 3.4))
for ax, s in zip(np.atleast_1d(axes), sets):
    for k, m in enumerate(methods):
        mine = [r for r in rows if r["data"] == s and r["method"] == m]
        budgets = sorted({r["budget"] for r in mine})
        mean = [np.mean([r["w1"] for r in mine if r["budget"] == b]) for b in budgets]
        ax.plot(budgets, mean, marker="o", color=f"C{k}", label=m)
        ch.show(f"{s}: {m}, mean W1 at {budgets[-1]} evaluations", mean[-1])
    ax.axhline(np.mean([r["floor"] for r in rows if r["data"] == s]), color="k",
               ls="--", lw=0.8, label="floor (exact draws)")
    ax.set(xscale="log", yscale="log", xlabel="evaluations", title=s)
    ax.set_xticks(budgets, [str(b) for b in budgets], minor=False)
    ax.xaxis.set_minor_locator(plt.NullLocator())
np.atleast_1d(axes)[0].set_ylabel("mean W1 to p(x2 | x1 = a)")
np.atleast_1d(axes)[0].legend(fontsize=6)
fig.tight_layout()
save_figure(ch, fig, "inpaint_budget")

# %%
# 5. Completing digits
# --------------------
#
# On images the mask names the part that is missing: the left half, the bottom half,
# the centre 4x4 square, or half of the pixels at random
# (:func:`npdiff.edit.mask.image_mask`). Every pasting method ends each step with the
# same merge, :math:`x \leftarrow m \odot y + (1 - m) \odot x`. The model is the
# digits MLP of chapter 6's recipe, unconditional; one completion per method of two
# test digits for each mask.

ch.section("5. completing digits")
d = digits()
model_kw, train_kw, schedule = recipe("images")
if ch.quick:  # a narrower network and a short run: seconds, and coarse digits
    model_kw.update(width=128)
    train_kw.update(steps=1500, lr=2e-3)
rng = ch.rng(4)
trainer = Trainer(DiffusionMLP(MLPConfig(dim=d.dim, **model_kw), schedule, rng=rng),
                  d.sample_dequantized, TrainConfig(**train_kw), rng)
t0 = time.perf_counter()
trainer.run(progress=False)
model = trainer.denoiser(ema=True)
ch.show("digits model: training seconds", time.perf_counter() - t0,
        f"{train_kw['steps']} steps")

# %%
# Each column is one test digit with one mask; the rows are the original, what the
# method sees (missing pixels in blue), and the three completions.

x = d.test[:8]  # (8, 64) two digits a mask
masks = np.concatenate([image_mask(name, ch.rng(5), n=2) for name in IMAGE_MASKS])
k = ch.pick(50, 250)
outs = {
    "replacement": replacement_sample(model, x, masks, None, ch.rng(6), steps=k),
    "RePaint": repaint_sample(model, x, masks, None, ch.rng(7), steps=k // 5,
                              jump_length=5, resamplings=5),
    "DPS": dps_sample(model, x, masks, None, ch.rng(8), steps=k, scale=0.1),
}
shown = keep_known(np.full_like(x, np.nan), x, masks)  # m * y + (1 - m) * NaN
table = [x, shown, *(r.x for r in outs.values())]
labels = ["original", "input", *outs]
fig, axes = plt.subplots(len(table), 1, figsize=(8, 1.25 * len(table)))
for ax, imgs, label in zip(axes, table, labels):
    ax.imshow(tile_images(np.clip(imgs, -1, 1), 8), cmap=GREY, vmin=-1, vmax=1)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
axes[0].set_title("masks, two digits each: " + ", ".join(IMAGE_MASKS), fontsize=9)
fig.tight_layout()
save_figure(ch, fig, "completions")
for name, r in outs.items():
    ch.show(f"{name}: evaluations per completion", r.nfe)
    ch.show(f"{name}: mean |known pixel - original|", np.abs(r.x - x)[masks].mean(),
            "0 where the method pastes")

# %%
# Over 200 test digits (``benchmarks/digits_editing.py``) the fixed digit classifier
# of :mod:`npdiff.digit_features` reads every completion: the share it labels as it
# labels the original, per mask and method.

editing = results("digits_editing")
if editing:
    for r in editing["rows"]:
        if r["mask"] is not None and r["method"] != "masked":
            ch.show(f"{r['mask']}: {r['method']}, agreement with the original",
                    r["agree"], f"{r['nfe']} evaluations")

# %%
# 6. SDEdit: noise to t0, and denoise
# -----------------------------------
#
# Image to image :cite:p:`meng2022sdedit` starts from a rough guide :math:`x^{(g)}`,
# carries it to an intermediate time :math:`t_0` by the forward process and runs the
# reverse chain from there:
#
# .. math::
#
#    x_{t_0} = \sqrt{\bar\alpha(t_0)}\, x^{(g)} + \sqrt{1 - \bar\alpha(t_0)}\,
#        \epsilon, \qquad x_0 = \text{reverse chain}(x_{t_0};\ t_0 \to 0).
#
# A small :math:`t_0` keeps the guide (faithful), a large one forgets it (realistic).
# The guides are rules applied to test digits (:mod:`npdiff.edit.coarse`): a Gaussian
# blur of one pixel, the 2x2 block average, and binary strokes (ink above half, grown
# into touching faint ink). Every edit below draws the same noise, so as :math:`t_0`
# grows the rows converge to one sample: the guide is forgotten.

guides = x[[0, 3]]  # (2, 64) two test digits
strengths = (0.1, 0.2, 0.3, 0.5, 0.8)
fig, axes = plt.subplots(2 * len(COARSE_KINDS), 1 + len(strengths), figsize=(6.5, 8))
for r, (kind, j) in enumerate([(k, j) for k in COARSE_KINDS for j in range(2)]):
    guide = coarse_digits(guides[j:j + 1], kind)  # (1, 64)
    edits = [sdedit(model, guide, ch.rng(9), strength=s,
                    steps=ch.pick(50, 200)).x for s in strengths]
    for c, img in enumerate([guide, *edits]):
        axes[r, c].imshow(np.clip(img, -1, 1).reshape(8, 8), cmap=GREY, vmin=-1,
                          vmax=1)
        axes[r, c].set_xticks([])
        axes[r, c].set_yticks([])
    axes[r, 0].set_ylabel(kind, rotation=0, ha="right", va="center", fontsize=8)
for c, name in enumerate(["guide", *(f"t0 = {s:g}" for s in strengths)]):
    axes[0, c].set_title(name, fontsize=8)
fig.tight_layout()
save_figure(ch, fig, "sdedit")

# %%
# The trade-off over 200 digits (``benchmarks/digits_sdedit.json``): faithfulness,
# the RMS distance of the edit to its guide, against realism, the Fréchet distance
# of the edits to the test digits in the classifier's features (beside the floor of
# as many real digits), and the share the classifier reads as the original digit.
# The leftmost point of each curve (distance 0) is the guide itself.

sd = results("digits_sdedit")
fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
for k, kind in enumerate(COARSE_KINDS if sd else ()):
    rs = sorted((r for r in sd["rows"] if r["coarse"] == kind),
                key=lambda r: r["strength"])
    dist = [r["rms_coarse"] for r in rs]
    for ax, key in zip(axes, ("frechet", "accuracy")):
        ax.plot(dist, [r[key] for r in rs], marker="o", color=f"C{k}", label=kind)
        for r in rs[2::2]:
            ax.annotate(f"{r['strength']:g}", (r["rms_coarse"], r[key]), fontsize=6)
    for r in rs[:3]:
        ch.show(f"{kind}, t0 = {r['strength']:g}: Frechet distance", r["frechet"],
                f"floor {r['floor']:.2f}; read as the original: {r['accuracy']:.3f}")
if sd:
    axes[0].axhline(sd["rows"][0]["floor"], color="k", ls="--", lw=0.8,
                    label="floor (real digits)")
axes[0].set(xlabel="RMS distance to the guide", ylabel="Fréchet distance",
            yscale="log")
axes[1].set(xlabel="RMS distance to the guide", ylabel="share read as the original")
axes[0].legend(fontsize=7)
fig.tight_layout()
save_figure(ch, fig, "sdedit_curve")

# %%
# 7. Thresholding at high guidance weight
# ---------------------------------------
#
# Guidance with a large weight pushes the predicted clean data out of the data's
# range, and the chain follows. Imagen :cite:p:`saharia2022imagen` thresholds the
# prediction at every step: statically, :math:`\hat x_0 \leftarrow
# \mathrm{clip}(\hat x_0, -1, 1)`, or dynamically with :math:`s` the p-th quantile of
# :math:`|\hat x_0|` over the pixels,
#
# .. math::
#
#    s = \max\big(1, \mathrm{quantile}_p |\hat x_0|\big), \qquad
#    \hat x_0 \leftarrow \mathrm{clip}(\hat x_0, -s, s) / s .

x0_hat = np.array([[2.5, -0.5, 0.2, 3.0]])  # the median of |x0_hat| is s = 1.5
static = threshold_x0(x0_hat, "static")
dynamic = threshold_x0(x0_hat, "dynamic", percentile=0.5)
ch.show("static: the entry -0.5", static[0, 1], "inside [-1, 1]: unchanged")
ch.show("dynamic (p = 0.5): the entry -0.5", dynamic[0, 1], "divided by s = 1.5")
ch.show("dynamic (p = 0.5): the entry 3", dynamic[0, 3], "clipped to s, then / s")

# %%
# On the conditional digits model (``benchmarks/thresholding.py``), the share of
# saturated pixels, the class accuracy and the Fréchet distance against the weight
# :math:`w`. Static clipping keeps strong guidance in range; dynamic thresholding at
# Imagen's :math:`p = 0.995` hurts here: on 64 pixels that quantile is nearly the
# largest value, so the whole prediction is divided by it and the black background
# (58% of real pixels sit at the ends of the range) is pulled off :math:`-1`.

th = results("thresholding")
fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
for k, kind in enumerate(("none", "static", "dynamic") if th else ()):
    rs = sorted((r for r in th["rows"] if r["sampler"] == "ddpm"
                 and r["threshold"] == kind
                 and r["percentile"] in (None, 0.995)), key=lambda r: r["w"])
    for ax, key in zip(axes, ("saturated", "accuracy", "frechet")):
        ax.plot([r["w"] for r in rs], [r[key] for r in rs], marker="o",
                color=f"C{k}", label=kind)
    ch.show(f"ddpm, w = {rs[-1]['w']:g}, {kind}: share saturated", rs[-1]["saturated"])
    ch.show(f"ddpm, w = {rs[-1]['w']:g}, {kind}: Frechet distance", rs[-1]["frechet"])
axes[0].set(xlabel="guidance weight w", ylabel="share of pixels with |x| >= 0.99")
axes[1].set(xlabel="guidance weight w", ylabel="class accuracy")
axes[2].set(xlabel="guidance weight w", ylabel="Fréchet distance", yscale="log")
axes[0].legend(fontsize=7)
fig.tight_layout()
save_figure(ch, fig, "thresholding")
ch.done()
