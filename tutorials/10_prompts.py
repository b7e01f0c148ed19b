r"""
Chapter 10: from a label to a prompt
====================================

Chapter 8 steered a model with a class label. Text-to-image models steer with a
prompt instead :cite:p:`nichol2022glide,rombach2022ldm`: a sequence of words, encoded by
a small transformer, read by the denoiser through cross-attention. This chapter builds
the smallest such model that still has something to read: every 8x8 digit gets a prompt
such as "bold seven slanted right", written by a rule from its label and two attributes
measured from its pixels, so that whether a sample obeys its prompt can be read back
from the pixels by the same rule. The denoiser is the MLP of chapter 6 with one
cross-attention layer; classifier-free guidance :cite:p:`ho2022cfg` works unchanged,
with the empty prompt as the unconditional model.

Run::

    python tutorials/10_prompts.py [--quick] [--out DIR]

The full run trains the prompt MLP of ``benchmarks/prompt_adherence.py`` (0.25 M
weights) for 12,000 steps (about 5 minutes of CPU on one core), then the autoencoder and
the latent prompt model of the last section (a few minutes more); ``--quick`` trains
tiny ones for 150 to 300 steps (seconds), enough to draw every figure but not to obey
prompts. Sections 7 and 8 read the benchmarks' figures from ``benchmarks/results/``
(``prompt_adherence.json``, ``latent_wide.json``, ``latent_prompts.json``) when the
files exist.
"""

from __future__ import annotations

import json
import time

from _common import REPO_ROOT, Chapter, np, plt, save_figure, tile_images

from npdiff.adherence import prompt_adherence
from npdiff.data import prompts as P
from npdiff.data.images import digits
from npdiff.forward import q_sample
from npdiff.guidance import guided
from npdiff.latent import LatentDiffusion
from npdiff.nn import prompt_mlp as pm
from npdiff.nn import text
from npdiff.nn.autoencoder import AutoencoderConfig
from npdiff.nn.autoencoder_train import train_autoencoder
from npdiff.sample import ddim_sample
from npdiff.schedule import cosine
from npdiff.train import TrainConfig, Trainer

GREY = plt.get_cmap("gray").with_extremes(bad="#6f8fb3")  # white ink, blue gutters
RESULTS = REPO_ROOT / "benchmarks" / "results" / "prompt_adherence.json"

ch = Chapter(10, "from a label to a prompt")

# %%
# 1. The vocabulary and the rule
# ------------------------------
#
# With :math:`w_{rc} = (x_{rc} + 1)/2 \in [0, 1]` the ink of pixel (r, c), a digit's
# **ink** is its mass and its **slant** the shear of its second moments about the
# centroid :math:`(\bar r, \bar c)`:
#
# .. math::
#
#    m = \sum_{rc} w_{rc},\qquad
#    s = -\frac{\mu_{rc}}{\mu_{rr}},\quad
#    \mu_{rc} = \frac{1}{m}\sum_{rc} w_{rc}\,(r - \bar r)(c - \bar c),\quad
#    \mu_{rr} = \frac{1}{m}\sum_{rc} w_{rc}\,(r - \bar r)^2 .
#
# s is the least-squares slope of the column on the row, signed so that a stroke whose
# top leans right has s > 0. Each is cut in three at its **terciles within the class**
# over the train split (thin / regular / bold, slanted left / upright / slanted right):
# the words are relative to the digit. The prompt is
# "[ink] <digit> [slant]", one token per word, 17 words in all; three (class, ink,
# slant) combinations are **held out** of training, to see whether the model composes
# attributes it saw only apart.

ch.section("1. the vocabulary and the rule")
d = digits()
m, s = P.ink_and_slant(d.test)  # (360,) each
ink, slant = P.attribute_levels(d.test, d.test_labels)  # levels 0, 1, 2
prompts = P.digit_prompts(d.test, d.test_labels)  # "[ink] <digit> [slant]"
print("  words:", " ".join(P.DIGIT_VOCABULARY.words[2:]))
print("  held out:", "; ".join(" ".join(map(str, h)) for h in P.HELD_OUT))
ch.show("vocabulary size", P.DIGIT_VOCABULARY.size, "17 words, padding, start")
ch.show("test digits per ink level, thin", np.sum(ink == 0), "about a third")
ch.show("mean slant of the test sevens", s[d.test_labels == 7].mean(), "they lean")

# %%
# Test digits with the prompts the rule wrote for them.

show = np.arange(12)
fig, axes = plt.subplots(2, 6, figsize=(12, 5.6))
for ax, k in zip(axes.ravel(), show):
    ax.imshow(d.test[k].reshape(8, 8), cmap="gray", vmin=-1, vmax=1)
    words = prompts[k].split()
    ax.set_title(
        " ".join(words[:2]) + "\n" + " ".join(words[2:]) + f"\nm = {m[k]:.1f}, "
        f"s = {s[k]:+.2f}",
        fontsize=8,
    )
    ax.set(xticks=[], yticks=[])
fig.tight_layout()
save_figure(ch, fig, "prompts")

# %%
# 2. Tokens and the text encoder
# ------------------------------
#
# A prompt of n words is n ids, padded with 0 to the batch's longest. The encoder puts a
# learned start token in front (so even the empty prompt has one key to attend to),
# adds position embeddings and runs one pre-norm self-attention layer
# :cite:p:`vaswani2017`:
#
# .. math::
#
#    X = E_{\mathrm{tok}}[\mathrm{ids}] + E_{\mathrm{pos}},\qquad
#    c = X + \mathrm{MHA}\big(\mathrm{RMSNorm}(X), \mathrm{RMSNorm}(X)\big),
#
# where a padded key gets the score :math:`-\infty`, so its weight is exactly zero. The
# prompt model of this chapter (trained in section 4) starts here from its initial
# weights: an MLP of chapter 6 whose first hidden state is split into query tokens.

ch.section("2. tokens and the text encoder")
ids = P.tokenize(["bold seven slanted right", "two", ""])  # (3, 4), 0 = padding
print("  ids:", ids.tolist())
config = ch.pick(
    pm.PromptMLPConfig(width=64, depth=1, emb_dim=16, text_width=16, query_tokens=4),
    pm.PromptMLPConfig(width=256, depth=3, emb_dim=32, text_width=32, query_tokens=8),
)
model = pm.PromptMLP(config, cosine(), rng=ch.rng(1))
layers, tw = config.views(model.params)  # the MLP's layers, the named text arrays
enc = {k: tw[f"enc.{k}"] for k in text.ATTENTION_KEYS}
c, mask, _ = text.encode(ids, tw["tok"], tw["pos"], tw["enc.g"], enc, config.text_heads)
ch.show("encoded prompt: tokens", c.shape[1], "start + 4 ids")
ch.show("encoded prompt: channels", c.shape[2])
ch.show("keys the empty prompt leaves", mask[2].sum(), "the start token alone")

# %%
# 3. Cross-attention: queries from the image, keys and values from the words
# --------------------------------------------------------------------------
#
# The first hidden state :math:`h \in \mathbb R^{H}` of the MLP is cut into Q query
# tokens :math:`u_1..u_Q` of H/Q features. Each reads the encoded prompt
# :math:`c_0..c_L` :cite:p:`rombach2022ldm` (per head, d channels):
#
# .. math::
#
#    q = u W_q,\quad k = c W_k,\quad v = c W_v,\qquad
#    P = \mathrm{softmax}\Big(\frac{q k^\top}{\sqrt d}\Big),\qquad
#    u' = u + (P v)\, W_o ,
#
# biases left out of the formula. Row i of P is a distribution over the prompt's tokens:
# what query token i reads. We compute it in NumPy for one head, from the cache of the
# library's forward pass, and compare with the library's P.

ch.section("3. cross-attention")
x = d.test[:3]
_, cache = pm.forward(config, model.params, x, 0.5, ids)
u, cc = cache[4]["u"], cache[4]["c"]  # queries (B, Q, H/Q), prompt (B, L + 1, C)
head, dh = 0, config.text_width // config.cross_heads
cols = slice(head * dh, (head + 1) * dh)
q = (u @ tw["cross.Wq"] + tw["cross.bq"])[..., cols]  # (B, Q, d)
k = (cc @ tw["cross.Wk"] + tw["cross.bk"])[..., cols]  # (B, L + 1, d)
S = np.where(mask[:, None, :], q @ k.transpose(0, 2, 1) / np.sqrt(dh), -np.inf)
P_hand = np.exp(S - S.max(-1, keepdims=True))
P_hand /= P_hand.sum(-1, keepdims=True)  # softmax over the keys
P_lib = cache[4]["P"][:, head]  # (B, Q, L + 1)
ch.show("max |P by hand - P of the library|", np.abs(P_hand - P_lib).max(), "rounding")
ch.show("weight on padding keys", P_lib[1][:, 2:].sum(), "exactly 0 for 'two'")

# %%
# 4. Training with dropped words
# ------------------------------
#
# The loss is chapter 6's, with the prompt as the condition. Each word group (the ink,
# the slant) is dropped with probability 0.3 and the whole prompt with probability 0.1,
# so partial prompts ("seven", "bold seven") and the empty prompt are prompts the model
# knows :cite:p:`ho2022cfg,nichol2022glide`:
#
# .. math::
#
#    L(\theta) = \mathbb E_{x_0, t, \epsilon, \tilde y}
#      \big\|\epsilon - \epsilon_\theta\big(\sqrt{\bar\alpha_t}\,x_0
#      + \sqrt{1 - \bar\alpha_t}\,\epsilon,\ t,\ \tilde y\big)\big\|^2,
#    \qquad \tilde y = \mathrm{drop}(y).
#
# The held-out cells never enter: the sampler of ``training_sampler`` removes them.

ch.section("4. training with dropped words")
source = P.training_sampler(d.train, d.train_labels, p_attribute=0.3, p_empty=0.1)
ch.show("training images", source.images, f"of {d.train.shape[0]}: held-out cells out")
steps, batch = ch.pick((150, 64), (12000, 128))
trainer = Trainer(
    model,
    source,
    TrainConfig(steps=steps, batch_size=batch, lr=2e-3, lr_schedule="cosine",
                ema_decay=ch.pick(0.9, 0.995)),
    rng=ch.rng(2),
)
t0 = time.perf_counter()
loss = trainer.run(progress=False)["loss"]
model = trainer.denoiser()  # the EMA weights
ch.show("training steps", steps, f"batch {batch}, {time.perf_counter() - t0:.0f} s")
ch.show("final loss (mean of the last 10%)", loss[-max(1, steps // 10):].mean())

# %%
# 5. What the model reads: an attention map
# -----------------------------------------
#
# For the prompt "bold seven slanted right", the trained model's cross-attention
# weights :math:`P_{ij}` (query token i, prompt token j), averaged over test sevens
# noised to t = 0.5 and over the heads. Each row sums to one.

ch.section("5. an attention map")
sevens = d.test[d.test_labels == 7][:32]
xt = q_sample(sevens, 0.5, ch.rng(3).normal(size=sevens.shape), model.schedule)
one = P.tokenize("bold seven slanted right")[0]
_, cache = pm.forward(config, model.params, xt, 0.5, one)
A = cache[4]["P"].mean(axis=(0, 1))  # (Q, L + 1): mean over images and heads
ch.show("attention rows sum to", A.sum(axis=1).mean(), "1")
ch.show("largest mean weight", A.max(), f"uniform would be {1 / A.shape[1]:.3f}")

fig, ax = plt.subplots(figsize=(6, 3.6))
im = ax.imshow(A, cmap="magma", vmin=0, aspect="auto")
ax.set_xticks(range(A.shape[1]), ["<start>", "bold", "seven", "slanted", "right"])
ax.set_yticks(range(A.shape[0]), [f"query {i}" for i in range(A.shape[0])])
ax.set_title("cross-attention weights, test sevens at t = 0.5", fontsize=9)
fig.colorbar(im, ax=ax, fraction=0.04)
fig.tight_layout()
save_figure(ch, fig, "attention")

# %%
# 6. Classifier-free guidance with the empty prompt
# -------------------------------------------------
#
# The empty prompt is the unconditional model, so guidance is chapter 8's formula with
# a prompt in place of the label :cite:p:`ho2022cfg,nichol2022glide`:
#
# .. math::
#
#    \tilde\epsilon(x, t) = (1 + w)\,\epsilon_\theta(x, t, y)
#      - w\,\epsilon_\theta(x, t, \varnothing).
#
# ``guided`` takes the prompt as text. Samples by DDIM (eta = 0) with the predicted
# :math:`\hat x_0` clipped to [-1, 1] at every step (static thresholding,
# :cite:p:`saharia2022imagen`), for three seen
# prompts and one held-out prompt, without guidance and at w = 3.

ch.section("6. classifier-free guidance with the empty prompt")
w = 3.0
g = guided(model, "bold seven slanted right", w)
xp, tp = d.test[:4], 0.4
formula = (1 + w) * model.eps(xp, tp, one) - w * model.eps(xp, tp)
ch.show("max |guided eps - formula|", np.abs(g.eps(xp, tp) - formula).max(), "0")

shown = ["thin zero slanted right", "bold three upright", "regular one slanted left",
         "bold two slanted left"]  # the last is held out
n_each, ddim_steps = ch.pick((8, 20), (10, 50))
asked = [p for p in shown for _ in range(n_each)]
noise = ch.rng(4).normal(size=(len(asked), 64))  # the same noise at both weights
drawn = {}
for weight in (0.0, w):
    gm = guided(model, asked, weight)
    drawn[weight] = ddim_sample(gm, None, ch.rng(5), steps=ddim_steps, x_T=noise,
                                threshold="static").x
    a = prompt_adherence(drawn[weight], asked)
    ch.show(f"w = {weight:g}: class read back", a.class_share, "fixed classifier")
    ch.show(f"w = {weight:g}: ink level read back", a.ink_share, "the rule")
    ch.show(f"w = {weight:g}: slant level read back", a.slant_share, "the rule")

# %%
# The samples, one row per prompt (the last held out), without guidance and at w = 3.

fig, axes = plt.subplots(1, 2, figsize=(12, 3.4))
for ax, weight in zip(axes, drawn):
    ax.imshow(tile_images(drawn[weight], n_each), cmap=GREY, vmin=-1, vmax=1)
    ax.set_yticks([4 + 9 * i for i in range(len(shown))], shown, fontsize=8)
    ax.set(xticks=[], title=f"w = {weight:g}")
fig.tight_layout()
save_figure(ch, fig, "guided_samples")

# %%
# 7. Adherence against the guidance weight
# ----------------------------------------
#
# Each sample is read back from its pixels: its class by a fixed digit classifier, its
# ink and slant levels by the rule that wrote the prompts, with the thresholds of the
# class the prompt asked for. The adherence of a set of N samples is
#
# .. math::
#
#    a = \frac 1N \sum_{n=1}^N \mathbf 1\big[\mathrm{read}(x_n) = \mathrm{asked}_n\big],
#
# per attribute, for seen prompts and for the held-out combinations apart.
# ``benchmarks/prompt_adherence.py`` measures it for the full model, 100 samples per
# prompt; without its results file the chapter's own samples stand in.

ch.section("7. adherence against w")
if RESULTS.is_file():
    rows = json.loads(RESULTS.read_text())["rows"]
    source_note = "benchmarks/results/prompt_adherence.json"
else:
    held = np.array([p == shown[-1] for p in asked])
    rows = []
    for weight, x_w in drawn.items():
        for split, sel in (("seen", ~held), ("held out", held)):
            a = prompt_adherence(x_w[sel], [p for p, k in zip(asked, sel) if k])
            rows.append({"set": split, "w": weight, "class": a.class_share,
                         "ink": a.ink_share, "slant": a.slant_share})
    source_note = "this chapter's samples"
print(f"  (from {source_note})")
fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), sharey=True)
for ax, what in zip(axes, ("class", "ink", "slant")):
    for split, style in (("seen", "-o"), ("held out", "--s")):
        pts = [(r["w"], r[what]) for r in rows if r["set"] == split]
        ax.plot(*zip(*pts), style, label=f"{split} prompts")
        for wt, v in pts:
            ch.show(f"{split}, w = {wt:g}: {what}", v)
    ax.set(xlabel="guidance weight w", title=f"{what} read back", ylim=(0, 1.02))
    ax.grid(alpha=0.3)
axes[0].set_ylabel("share of samples")
axes[0].legend(fontsize=8, loc="lower right")
fig.tight_layout()
save_figure(ch, fig, "adherence")

# %%
# 8. Diffusion in a latent space
# ------------------------------
#
# Stable Diffusion :cite:p:`rombach2022ldm` puts the two ideas together: a prompt model,
# run on the latent of an autoencoder instead of on the pixels. The autoencoder is a
# small VAE :cite:p:`kingma2014vae`: an encoder to a Gaussian
# :math:`q(z \mid x) = \mathcal N(\mu(x), \mathrm{diag}\,\sigma^2(x))` in d dimensions
# and a decoder to a categorical :math:`p(x \mid z)` over the 17 levels of each pixel,
# trained on
#
# .. math::
#
#    L(\phi, \psi) = \mathbb E_{x}\Big[
#      \mathbb E_{q(z \mid x)}\big[-\log p(x \mid z)\big]
#      + \beta\,\mathrm{KL}\big(q(z \mid x)\,\|\,\mathcal N(0, I)\big)\Big],
#
# with a small :math:`\beta` (0.25 here): the latent keeps the detail, and the diffusion
# model, not :math:`\mathcal N(0, I)`, models its distribution. The latent is then
# rescaled to unit variance, :math:`u = s z` with
# :math:`s = 1/\mathrm{std}(\mu(x_{\text{train}}))`, so the noise schedule of the
# pixels fits it too. The prompt model of section 4 is trained on u with the same
# recipe, and its guided samples are decoded once at the end.
#
# The latent model has no exact likelihood of x, but it has a bound (LSGM,
# :cite:p:`vahdat2021lsgm`, Eq. 2), with :math:`\log p(z) = \log p_u(s z) + d \log s`
# from the exact probability-flow ODE of the latent:
#
# .. math::
#
#    -\log P(x) \le \mathbb E_{q(z \mid x)}\big[-\log p(x \mid z)
#      + \log q(z \mid x) - \log p(z)\big].

ch.section("8. diffusion in a latent space")
ae_config = ch.pick(AutoencoderConfig(latent_dim=4, width=32, depth=1),
                    AutoencoderConfig())  # the wide autoencoder: width 256 x 2, d = 12
ae, _ = train_autoencoder(ae_config, d.train, rng=ch.rng(6),
                          steps=ch.pick(300, 2000), progress=False)
sf = ae.config.scale_factor
mu_test, _ = ae.encode(d.test)  # (360, d)
ch.show("latent dimension d", ae.latent_dim, "against 64 pixels")
ch.show("scale factor s", sf, "1 / std of the encoded training means")
exact = np.mean(ae.decode(mu_test) == d.test)  # pixels whose likeliest level is right
ch.show("test pixels decoded exactly from the mean", exact)

# %%
# The encoded test digits, projected on the first two principal axes of their means and
# coloured by class: the autoencoder was never told the classes.

centred = mu_test - mu_test.mean(axis=0)
_, _, Vt = np.linalg.svd(centred, full_matrices=False)
pc = centred @ Vt[:2].T  # (360, 2)
fig, ax = plt.subplots(figsize=(6, 4.6))
sc = ax.scatter(pc[:, 0], pc[:, 1], c=d.test_labels, cmap="tab10", s=12)
fig.colorbar(sc, ax=ax, ticks=range(10), label="class")
ax.set(xlabel="first principal axis", ylabel="second principal axis",
       title=f"encoded test digits (d = {ae.latent_dim}), two principal axes")
fig.tight_layout()
save_figure(ch, fig, "latent_space")

# %%
# The prompt model on the scaled latent: the training sampler of section 4, each digit
# replaced by a fresh :math:`u = s z`, :math:`z \sim q(z \mid x)`. Guidance is
# unchanged: ``guided`` of a prompt model of dimension d, and ``LatentDiffusion``
# samples the latent and decodes it.


def latent_source(n, rng):
    xb, ids_b = source(n, rng)  # digits and their (dropped-word) prompts
    mu, log_var = ae.encode(xb)  # (n, d) each
    return sf * (mu + np.exp(0.5 * log_var) * rng.standard_normal(mu.shape)), ids_b


lconfig = ch.pick(
    pm.PromptMLPConfig(dim=ae.latent_dim, width=64, depth=1, emb_dim=16,
                       text_width=16, query_tokens=4),
    pm.PromptMLPConfig(dim=ae.latent_dim, width=128, depth=3, emb_dim=32,
                       text_width=32, query_tokens=8),
)
ltrainer = Trainer(
    pm.PromptMLP(lconfig, cosine(), rng=ch.rng(7)),
    latent_source,
    TrainConfig(steps=steps, batch_size=batch, lr=2e-3, lr_schedule="cosine",
                ema_decay=ch.pick(0.9, 0.995)),
    rng=ch.rng(8),
)
t0 = time.perf_counter()
lloss = ltrainer.run(progress=False)["loss"]
lmodel = ltrainer.denoiser()
ch.show("latent model: weights", lconfig.n_params, f"pixel model {config.n_params}")
ch.show("latent model: training steps", steps, f"{time.perf_counter() - t0:.0f} s")
ch.show("latent model: final loss", lloss[-max(1, steps // 10):].mean())

u = sf * mu_test[:4]  # (4, d) scaled latents
lg = guided(lmodel, "bold seven slanted right", w)
lformula = (1 + w) * lmodel.eps(u, tp, one) - w * lmodel.eps(u, tp)
ch.show("latent: max |guided eps - formula|", np.abs(lg.eps(u, tp) - lformula).max())
latent_drawn = LatentDiffusion(ae, guided(lmodel, asked, w)).sample(
    len(asked), ch.rng(9), sampler="ddim", steps=ddim_steps).x  # (N, 64) decoded
a = prompt_adherence(latent_drawn, asked)
ch.show(f"latent, w = {w:g}: class read back", a.class_share, "fixed classifier")
ch.show(f"latent, w = {w:g}: ink level read back", a.ink_share, "the rule")
ch.show(f"latent, w = {w:g}: slant level read back", a.slant_share, "the rule")
bound = LatentDiffusion(ae, lmodel).bound_bits_per_dim(
    d.test[:ch.pick(8, 60)], ch.rng(10), rtol=ch.pick(1e-3, 1e-5),
    atol=ch.pick(1e-3, 1e-5))
ch.show("latent: LSGM bound, bits/dim", bound.bpd.mean(), "empty prompt, test digits")
ch.show("latent: decoder's share", bound.reconstruction_bpd.mean(), "bits/dim")
ch.show("latent: latent's share", bound.kl_bpd.mean(), "bits/dim")

# %%
# Decoded samples of the latent model at w = 3, one row per prompt of section 6 (the
# last held out), from latents the decoder turns into digits once, at the end.

fig, ax = plt.subplots(figsize=(6, 3.4))
ax.imshow(tile_images(latent_drawn, n_each), cmap=GREY, vmin=-1, vmax=1)
ax.set_yticks([4 + 9 * i for i in range(len(shown))], shown, fontsize=8)
ax.set(xticks=[], title=f"latent prompt model, w = {w:g}, decoded")
fig.tight_layout()
save_figure(ch, fig, "latent_samples")

# %%
# What the latent buys, from ``benchmarks/latent.py`` (the unconditional models: the
# bound on the test digits, the Fréchet distance of 1,000 samples, the FLOPs of a
# sample of 1,000 DDPM steps) and ``benchmarks/latent_prompts.py`` (the prompt models:
# adherence against w, latent beside pixels). Without the results files the chapter's
# own figures stand in.

lat_file = REPO_ROOT / "benchmarks" / "results" / "latent_wide.json"
lp_file = REPO_ROOT / "benchmarks" / "results" / "latent_prompts.json"
if lat_file.is_file():
    lat_rows = json.loads(lat_file.read_text())["rows"]
    bars = {"bits/dim bound (test)": [r["bpd"] for r in lat_rows],
            "Fréchet distance": [r["frechet"] for r in lat_rows],
            "MFLOPs per sample": [r["flops_per_sample"] / 1e6 for r in lat_rows]}
    names, note = ["latent", "pixels"], "benchmarks/results/latent_wide.json"
else:
    bars = {"bits/dim bound (test)": [bound.bpd.mean()]}
    names, note = ["latent"], "this chapter's bound"
print(f"  (from {note})")
for what, vals in bars.items():
    for name, v in zip(names, vals):
        if v is not None:
            ch.show(f"{name}: {what}", v)
fig, axes = plt.subplots(1, len(bars) + 1, figsize=(15, 3.6))
for ax, (what, vals) in zip(axes, bars.items()):
    vals = [np.nan if v is None else v for v in vals]
    ax.bar(names, vals, color=["#4c72b0", "#dd8452"][:len(names)])
    ax.set(title=what)
ax = axes[-1]
if lp_file.is_file():
    lp_rows = [r for r in json.loads(lp_file.read_text())["rows"] if r["set"] == "seen"]
    for key, label, style in (("all", "latent", "-o"),
                              ("pixel_all", "pixels, static thresholding", "--s")):
        pts = [(r["w"], r[key]) for r in lp_rows if r[key] is not None]
        if pts:
            ax.plot(*zip(*pts), style, label=label)
    for r in lp_rows:
        ch.show(f"latent prompts, seen, w = {r['w']:g}: all three", r["all"])
    ax.set(xlabel="guidance weight w", ylim=(0, 1.02),
           title="seen prompts: class, ink and slant all right")
    ax.legend(fontsize=8)
else:
    ax.set_axis_off()
fig.tight_layout()
save_figure(ch, fig, "latent_costs")
ch.done()
