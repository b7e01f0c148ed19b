r"""Chapter 4: training the MLP denoiser, with every gradient written by hand.

Run:  python tutorials/04_training_the_mlp.py [--quick] [--out DIR]
Writes: 04_training.png (loss curve against the best possible loss, gradient norm, and the
network's error against the exact denoiser at each t), 04_samples.png (samples against data)
and 04_model.npz (04_model_quick.npz with --quick), the trained model that chapter 5 reuses.
"""

# ---------------------------------------------------------------------------------------------
# 1. The loss
#
# Chapter 3 showed what to learn: eps*(x, t) = E[eps | x_t = x], the minimizer of the squared
# error of a noise prediction. A network learns it by regression on pairs we can make at will
# (Ho et al. 2020, Alg. 1, in continuous time as in Kingma et al. 2021):
#
#     x_0 ~ data,  t ~ U(t_min, t_max),  eps ~ N(0, I),  x_t = sqrt(a) x_0 + sigma eps,
#     L = mean over the batch of |y_hat(x_t, t) - y|^2,
#
# where y is what the network predicts. npdiff's default recipe for 2-D data (npdiff/recipes.py)
# predicts the velocity v = sqrt(a) eps - sigma x_0 (Salimans & Ho 2022) rather than eps.
# With eps-prediction the implied clean point x0_hat = (x_t - sigma eps_hat) / sqrt(a) divides
# the network's error by sqrt(a), which vanishes as t -> 1; v runs from eps at t = 0 to -x_0
# at t = 1, so both readings of the output stay well conditioned at both ends (Salimans &
# Ho 2022, Sec. 4), and the recipe measured better likelihoods with it. The three targets
# are linear in each other given x_t (chapter 2, section 5), and so are the minimizers:
# v* = sqrt(a) eps* - sigma E[x_0 | x_t]. What the network predicts and where its error is
# measured are two choices: the recipe predicts v but weighs the error as the equivalent error
# in eps (npdiff.objective.loss_weight), and draws half of each batch's times uniformly in log-SNR
# rather than in t, which puts more of the batch at small t where the sharp sets are decided
# (Song, Durkan, Murray & Ermon 2021; Kingma et al. 2021). The best possible loss is known
# exactly from the oracle on batches drawn the same way, E[w |v - v*|^2], and the training
# curve is drawn against it: the gap between the two is all the network still has to learn.
#
# 2. The network
#
# A small residual MLP (npdiff/nn/mlp.py) after the popular "tiny-diffusion" design, except that
# the recipe feeds x itself beside the sinusoidal embedding of each coordinate:
#
#     e   = [x | emb(x_1) | emb(x_2) | emb(t)]    sinusoidal embeddings (Vaswani et al. 2017)
#     h_0 = act(e W_0 + b_0)
#     h_k = h_{k-1} + act(h_{k-1} W_k + b_k)      k = 1..L, residual blocks (He et al. 2016)
#     y   = h_L W_out + b_out
#
# with GELU activations. Everything is NumPy and Numba, so there is no autograd: the gradient
# of L with respect to every weight is written out by hand.
#
# 3. Backpropagation by hand
#
# Reverse mode is the chain rule applied from the loss backwards, carrying g = dL/d(thing).
# For one layer z = h W + b, h' = act(z):
#
#     dL/dz = dL/dh' * act'(z)            (elementwise; act'(z) was saved by the forward pass)
#     dL/dW = h^T dL/dz,  dL/db = sum over the batch of dL/dz,  dL/dh = dL/dz W^T.
#
# A residual block h_k = h_{k-1} + act(z_k) adds one more path to h_{k-1}, so its gradient is
# dL/dh_{k-1} = dL/dh_k + dL/dz_k W_k^T: the residual passes the gradient straight through,
# which is why deep residual stacks train. At the top, L = mean (y - target)^2 gives
# dL/dy = 2 (y - target) / (B D). The chapter first writes this out in twenty lines for a
# one-hidden-layer network, then checks the library's the same way: a central finite
# difference (L(w + h e_i) - L(w - h e_i)) / 2h agrees with the hand-written gradient to about
# h^2, in float64. npdiff/nn/mlp.py is that gradient as formulas, each layer's backward
# right below the layer (residual_block, residual_block_backward); the trainer runs the same
# math on the fast path (npdiff/nn/fast/: fused Numba kernels writing into preallocated
# buffers), and the chapter checks that the two agree to rounding.
#
# 4. Forward mode, for the exact divergence
#
# Chapter 5 needs tr(d eps / d x), the divergence of the network's output in its input.
# Reverse mode would need one backward pass per output; instead npdiff pushes a tangent
# x_dot through the same layers alongside the values (forward mode, a Jacobian-vector
# product): z_dot = h_dot W, h_dot' = act'(z) * z_dot (plus the residual), y_dot = h_dot W_out.
# With the D unit vectors as tangents, the diagonal of the Jacobian, and so its trace, is
# exact (no Hutchinson noise). Checked here against finite differences too.
#
# 5. The optimizer
#
# AdamW (Loshchilov & Hutter 2019) with gradient-norm clipping and a cosine learning-rate
# decay, and an exponential moving average (EMA) of the weights, which is the model we keep:
# averaging the last few thousand iterates smooths out the optimizer's noise (Song & Ermon
# 2020 recommend it for score models). The figure's third panel measures the trained
# network against the exact denoiser at each t. Since y* is a conditional mean, the expected
# loss at t splits like Pythagoras: E|y_hat - y|^2 = E|y - y*|^2 + E|y_hat - y*|^2, the floor
# plus the network's excess, so the excess is exactly what is left to learn.
# ---------------------------------------------------------------------------------------------

from __future__ import annotations

import time

from _common import Chapter, np, plt, toy_model_recipe

from npdiff import checkpoint, metrics, parameterization
from npdiff.data import toy2d
from npdiff.nn import MLPConfig, mlp
from npdiff.nn.fast import FastMLP
from npdiff.nn.model import DiffusionMLP
from npdiff.objective import denoising_targets, log_snr_times
from npdiff.sample import ddpm_sample, ode_sample
from npdiff.train import train

ch = Chapter(4, "training the hand-differentiated MLP")

# -- 3a. backpropagation by hand in twenty lines ------------------------------------------------------
ch.section("3a. a one-hidden-layer network, differentiated by hand")


def tiny_loss_and_grad(W1, b1, W2, b2, u, target):
    r"""L = mean (tanh(u W1 + b1) W2 + b2 - target)^2 and its gradient, by the chain rule."""
    z = u @ W1 + b1  # (B, H)
    h = np.tanh(z)  # (B, H)
    y = h @ W2 + b2  # (B, D)
    r = y - target
    loss = np.mean(r**2)
    g_y = 2.0 * r / r.size  # dL/dy
    g_W2, g_b2 = h.T @ g_y, g_y.sum(axis=0)  # dL/dW2 = h^T dL/dy
    g_h = g_y @ W2.T  # dL/dh
    g_z = g_h * (1.0 - h**2)  # tanh' = 1 - tanh^2
    g_W1, g_b1 = u.T @ g_z, g_z.sum(axis=0)
    return loss, [g_W1, g_b1, g_W2, g_b2]


rng = ch.rng(0)
u, target = rng.standard_normal((16, 3)), rng.standard_normal((16, 2))  # inputs (x, t) and targets
tiny = [rng.standard_normal((3, 8)), rng.standard_normal(8), rng.standard_normal((8, 2)), rng.standard_normal(2)]
_, grads = tiny_loss_and_grad(*tiny, u, target)
h = 1e-6
worst = 0.0
for p, g in zip(tiny, grads):
    for i in np.ndindex(p.shape):
        old = p[i]
        p[i] = old + h
        up = tiny_loss_and_grad(*tiny, u, target)[0]
        p[i] = old - h
        down = tiny_loss_and_grad(*tiny, u, target)[0]
        p[i] = old
        worst = max(worst, abs((up - down) / (2 * h) - g[i]) / max(1e-3, abs(g[i])))
ch.show("tiny network: max relative |hand gradient - central difference|", worst, f"all {sum(p.size for p in tiny)} weights")

# -- 3b. the library's MLP, the same check ------------------------------------------------------------
ch.section("3b. npdiff's MLP (embeddings, residual blocks, GELU): the same checks in float64")
cfg_check = MLPConfig(dim=2, width=16, depth=2, emb_dim=8, coords="raw+sinusoidal")
params = cfg_check.init_params(rng, np.float64)  # (n_params,) every weight and bias in one vector
x, t = rng.standard_normal((8, 2)), rng.uniform(0, 1, 8)
target = rng.standard_normal((8, 2))


def loss_at(p):
    return mlp.loss_and_grad(cfg_check, p, x, t, target)[0]


_, grad = mlp.loss_and_grad(cfg_check, params, x, t, target)  # the reference: formulas in plain NumPy
coords = rng.choice(params.size, size=ch.pick(40, 400), replace=False)
h = 1e-6
worst = 0.0
for i in coords:
    e = np.zeros_like(params)
    e[i] = h
    fd = (loss_at(params + e) - loss_at(params - e)) / (2 * h)
    worst = max(worst, abs(fd - grad[i]) / max(1e-4, abs(grad[i])))
ch.show("MLP: max relative |hand gradient - central difference|", worst, f"{coords.size} of {params.size} weights")
direction = rng.standard_normal(params.size)
direction /= np.linalg.norm(direction)
fd_dir = (loss_at(params + h * direction) - loss_at(params - h * direction)) / (2 * h)
ch.show("MLP: relative |grad . d - directional difference|", abs(fd_dir - grad @ direction) / abs(grad @ direction),
        "a random direction through all weights")
fast_grad = np.zeros_like(params)
FastMLP(cfg_check).loss_and_grad(cfg_check.layers(params), cfg_check.layers(fast_grad), x, t, target, np.ones(8))
ch.show("fast path (fused kernels, buffers): max |gradient - reference| / max |reference|",
        np.max(np.abs(fast_grad - grad)) / np.max(np.abs(grad)), "the trainer's step computes the same numbers")


def forward_at(xs):
    return mlp.forward(cfg_check, params, xs, t)[0]


# forward mode: the Jacobian-vector product and the exact trace
v = rng.standard_normal(x.shape)
_, jv = mlp.jvp(cfg_check, params, x, t, v)
fd_jv = (forward_at(x + h * v) - forward_at(x - h * v)) / (2 * h)
ch.show("MLP: max relative |JVP - finite difference|", np.max(np.abs(jv - fd_jv)) / np.max(np.abs(fd_jv)))
_, trace = mlp.divergence(cfg_check, params, x, t)
fd_trace = sum((forward_at(x + h * e)[:, d] - forward_at(x - h * e)[:, d]) / (2 * h) for d, e in enumerate(np.eye(2)))
ch.show("MLP: max relative |exact trace - finite-difference trace|", np.max(np.abs(trace - fd_trace)) / np.max(np.abs(fd_trace)))

# -- training -------------------------------------------------------------------------------------------
ch.section("training on 8gaussians")
data = toy2d.load("8gaussians")
oracle = data.oracle()
config, train_kw, schedule = toy_model_recipe(ch.quick)
print(f"  model: width {config.width}, depth {config.depth}, predicts {config.parameterization}; "
      f"{train_kw['steps']} steps of batch {train_kw['batch_size']}, lr {train_kw['lr']} ({train_kw['lr_schedule']})")
t0 = time.perf_counter()
model, history = train(config, data, rng=ch.rng(1), schedule=schedule, progress=False, **train_kw)
seconds = time.perf_counter() - t0
ckpt = ch.path("model_quick.npz" if ch.quick else "model.npz")
checkpoint.save(ckpt, model, step=train_kw["steps"])
print(f"  saved the EMA model to {ckpt}")
loss = history["loss"]
ch.show("training steps per second", train_kw["steps"] / seconds, f"{seconds:.1f} s; a first run also compiles the Numba kernels")
ch.show("first loss", loss[0])
final = loss[-max(1, loss.size // 20):].mean()  # the raw weights' loss on the last batches
ch.show("final loss (mean of the last 5% of steps)", final)

# the floor: the loss of the exact denoiser on the same kind of batches as training (the recipe's mix of
# times, the recipe's loss space), made with the trainer's own functions
rng = ch.rng(2)
n_floor = ch.pick(20_000, 200_000)
x0 = data.sample(n_floor, rng)
t = log_snr_times(n_floor, rng, schedule, t_min=train_kw["t_min"], log_snr_fraction=train_kw.get("log_snr_fraction", 0.0))
eps = rng.standard_normal(x0.shape)
loss_space = train_kw.get("loss") or config.parameterization
xt, target, weight = denoising_targets(x0, t, eps, schedule, config.parameterization, loss_space)
ab = schedule.alpha_bar(t)[:, None]  # (n, 1)
best = parameterization.from_eps(oracle.eps(xt, t), config.parameterization, xt, ab)
per_point = weight * np.mean((target - best) ** 2, axis=1)  # weight: the network's space -> the loss space
floor, floor_se = per_point.mean(), per_point.std() / np.sqrt(n_floor)
ch.show("best possible loss (the exact denoiser's)", floor, f"+- {floor_se:.2g}")
tail = loss[-max(1, loss.size // 20):]
gap_se = np.hypot(tail.std() / np.sqrt(tail.size), floor_se)  # both sides are Monte Carlo means
ch.show("final loss - best possible", final - floor, f"what is left to learn: >= 0 up to noise, +- {gap_se:.2g}")

# the network against the exact denoiser, time by time, in the space it predicts
t_grid = np.geomspace(1e-3, 1.0, 25)
excess, floor_t = [], []
for tt in t_grid:
    x0_t, eps_t = data.sample(2000, rng), rng.standard_normal((2000, 2))
    a_t = float(schedule.alpha_bar(tt))
    xs = np.sqrt(a_t) * x0_t + np.sqrt(1.0 - a_t) * eps_t
    y_true = parameterization.from_eps(eps_t, config.parameterization, xs, a_t)
    y_star = parameterization.from_eps(oracle.eps(xs, tt), config.parameterization, xs, a_t)
    excess.append(np.mean((model.predict(xs, tt) - y_star) ** 2))  # E|y_hat - y*|^2 / D
    floor_t.append(np.mean((y_true - y_star) ** 2))  # E|y - y*|^2 / D
excess, floor_t = np.array(excess), np.array(floor_t)
# by Pythagoras (y* is the conditional mean) the loss at t is floor(t) + excess(t): the excess is what is left to learn
ch.show("EMA model: largest excess E|y_hat - y*|^2 / D over t", excess.max(), f"at t = {t_grid[np.argmax(excess)]:.3g}")
ch.show("EMA model: excess averaged over t (log grid)", excess.mean())

fig, axes = plt.subplots(1, 3, figsize=(16, 4.2))
ax = axes[0]
steps = np.arange(1, loss.size + 1)
window = max(1, loss.size // 50)
smooth = np.convolve(loss, np.ones(window) / window, mode="valid")
ax.plot(steps, loss, color="C0", alpha=0.25, lw=0.6, label="loss of each batch")
ax.plot(steps[window - 1:], smooth, color="C0", lw=1.5, label=f"moving average ({window} steps)")
ax.axhline(floor, color="C3", ls="--", label=f"exact denoiser: {floor:.3f}")
ax.set(xlabel="step", ylabel=f"{loss_space}-space loss", ylim=(floor - 0.4, max(smooth.max(), floor) + 0.2),
       title="training curve and the best possible loss")
ax.legend(fontsize=8)
ax.grid(alpha=0.3)
ax = axes[1]
ax.plot(steps, history["grad_norm"], color="C1", lw=0.6, alpha=0.7, label="gradient norm (before clipping)")
ax.axhline(train_kw["clip_norm"], color="0.4", ls=":", label=f"clipped at {train_kw['clip_norm']}")
ax2 = ax.twinx()
ax2.plot(steps, history["lr"], color="C2", lw=1.2)
ax2.set_ylabel("learning rate", color="C2")
ax.set(yscale="log", xlabel="step", title="gradient norm and learning rate")
ax.legend(fontsize=8, loc="lower left")
ax = axes[2]
ax.loglog(t_grid, excess, "o-", ms=3, label=r"trained MLP (EMA): $E|\hat y - y^*|^2 / D$")
ax.loglog(t_grid, floor_t, "--", color="C3", label=r"exact denoiser's loss: $E|y - y^*|^2 / D$")
ax.set(xlabel="t", title=f"what is left to learn, by t ({config.parameterization}-space)")
ax.legend(fontsize=8)
ax.grid(alpha=0.3, which="both")
fig.tight_layout()
ch.save(fig, "training")

# -- samples --------------------------------------------------------------------------------------------
ch.section("samples of the trained model")
n_samp = ch.pick(1000, 4000)
fresh, ref = data.sample(n_samp, ch.rng(3)), data.sample(n_samp, ch.rng(4))
runs = [("ODE", "ODE (RK45)", ode_sample(model, n_samp, ch.rng(5))),
        ("DDPM", f"DDPM, {ch.pick(250, 1000)} steps", ddpm_sample(model, n_samp, ch.rng(6), steps=ch.pick(250, 1000)))]
ch.show("energy distance, data vs data", metrics.energy_distance(fresh, ref), "noise floor")
fig, axes = plt.subplots(1, 3, figsize=(12, 4.3))
axes[0].scatter(fresh[:, 0], fresh[:, 1], s=1.5, c="k", alpha=0.5, linewidths=0)
axes[0].set_title("data (8gaussians)")
for ax, (short, label, res), color in zip(axes[1:], runs, ["C0", "C1"]):
    mean, se = metrics.mean_log_density(res.x, data)
    ch.show(f"{short}: mean log p(samples) + H", mean + data.entropy, f"0 for a perfect model, +- {se:.2g}")
    ch.show(f"{short}: energy distance to data", metrics.energy_distance(res.x, ref), f"{res.nfe} evaluations")
    ax.scatter(res.x[:, 0], res.x[:, 1], s=1.5, c=color, alpha=0.5, linewidths=0)
    ax.set_title(f"trained MLP, {label}")
    ax.text(0.03, 0.03, f"mean log p + H = {mean + data.entropy:+.3f}", transform=ax.transAxes, fontsize=8)
for ax in axes:
    ax.set(xlim=(-4.2, 4.2), ylim=(-4.2, 4.2), xticks=[], yticks=[], aspect="equal")
fig.tight_layout()
ch.save(fig, "samples")

# the checkpoint round trip: what chapter 5 will load is the model we just measured
loaded = checkpoint.load(ckpt).model
assert isinstance(loaded, DiffusionMLP)
probe = fresh[:64]
ch.show("max |eps(saved model) - eps(model)|", np.abs(loaded.eps(probe, 0.3) - model.eps(probe, 0.3)).max(), "0")
ch.done()
