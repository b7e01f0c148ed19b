r"""
Chapter 11: editing
===================

A trained diffusion model is a prior over images, and editing asks it for something
other than a fresh sample: the missing part of a picture (inpainting), a realistic
version of a rough one (image to image), a guided sample that stays in range
(thresholding). Most need no new network, only a different walk down the reverse
chain; two train one: a model that reads the mask (GLIDE), and a cascade that draws a
4x4 digit and then the 8x8 given it. In 2-D the answer inpainting should give, the
conditional density :math:`p(x_2 \mid x_1 = a)`, is one quadrature away, so each
method is first measured against the truth with the exact denoiser; then they edit the
8x8 digits.

Run::

    python tutorials/11_editing.py [--quick] [--out DIR]

The full run trains the ``"images"`` recipe on the digits (its 48,000 steps take a few
minutes of CPU on one core), and for the cascade a super-resolution model and a 4x4
base model (a few minutes more, or none when ``benchmarks/cascade.py``'s checkpoints
are in ``benchmarks/out/cascade/``); ``--quick`` trains small networks briefly
(seconds). The tables and curves over many samples are read from the benchmarks'
results files (``benchmarks/results/inpaint_2d.json``, ``inpaint_model_2d.json``,
``digits_editing.json``, ``digits_sdedit.json``, ``thresholding.json``,
``cascade.json`` and ``cascade_bpd.json``), written by the scripts of the same names.
"""

from __future__ import annotations

import json
import time

import _common
from _common import Chapter, np, plt, save_figure, tile_images

from npdiff import checkpoint
from npdiff.data import toy2d
from npdiff.data.images import digits
from npdiff.data.lowres import (
    LOWRES_K,
    SRData,
    digits_4x4,
    downsample,
    nearest_upsample,
)
from npdiff.data.masked import mask_context
from npdiff.digit_features import digit_classifier, nearest_levels
from npdiff.edit import (
    dps_sample,
    exact_conditional,
    repaint_sample,
    replacement_sample,
)
from npdiff.edit.cascade import cascade_sample, upsample
from npdiff.edit.coarse import COARSE_KINDS, coarse_digits
from npdiff.edit.mask import IMAGE_MASKS, image_mask, keep_known
from npdiff.edit.sdedit import sdedit
from npdiff.nn import MLPConfig
from npdiff.nn.context_mlp import ContextMLP, ContextMLPConfig
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
# 5. A model trained to inpaint (GLIDE)
# -------------------------------------
#
# The three methods above steer a model that never saw a mask. GLIDE
# :cite:p:`nichol2022glide` (Sec. 3.3) trains one that reads the known part instead:
# beside :math:`x_t` its input carries the known values and the mask, so it learns the
# noise of the conditional itself,
#
# .. math::
#
#    \epsilon_\theta\big(x_t, t \mid [\, y \odot m,\ m \,]\big)
#        \approx \mathbb E\big[\epsilon \mid x_t,\ m \odot x_0 = y\big],
#
# trained with random masks (here 0 or 1 known coordinate; none known is the
# unconditional model, :class:`npdiff.data.masked.MaskedPairs`), and sampled by the
# plain ancestral chain, one evaluation a step
# (:func:`npdiff.edit.inpaint_model_sample`). The network is a
# :class:`~npdiff.nn.context_mlp.ContextMLP`, the MLP whose first layer also reads the
# context :math:`[y \odot m \mid m]`, here for :math:`x_1 = 1` known:

context = mask_context(known[None], mask[None])  # (1, 4) [y * m | m]
ch.show("GLIDE context [y * m | m]: x1 = 1 known, x2 not", context[0, 0],
        f"context = {context[0].tolist()}")

# %%
# The benchmark (``benchmarks/inpaint_model_2d.py``) trains it on 8gaussians and draws
# :math:`x_2` for the same three values of :math:`x_1` as above, beside replacement,
# RePaint and DPS on a trained unconditional model (``inpaint_2d.json``, its rows of a
# trained model). There is no oracle row: the exact denoiser of the set is that of the
# unconditional density, and a conditioned one would have to be exact for every
# :math:`p(x \mid x_1 = a)` at once; what the method buys is learning all of those in
# one network, so only its trained form is measured, its error the training's and
# the chain's together.

glide = results("inpaint_model_2d")
steer = [r for r in inpaint["rows"] if r["model"] == "trained"
         and r["data"] == "8gaussians"] if inpaint else []
both = steer + (glide["rows"] if glide else [])
wheres = [w for w in ("mode", "between", "tail") if any(r["where"] == w for r in both)]
ncol = max(len(wheres), 1)
fig, axes = plt.subplots(1, ncol, figsize=(4.2 * ncol, 3.4))
for ax, where in zip(np.atleast_1d(axes), wheres):
    mine = [r for r in both if r["where"] == where]
    for k, m in enumerate(sorted({r["method"] for r in mine})):
        rs = sorted((r for r in mine if r["method"] == m), key=lambda r: r["budget"])
        ax.plot([r["budget"] for r in rs], [r["w1"] for r in rs], marker="o",
                color=f"C{k}", label=m, lw=2.5 if m.startswith("mask") else 1.2)
        if m.startswith("mask"):
            for r in rs:
                ch.show(f"GLIDE, x1 = {r['a']:g} ({where}), "
                        f"{r['budget']} evaluations: W1", r["w1"],
                        f"floor {r['floor']:.3f}")
    few = min(r["budget"] for r in mine)
    ch.show(f"x1 = {mine[0]['a']:g} ({where}), {few} evaluations: best steering "
            "method's W1", min(r["w1"] for r in mine if r["budget"] == few
                               and not r["method"].startswith("mask")))
    ax.axhline(mine[0]["floor"], color="k", ls="--", lw=0.8,
               label="floor (exact draws)")
    ax.set(xscale="log", yscale="log", xlabel="evaluations",
           title=f"8gaussians, x1 = {mine[0]['a']:g} ({where})")
    ax.set_xticks(sorted({r["budget"] for r in mine}),
                  [str(b) for b in sorted({r["budget"] for r in mine})])
    ax.xaxis.set_minor_locator(plt.NullLocator())
np.atleast_1d(axes)[0].set_ylabel("W1 to p(x2 | x1 = a), trained models")
np.atleast_1d(axes)[0].legend(fontsize=6)
fig.tight_layout()
save_figure(ch, fig, "inpaint_glide")

# %%
# At a handful of evaluations the trained conditional is the best of the four; with
# more, RePaint and DPS catch up on the modes. In the tail (:math:`x_1 = 4`, where
# training saw few points) no trained method comes near the floor: the conditional
# model is only as good as its data there, and the steering methods only as good as
# the unconditional model's score. With nothing known (the context all 0) the same
# network is an unconditional model, and its exact NLL of fresh points, beside the
# set's true NLL of them, says what learning the conditionals cost it.

if glide:
    ch.show("GLIDE model, nothing known: NLL - true NLL (nats)",
            glide["notes"]["unconditional_gap"],
            f"+- {glide['notes']['unconditional_gap_se']:.3f}: the unconditional half")

# %%
# 6. Completing digits
# --------------------
#
# On images the mask names the part that is missing: the left half, the bottom half,
# the centre 4x4 square, or half of the pixels at random
# (:func:`npdiff.edit.mask.image_mask`). Every pasting method ends each step with the
# same merge, :math:`x \leftarrow m \odot y + (1 - m) \odot x`. The model is the
# digits MLP of chapter 6's recipe, unconditional; one completion per method of two
# test digits for each mask.

ch.section("6. completing digits")
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
# 7. SDEdit: noise to t0, and denoise
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
# 8. Thresholding at high guidance weight
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

# %%
# 9. A cascade: 4x4, then 8x8
# ---------------------------
#
# Imagen :cite:p:`saharia2022imagen` does not draw its images at full resolution in
# one model: a base model draws a small image, and super-resolution models
# :cite:p:`saharia2022sr3` draw larger ones given it. A cascade
# :cite:p:`ho2022cascaded` factors the density through the low-resolution image
# :math:`z = x_{4\times4}`,
#
# .. math::
#
#    p(x_{8\times8}) = \sum_z p_\theta(x_{8\times8} \mid z)\, p_\phi(z).
#
# Here :math:`z` is the 2x2 block sums of a digit's levels: four levels in 0..16 sum to
# 0..64, so the 4x4 digits have 65 levels, and with level :math:`v \mapsto 2v/64 - 1`
# the block sum is the block's mean in data space,
# :math:`\frac{2}{64}\sum_{i=1}^4 v_i - 1 = \frac14 \sum_{i=1}^4 (\frac{2 v_i}{16} - 1)`
# (:mod:`npdiff.data.lowres`): 2x2 average pooling gives it to the last bit.

ch.section("9. a cascade: 4x4, then 8x8")
lo = digits_4x4()
levels = np.rint((d.test + 1) * 8).reshape(-1, 4, 2, 4, 2)  # (N, 4, 2, 4, 2) 0..16
sums = levels.sum(axis=(2, 4)).reshape(-1, 16)  # (N, 16) block sums, 0..64
ch.show("4x4 digits: levels", LOWRES_K, "four levels 0..16 sum to 0..64")
ch.show("max |2 * block sum / 64 - 1 - 2x2 mean|",
        np.abs(2 * sums / 64 - 1 - downsample(d.test)).max(), "the same image")

fig, axes = plt.subplots(2, 1, figsize=(8, 3))
for ax, imgs, label in zip(axes, [d.test[:8], nearest_upsample(lo.test[:8])],
                           ["8x8", "4x4"]):
    ax.imshow(tile_images(imgs, 8), cmap=GREY, vmin=-1, vmax=1)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
fig.tight_layout()
save_figure(ch, fig, "lowres")

# %%
# The super-resolution model is a context-conditioned MLP
# (:class:`~npdiff.nn.context_mlp.ContextMLP`) whose context is the 4x4 image noised to
# a level :math:`s`, up-sampled by nearest neighbour, and :math:`s` itself
# (:func:`npdiff.data.lowres.sr_context`):
#
# .. math::
#
#    z_s = \sqrt{\bar\alpha(s)}\, z + \sigma(s)\, \epsilon, \qquad
#    c = [\, \mathrm{up}(z_s) \mid s \,] \in \mathbb R^{64 + 1}, \qquad
#    \epsilon_\theta(x_t, t \mid c).
#
# Training draws :math:`s \sim U(0, s_{\max})` (noise-conditioning augmentation,
# :cite:t:`ho2022cascaded`, Sec. 3), so the model learns how far to trust the 4x4:
# fully at :math:`s = 0`, which is right for a true 4x4 and wrong for a base model's
# imperfect one. Sampling fixes one small :math:`s`
# (:func:`npdiff.edit.cascade.cascade_sample`, 0.05 by default). The base model is
# the images recipe's MLP on the 16 pixels. The quick run trains both briefly; the
# full run reads ``benchmarks/cascade.py``'s checkpoints when they are there
# (``benchmarks/out/cascade/``) and otherwise trains smaller ones for a few minutes.

s_max = 0.1  # the augmentation range of the SR model shown here
sr_steps, base_steps = ch.pick(1500, 6000), ch.pick(1500, 6000)
sr_kw = {**model_kw, "width": ch.pick(64, 128)}
sr_cfg = ContextMLPConfig(dim=64, context_dim=65, **sr_kw)
low_kw = {**recipe("images")[0], "width": ch.pick(128, 256)}
ckpt = _common.REPO_ROOT / "benchmarks" / "out" / "cascade"
t0 = time.perf_counter()
have = all((ckpt / f).is_file() for f in ("sr_aug0.1.npz", "base_4x4.npz"))
if not ch.quick and have:
    sr = checkpoint.load(ckpt / "sr_aug0.1.npz").model
    base = checkpoint.load(ckpt / "base_4x4.npz").model
    print("  loaded sr_aug0.1.npz and base_4x4.npz (benchmarks/cascade.py)")
else:
    tr_kw = {**train_kw, "steps": sr_steps}
    sr_tr = Trainer(ContextMLP(sr_cfg, schedule, rng=ch.rng(20)),
                    SRData(d.train, schedule, aug_max=s_max), TrainConfig(**tr_kw),
                    ch.rng(21))
    sr_tr.run(progress=False)
    sr = sr_tr.denoiser(ema=True)
    base_net = DiffusionMLP(MLPConfig(dim=16, **low_kw), schedule, rng=ch.rng(22))
    base_tr = Trainer(base_net, lo.sample_dequantized,
                      TrainConfig(**{**train_kw, "steps": base_steps}), ch.rng(23))
    base_tr.run(progress=False)
    base = base_tr.denoiser(ema=True)
ch.show("SR and base models: seconds", time.perf_counter() - t0,
        f"{sr_steps} + {base_steps} steps")
s_aug = 0.05
ch.show("sigma(s) at s = 0.05", schedule.sigma(s_aug),
        "against the 4x4's level spacing 2/64")

# %%
# Up-sampled test digits: each 4x4 (first row, shown at 8x8) is given to the SR model
# twice with different noise; then whole cascade samples, base model then SR model.
# The SR model draws each 2x2 block freely: nothing makes its mean the 4x4 pixel, so
# the samples' own 4x4 is only near the one they were given.

z = lo.test[:8]  # (8, 16) test 4x4s
ups = [upsample(sr, z, ch.rng(24 + k), aug_level=s_aug, steps=ch.pick(50, 250))
       for k in range(2)]
casc = cascade_sample(base, sr, 8, ch.rng(26), aug_level=s_aug,
                      steps=ch.pick(50, 250))
clf = digit_classifier()
same = np.mean([clf.predict(nearest_levels(u)) == lo.test_labels[:8] for u in ups])
ch.show("SR from test 4x4s: share read as the source digit", same, "16 samples")
ch.show("SR: RMS of (2x2 means of the sample - the 4x4 given)",
        np.sqrt(np.mean((downsample(ups[0]) - z) ** 2)),
        "0 for nearest up-sampling")
fig, axes = plt.subplots(6, 1, figsize=(8, 6.6))
rows = [("4x4 given", nearest_upsample(z)), ("SR draw 1", ups[0]),
        ("SR draw 2", ups[1]), ("8x8 original", d.test[:8]),
        ("base 4x4", nearest_upsample(casc.low)), ("cascade", casc.x)]
for ax, (label, imgs) in zip(axes, rows):
    ax.imshow(tile_images(np.clip(imgs, -1, 1), 8), cmap=GREY, vmin=-1, vmax=1)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
fig.tight_layout()
save_figure(ch, fig, "cascade")

# %%
# Over 1,000 samples each (``benchmarks/cascade.py``, its results in ``cascade.json``
# and ``cascade_bpd.json``): the Fréchet distance in the digit classifier's features
# and its mean confidence, for cascades whose SR model was trained with
# augmentation over :math:`[0, 0.5]`, over :math:`[0, 0.1]`, or without, each sampled
# at the best of its levels :math:`s`, against the single-stage 8x8 MLP trained for
# about as long as a base and an SR model together. Then the exact bits/dim of the
# test digits: a cascade's is :math:`(16\, b_{4\times4} + 64\, b_{8\times8 \mid
# 4\times4}) / 64`, a valid discrete model of the 8x8 because the 4x4 is a function
# of it.

casc_rows = (results("cascade") or {"rows": []})["rows"]
labels = {"cascade, SR with augmentation s ~ U(0, 0.5)": "cascade, aug. [0, 0.5]",
          "cascade, SR with augmentation s ~ U(0, 0.1)": "cascade, aug. [0, 0.1]",
          "cascade, SR without augmentation": "cascade, no aug.",
          "single-stage 8x8 MLP": "single-stage MLP"}
best = {}
for r in casc_rows:
    if r["model"] in labels and (r["model"] not in best
                                 or r["frechet"] < best[r["model"]]["frechet"]):
        best[r["model"]] = r
for name, r in best.items():
    at = "" if r["aug_level"] is None else f"s = {r['aug_level']:g}; "
    ch.show(f"{labels[name]}: Frechet distance", r["frechet"],
            f"{at}floor {r['floor']:.2f}; confidence {r['confidence']:.3f}")
bpd_rows = (results("cascade_bpd") or {"rows": []})["rows"]
bpd = {r["model"]: r for r in bpd_rows}
for name, short in [("cascade = base + SR without augmentation", "cascade, no aug."),
                    ("single-stage 8x8 MLP", "single-stage MLP"),
                    ("SR without augmentation, given the true 4x4 (s = 0)",
                     "SR alone, given the true 4x4"),
                    ("base (4x4)", "base model, 4x4 (per 4x4 pixel)")]:
    if name in bpd:
        ch.show(f"{short}: bits/dim", bpd[name]["bpd"], f"+- {bpd[name]['bpd_se']:.3f}")

fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
names = [n for n in labels if n in best]
axes[0].barh([labels[n] for n in names], [best[n]["frechet"] for n in names],
             color=["C0", "C0", "C1", "C2"][:len(names)])
if names:
    axes[0].axvline(best[names[0]]["floor"], color="k", ls="--", lw=0.8,
                    label="floor (real digits)")
    axes[0].legend(fontsize=7)
axes[0].set(xlabel="Fréchet distance (best s of each)")
keys = [n for n in bpd if n.startswith(("cascade", "single"))]
axes[1].barh([k.replace("cascade = base + ", "cascade: ") for k in keys],
             [bpd[k]["bpd"] for k in keys], xerr=[bpd[k]["bpd_se"] for k in keys],
             color=["C2" if k.startswith("single") else "C0" for k in keys])
axes[1].set(xlabel="test bits/dim (8x8)")
axes[1].tick_params(axis="y", labelsize=7)
fig.tight_layout()
save_figure(ch, fig, "cascade_results")

# %%
# What they show: augmentation helps the cascade (without it the SR model trusts the
# base model's flawed 4x4 fully), yet no cascade here beats the single-stage MLP, on
# samples or on bits/dim. The bits say why: the SR model's density spreads over all
# 64 pixels without knowing that each 2x2 block must average to its 4x4 pixel, so it
# spends probability on 8x8 images that disagree with the 4x4 it was given, and the
# 4x4's bits are paid twice. At 8x8 the single model is not short of capacity; the
# cascade pays off where one model cannot hold the full resolution.
ch.done()
