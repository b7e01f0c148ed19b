r"""
Chapter 9: the U-Net, a denoiser that knows pixels have neighbours
===================================================================

The MLP of chapter 6 sees a digit as 64 numbers in a row; shuffle the pixels the same
way in every image and it learns just as well. Every image model the field is known for
denoises instead with a U-Net :cite:p:`ronneberger2015unet,ho2020ddpm,dhariwal2021adm`:
3x3 convolutions, which look at a pixel and its neighbours with the same weights
everywhere; residual blocks at several resolutions; skip connections from the way down
to the way up; the time entering every block; and self-attention :cite:p:`vaswani2017`
at the coarse resolutions. This chapter takes the pieces apart in the order the network
is built from them, each derived and checked, then trains a small U-Net and sets it
beside the MLP.

Run::

    python tutorials/09_unet.py [--quick] [--out DIR]

The full run trains a small U-Net (widths 32 and 64, 0.48 M weights) for 2,000 steps and
draws 1,000 samples of 100 steps (about 25 minutes of CPU on one core: the plain-NumPy
reference network, in float64); ``--quick`` trains a tiny one (0.14 M weights) for 60
steps (under half a minute), enough to draw every figure but not to learn digits. The
comparison with the MLP reads the benchmarks' results files when they exist
(``benchmarks/results/digits.json`` and ``digits_frechet.json``, and
``unet_digits.json`` for a fully trained U-Net), and otherwise shows what the small
model scores.
"""

# %%
# 1. A convolution is one matrix multiply
# ---------------------------------------
#
# A 3x3 convolution with one pixel of zero padding maps C input channels to O output
# channels and keeps the image's size; each output pixel is a weighted sum over the 3x3
# window around it, with the same weights at every position:
#
# .. math::
#
#    y_{o,i,j} = b_o + \sum_{c}\sum_{p,q\in\{0,1,2\}}
#                W_{o,c,p,q}\ \tilde x_{c,\,i+p,\,j+q},
#
# :math:`\tilde x` being x padded by a ring of zeros. **im2col** lays the 9 shifted
# copies of the padded image side by side, one column per output pixel, so that the sum
# becomes one matrix product:
#
# .. math::
#
#    \mathrm{cols}_{(c,p,q),\,(i,j)} = \tilde x_{c,\,i+p,\,j+q}
#    \quad (9C \times HW),\qquad
#    Y = W_{(O \times 9C)}\ \mathrm{cols} + b .
#
# On one 8x8 digit (C = 1) the columns are a 9 x 64 matrix: row (p, q) is the digit
# shifted by (1 - p, 1 - q) pixels. We apply a vertical-edge filter, once as the matrix
# product and once by SciPy's direct 2-D correlation.

from __future__ import annotations

import json
import time
from pathlib import Path

from _common import (
    REPO_ROOT,
    Chapter,
    central_difference,
    max_gradient_error,
    np,
    plt,
    save_figure,
    tile_images,
)
from scipy.signal import correlate2d

from npdiff.data.images import digits
from npdiff.digit_features import classify_digits, digit_frechet, nearest_levels
from npdiff.forward import q_sample
from npdiff.likelihood import image_bpd
from npdiff.nn.optim import AdamW
from npdiff.nn.unet import DiffusionUNet, UNetConfig, network
from npdiff.nn.unet.conv import SHIFTS, col2im, conv3x3, conv3x3_backward, im2col
from npdiff.nn.unet.resample import upsample
from npdiff.nn.unet.time_embedding import time_embedding
from npdiff.sample import ddpm_sample
from npdiff.schedule import vp_linear

GREY = plt.get_cmap("gray").with_extremes(bad="#6f8fb3")  # white ink, blue gutters
RESULTS = REPO_ROOT / "benchmarks" / "results"

ch = Chapter(9, "the U-Net")
ch.section("1. a convolution as one matrix multiply (im2col)")
d = digits()
digit = d.test[0].reshape(1, 1, 8, 8)  # (B, C, H, W) = (1, 1, 8, 8)
sobel = np.array(
    [[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]]
)  # responds to vertical strokes
cols = im2col(digit)  # (9C, BHW) = (9, 64)
y = (sobel.reshape(1, 9) @ cols).reshape(8, 8)  # Y = W cols, one row of weights
direct = correlate2d(
    digit[0, 0], sobel, mode="same"
)  # the sum over the window, by SciPy
ch.show("im2col shape, rows", cols.shape[0], "9 C: one row per (channel, p, q)")
ch.show("im2col shape, columns", cols.shape[1], "B H W: one column per output pixel")
ch.show(
    "max |W cols - direct correlation|", np.abs(y - direct).max(), "0 up to rounding"
)

# %%
# The nine rows of the columns, each reshaped back to 8x8: the digit seen through each
# of the nine offsets of the window. The filter's output is the weighted sum of these
# nine images.

fig = plt.figure(figsize=(13, 4.6))
grid = fig.add_gridspec(3, 6, width_ratios=[1, 1, 1, 0.25, 2.6, 1.3])
for k, (p, q) in enumerate(SHIFTS):
    ax = fig.add_subplot(grid[p, q])
    ax.imshow(
        cols[k].reshape(8, 8), cmap="gray", vmin=-1, vmax=1, interpolation="nearest"
    )
    ax.set(
        xticks=[],
        yticks=[],
        title=f"(p, q) = ({p}, {q}), w = {sobel[p, q]:g}",
    )
    ax.title.set_fontsize(7)
ax = fig.add_subplot(grid[:, 4])
ax.imshow(cols, cmap="gray", vmin=-1, vmax=1, aspect=3.0, interpolation="nearest")
ax.set(
    xlabel="output pixel (i, j), row by row",
    ylabel="row (p, q)",
    yticks=range(9),
    title="im2col: the 9 x 64 matrix cols",
)
ax = fig.add_subplot(grid[:, 5])
ax.imshow(
    y,
    cmap="RdBu_r",
    vmin=-np.abs(y).max(),
    vmax=np.abs(y).max(),
    interpolation="nearest",
)
ax.set(xticks=[], yticks=[], title="W cols: vertical edges")
fig.suptitle(
    "one 8x8 test digit through the nine offsets of a 3x3 window (left), "
    "as one matrix (middle), "
    "filtered by one matrix product (right)",
    fontsize=9,
)
fig.tight_layout()
save_figure(ch, fig, "im2col")

# %%
# 2. The backward of one convolution
# ----------------------------------
#
# Training needs the gradient of a loss L with respect to W, b and the input x, given
# :math:`\bar Y = \partial L/\partial Y` from the layer above. Since :math:`Y =
# W\,\mathrm{cols} + b` is a matrix product, two of the three are the familiar ones of a
# dense layer:
#
# .. math::
#
#    \bar W = \bar Y\,\mathrm{cols}^\top,\qquad
#    \bar b_o = \sum_{(i,j)} \bar Y_{o,(i,j)},\qquad
#    \overline{\mathrm{cols}} = W^\top \bar Y .
#
# The last step goes from the columns back to the image. im2col is linear,
# :math:`\mathrm{cols} = A x` for a 0/1 matrix A that copies each pixel into up to nine
# places, so :math:`\bar x = A^\top \overline{\mathrm{cols}}`: each copy's gradient is
# added back where it was read from. That is **col2im**, written as nine whole-array
# additions of shifted slices (never a scatter with ``np.add.at``). Its defining
# property is the adjoint identity :math:`\langle A x, C\rangle = \langle x, A^\top
# C\rangle`, which we check first; then all three gradients against central differences
# of :math:`L = \sum G \odot Y` for a random G, in float64.

ch.section("2. the backward of one convolution, checked")
rng = ch.rng(1)
x = rng.normal(size=(2, 3, 8, 8))  # (B, C, H, W): two images, three channels
W = rng.normal(size=(4, 3, 3, 3))  # (O, C, 3, 3)
b = rng.normal(size=4)
M = rng.normal(size=(27, 128))  # any (9C, BHW) matrix
ch.show(
    "<im2col(x), C> - <x, col2im(C)>",
    np.sum(im2col(x) * M) - np.sum(x * col2im(M, x.shape)),
    "0 up to rounding: col2im is im2col's transpose",
)

G = rng.normal(size=(2, 4, 8, 8))  # dL/dY of L = sum(G * Y)
Y, cols_x = conv3x3(x, W, b)
dW, db, dx = conv3x3_backward(G, cols_x, W, x.shape)


def loss(weights, inputs=x):
    return float(np.sum(G * conv3x3(inputs, *weights)[0]))  # L = sum G * Y


err_w = max_gradient_error(loss, [W, b], [dW, db], h=1e-5, floor=1e-3)
direction = rng.normal(size=x.shape)
fd_x = central_difference(lambda z: loss([W, b], z), x, direction, h=1e-5)
ch.show(
    "max relative error of dW and db, every weight",
    err_w,
    "central differences, h = 1e-5",
)
ch.show(
    "relative error of dx along a random direction",
    abs(fd_x - np.sum(dx * direction)) / abs(fd_x),
)

# %%
# 3. The network, and a small one trained
# ---------------------------------------
#
# The U-Net of ``npdiff.nn.unet`` strings these layers together (``UNetConfig.plan``): a
# 3x3 convolution into ``widths[0]`` channels; on the way down, residual blocks at 8x8,
# 4x4 and 2x2, separated by 2x2 average pooling and followed by self-attention at the
# coarse resolutions, each block's output saved; a middle; on the way up the same
# resolutions in reverse, each block reading the saved features concatenated to its
# input (the skip connections), separated by nearest up-sampling; GroupNorm, SiLU and a
# last 3x3 convolution back to one channel. Every piece has its forward, backward and
# forward-mode tangent side by side and is tested against central differences.
#
# The default for the digits has widths (32, 64, 64) and 1.38 M weights; here we train a
# smaller one, with the loss of chapter 4 (predict the noise of :math:`x_t =
# \sqrt{\bar\alpha}\,x_0 + \sqrt{1-\bar\alpha}\,\epsilon`), its gradient by one forward
# and one backward pass, and AdamW with an average of the weights. The plain-NumPy
# reference network runs here, in float64.

ch.section("3. the network, and a small one trained")
config = UNetConfig(
    widths=(16, 32),
    num_res_blocks=1,
    attention_resolutions=(4,),
    heads=2,
    groups=4,
    emb_dim=32,
    time_dim=64,
)
if not ch.quick:
    config = UNetConfig(
        widths=(32, 64),
        num_res_blocks=1,
        attention_resolutions=(4,),
        heads=4,
        groups=8,
        emb_dim=32,
        time_dim=64,
    )
print("  the plan: " + ", ".join(f"{kind} {name}" for kind, name, *_ in config.plan))
ch.show("parameters of this U-Net", config.n_params)
ch.show(
    "parameters of the default U-Net",
    UNetConfig().n_params,
    "widths (32, 64, 64), two blocks per level",
)

schedule = vp_linear()
rng = ch.rng(2)
params = config.init_params(
    rng, dtype=np.float64
)  # (n_params,) flat; every residual branch starts at 0
opt = AdamW(params, weight_decay=0.0, ema_decay=0.999)
steps, batch = ch.pick((60, 32), (2000, 64))
losses = []
t0 = time.perf_counter()
for step in range(steps):
    x0 = d.sample_dequantized(
        batch, rng
    )  # (batch, 64): fresh uniform noise inside each level's bin
    t = rng.uniform(1e-5, 1.0, batch)  # (batch,)
    eps = rng.normal(size=x0.shape)
    loss_value, grad = network.loss_and_grad(
        config, params, q_sample(x0, t, eps, schedule), t, eps
    )
    opt.update(
        params, grad, lr=2e-3 * 0.5 * (1 + np.cos(np.pi * step / steps))
    )  # cosine decay
    losses.append(loss_value)
seconds = time.perf_counter() - t0
model = DiffusionUNet(config, schedule, opt.ema)  # the averaged weights
ch.show("training steps", steps, f"batch {batch}")
ch.show("training seconds", seconds, f"{steps / seconds:.1f} steps/s")
ch.show("first loss", losses[0])
ch.show("final loss (mean of the last 10%)", np.mean(losses[-max(1, steps // 10) :]))

# %%
# 4. What a pixel's output sees
# -----------------------------
#
# One 3x3 convolution lets an output pixel see its 3x3 neighbourhood; a stack of k of
# them at full resolution, a :math:`(2k+1)\times(2k+1)` square. After a 2x2 pooling each
# pixel stands for a 2x2 block, so every convolution there widens the field by two input
# pixels on each side instead of one. The field of a unit is where the derivative of
# that unit with respect to the input can be non-zero; with all weights positive nothing
# cancels, so we get it exactly by running the transposed layers backwards from the
# unit: a 3x3 convolution with a kernel of ones for each convolution, up-sampling for
# each pooling. For the top-left unit of the default U-Net, stage by stage: on images as
# small as 8x8 the field covers the whole image by the first block after the first
# pooling.

ch.section("4. the receptive field through the levels")
ones = np.ones((1, 1, 3, 3))


def receptive_field(stages: str, size: int = 8) -> np.ndarray:
    r"""The input pixels (8, 8) the top-left unit sees after ``stages``.

    ``stages`` reads "c" for a 3x3 convolution and "d" for a 2x2 pooling.
    """
    scale = 2 ** stages.count("d")
    g = np.zeros((1, 1, size // scale, size // scale))
    g[0, 0, 0, 0] = 1.0  # the unit
    for op in reversed(
        stages
    ):  # the transposed layers, from the unit back to the input
        g = conv3x3(g, ones, np.zeros(1))[0] if op == "c" else upsample(g)
    return g[0, 0] > 0


panels = [
    ("conv_in", "c"),
    ("+ level 0, block 1", "ccc"),
    ("+ level 0, block 2", "ccccc"),
    ("+ pool, level 1 block 1", "cccccdcc"),
]
fields = [receptive_field(stages) for _, stages in panels]
for (label, stages), field in zip(panels, fields):
    ch.show(
        f"pixels seen after {label} ({stages.count('c')} convolutions)", field.sum()
    )

# %%
# The fields, and, on the right, what the trained network's output at one pixel actually
# depends on: :math:`|\partial \hat\epsilon_{(3,4)} / \partial x|`, one vector-Jacobian
# product per image (``eps_vjp``, the backward pass with the cotangent :math:`u =
# e_{(3,4)}`), averaged over noised test digits at a low and a high noise level.
# Attention, at 4x4, already lets every unit see the whole image.

pixel = 3 * 8 + 4
u = np.zeros((16, 64))
u[:, pixel] = 1.0
maps = {}
for t_probe in (0.05, 0.6):
    xt = q_sample(d.test[:16], t_probe, ch.rng(3).normal(size=(16, 64)), schedule)
    maps[t_probe] = (
        np.abs(model.eps_vjp(xt, t_probe, u)[1]).mean(axis=0).reshape(8, 8)
    )  # (8, 8)
    near = maps[t_probe][2:5, 3:6].sum() / maps[t_probe].sum()
    ch.show(
        f"t = {t_probe}: share of the sensitivity in the 3x3 around the pixel", near
    )

fig, axes = plt.subplots(1, len(panels) + 2, figsize=(15, 2.9))
for ax, (label, stages), field in zip(axes, panels, fields):
    ax.imshow(field, cmap="Blues", vmin=0, vmax=1.4, interpolation="nearest")
    ax.plot(0, 0, "s", color="C3", ms=6)
    ax.set(
        xticks=[],
        yticks=[],
        title=f"{label}\n{stages.count('c')} convs: {field.sum()} pixels",
    )
    ax.title.set_fontsize(8)
for ax, (t_probe, m) in zip(axes[len(panels) :], maps.items()):
    ax.imshow(m, cmap="magma", interpolation="nearest")
    ax.plot(4, 3, "s", color="C2", ms=6, mfc="none", mew=1.5)
    ax.set(
        xticks=[], yticks=[], title=f"trained network, t = {t_probe}\n|d eps(3,4) / dx|"
    )
    ax.title.set_fontsize(8)
fig.tight_layout()
save_figure(ch, fig, "receptive_field")

# %%
# 5. Where the time enters
# ------------------------
#
# The time t becomes a sinusoidal embedding, then a small MLP, then :math:`e =
# \mathrm{SiLU}(\cdot)`, shared by every block (plus a row of a label table for a
# conditional network). Each residual block reads it as a per-channel **scale and
# shift** of its second normalization (ADM's adaptive group normalization,
# :cite:t:`dhariwal2021adm`, Sec. 3):
#
# .. math::
#
#    h_1 = \mathrm{conv}_1(\mathrm{SiLU}(\mathrm{GN}_1(x))),\quad
#    [\,s \mid t\,] = e\,W_e + b_e,
#
# .. math::
#
#    m = \mathrm{GN}_2(h_1)\odot(1 + s) + t,\quad
#    y = \mathrm{skip}(x) + \mathrm{conv}_2(\mathrm{SiLU}(m)).
#
# The same weights thus compute a different function at every noise level: at high noise
# a block can mute a channel, at low noise amplify it. The scale :math:`1 + s` of the
# first block's channels, as a function of t, in the trained network:

ch.section("5. the time embedding as scale and shift")
P = config.views(model.params)  # named views of the flat weights
t_grid = np.linspace(1e-3, 1.0, 200)
e, _ = time_embedding(t_grid, P, config.emb_dim, config.time_scale)  # (200, time_dim)
block = next(name for kind, name, *_ in config.plan if kind == "res")
scale_shift = e @ P[f"{block}.emb.W"] + P[f"{block}.emb.b"]  # (200, 2 O)
O = scale_shift.shape[1] // 2
scale, shift = 1.0 + scale_shift[:, :O], scale_shift[:, O:]
ch.show(f"{block}: channels", O)
ch.show(
    f"{block}: largest change of a channel's scale over t", np.ptp(scale, axis=0).max()
)

fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
for ax, values, name in [(axes[0], scale, "scale 1 + s"), (axes[1], shift, "shift t")]:
    ax.plot(t_grid, values, lw=0.8)
    ax.set(xlabel="time t", title=f"{block}: {name} of each of its {O} channels")
    ax.grid(alpha=0.3)
fig.tight_layout()
save_figure(ch, fig, "scale_shift")

# %%
# 6. Attention over pixels
# ------------------------
#
# At 4x4 each of the N = 16 positions is a token with C features. Self-attention
# :cite:p:`vaswani2017` lets every position read every other, weighted by how well its
# query matches their keys:
#
# .. math::
#
#    A = \mathrm{softmax}\!\Big(\frac{Q^\top K}{\sqrt{d}}\Big)\ \ (N \times N),\qquad
#    y = x + W_o\,(V A^\top),
#
# per head, with :math:`Q, K, V` 1x1 convolutions of the normalized input. Row n of A is
# a probability distribution over the 16 positions: the attention map of query n. Its
# backward goes through the softmax's Jacobian, :math:`\bar S = A \odot (\bar A - \sum_k
# A_k \bar A_k)`. The maps of the trained network's first attention layer, head 0, for
# four queries, on a noised test digit:

ch.section("6. an attention map")
t_att = 0.3
x_att = q_sample(d.test[:1], t_att, ch.rng(4).normal(size=(1, 64)), schedule)
_, cache = network.forward(config, model.params, x_att, t_att)
first = next(k for k, (kind, *_) in enumerate(config.plan) if kind == "attn")
A = cache["steps"][first]["P"][
    0, 0
]  # (N, N) = (16, 16): head 0, row = query, column = key
ch.show(
    "attention rows sum to",
    A.sum(axis=1).mean(),
    "1: a distribution over the 16 positions",
)
ch.show("largest weight of one key", A.max(), f"uniform would be {1 / 16:.4f}")

queries = [(0, 0), (1, 1), (2, 2), (1, 3)]
fig, axes = plt.subplots(1, len(queries) + 1, figsize=(12, 2.8))
axes[0].imshow(x_att.reshape(8, 8), cmap="gray", interpolation="nearest")
axes[0].set(xticks=[], yticks=[], title=f"x_t of a test digit, t = {t_att}")
for ax, (i, j) in zip(axes[1:], queries):
    weights = A[4 * i + j].reshape(4, 4)
    ax.imshow(
        d.test[0].reshape(8, 8),
        cmap="gray",
        interpolation="nearest",
        extent=(-0.5, 3.5, 3.5, -0.5),
    )
    ax.imshow(
        weights, cmap="magma", alpha=0.7, interpolation="nearest", vmin=0, vmax=A.max()
    )
    ax.plot(j, i, "s", color="C2", ms=9, mfc="none", mew=2)
    ax.set(xticks=[], yticks=[], title=f"query ({i}, {j}) at 4x4")
for ax in axes:
    ax.title.set_fontsize(8)
fig.tight_layout()
save_figure(ch, fig, "attention")

# %%
# 7. Samples and bits/dim, beside the MLP
# ---------------------------------------
#
# Samples by the ancestral sampler, and the two measures of the book: bits/dim of the
# test digits (chapter 6; here the variational bound with T = 50 on a few test images,
# cheap enough for a chapter) and the Fréchet distance of 1,000 samples to the 360 test
# digits in the features of a fixed digit classifier (``npdiff.digit_features``, the FID
# of Heusel et al. 2017 for 8x8 digits), beside its floor, the distance of 1,000 real
# digits. The benchmarks measure both models at full length; their figures are read from
# the results files when they exist.

ch.section("7. samples and bits/dim beside the MLP")
n_samples, sample_steps = ch.pick((100, 50), (1000, 100))
t0 = time.perf_counter()
samples = nearest_levels(
    ddpm_sample(model, n_samples, ch.rng(5), steps=sample_steps).x
)  # (n, 64) on the levels
fd, floor = digit_frechet(samples, quantize=False)
counts = np.bincount(classify_digits(samples, quantize=False), minlength=10)
n_bpd = ch.pick(12, 100)
bound = image_bpd(model, d.test[:n_bpd], d.K, ch.rng(6), method="vlb", T=50)
ch.show(
    "this U-Net: Fréchet distance",
    fd,
    f"{n_samples} samples of {sample_steps} steps; floor {floor:.3f} at 1,000",
)
ch.show(
    "this U-Net: VLB, T = 50 (bits/dim)",
    bound.summary()["bpd_vlb"],
    f"{n_bpd} test images",
)
ch.show(
    "this U-Net: most frequent class among the samples",
    counts.argmax(),
    f"{counts.max()} of {n_samples}",
)
print(f"  ({time.perf_counter() - t0:.1f} s)")


def results(name: str) -> dict | None:
    path = Path(RESULTS) / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


table = {}  # model -> {measure: value}
mlp = results("digits")
if mlp:
    for row in mlp["rows"]:
        table.setdefault("MLP (images recipe)", {})[f"{row['split']}: exact ODE"] = row[
            "bpd_ode"
        ]
        table["MLP (images recipe)"][f"{row['split']}: VLB"] = row["bpd_vlb"]
unet = results("unet_digits")
if unet:
    for row in unet["rows"]:
        table.setdefault("U-Net", {})[f"{row['split']}: exact ODE"] = row["bpd_ode"]
        table["U-Net"][f"{row['split']}: VLB"] = row["bpd_vlb"]
quality = results("digits_frechet")
if quality:
    for row in quality["rows"]:
        if row["labels"] == "none":
            table.setdefault(row["model"], {})["Fréchet distance"] = row["frechet"]
            table[row["model"]]["floor"] = row["floor"]
table[f"this chapter's U-Net ({steps} steps)"] = {
    "test: VLB": bound.summary()["bpd_vlb"],
    "Fréchet distance": fd,
    "floor": floor,
}
measures = [
    "test: exact ODE",
    "train: exact ODE",
    "test: VLB",
    "Fréchet distance",
    "floor",
]
print("  | model | " + " | ".join(measures) + " |")
for name, row in table.items():
    print(
        f"  | {name} | "
        + " | ".join(
            f"{row[m]:.3f}" if row.get(m) is not None else "-" for m in measures
        )
        + " |"
    )

# %%
# The samples, beside real test digits, and the training curve.

fig, axes = plt.subplots(1, 3, figsize=(14, 4.4), width_ratios=[1, 1, 1.1])
for ax, imgs, title in [
    (axes[0], samples[:60], f"U-Net samples ({sample_steps} steps)"),
    (axes[1], d.test[:60], "real test digits"),
]:
    ax.imshow(
        np.ma.masked_invalid(tile_images(imgs, 10)),
        cmap=GREY,
        vmin=-1,
        vmax=1,
        interpolation="nearest",
    )
    ax.set(xticks=[], yticks=[], title=title)
axes[2].plot(np.arange(1, steps + 1), losses, lw=0.6, color="C0")
axes[2].set(xlabel="step", ylabel="eps-loss", yscale="log", title="training curve")
axes[2].grid(alpha=0.3, which="both")
fig.tight_layout()
save_figure(ch, fig, "samples")
ch.done()
