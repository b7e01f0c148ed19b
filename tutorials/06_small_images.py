r"""
Chapter 6: small images, the 8x8 digits, and reading a likelihood in bits per dimension
=======================================================================================

The models of chapters 4 and 5 lived in two dimensions. This chapter trains the same
kind of network on images, the 8x8 handwritten digits, and reads its likelihood the way
image models are compared: in bits per dimension of *discrete* data, checked against
baselines that need no diffusion at all.

Run::

    python tutorials/06_small_images.py [--quick] [--out DIR]

Besides its figures the chapter writes the trained model, ``06_model.npz``
(``06_model_quick.npz`` with ``--quick``), which ``npdiff nll --model ... --data
digits`` also reads. The full run trains the ``"images"`` recipe for 48,000 steps and
scores all 360 test images and 360 training images by both likelihoods: about 7
minutes of CPU on one core (3 training, 4 scoring), sections 7 and 8 (dequantization,
fine steps) about one and a half more, and section 9 (the bound's chain) about a minute.
``--quick`` trains a narrower network for 1,500 steps and scores a dozen images per
split and six in sections 7 to 9 (about 20 s of CPU).
"""

# %%
# 1. The digits
# -------------
#
# The UCI handwritten digits (Alpaydin and Kaynak, 1998) are 1,797 images of 8x8 pixels;
# each pixel counts the inked pixels of a 4x4 block of a 32x32 scan, so it takes one of
# :math:`K = 17` grey levels :math:`0, \dots, 16`. ``npdiff.data.images.digits()`` reads
# the copy scikit-learn ships (no download) and splits it once and for all: 1,437
# training images and 360 test images, chosen by
# ``np.random.default_rng(0).permutation(1797)``. A model sees each image as a point in
# :math:`D = 64` dimensions; nothing in it knows that pixels have neighbours.

from __future__ import annotations

import json
import time

from _common import REPO_ROOT, Chapter, np, plt, save_figure, tile_images
from scipy.special import log_ndtr

from npdiff import checkpoint
from npdiff.data.images import DIGITS_BASELINES, digits
from npdiff.gaussian import data_to_levels, discretized_gaussian_log_likelihood
from npdiff.likelihood import (
    density_to_bpd,
    dequantization_log_density,
    dequantized_bpd,
    image_bpd,
    vlb,
)
from npdiff.likelihood import dequantize as add_bin_noise
from npdiff.nn import MLPConfig
from npdiff.nn.model import DiffusionMLP
from npdiff.recipes import RECIPES, bound_times, recipe
from npdiff.reverse import chain_for
from npdiff.reverse_variance import eps_moments
from npdiff.sample import ddpm_sample
from npdiff.train import TrainConfig, Trainer

LN2 = np.log(2.0)
GREY = plt.get_cmap("gray").with_extremes(bad="#6f8fb3")  # white ink, blue gutters

ch = Chapter(6, "small images: 8x8 digits in bits/dim")
ch.section("1. the digits")
d = digits()
K, D = d.K, d.dim
delta = 1.0 / (K - 1)  # half a bin
levels_train = data_to_levels(d.train, K)  # (1437, 64) integer levels 0..16
print(f"  {d!r}")
ch.show("training images", d.train.shape[0])
ch.show("test images", d.test.shape[0])
ch.show("dimensions D", D, "8 x 8 pixels")
ch.show("grey levels K", K)
ch.show("fraction of training pixels at level 0", np.mean(levels_train == 0))

# %%
# Almost half the pixels are blank (level 0): four digits of each class, and how often
# each level occurs.

order = np.concatenate([np.flatnonzero(d.train_labels == c)[:4] for c in range(10)])
by_class = d.train[order].reshape(10, 4, D).transpose(1, 0, 2).reshape(-1, D)
fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), width_ratios=[1.6, 1])
axes[0].imshow(np.ma.masked_invalid(tile_images(by_class, 10)), cmap=GREY, vmin=-1,
               vmax=1, interpolation="nearest")
axes[0].set(xticks=[], yticks=[],
            title="training digits, four of each class (17 grey levels)")
counts = np.bincount(levels_train.ravel(), minlength=K)
axes[1].bar(np.arange(K), counts / counts.sum(), color="C0")
axes[1].set(yscale="log", xlabel="level v (x = 2v/16 - 1)",
            ylabel="fraction of training pixels", title="how often each level occurs",
            xticks=range(0, K, 2))
axes[1].grid(alpha=0.3)
fig.tight_layout()
save_figure(ch, fig, "digits")

# %%
# 2. Bits per dimension, and what a level is worth
# ------------------------------------------------
#
# The log-likelihood of a 64-pixel image is a sum of 64 pixels' worth of surprise, so
# its size in nats says more about :math:`D` than about the model. The convention is to
# report
#
# .. math::
#
#    \text{bits/dim} = -\frac{\log_2 P(v)}{D},
#
# the number of bits per pixel an ideal compressor built on the model would spend. It is
# a probability of *discrete* data: :math:`P(v)` sums to one over the :math:`17^{64}`
# possible images. A diffusion model is a density :math:`p(x)` on
# :math:`\mathbb R^{64}`, which must first be turned into a probability. npdiff's
# convention for :math:`K`-level data (``npdiff.gaussian``): level :math:`v` sits at
# :math:`x = 2v/(K-1) - 1 \in [-1, 1]` and owns the bin :math:`[x - \delta, x + \delta]`
# of width :math:`2\delta = 2/(K-1) = 0.125`. Then, by Jensen's inequality (uniform
# dequantization, :cite:t:`theis2016note`, Sec. 3.1),
#
# .. math::
#
#    P(v) = \int_{[-\delta, \delta]^D} p(x + u)\, du
#    \ \ge\ \exp\big(\mathbb E_u \log p(x + u)\big)\, (2\delta)^D,
#    \qquad u \sim \mathcal U(-\delta, \delta)^D .
#
# So we train and score the density on dequantized images :math:`x + u`, and the factor
# :math:`(2\delta)^D` converts a density into the probability of a bin
# (``density_to_bpd``). A one-line check of the units: the density uniform on the union
# of the bins, :math:`[-1 - \delta, 1 + \delta]^D`, is :math:`((K-1)/(2K))^D`, each bin
# has probability :math:`(1/K)^D`, and the model scores :math:`\log_2 17 = 4.087`
# bits/dim on any image. Anything worth the name must beat it.

ch.section("2. bits per dimension and the K-level convention")
ch.show("bin width 2/(K-1)", 2 * delta)
log_p_uniform = D * np.log((K - 1) / (2.0 * K))  # U([-1-delta, 1+delta]^D), any point
uniform_bpd = float(density_to_bpd(log_p_uniform, K, D))
ch.show("uniform model through density_to_bpd (bits/dim)", uniform_bpd,
        "the density ((K-1)/(2K))^D times bins (2/(K-1))^D")
ch.show("log2(17)", np.log2(K), "one of 17 equally likely levels per pixel")

# %%
# The inequality itself, where both sides are closed-form: a Gaussian
# :math:`\mathcal N(m_j, s_j^2)` per pixel, fitted to dequantized pixels, whose bin
# masses are differences of normal CDFs,
#
# .. math::
#
#    P(v_j) = \Phi\Big(\frac{x_j + \delta - m_j}{s_j}\Big)
#    - \Phi\Big(\frac{x_j - \delta - m_j}{s_j}\Big),
#
# and whose expected dequantized log-density needs no sampling,
#
# .. math::
#
#    \mathbb E_u \log \mathcal N(x_j + u; m_j, s_j^2)
#    = -\tfrac12 \log(2\pi s_j^2) - \frac{(x_j - m_j)^2 + \delta^2/3}{2 s_j^2} .

mean_d = d.train.mean(axis=0)  # (D,)
std_d = np.sqrt(d.train.var(axis=0) + delta**2 / 3)  # (D,) spread of x + u


def log_bin_mass(x: np.ndarray) -> np.ndarray:
    r"""log(Phi(b) - Phi(a)) of each pixel's bin [x - delta, x + delta], (n, D).

    Bins right of the mean are mirrored (Phi(b) - Phi(a) = Phi(-a) - Phi(-b)) so that
    both CDFs are small: a pixel 50 standard deviations out keeps a finite log-mass.
    """
    a = (x - delta - mean_d) / std_d  # (n, D) standardized bin edges
    b = (x + delta - mean_d) / std_d
    lo, hi = np.where(a > 0, -b, a), np.where(a > 0, -a, b)
    return log_ndtr(hi) + np.log1p(-np.exp(log_ndtr(lo) - log_ndtr(hi)))


exact_bpd = -log_bin_mass(d.test).sum(axis=1) / (D * LN2)  # (360,) -log2 P(v) / D
sq = (d.test - mean_d) ** 2 + delta**2 / 3  # (360, D) E_u (x + u - m)^2
expected = -0.5 * np.sum(np.log(2 * np.pi * std_d**2) + sq / std_d**2, axis=1)
bound_bpd = density_to_bpd(expected, K, D)  # (360,) from the dequantized density
ch.show("per-pixel Gaussian, exact bin masses (bits/dim)", exact_bpd.mean(),
        "test split")
ch.show("per-pixel Gaussian, dequantized bound (bits/dim)", bound_bpd.mean())
ch.show("min over test images of bound - exact (bits/dim)",
        (bound_bpd - exact_bpd).min(), ">= 0: Jensen, image by image")

# %%
# Jensen costs this model about 0.03 bits/dim. One more thing is worth knowing before
# comparing estimators: the VLB's decoder (chapter 2) opens the two end bins to
# :math:`-\infty` and :math:`+\infty`, so the mass a model puts beyond :math:`[-1, 1]`
# still counts for levels 0 and 16. Half the pixels are blank, and for the per-pixel
# Gaussian that alone is worth 0.65 bits/dim. The dequantized ODE likelihood has closed
# bins and pays for every bit of density spilled outside them.

edges = discretized_gaussian_log_likelihood(d.test, mean_d, 2 * np.log(std_d), K=K)
ch.show("per-pixel Gaussian, edge bins open to +-infinity (bits/dim)",
        -edges.sum(axis=1).mean() / (D * LN2),
        "the VLB decoder's convention: the mass beyond [-1, 1] goes to the end levels")

# %%
# 3. Baselines that need no diffusion
# -----------------------------------
#
# Before training anything, models fitted on the training split in a few milliseconds:
# the uniform model; independent per-pixel categoricals, 17 probabilities per pixel from
# the counts :math:`N_j(v)` of :math:`N` training images plus one,
#
# .. math::
#
#    P(v_j) = \frac{N_j(v_j) + 1}{N + K};
#
# and a full-covariance Gaussian :math:`\mathcal N(\mu, \Sigma)` fitted to dequantized
# training images, whose mean and covariance are closed-form, and so is its expected
# dequantized log-density:
#
# .. math::
#
#    \mathbb E_u (x + u - \mu)^\top \Sigma^{-1} (x + u - \mu)
#    = (x - \mu)^\top \Sigma^{-1} (x - \mu)
#    + \frac{\delta^2}{3} \operatorname{tr}\Sigma^{-1},
#    \qquad \Sigma = \operatorname{Cov}[x] + \frac{\delta^2}{3} I .
#
# They bracket the problem: 4.09, about 2.95 and 2.43 bits/dim on the test split.
# Mixtures of such models do better (kept in ``npdiff.data.images.DIGITS_BASELINES``):
# the mixture of per-pixel categoricals is the figure to beat.

ch.section("3. baselines fitted on the training split")


def categorical_bpd(x: np.ndarray) -> np.ndarray:
    r"""Bits/dim of images x (n, D) under per-pixel categoricals, add-one smoothing."""
    counts = np.stack([np.bincount(levels_train[:, j], minlength=K) for j in range(D)])
    log_p = np.log((counts + 1.0) / (levels_train.shape[0] + K))  # (D, K)
    return -log_p[np.arange(D), data_to_levels(x, K)].sum(axis=1) / (D * LN2)  # (n,)


mean_g = d.train.mean(axis=0)  # (D,)
cov_g = np.cov(d.train, rowvar=False, bias=True) + delta**2 / 3 * np.eye(D)  # (D, D)
L_g = np.linalg.cholesky(cov_g)
prec_g = np.linalg.inv(cov_g)


def gaussian_bpd(x: np.ndarray) -> np.ndarray:
    r"""Bits/dim of images x (n, D): E_u log N(x + u; mean, cov), closed form."""
    r = x - mean_g  # (n, D)
    quad = np.einsum("nd,de,ne->n", r, prec_g, r) + delta**2 / 3 * np.trace(prec_g)
    log_p = -0.5 * (D * np.log(2 * np.pi) + 2 * np.sum(np.log(np.diag(L_g))) + quad)
    return density_to_bpd(log_p, K, D)


baselines = {}  # name -> {split: bits/dim}
for name, fn in [("per-pixel categorical", categorical_bpd),
                 ("full-covariance Gaussian", gaussian_bpd)]:
    baselines[name] = {s: float(fn(d.split(s)).mean()) for s in ("train", "test")}
    ch.show(f"{name}: test (bits/dim)", baselines[name]["test"])
    ch.show(f"{name}: train (bits/dim)", baselines[name]["train"],
            "the split it was fitted on")
baselines["uniform"] = {"train": uniform_bpd, "test": uniform_bpd}
mixtures = [f"{k} {v:.3f}" for k, v in DIGITS_BASELINES.items() if "mixture" in k]
print("  mixtures, for reference (test split): " + "; ".join(mixtures))

# %%
# 4. Training on 1,437 images
# ---------------------------
#
# The MLP of chapter 4, with the image recipe (``npdiff.recipes``, ``"images"``): 64
# inputs, a 128-dimensional time embedding, width 256, three residual GELU blocks,
# v-prediction, AdamW :cite:p:`loshchilov2019adamw` with a cosine decay and an EMA of
# the weights. Two things are new. The network is trained on dequantized images (fresh
# noise :math:`u` in every batch), because the density we will score is that of
# :math:`x + u`: trained on the 17 levels alone, it would learn 17 spikes per pixel and
# the likelihood ODE would spend its effort resolving them. And there is strong weight
# decay (0.1): 1,437 images are few for 263k weights. A network that memorizes them does
# what chapter 3's empirical oracle did: its density piles up on the training images and
# starves the test images. A first attempt without these levers (an MLP of width 512
# predicting :math:`\epsilon`, weight decay 0.01) scored 3.9 to 5.0 bits/dim by the VLB
# on the test split, worse than the uniform model, and worse the longer it trained; its
# likelihood ODE diverged on most test images. The quick run trains a network of width
# 128 for 1,500 steps: a coarse model, near 3.1 bits/dim, that cannot memorize anything
# yet.

ch.section("4. training the MLP on the 1,437 training images")
model_kw, train_kw, schedule = recipe("images")
if ch.quick:  # narrower, a short run at a higher rate: seconds, and a coarser model
    model_kw.update(width=128)
    train_kw.update(steps=1500, lr=2e-3)
config = MLPConfig(dim=D, **model_kw)
print(f"  model: width {config.width}, depth {config.depth}, "
      f"time embedding {config.emb_dim}, predicts {config.parameterization}; "
      f"{train_kw['steps']} steps of batch "
      f"{train_kw['batch_size']}, lr {train_kw['lr']} ({train_kw['lr_schedule']}), "
      f"weight decay {train_kw['weight_decay']}, EMA {train_kw['ema_decay']}")
rng = ch.rng(1)
model = DiffusionMLP(config, schedule, rng=rng)
dequantize = RECIPES["images"]["data"]["dequantize"]
data = d.sample_dequantized if dequantize else d.sample  # fresh u in every batch
trainer = Trainer(model, data, TrainConfig(**train_kw), rng)
t0 = time.perf_counter()
history = trainer.run(progress=False)
seconds = time.perf_counter() - t0
model = trainer.denoiser(ema=True)
ckpt = ch.path("model_quick.npz" if ch.quick else "model.npz")
checkpoint.save(ckpt, model, step=trainer.step)
print(f"  saved the EMA model to {ckpt.name} "
      f"(score it with: npdiff nll --model {ckpt.name} --data digits)")
loss = history["loss"]
ch.show("parameters", model.params.size)
ch.show("training seconds", seconds,
        f"{trainer.step / seconds:.0f} steps/s on one BLAS thread")
ch.show("first loss", loss[0])
ch.show("final loss (mean of the last 5% of steps)",
        loss[-max(1, loss.size // 20):].mean())

# %%
# 5. Samples and the reverse process
# ----------------------------------
#
# Ancestral sampling (DDPM, 1,000 steps) from the trained model, beside real test
# digits.

ch.section("5. samples beside real digits; one image along the reverse process")
samples = ddpm_sample(model, 60, ch.rng(2)).x  # (60, D), 1,000 ancestral steps
real = d.test[ch.rng(3).permutation(d.test.shape[0])[:60]]  # (60, D)
fig, axes = plt.subplots(1, 2, figsize=(12, 4.4))
for ax, imgs, title in [(axes[0], samples, "DDPM samples (1,000 steps)"),
                        (axes[1], real, "real test digits")]:
    ax.imshow(np.ma.masked_invalid(tile_images(np.clip(imgs, -1, 1), 10)), cmap=GREY,
              vmin=-1, vmax=1, interpolation="nearest")
    ax.set(xticks=[], yticks=[], title=f"{title}, {imgs.shape[0]}")
fig.tight_layout()
save_figure(ch, fig, "samples")

# %%
# Are the samples new digits or copies? Each one's distance to its nearest training
# image, per pixel, against the same distance for real test images (which are new by
# construction).


def nearest_train_distance(x: np.ndarray) -> np.ndarray:
    r"""Per-pixel RMS distance of each image of x (n, D) to its nearest training one."""
    sq = (x**2).sum(1)[:, None] - 2 * x @ d.train.T + (d.train**2).sum(1)[None, :]
    return np.sqrt(np.maximum(sq.min(axis=1), 0.0) / D)  # (n,)


ch.show("samples: median RMS distance to the nearest training image",
        np.median(nearest_train_distance(samples)))
ch.show("test digits: median RMS distance to the nearest training image",
        np.median(nearest_train_distance(real)), "new images by construction")
ch.show("samples: fraction of pixels outside [-1 - delta, 1 + delta]",
        np.mean(np.abs(samples) > 1 + delta))

# %%
# One image followed from noise to data. Under each state :math:`x_t` the figure shows
# the network's current guess of the clean image (chapter 2),
#
# .. math::
#
#    \hat x_0(x_t) = \frac{x_t - \sigma_t\, \hat\epsilon(x_t, t)}{\sqrt{\bar\alpha_t}} :
#
# the digit's identity is settled while :math:`x_t` still looks like noise, and the last
# steps only sharpen strokes.

one = ddpm_sample(model, 1, ch.rng(4), record=True)
traj, times = one.trajectory[:, 0], one.times  # (steps + 1, D), (steps + 1,)
idx = np.unique(np.round(np.geomspace(1, len(times), 10)).astype(int) - 1)  # t=0 dense
idx = (len(times) - 1 - idx)[::-1]  # from noise (t = 1) to data (t = 0)
fig, axes = plt.subplots(2, len(idx), figsize=(1.3 * len(idx), 3.6))
for col, k in enumerate(idx):
    t_k = max(float(times[k]), 1e-5)  # the last state is the data end, t = 0
    a = float(np.exp(0.5 * schedule.log_alpha_bar(t_k)))
    sigma = float(np.sqrt(-np.expm1(schedule.log_alpha_bar(t_k))))
    x0_hat = (traj[k] - sigma * model.eps(traj[k][None], t_k)[0]) / a  # (D,)
    lim = a + 2 * sigma  # x_t = a x_0 + sigma eps spans about this much
    axes[0, col].imshow(np.clip(traj[k], -lim, lim).reshape(8, 8), cmap="gray",
                        vmin=-lim, vmax=lim, interpolation="nearest")
    axes[0, col].set_title(f"t = {times[k]:.3g}", fontsize=8)
    axes[1, col].imshow(np.clip(x0_hat, -1, 1).reshape(8, 8), cmap="gray",
                        vmin=-1, vmax=1, interpolation="nearest")
    for ax in axes[:, col]:
        ax.set(xticks=[], yticks=[])
axes[0, 0].set_ylabel("$x_t$", fontsize=9)
axes[1, 0].set_ylabel(r"$\hat x_0(x_t)$", fontsize=9)
fig.suptitle("one image from noise to data (top), and the network's guess of the final "
             "image at each step (bottom)", fontsize=9)
fig.tight_layout()
save_figure(ch, fig, "reverse")

# %%
# 6. Bits/dim of the model, by both estimators, on both splits
# ------------------------------------------------------------
#
# Chapter 5's two likelihoods, in the units of section 2 (``image_bpd``):
#
# - the exact ODE likelihood of one uniformly dequantized copy of each image, with the
#   exact trace (64 forward-mode tangents), RK45 at tolerance :math:`10^{-5}` in
#   float64; a solve that runs away is reported as diverged and left out, never averaged
#   in;
# - the variational bound on the recipe's chain of :math:`T = 50` steps (section 9 says
#   where they fall and which variance they use), whose decoder :math:`L_0` is chapter
#   2's discretized Gaussian with :math:`K = 17` levels: it is a bound on :math:`P(v)`
#   directly, no dequantization needed.
#
# Each is an upper bound on :math:`-\log_2 P(v) / D`, but of its own model: the ODE on
# the flow's density integrated over closed bins (in expectation over :math:`u`, by
# Jensen above), the VLB on the :math:`T`-step chain with its open-ended decoder. So
# they need not agree, and on blank pixels the VLB has the head start of section 2. The
# same numbers on training images measure over-fitting: a model that has memorized its
# training set scores them far better than test images.

ch.section("6. bits/dim of the trained model, train and test splits")
n = ch.pick(12, d.test.shape[0])
T = RECIPES["images"]["eval"]["vlb_T"]
variance = RECIPES["images"]["eval"]["vlb_variance"]
times = bound_times(schedule)  # (T,) the recipe's chain, section 9
print(f"  {n} images per split (the first {n} of each); ODE: one dequantization each, "
      f"RK45 at 1e-5; VLB: T = {T}, {variance} variance, decoder on {K} levels")
scores, terms = {}, {}
for split in ("test", "train"):
    t0 = time.perf_counter()
    x = d.split(split)[:n]
    # each estimator with its own stream of noise: the dequantization, the VLB's x_t
    ode = image_bpd(model, x, K, np.random.default_rng(ch.seed + 1), method="ode")
    bound = image_bpd(model, x, K, np.random.default_rng(ch.seed + 2), method="vlb",
                      times=times, variance=variance)
    r = {**ode.summary(), **bound.summary(), "nfe_ode": ode.ode.nfe}
    ch.show(f"{split}: ODE images diverged", r["ode_diverged"],
            "a runaway solve is reported, never averaged in")
    ch.show(f"{split}: exact ODE (bits/dim)", r["bpd_ode_finite"],
            f"+- {r['bpd_ode_se']:.2g}; {r['nfe_ode']} evaluations")
    ch.show(f"{split}: VLB (bits/dim)", r["bpd_vlb"], f"+- {r['bpd_vlb_se']:.2g}")
    print(f"  ({split}: {time.perf_counter() - t0:.1f} s)")
    scores[split] = r
    terms[split] = bound.vlb_terms_bpd.mean(axis=0)  # (T + 1,) each term's mean
for est, key in [("ODE", "bpd_ode_finite"), ("VLB", "bpd_vlb")]:
    gap = scores["test"][key] - scores["train"][key]
    se_key = key.replace("_finite", "") + "_se"
    se = np.hypot(scores["test"][se_key], scores["train"][se_key])
    ch.show(f"{est}: test - train (bits/dim)", gap,
            f"+- {se:.2g}; far above 0 would mean memorized training images")
ch.show("VLB test: share in the decoder L_0", terms["test"][0] / terms["test"].sum())
ch.show("VLB test: share in the first 5 KL terms L_1..L_5",
        terms["test"][1:6].sum() / terms["test"].sum())
ch.show("VLB test: prior term L_T (bits/dim)", terms["test"][T],
        "nearly nothing: x_T is noise")

# %%
# Where the bound's bits go: most into the decoder :math:`L_0` (which pixel level, given
# an almost clean :math:`x_1`) and the first few KL terms, where fine detail is decided.

fig, axes = plt.subplots(1, 2, figsize=(13, 4.4))
steps = np.arange(T + 1)
for split, color in [("test", "C3"), ("train", "C0")]:
    axes[0].semilogy(steps[1:T], np.maximum(terms[split][1:T], 1e-8), ".-", ms=3,
                     lw=0.9, color=color, label=f"{split}: KL terms $L_{{t-1}}$")
    axes[0].semilogy([0], [terms[split][0]], "s", color=color,
                     label=f"{split}: decoder $L_0$ = {terms[split][0]:.2f}")
    axes[1].plot(steps, np.cumsum(terms[split]), color=color,
                 label=f"{split}: total {terms[split].sum():.3f}")
axes[0].set(xlabel=f"step t of the chain (T = {T})", ylabel="bits/dim",
            title="where the bound's bits are spent")
axes[1].axhline(uniform_bpd, color="0.5", ls=":",
                label=f"uniform model, {uniform_bpd:.3f}")
axes[1].set(xlabel="step t", ylabel="bits/dim",
            title="the bound accumulated from the data end, L_0 + ... + L_t")
for ax in axes:
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
fig.tight_layout()
save_figure(ch, fig, "vlb_terms")

# %%
# The training curve, and every model of the chapter in bits/dim on both splits.
#
# What the full run measured (seed 0, bits/dim, 360 images per split):
#
# ========================== ================= ================= model
# test              train ========================== ================= =================
# exact ODE (dequantized)    2.380 +- 0.018    2.085 +- 0.009 VLB (T = 50, decoder)
# 2.601 +- 0.014    2.410 +- 0.009 full-covariance Gaussian   2.949             2.912
# per-pixel categorical      2.431             2.414 uniform                    4.087
# 4.087 ========================== ================= =================
#
# No ODE solve diverged. The exact ODE beats every baseline of section 3 on the test
# split, the per-pixel categoricals included, though not the mixture of them (2.20); the
# VLB beats the Gaussian but not the categoricals, and here the ODE is the lower of the
# two despite the VLB's head start on blank pixels. Over-fitting is visible: the
# training images score 0.29 (ODE) and 0.19 (VLB) bits/dim better than the test images,
# where the baselines' gaps are 0.02 to 0.04. The VLB's terms show where that gap lives:
# in the decoder (0.82 bits/dim on training images, 0.88 on test images) and the first
# ten KL terms, the fine detail of particular images, while the later terms of both
# splits coincide. Memorization stops short of copying, though: the samples' median
# distance to their nearest training image (0.28 per pixel) is no smaller than real test
# digits' (0.25). The quick run's model is coarse (about 3.1 bits/dim by both
# estimators, below the uniform model's 4.087 but above the baselines) and shows no
# train/test gap within its noise (:math:`\pm 0.1` bits/dim on a dozen images per
# split).

fig, axes = plt.subplots(1, 2, figsize=(13, 4.6), width_ratios=[1, 1.3])
window = max(1, loss.size // 50)
axes[0].plot(np.arange(1, loss.size + 1), loss, color="C0", alpha=0.25, lw=0.5,
             label="loss of each batch")
axes[0].plot(np.arange(window, loss.size + 1),
             np.convolve(loss, np.ones(window) / window, mode="valid"), color="C0",
             label=f"moving average ({window} steps)")
axes[0].set(xlabel="step", ylabel=f"{config.parameterization}-loss", yscale="log",
            title="training curve")
axes[0].legend(fontsize=8)
axes[0].grid(alpha=0.3, which="both")
rows = [("uniform", baselines["uniform"]),
        ("per-pixel categorical", baselines["per-pixel categorical"]),
        ("full-covariance Gaussian", baselines["full-covariance Gaussian"]),
        (f"diffusion MLP, VLB (T = {T})", {s: scores[s]["bpd_vlb"] for s in scores}),
        ("diffusion MLP, exact ODE", {s: scores[s]["bpd_ode_finite"] for s in scores})]
pos = np.arange(len(rows))
for off, split, color in [(-0.2, "train", "C0"), (0.2, "test", "C3")]:
    vals = [r[1][split] for r in rows]
    axes[1].barh(pos + off, vals, height=0.4, color=color, label=f"{split} split")
    for p, v in zip(pos, vals):
        axes[1].text(v + 0.03, p + off, f"{v:.3f}", va="center", fontsize=7)
best = DIGITS_BASELINES["mixture of 10-40 per-pixel categoricals"]
axes[1].axvline(best, color="0.3", ls="--", lw=0.8,
                label=f"mixture of per-pixel categoricals, test: {best:.2f}")
axes[1].set_yticks(pos, [r[0] for r in rows])
axes[1].set(xlabel="bits/dim (lower is better)", xlim=(0, uniform_bpd * 1.15),
            title=f"every model of the chapter ({n} model-scored images per split)")
axes[1].legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=3)
fig.tight_layout()
save_figure(ch, fig, "bits_per_dim")

# %%
# 7. Dequantization: what each noise bounds
# -----------------------------------------
#
# Section 2 dequantized with uniform noise. Any noise :math:`q(u)` that stays inside the
# bins does: for the probability of the bin,
#
# .. math::
#
#    \log P(v) = \log \mathbb E_{u \sim q}\Big[\frac{p(x + u)}{q(u)}\Big]
#    \ \ge\ \mathbb E_{u \sim q}\big[\log p(x + u) - \log q(u)\big],
#
# and :math:`S` draws give the tighter :math:`\log\frac1S\sum_s p(x + u_s)/q(u_s)`, a
# bound that can only improve with :math:`S` in expectation :cite:p:`hoogeboom2020`.
# Uniform noise has :math:`-\log q = D\log(2\delta)`, section 2's change of units.
# i-DODE's truncated normal :cite:p:`zheng2023idode` (Sec. 4.3) is :math:`\mathcal N(0,
# s^2)` cut to the bin,
#
# .. math::
#
#    \log q(u_j) = -\frac{u_j^2}{2 s^2} - \log\big(\sqrt{2\pi}\, s\big)
#    - \log\operatorname{erf}\Big(\frac{\delta}{\sqrt 2\, s}\Big),
#    \qquad |u_j| \le \delta,
#
# with :math:`s = \sigma(t_0)/\sqrt{\bar\alpha(t_0)}` where the likelihood starts: then
# :math:`x + u` looks like the forward process at :math:`t_0`, which is what a model
# trained on the *levels* has learned to score. Each is a bound on the bin's
# probability; which is tighter depends on where the model puts its density inside the
# bin. Ours was trained on uniform noise, so its density is flat within a bin, and a
# narrow :math:`q` pays :math:`\log q` without any gain in :math:`\log p`.

ch.section("7. dequantization: uniform and truncated normal, S draws")
u_grid = np.linspace(-delta, delta, 2001)[:, None]  # (2001, 1) one pixel's bin
for scale in (delta, 0.01):
    q = np.exp(dequantization_log_density(u_grid, K, "truncated_normal", scale))
    ch.show(f"truncated normal, s = {scale:.3g}: integral over the bin",
            np.trapezoid(q, u_grid[:, 0]), "1: a density on the bin")
n7, draws = ch.pick(6, 60), 4
x7 = d.test[:n7]
for name, scale in [("uniform", None), ("truncated_normal", delta)]:
    res = dequantized_bpd(model, x7, K, ch.rng(5), draws=draws,
                          dequantization=name, scale=scale, batch_size=60)
    label = name.replace("_", " ") + ("" if scale is None else f", s = {scale:.3g}")
    ch.show(f"ODE, {label}, S = 1 (bits/dim)",
            np.nanmean(res.bpd_of_draws(1)), f"{n7} test images")
    ch.show(f"ODE, {label}, S = {draws} (bits/dim)",
            np.nanmean(res.bpd_of_draws(draws)), "the same draws and more")

# %%
# Why fine steps below the bin width cost the bound
# -------------------------------------------------
#
# The variational bound of section 6 scores the levels themselves through the
# discretized decoder. Take a step t of the chain whose noise is far below the bins'
# half-width, :math:`\sigma_t \ll \delta = 1/16`. Given :math:`x_t`, the clean image is
# then plainly the nearest level: the true reverse step snaps. But the network was
# trained on dequantized images, where :math:`x_0` may sit anywhere in its bin, so its
# guess is :math:`\hat x_0 \approx x_t/\sqrt{\bar\alpha_t}`, the point itself, noise
# included. The step's KL charges the squared error of that guess (:cite:t:`ho2020ddpm`,
# Eq. 7, "large" variance :math:`\beta_t`, :math:`1 - \bar\alpha_t = \sigma_t^2`):
#
# .. math::
#
#    L_{t-1} = \frac{c_{1,t}^2}{2\beta_t}\,\lVert x_0 - \hat x_0\rVert^2
#    \approx \frac{\beta_t^2}{\sigma_t^4}\cdot\frac{D\sigma_t^2}{2\beta_t}
#    = \frac{D}{2}\,\frac{\beta_t}{\sigma_t^2},
#    \qquad \sum_{\sigma_t < \delta} L_{t-1}
#    \approx \frac D2 \log\frac{\delta^2}{\sigma_1^2}
#
# nats, a sum that grows with every step added below the bins. On the dequantized images
# the network was trained on, the same steps charge as much (there the noise within a
# bin is real, and no denoiser can remove it), but the decoder pays it back: its
# Gaussian density of width :math:`\sigma_1` is high, and in bits of a bin (adding
# :math:`\log q = -D\log 2\delta` of the uniform noise) it returns about what the fine
# steps charged. On the levels the discretized decoder has nothing to pay back with:
# once :math:`\sigma_1 \ll \delta` it already names the right level, and a probability
# is at most one. So every fine step charges the model for blurring what it should snap.
# Below, the chain of 1,000 steps: its KL terms with :math:`\sigma_t < \delta`, summed,
# and its decoder, on the levels and on uniformly dequantized images (Gaussian decoder
# density), beside the estimate above.

ch.section("8. the chain's fine steps on the levels and on dequantized images")
chain1000 = chain_for(schedule, 1000)
sigma_chain = np.sqrt(1.0 - chain1000.alpha_bar)  # (1001,) sigma_t of each step
fine = np.flatnonzero(sigma_chain[2:] < delta) + 1  # columns of L_{t-1}, t >= 2
xf = d.test[: ch.pick(6, 60)]
on_levels = vlb(model, xf, 1000, rng=ch.rng(6), K=K)  # discretized decoder
xf_dq = add_bin_noise(xf, K, ch.rng(7))  # the kind of data it was trained on
on_dequantized = vlb(model, xf_dq, 1000, rng=ch.rng(8))
bin_bits = -np.log2(2 * delta)  # log2 q(u) per pixel of the uniform noise
for name, res, units in [("levels", on_levels, 0.0),
                         ("dequantized", on_dequantized, bin_bits)]:
    fine_bits = res.terms[:, fine].sum(axis=1).mean() / (D * LN2)
    decoder_bits = res.terms[:, 0].mean() / (D * LN2) + units
    ch.show(f"{name}: the {fine.size} KL terms with sigma_t < delta (bits/dim)",
            fine_bits)
    ch.show(f"{name}: decoder L_0, in bits of a bin (bits/dim)", decoder_bits)
ch.show("estimate (1/2) log2(delta^2 / sigma_1^2) (bits/dim)",
        0.5 * np.log2(delta**2 / sigma_chain[1] ** 2),
        "the fine steps' charge if x0_hat keeps all the noise")

# %%
# 9. Where the chain ends, and a variance for each pixel
# -------------------------------------------------------
#
# The ways out are to end the chain at the noise level of the bins (the best
# trajectories of ``optimal_steps`` skip the finest steps), to learn where the chain
# ends (VDM learns its :math:`\gamma_{\min}` for this :cite:p:`kingma2021vdm`), or to
# train the chain on the data it scores. The image recipe takes the first: its chain
# (``npdiff.recipes.bound_times``) runs 49 steps uniform in :math:`\sqrt t` from
# :math:`t = 1` down to :math:`t_1 = 0.02`, where :math:`\sigma = 0.077`, a little over
# half a bin, and the decoder takes over there. Uniform in :math:`\sqrt t` crowds the
# steps towards the end, where the dynamic programme of ``optimal_steps`` puts them too.
#
# Ending there leaves the decoder more to say: at :math:`\sigma_1 \approx \delta` a
# pixel's level is no longer plain. One number per step, :math:`\Sigma_t`, cannot say
# it well, for the pixels differ: the blank border is certain long before a stroke is.
# Tweedie's formula gives each pixel its own posterior variance from the network's
# Jacobian (:cite:t:`efron2011tweedie`; ``"trace"`` is its mean over the pixels):
#
# .. math::
#
#    \mathrm{Var}[x_{0,d} \mid x_t] = \frac{\sigma_t^2}{\bar\alpha_t}
#    \Big(1 - \sigma_t\,\frac{\partial\epsilon_{\theta,d}}{\partial x_d}\Big),
#    \qquad
#    \Sigma_{t,d} = \tilde\beta_t + c_{1,t}^2\,\mathrm{Var}[x_{0,d} \mid x_t],
#
# the diagonal Gaussian closest in KL to the true reverse step, Analytic-DPM's argument
# run one pixel at a time :cite:p:`bao2022analytic`. It depends on :math:`x_t` alone, so
# the bound stays a bound; its price is the Jacobian's diagonal, 64 forward-mode
# tangents per image and step. Below, the recipe's chain under three variances on the
# same images and noise.

ch.section("9. the recipe's chain under three variances")
x9 = d.test[: ch.pick(6, 60)]
moments9 = eps_moments(model, d.train[:500], chain_for(schedule, T), ch.rng(9))
by_variance = {}
for v in ("large", "analytic", "diagonal"):
    res9 = vlb(model, x9, rng=ch.rng(10), K=K, times=times, variance=v,
               eps_moments=moments9)
    by_variance[v] = res9.total / (D * LN2)  # (n,) bits/dim
    ch.show(f"{v}: bound (bits/dim)", by_variance[v].mean(),
            f"decoder {res9.decoder.mean() / (D * LN2):.3f}")
gain = by_variance["analytic"] - by_variance["diagonal"]
ch.show("analytic - diagonal, paired (bits/dim)", gain.mean(),
        f"+- {gain.std(ddof=1) / np.sqrt(gain.size):.2g}")

# %%
# 10. What training changes
# -------------------------
#
# Sections 8 and 9 changed how the bound is *scored*. Three changes to how the model is
# *trained* aim at the same figures. **Likelihood weighting** weights each time by the
# bound's own weight: the continuous-time bound's diffusion term is
#
# .. math::
#
#    \mathcal L_\infty = -\frac12\,\mathbb E_{t, \epsilon}\Big[\frac{d\lambda}{dt}\,
#    \lVert\epsilon - \epsilon_\theta(x_t, t)\rVert^2\Big],
#    \qquad \lambda = \log\mathrm{SNR}(t),
#
# :cite:p:`kingma2021vdm` (Eq. 17), so drawing :math:`t` with density proportional
# to :math:`-d\lambda/dt` (uniform in log-SNR) and taking the plain squared error in
# :math:`\epsilon` trains on the bound itself up to a constant
# :cite:p:`song2021scoreflow`. **Training on the levels** gives the chain the data its
# decoder scores, as DDPM did :cite:p:`ho2020ddpm`; the exact ODE still scores
# dequantized images. **Early stopping** holds out 144 training images and keeps the
# weights whose bound on them is lowest, against the train/test gap.
#
# ``benchmarks/digits_levers.py`` trains chapter 9's U-Net with each, on two seeds, and
# scores every run on the same images with the same noise as the baseline's run of its
# seed (the recipe without any of them), so the difference of two runs is read image by
# image, with :math:`b` the bits/dim of one image:
#
# .. math::
#
#    \Delta = \frac1n\sum_{i=1}^n \big(b_i^{\text{lever}} - b_i^{\text{base}}\big),
#    \qquad
#    \mathrm{SE}(\Delta) = \frac{\mathrm{sd}(b^{\text{lever}} - b^{\text{base}})}
#    {\sqrt n}.
#
# A lever helps where :math:`\Delta < -2\,\mathrm{SE}` on both seeds. The figure reads
# the benchmark's results file.

ch.section("10. the training levers, paired with the baseline")
levers_file = REPO_ROOT / "benchmarks" / "results" / "digits_levers.json"
if levers_file.is_file():
    rows = json.loads(levers_file.read_text())["rows"]
    lever_rows = [r for r in rows if r["diff"] is not None]  # the baseline has none
    levers = list(dict.fromkeys(r["variant"] for r in lever_rows))
    panels = [("bound", "test"), ("bound", "train"), ("ode", "test"), ("ode", "train")]
    fig, axes = plt.subplots(1, len(panels), figsize=(13, 3.2), sharey=True)
    for ax, (measure, split) in zip(axes, panels):
        for r in lever_rows:
            if (r["measure"], r["split"]) != (measure, split):
                continue
            y = levers.index(r["variant"]) + (0.12 if r["seed"] else -0.12)
            ax.errorbar(r["diff"], y, xerr=2 * r["diff_se"], fmt="o", ms=4,
                        capsize=3, color=f"C{r['seed']}", label=f"seed {r['seed']}")
        ax.axvline(0.0, color="0.5", lw=0.8)
        name = "exact ODE" if measure == "ode" else "bound"
        ax.set_title(f"{name}, {split}", fontsize=10)
        ax.set_xlabel("lever - baseline (bits/dim)")
    axes[0].set_yticks(range(len(levers)), [v.replace("_", " ") for v in levers])
    axes[0].invert_yaxis()
    by_label = dict(zip(*axes[0].get_legend_handles_labels()[::-1]))  # one per seed
    axes[-1].legend(by_label.values(), by_label.keys(), fontsize=8, loc="lower right")
    fig.suptitle("each lever minus the baseline, paired per image, "
                 "+- 2 standard errors", fontsize=10)
    fig.tight_layout()
    save_figure(ch, fig, "levers")
else:
    print(f"  {levers_file.name} not found: run benchmarks/digits_levers.py")

# %%
# Likelihood weighting moves both likelihoods the right way on both seeds, so the
# U-Net's recipe trains with it. Training on the levels lowers the bound about as much
# but raises the exact ODE of dequantized images far more: a network that has only
# seen the levels puts little density inside the bins, which is exactly where the ODE
# scores. Early stopping keeps the last weights (the held-out bound still falls at the
# end), so it only trains on fewer images. The measurements page "Likelihood levers"
# holds the table.

# %% The measurements page "The bound of the digits' chain" holds these figures for the
# U-Net on the whole test split, beside the chain of every step and the best
# trajectory; "Dequantization and draws" holds them by dequantization and draws.

ch.done()
