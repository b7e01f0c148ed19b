r"""
Chapter 4: training the MLP denoiser, with every gradient written by hand
=========================================================================

Chapter 3 showed what to learn: the conditional mean of the noise. This chapter learns
it with a small residual network in NumPy and Numba, with no autograd: it derives
backpropagation by hand, checks every gradient against finite differences, trains the
network on the eight-Gaussian toy set, measures how far it is from the exact denoiser at
each noise level, and samples from it. It saves the trained model, which chapter 5
reuses. From the repository root (``--quick`` takes seconds; figures and the model go to
``--out``):

Run::

    python tutorials/04_training_the_mlp.py [--quick] [--out DIR]
"""

from time import perf_counter

from _common import (
    Chapter,
    central_difference,
    max_gradient_error,
    np,
    plt,
    relative_max_error,
    scatter_panel,
    toy_model_recipe,
)

from npdiff import checkpoint, metrics, parameterization
from npdiff.data import toy2d
from npdiff.nn import MLPConfig, mlp
from npdiff.nn.fast import FastMLP
from npdiff.objective import denoising_targets, log_snr_times
from npdiff.sample import ddpm_sample, ode_sample
from npdiff.train import train

ch = Chapter(4, "training the hand-differentiated MLP")

# %%
# 1. Backpropagation by hand
# --------------------------
#
# Reverse mode is the chain rule applied from the loss backwards, carrying
# :math:`g = \partial L / \partial(\cdot)`. Take a network with one hidden layer, inputs
# :math:`u` (B, 3) and targets (B, D),
#
# .. math::
#
#    z = u W_1 + b_1, \qquad h = \tanh z, \qquad y = h W_2 + b_2, \qquad
#    L = \frac{1}{BD} \sum (y - \text{target})^2 .
#
# Going backwards, each line uses only what the forward pass saved:
#
# .. math::
#
#    \frac{\partial L}{\partial y} = \frac{2 (y - \text{target})}{BD}, \qquad
#    \frac{\partial L}{\partial W_2} = h^\top \frac{\partial L}{\partial y}, \qquad
#    \frac{\partial L}{\partial b_2}
#    = \sum_{\text{batch}} \frac{\partial L}{\partial y},
#    \qquad
#    \frac{\partial L}{\partial h} = \frac{\partial L}{\partial y} W_2^\top,
#
# .. math::
#
#    \frac{\partial L}{\partial z} = \frac{\partial L}{\partial h} \odot (1 - h^2),
#    \qquad
#    \frac{\partial L}{\partial W_1} = u^\top \frac{\partial L}{\partial z}, \qquad
#    \frac{\partial L}{\partial b_1}
#    = \sum_{\text{batch}} \frac{\partial L}{\partial z},
#
# since :math:`\tanh' = 1 - \tanh^2`. A central finite difference checks each of the 50
# weights :math:`w_i`, in float64:
#
# .. math::
#
#    \frac{L(w + h e_i) - L(w - h e_i)}{2h} = \frac{\partial L}{\partial w_i} + O(h^2).

ch.section("1. a one-hidden-layer network, differentiated by hand")


def tiny_loss_and_grad(W1, b1, W2, b2, u, target):
    r"""L = mean (tanh(u W1 + b1) W2 + b2 - target)^2 and its gradient (chain rule)."""
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
u, target = rng.standard_normal((16, 3)), rng.standard_normal((16, 2))  # inputs (x, t)
tiny = [rng.standard_normal((3, 8)), rng.standard_normal(8),  # W1, b1
        rng.standard_normal((8, 2)), rng.standard_normal(2)]  # W2, b2
_, grads = tiny_loss_and_grad(*tiny, u, target)
worst = max_gradient_error(lambda w: tiny_loss_and_grad(*w, u, target)[0], tiny, grads,
                           h=1e-6, floor=1e-3)
ch.show("tiny network: max relative |hand gradient - central difference|", worst,
        f"all {sum(p.size for p in tiny)} weights")

# %%
# 2. npdiff's network
# -------------------
#
# A small residual MLP (``npdiff/nn/mlp.py``) after the popular "tiny-diffusion" design,
# except that the recipe feeds :math:`x` itself beside the sinusoidal embeddings
# :cite:p:`vaswani2017` of each coordinate and of the time:
#
# .. math::
#
#    e = \big[x \mid \mathrm{emb}(x_1) \mid \mathrm{emb}(x_2) \mid \mathrm{emb}(t)\big],
#    \qquad h_0 = \mathrm{act}(e W_0 + b_0),
#
# .. math::
#
#    h_k = h_{k-1} + \mathrm{act}(h_{k-1} W_k + b_k), \quad k = 1, \dots, L, \qquad
#    y = h_L W_{\rm out} + b_{\rm out},
#
# with GELU activations and residual blocks :cite:p:`he2016resnet`. A residual block
# adds one more path to :math:`h_{k-1}`, so with :math:`z_k = h_{k-1} W_k + b_k` its
# gradient is
#
# .. math::
#
#    \frac{\partial L}{\partial h_{k-1}} = \frac{\partial L}{\partial h_k}
#    + \Big(\frac{\partial L}{\partial h_k} \odot \mathrm{act}'(z_k)\Big) W_k^\top :
#
# the residual passes the gradient straight through, which is why deep residual stacks
# train. ``npdiff/nn/mlp.py`` is that gradient as formulas, each layer's backward right
# below the layer; the trainer runs the same math on the fast path (``npdiff/nn/fast/``:
# fused Numba kernels writing into preallocated buffers). The code checks the reference
# gradient against central differences, coordinate by coordinate and along a random
# direction through all the weights, and the fast path against the reference.

ch.section("2. npdiff's MLP (embeddings, residual blocks, GELU): the same checks")
cfg_check = MLPConfig(dim=2, width=16, depth=2, emb_dim=8, coords="raw+sinusoidal")
params = cfg_check.init_params(rng, np.float64)  # (n_params,) all weights, one vector
x, t = rng.standard_normal((8, 2)), rng.uniform(0, 1, 8)
target = rng.standard_normal((8, 2))


def loss_at(p):
    return mlp.loss_and_grad(cfg_check, p, x, t, target)[0]


_, grad = mlp.loss_and_grad(cfg_check, params, x, t, target)  # the reference, in NumPy
coords = rng.choice(params.size, size=ch.pick(40, 400), replace=False)
worst = max_gradient_error(lambda w: loss_at(w[0]), [params], [grad], h=1e-6,
                           floor=1e-4, coords=coords)
ch.show("MLP: max relative |hand gradient - central difference|", worst,
        f"{coords.size} of {params.size} weights")
d = rng.standard_normal(params.size)
d /= np.linalg.norm(d)
fd_d = central_difference(loss_at, params, d, 1e-6)
ch.show("MLP: relative |grad . d - directional difference|",
        abs(fd_d - grad @ d) / abs(grad @ d), "a random direction through all weights")
fast_grad = np.zeros_like(params)
FastMLP(cfg_check).loss_and_grad(cfg_check.layers(params), cfg_check.layers(fast_grad),
                                 x, t, target, np.ones(8))
ch.show("fast path (fused kernels, buffers): "
        "max |gradient - reference| / max |reference|",
        relative_max_error(fast_grad, grad),
        "the trainer's step computes the same numbers")

# %%
# 3. Forward mode, for the exact divergence
# -----------------------------------------
#
# Chapter 5 needs the divergence
# :math:`\operatorname{tr}(\partial \epsilon / \partial x)` of the network's output in
# its input. Reverse mode would need one backward pass per output; instead npdiff pushes
# a tangent :math:`\dot x` through the same layers beside the values (forward mode, a
# Jacobian-vector product):
#
# .. math::
#
#    \dot z_k = \dot h_{k-1} W_k, \qquad
#    \dot h_k = \dot h_{k-1} + \mathrm{act}'(z_k) \odot \dot z_k, \qquad
#    \dot y = \dot h_L W_{\rm out} .
#
# With the :math:`D` unit vectors as tangents,
# :math:`\operatorname{tr}(J) = \sum_d e_d^\top J e_d` is exact (no Hutchinson noise).
# The code checks both against central differences.

ch.section("3. forward mode: the Jacobian-vector product and the exact trace")


def forward_at(xs):
    return mlp.forward(cfg_check, params, xs, t)[0]


v = rng.standard_normal(x.shape)  # (8, 2) a tangent
_, jv = mlp.jvp(cfg_check, params, x, t, v)  # J v, forward mode
ch.show("MLP: max relative |JVP - finite difference|",
        relative_max_error(jv, central_difference(forward_at, x, v, 1e-6)))
_, trace = mlp.divergence(cfg_check, params, x, t)  # sum_d e_d^T J e_d
fd_trace = sum(central_difference(forward_at, x, e, 1e-6)[:, d]
               for d, e in enumerate(np.eye(2)))
ch.show("MLP: max relative |exact trace - finite-difference trace|",
        relative_max_error(trace, fd_trace))

# %%
# 4. The loss and the optimizer
# -----------------------------
#
# A network learns :math:`\epsilon^*` by regression on pairs we can make at will
# (:cite:t:`ho2020ddpm`, Alg. 1, in continuous time as in :cite:t:`kingma2021vdm`):
#
# .. math::
#
#    x_0 \sim p_{\rm data}, \quad t \sim p(t), \quad \epsilon \sim \mathcal N(0, I),
#    \quad
#    x_t = \sqrt{\bar\alpha_t}\, x_0 + \sigma_t \epsilon, \qquad
#    L = \frac1B \sum_{\text{batch}} w_t\, \|\hat y(x_t, t) - y\|^2,
#
# where :math:`y` is what the network predicts. npdiff's recipe for 2-D data
# (``npdiff/recipes.py``) predicts the velocity :cite:p:`salimans2022progressive` rather
# than :math:`\epsilon`,
#
# .. math::
#
#    v = \sqrt{\bar\alpha_t}\, \epsilon - \sigma_t x_0 .
#
# With :math:`\epsilon`-prediction the implied clean point
# :math:`\hat x_0 = (x_t - \sigma_t \hat\epsilon) / \sqrt{\bar\alpha_t}` divides the
# network's error by :math:`\sqrt{\bar\alpha_t}`, which vanishes as :math:`t \to 1`;
# :math:`v` runs from :math:`\epsilon` at :math:`t = 0` to :math:`-x_0` at
# :math:`t = 1`, so both readings of the output stay well conditioned at both ends
# (:cite:t:`salimans2022progressive`, Sec. 4). The three targets are linear in each
# other given :math:`x_t` (chapter 2, section 7), and so are the minimizers:
# :math:`v^* = \sqrt{\bar\alpha_t}\, \epsilon^* - \sigma_t\, \mathbb E[x_0 \mid x_t]`.
# What the network predicts and where its error is measured are two choices: the recipe
# predicts :math:`v` but weighs the error as the equivalent error in :math:`\epsilon`,
# :math:`\hat\epsilon - \epsilon = \sqrt{\bar\alpha_t}\, (\hat v - v)`, so
# :math:`w_t = \bar\alpha_t` (``npdiff.objective.loss_weight``), and it draws half of
# each batch's times uniformly in log-SNR rather than in :math:`t`, which puts more of
# the batch at small :math:`t` where the sharp sets are decided
# :cite:p:`song2021scoreflow,kingma2021vdm`.
#
# The optimizer is AdamW :cite:p:`loshchilov2019adamw` with gradient-norm clipping and a
# cosine decay of the learning rate. The model we keep is an exponential moving average
# (EMA) of the weights: averaging the last few thousand iterates smooths out the
# optimizer's noise (Song and Ermon, 2020, recommend it for score models).

ch.section("4. training on 8gaussians")
data = toy2d.load("8gaussians")
oracle = data.oracle()
config, train_kw, schedule = toy_model_recipe(ch.quick)
print(f"  model: width {config.width}, depth {config.depth}, predicts "
      f"{config.parameterization}; {train_kw['steps']} steps of batch "
      f"{train_kw['batch_size']}, lr {train_kw['lr']} ({train_kw['lr_schedule']})")
t0 = perf_counter()
model, history = train(config, data, rng=ch.rng(1), schedule=schedule, progress=False,
                       **train_kw)
seconds = perf_counter() - t0
ckpt = ch.path("model_quick.npz" if ch.quick else "model.npz")
checkpoint.save(ckpt, model, step=train_kw["steps"])  # chapter 5 loads it
print(f"  saved the EMA model to {ckpt.name}")
loss = history["loss"]
ch.show("training steps per second", train_kw["steps"] / seconds,
        f"{seconds:.1f} s; a first run also compiles the Numba kernels")
ch.show("first loss", loss[0])
tail = loss[-max(1, loss.size // 20):]  # the raw weights' loss on the last batches
final = tail.mean()
ch.show("final loss (mean of the last 5% of steps)", final)

# %%
# The gradient norm and the learning rate along the run: the norm is clipped where it
# crosses the dotted line, and the cosine schedule takes the learning rate to 0.

steps = np.arange(1, loss.size + 1)
fig, ax = plt.subplots(figsize=(7, 4.2))
ax.plot(steps, history["grad_norm"], color="C1", lw=0.6, alpha=0.7,
        label="gradient norm (before clipping)")
clip = train_kw["clip_norm"]
ax.axhline(clip, color="0.4", ls=":", label=f"clipped at {clip}")
ax.set(yscale="log", xlabel="step", title="gradient norm and learning rate")
ax.legend(fontsize=8, loc="lower left")
ax2 = ax.twinx()
ax2.plot(steps, history["lr"], color="C2", lw=1.2)
ax2.set_ylabel("learning rate", color="C2")
fig.tight_layout()
ch.save(fig, "optimizer")

# %%
# 5. What is left to learn
# ------------------------
#
# The best possible loss is known: the exact denoiser's, on batches drawn the same way
# (the recipe's mix of times, the recipe's loss space),
#
# .. math::
#
#    L^* = \mathbb E\big[w_t\, \|v - v^*(x_t, t)\|^2\big] / D,
#
# estimated with the trainer's own functions. The training curve is drawn against it:
# the gap between the two is all the network still has to learn.

ch.section("5. the best possible loss and what is left to learn")
rng = ch.rng(2)
n_floor = ch.pick(20_000, 200_000)
x0 = data.sample(n_floor, rng)
t = log_snr_times(n_floor, rng, schedule, t_min=train_kw["t_min"],
                  log_snr_fraction=train_kw.get("log_snr_fraction", 0.0))
eps = rng.standard_normal(x0.shape)
loss_space = train_kw.get("loss") or config.parameterization
pred_space = config.parameterization  # v
xt, target, weight = denoising_targets(x0, t, eps, schedule, pred_space, loss_space)
ab = schedule.alpha_bar(t)[:, None]  # (n, 1)
best = parameterization.from_eps(oracle.eps(xt, t), pred_space, xt, ab)  # v*
per_point = weight * np.mean((target - best) ** 2, axis=1)  # w_t |v - v*|^2 / D
floor, floor_se = per_point.mean(), per_point.std() / np.sqrt(n_floor)
ch.show("best possible loss (the exact denoiser's)", floor, f"+- {floor_se:.2g}")
gap_se = np.hypot(tail.std() / np.sqrt(tail.size), floor_se)  # two Monte Carlo means
ch.show("final loss - best possible", final - floor,
        f"what is left to learn: >= 0 up to noise, +- {gap_se:.2g}")

window = max(1, loss.size // 50)
smooth = np.convolve(loss, np.ones(window) / window, mode="valid")
fig, ax = plt.subplots(figsize=(7, 4.2))
ax.plot(steps, loss, color="C0", alpha=0.25, lw=0.6, label="loss of each batch")
ax.plot(steps[window - 1:], smooth, color="C0", lw=1.5,
        label=f"moving average ({window} steps)")
ax.axhline(floor, color="C3", ls="--", label=f"exact denoiser: {floor:.3f}")
ax.set(xlabel="step", ylabel=f"{loss_space}-space loss",
       title="training curve and the best possible loss",
       ylim=(floor - 0.4, max(smooth.max(), floor) + 0.2))
ax.legend(fontsize=8)
ax.grid(alpha=0.3)
fig.tight_layout()
ch.save(fig, "training")

# %%
# Where is the rest? Since :math:`y^*` is a conditional mean, the expected loss at each
# :math:`t` splits like Pythagoras, the floor plus the network's excess:
#
# .. math::
#
#    \mathbb E\, \|\hat y - y\|^2
#    = \mathbb E\, \|y - y^*\|^2 + \mathbb E\, \|\hat y - y^*\|^2 ,
#
# so the excess :math:`\mathbb E\, \|\hat y - y^*\|^2` is exactly what is left to learn
# at that noise level. The code measures it for the EMA model on a log grid of times, in
# the space the network predicts.

t_grid = np.geomspace(1e-3, 1.0, 25)
excess, floor_t = [], []
for tt in t_grid:
    x0_t, eps_t = data.sample(2000, rng), rng.standard_normal((2000, 2))
    a_t = float(schedule.alpha_bar(tt))
    xs = np.sqrt(a_t) * x0_t + np.sqrt(1.0 - a_t) * eps_t
    y_true = parameterization.from_eps(eps_t, pred_space, xs, a_t)  # y
    y_star = parameterization.from_eps(oracle.eps(xs, tt), pred_space, xs, a_t)  # y*
    excess.append(np.mean((model.predict(xs, tt) - y_star) ** 2))  # E|y_hat - y*|^2 / D
    floor_t.append(np.mean((y_true - y_star) ** 2))  # E|y - y*|^2 / D
excess, floor_t = np.array(excess), np.array(floor_t)
ch.show("EMA model: largest excess E|y_hat - y*|^2 / D over t", excess.max(),
        f"at t = {t_grid[np.argmax(excess)]:.3g}")
ch.show("EMA model: excess averaged over t (log grid)", excess.mean())

fig, ax = plt.subplots(figsize=(7, 4.2))
ax.loglog(t_grid, excess, "o-", ms=3,
          label=r"trained MLP (EMA): $E|\hat y - y^*|^2 / D$")
ax.loglog(t_grid, floor_t, "--", color="C3",
          label=r"exact denoiser's loss: $E|y - y^*|^2 / D$")
ax.set(xlabel="t", title=f"what is left to learn, by t ({pred_space}-space)")
ax.legend(fontsize=8)
ax.grid(alpha=0.3, which="both")
fig.tight_layout()
ch.save(fig, "excess")

# %%
# 6. Samples of the trained model
# -------------------------------
#
# The trained network replaces the oracle in chapter 3's samplers. As there, the mean
# true log-density of :math:`n` samples plus the entropy of the data,
#
# .. math::
#
#    \frac1n \sum_{i=1}^n \log p_{\rm data}(x^{(i)}) + H(p_{\rm data}),
#
# is 0 for a perfect model (and negative when samples fall where the data is thin), and
# the energy distance to fresh data is 0 up to its noise floor. Last, the saved
# checkpoint is loaded back: what chapter 5 reads is the model measured here.

ch.section("6. samples of the trained model")
n_samp = ch.pick(1000, 4000)
fresh, ref = data.sample(n_samp, ch.rng(3)), data.sample(n_samp, ch.rng(4))
ddpm_steps = ch.pick(250, 1000)
runs = {"ODE": ("ODE (RK45)", ode_sample(model, n_samp, ch.rng(5))),
        "DDPM": (f"DDPM, {ddpm_steps} steps",
                 ddpm_sample(model, n_samp, ch.rng(6), steps=ddpm_steps))}
ch.show("energy distance, data vs data", metrics.energy_distance(fresh, ref),
        "noise floor")
fig, axes = plt.subplots(1, 3, figsize=(12, 4.3))
scatter_panel(axes[0], fresh, "data (8gaussians)", color="k")
for ax, (short, (label, res)), color in zip(axes[1:], runs.items(), ["C0", "C1"]):
    mean, se = metrics.mean_log_density(res.x, data)
    ch.show(f"{short}: mean log p(samples) + H", mean + data.entropy,
            f"0 for a perfect model, +- {se:.2g}")
    ch.show(f"{short}: energy distance to data", metrics.energy_distance(res.x, ref),
            f"{res.nfe} evaluations")
    scatter_panel(ax, res.x, f"trained MLP, {label}", color,
                  f"mean log p + H = {mean + data.entropy:+.3f}")
fig.tight_layout()
ch.save(fig, "samples")

loaded = checkpoint.load(ckpt).model
probe = fresh[:64]
ch.show("max |eps(saved model) - eps(model)|",
        np.abs(loaded.eps(probe, 0.3) - model.eps(probe, 0.3)).max(), "0")
ch.done()
