r"""
Chapter 0: the whole idea on one page
=====================================

A diffusion model, start to finish, in about sixty lines of NumPy: the noise schedule,
the forward process, a small network with its gradient written by hand, the training
loop and the sampler of :cite:t:`ho2020ddpm`. Nothing here comes from npdiff except the
data and the yardstick at the end; the rest of the book takes each piece apart, and the
library does each one properly (checked arguments, continuous time, fast kernels, exact
likelihoods). A test holds this page to the library: the schedule, the loss, the
gradient and one step of the sampler must agree with npdiff's own.

The symbols are those of the :doc:`notation page </notation>`. Run the page as a script
from the repository root::

    python tutorials/00_the_whole_idea.py [--quick] [--out DIR]
"""

# %%
# The data
# --------
# Eight Gaussian blobs on a circle, the "8gaussians" set of
# :cite:t:`grathwohl2019ffjord`. We can draw as many points as we like, and we know
# their true density, which will grade the samples at the end.

from itertools import pairwise

from _common import Chapter, np, plt

from npdiff import metrics
from npdiff.data import toy2d

ch = Chapter(0, "the whole idea on one page")
# sphinx_gallery_start_ignore
from threadpoolctl import threadpool_limits  # noqa: E402

# One BLAS thread for this page's small products (see _common), also where NumPy was
# loaded before _common could say so, as in a documentation build: more threads only
# wait on each other.
threadpool_limits(limits=1, user_api="blas")
# sphinx_gallery_end_ignore
data = toy2d.load("8gaussians")
rng = ch.rng(0)
x_data = data.sample(2000, rng)  # (2000, 2)

# %%
# The noise schedule
# ------------------
# The forward process adds a little Gaussian noise at each of T steps, the variance of
# step t being :math:`\beta_t`. DDPM's betas grow linearly from :math:`10^{-4}` to 0.02
# over T = 1000 steps; what matters below is the product of what each step keeps,
#
# .. math::
#    \bar\alpha_t = \prod_{s=1}^{t} (1 - \beta_s), \qquad \bar\alpha_0 = 1 .
#
# Arrays have length T + 1 and are indexed by the paper's t: index 0 is the clean data.


def ddpm_schedule(T):
    betas = np.concatenate([[0.0], np.linspace(1e-4, 0.02, T)])  # (T+1,) beta_0 = 0
    alpha_bar = np.cumprod(1.0 - betas)  # (T+1,) alpha_bar[0] = 1
    return betas, alpha_bar


T = 1000
betas, alpha_bar = ddpm_schedule(T)
ch.show("alpha_bar[T]", alpha_bar[T], "the signal left after T steps")

# %%
# The forward process in one jump
# -------------------------------
# The T small steps compose into one Gaussian, so :math:`x_t` is drawn from :math:`x_0`
# directly (:cite:t:`ho2020ddpm`, Eq. 4):
#
# .. math::
#    x_t = \sqrt{\bar\alpha_t}\, x_0 + \sqrt{1 - \bar\alpha_t}\, \epsilon,
#    \qquad \epsilon \sim \mathcal N(0, I).


def q_sample(x0, t, eps, alpha_bar):
    ab = alpha_bar[t][:, None]  # (B, 1) one time per point
    return np.sqrt(ab) * x0 + np.sqrt(1.0 - ab) * eps  # (B, D)


# %%
# The forward chain :math:`q(x_t \mid x_{t-1}) = \mathcal N(\sqrt{1 - \beta_t}\,
# x_{t-1},\ \beta_t I)` is fixed and turns the data into noise; the reverse chain
# :math:`p_\theta(x_{t-1} \mid x_t)` is learned and turns noise back into data, one step
# at a time :cite:p:`sohl2015`. Here is the data at a few times along the chain.

# sphinx_gallery_start_ignore
from matplotlib.patches import ConnectionPatch  # noqa: E402


def draw_chain(times, clouds, alpha_bar):
    r"""The chain x_0 -> ... -> x_T: a scatter per time, q forward, p back."""
    fig = plt.figure(figsize=(11.0, 3.0))
    side, n = 0.12, len(times)
    gap, height = (0.96 - side * n) / (n - 1), side * 11.0 / 3.0  # square panels
    axes = [fig.add_axes((0.02 + i * (side + gap), 0.2, side, height))
            for i in range(n)]
    for ax, t, x in zip(axes, times, clouds):
        ax.scatter(x[:, 0], x[:, 1], s=1.0, c="k", alpha=0.35, linewidths=0)
        ax.set(xlim=(-4.5, 4.5), ylim=(-4.5, 4.5), xticks=[], yticks=[], aspect="equal")
        ax.set_title(f"$x_{{{t}}}$", fontsize=13)
        ax.set_xlabel(rf"$\bar\alpha_{{{t}}}$ = {alpha_bar[t]:.2g}", fontsize=9)
    for a, b, s, t in zip(axes, axes[1:], times, times[1:]):
        for y, start, end, colour in ((0.78, a, b, "C0"), (0.22, b, a, "C3")):
            x_from, x_to = (1.05, -0.05) if start is a else (-0.05, 1.05)
            fig.add_artist(ConnectionPatch(
                (x_from, y), (x_to, y), start.transAxes, end.transAxes,
                arrowstyle="-|>", mutation_scale=14, lw=1.6, color=colour))
        a.text(1.0 + 0.5 * gap / side, 0.5, f"{t - s}\nsteps", transform=a.transAxes,
               ha="center", va="center", fontsize=8, color="0.3")
    fig.text(0.5, 0.86, r"forward, fixed: $q(x_t \mid x_{t-1}) = \mathcal{N}"
             r"(\sqrt{1-\beta_t}\,x_{t-1},\ \beta_t I)$", ha="center", color="C0",
             fontsize=11)
    fig.text(0.5, 0.03, r"reverse, learned: $p_\theta(x_{t-1} \mid x_t) = \mathcal{N}"
             r"(\mu_\theta(x_t, t),\ \beta_t I)$", ha="center", color="C3", fontsize=11)
    return fig


def save(fig, name):
    r"""Write the figure into the output folder; leave it open for the gallery."""
    path = ch.path(f"{name}.png")
    fig.savefig(path, dpi=110)
    print(f"figure: {path.name}")


# sphinx_gallery_end_ignore
times = [0, 100, 250, 400, 600, 1000]
clouds = [q_sample(x_data, np.full(len(x_data), t), rng.standard_normal(x_data.shape),
                   alpha_bar) for t in times]
save(draw_chain(times, clouds, alpha_bar), "chain")

# %%
# The network
# -----------
# A network :math:`\epsilon_\theta(x_t, t)` learns to predict the noise in :math:`x_t`.
# It sees the point and the time, the time as sines and cosines of a few frequencies
# :math:`\omega_k = 1000^{-k/K}` (the embedding of :cite:t:`vaswani2017`):
#
# .. math::
#    e = \big[x,\ \sin(\omega_k t),\ \cos(\omega_k t)\big]_{k = 0..K-1}.


def features(x, t, K=8):
    omega = 1000.0 ** (-np.arange(K) / K)  # (K,)
    angle = t[:, None] * omega  # (B, K)
    return np.concatenate([x, np.sin(angle), np.cos(angle)], axis=1)  # (B, 2 + 2K)


# %%
# Two hidden layers of ReLU units, :math:`\mathrm{relu}(z) = \max(z, 0)`:
#
# .. math::
#    h_1 = \mathrm{relu}(e W_1 + b_1),\quad h_2 = \mathrm{relu}(h_1 W_2 + b_2),\quad
#    \hat\epsilon = h_2 W_3 + b_3 .


def init_mlp(rng, sizes):
    params = []
    for fan_in, fan_out in pairwise(sizes):  # He et al.'s scale for ReLU
        params += [rng.standard_normal((fan_in, fan_out)) * np.sqrt(2.0 / fan_in),
                   np.zeros(fan_out)]
    return params


def mlp(params, e):
    W1, b1, W2, b2, W3, b3 = params
    z1 = e @ W1 + b1  # (B, H)
    h1 = np.maximum(z1, 0.0)
    z2 = h1 @ W2 + b2  # (B, H)
    h2 = np.maximum(z2, 0.0)
    return h2 @ W3 + b3, (e, z1, h1, z2, h2)  # (B, D) and what the backward pass needs


# %%
# The backward pass is the chain rule read from the output back to the input. Given
# :math:`\bar\epsilon = \partial L / \partial\hat\epsilon`, with :math:`\mathbb 1` the
# indicator of a positive pre-activation (the derivative of relu):
#
# .. math::
#    \bar z_2 = (\bar\epsilon\, W_3^\top) \odot \mathbb 1[z_2 > 0],\quad
#    \bar z_1 = (\bar z_2 W_2^\top) \odot \mathbb 1[z_1 > 0],\quad
#    \bar W_k = h_{k-1}^\top \bar z_k,\quad
#    \bar b_k = \textstyle\sum_{\text{rows}} \bar z_k .


def mlp_backward(params, cache, d_eps):
    W2, W3 = params[2], params[4]  # the biases do not enter the backward pass
    e, z1, h1, z2, h2 = cache
    d_z2 = (d_eps @ W3.T) * (z2 > 0)  # (B, H)
    d_z1 = (d_z2 @ W2.T) * (z1 > 0)  # (B, H)
    return [e.T @ d_z1, d_z1.sum(0), h1.T @ d_z2, d_z2.sum(0),
            h2.T @ d_eps, d_eps.sum(0)]  # dW_1, db_1, dW_2, db_2, dW_3, db_3


# %%
# The loss
# --------
# The simple loss of :cite:t:`ho2020ddpm` (Eq. 14): the squared error of the predicted
# noise, here averaged over the batch and the D coordinates, with its gradient
#
# .. math::
#    L = \frac{1}{BD}\sum_{b,d} \big(\hat\epsilon_{bd} - \epsilon_{bd}\big)^2,\qquad
#    \frac{\partial L}{\partial\hat\epsilon} = \frac{2}{BD}\,(\hat\epsilon - \epsilon).


def loss_and_grad(eps_hat, eps):
    r = eps_hat - eps  # (B, D)
    return np.mean(r * r), 2.0 * r / r.size


# %%
# Training
# --------
# Adam :cite:p:`kingma2015adam` with bias-corrected moments (its b1 and b2 have nothing
# to do with the noise schedule's betas), the step size decaying to zero over the last
# half:
#
# .. math::
#    m \leftarrow b_1 m + (1 - b_1) g,\quad v \leftarrow b_2 v + (1 - b_2) g^2,\quad
#    \theta \leftarrow \theta
#    - \eta\, \frac{m / (1 - b_1^k)}{\sqrt{v / (1 - b_2^k)} + 10^{-8}} .


def adam_step(params, grads, m, v, k, lr, b1=0.9, b2=0.999):
    for p, g, m_p, v_p in zip(params, grads, m, v):  # updates in place
        m_p += (1.0 - b1) * (g - m_p)
        v_p += (1.0 - b2) * (g * g - v_p)
        p -= lr * (m_p / (1.0 - b1**k)) / (np.sqrt(v_p / (1.0 - b2**k)) + 1e-8)


# %%
# One training step is Algorithm 1 of :cite:t:`ho2020ddpm`: a batch of clean points,
# a time :math:`t \sim \mathcal U\{1, \dots, T\}` and a noise draw for each, one
# gradient step on :math:`L`. Fresh data at every step, so the network cannot memorize.

steps, batch, lr = ch.pick(8000, 30000), 256, 2e-3
params = init_mlp(rng, [2 + 2 * 8, 128, 128, 2])
m, v = [np.zeros_like(p) for p in params], [np.zeros_like(p) for p in params]
losses = np.empty(steps)
for k in range(1, steps + 1):
    x0 = data.sample(batch, rng)  # (B, 2)
    t = rng.integers(1, T + 1, batch)  # (B,)
    eps = rng.standard_normal(x0.shape)  # (B, 2)
    eps_hat, cache = mlp(params, features(q_sample(x0, t, eps, alpha_bar), t))
    losses[k - 1], d_eps = loss_and_grad(eps_hat, eps)
    grads = mlp_backward(params, cache, d_eps)
    adam_step(params, grads, m, v, k, lr * min(1.0, 2.0 * (1.0 - k / steps)))
ch.show("first loss", losses[0])
ch.show("final loss (mean of the last 5% of steps)", losses[-steps // 20:].mean())

# %%
# Sampling
# --------
# Algorithm 2 of :cite:t:`ho2020ddpm`: start from pure noise :math:`x_T \sim \mathcal
# N(0, I)` and take T reverse steps, each one the mean of :math:`p_\theta(x_{t-1} \mid
# x_t)` plus fresh noise of variance :math:`\sigma_t^2 = \beta_t`, except the last,
# which adds none:
#
# .. math::
#    x_{t-1} = \frac{1}{\sqrt{1 - \beta_t}}\Big(x_t
#    - \frac{\beta_t}{\sqrt{1 - \bar\alpha_t}}\,\epsilon_\theta(x_t, t)\Big)
#    + \sigma_t z,\qquad z \sim \mathcal N(0, I)\ (t > 1),\quad z = 0\ (t = 1).


def p_sample_step(x_t, t, eps_hat, z, betas, alpha_bar):
    eps_scale = betas[t] / np.sqrt(1.0 - alpha_bar[t])
    mean = (x_t - eps_scale * eps_hat) / np.sqrt(1.0 - betas[t])  # (B, D)
    return mean + np.sqrt(betas[t]) * z if t > 1 else mean


n = ch.pick(2000, 5000)
x = rng.standard_normal((n, 2))  # x_T, (n, 2)
for t in range(T, 0, -1):
    eps_hat, _ = mlp(params, features(x, np.full(n, t)))
    x = p_sample_step(x, t, eps_hat, rng.standard_normal(x.shape), betas, alpha_bar)

# %%
# Samples beside data
# -------------------
# The samples should look like the data. The true density grades them: the mean of
# :math:`\log p_{\text{data}}` over the samples plus the data's entropy H is 0 for
# perfect samples, and negative when they stray from the blobs (a bound on how far from
# it they are comes in chapter 5). The energy distance to fresh data is 0 up to noise
# for a match.

mean_log_p, se = metrics.mean_log_density(x, data)
ch.show("mean log p_data(samples) + H", mean_log_p + data.entropy,
        f"0 if perfect; s.e. {se:.2g}")
energy = metrics.energy_distance(x, data.sample(n, rng))
ch.show("energy distance to fresh data", energy, "0 up to noise for a match")

fig, axes = plt.subplots(1, 3, figsize=(12.0, 4.0))
axes[0].semilogy(np.convolve(losses, np.ones(100) / 100, mode="valid"))
axes[0].set(title="training loss (moving average of 100 steps)", xlabel="step")
for ax, pts, title in ((axes[1], x_data, "data"), (axes[2], x, "samples")):
    ax.scatter(pts[:, 0], pts[:, 1], s=1.5, c="k", alpha=0.4, linewidths=0)
    ax.set(title=title, xlim=(-4.5, 4.5), ylim=(-4.5, 4.5), aspect="equal")
fig.tight_layout()
save(fig, "samples")

# %%
# What comes next
# ---------------
# Each piece above has a chapter and a module of its own. Chapter 1 turns the schedule
# into a function of continuous time (:mod:`npdiff.schedule`, :mod:`npdiff.forward`);
# chapter 2 derives the reverse step from the posterior :math:`q(x_{t-1} \mid x_t, x_0)`
# (:mod:`npdiff.reverse`); chapter 3 replaces the network by the exact denoiser, so that
# the samplers can be tested before anything is trained; chapter 4 trains the library's
# network (:mod:`npdiff.train`); chapter 5 measures likelihoods exactly; chapters 6 to 8
# go to images, fast samplers and guidance.

ch.done()
