r"""
Chapter 1: the forward process, or how data dissolves into noise
================================================================

A diffusion model learns to undo a process that is fixed in advance and trivially easy
to run forwards: blend the data with Gaussian noise, a little more at each time, until
nothing of it is left. This chapter runs that process on a two-dimensional toy set,
checks its closed forms by sampling, and compares the three noise schedules npdiff
ships. From the repository root (``--quick`` takes seconds; figures go to ``--out``):

Run::

    python tutorials/01_forward_process.py [--quick] [--out DIR]
"""

from _common import (
    Chapter,
    corner_note,
    draw_density,
    np,
    plt,
    show_moments,
    show_standard_normal,
)

from npdiff import forward, gaussian
from npdiff.data import toy2d
from npdiff.schedule import cosine, ddpm_linear, log_snr_linear, vp_linear

ch = Chapter(1, "the forward process")
data = toy2d.load("8gaussians")
schedules = [vp_linear(), cosine(), log_snr_linear()]
n = ch.pick(1500, 4000)
x0 = data.sample(n, ch.rng(0))  # (n, 2)

# %%
# 1. One line of math
# -------------------
#
# Take a data point :math:`x_0` and blend it with Gaussian noise,
#
# .. math::
#
#    x_t = \sqrt{\bar\alpha_t}\, x_0 + \sqrt{1 - \bar\alpha_t}\, \epsilon,
#    \qquad \epsilon \sim \mathcal N(0, I),
#
# where the schedule :math:`\bar\alpha_t = \bar\alpha(t)` falls from 1 at :math:`t = 0`
# (clean data) to nearly 0 at :math:`t = 1` (pure noise). :cite:t:`ho2020ddpm` (Eq. 4)
# write it as the closed-form marginal
#
# .. math::
#
#    q(x_t \mid x_0) = \mathcal N\big(x_t;\ \sqrt{\bar\alpha_t}\, x_0,\
#    (1 - \bar\alpha_t) I\big).
#
# It is *variance preserving*: its mean and variance are
#
# .. math::
#
#    \mathbb E[x_t] = \sqrt{\bar\alpha_t}\, \mathbb E[x_0], \qquad
#    \mathrm{Var}[x_t] = \bar\alpha_t \mathrm{Var}[x_0] + 1 - \bar\alpha_t,
#
# so data of unit variance keeps unit variance at every :math:`t`, and the network sees
# inputs of one scale from start to end. The code draws :math:`x_t` from 8gaussians at
# :math:`t = 0.3` and compares the sample moments with these two formulas.

ch.section("1. q(x_t | x_0) by sampling against its closed form")
m0, v0 = x0.mean(axis=0), x0.var(axis=0)  # (2,) the data's own moments
for s in schedules:
    eps = ch.rng(1).standard_normal(x0.shape)  # (n, 2)
    xt = forward.q_sample(x0, 0.3, eps, s)  # (n, 2)
    ab = float(s.alpha_bar(0.3))
    ch.show(f"{s.name}: alpha_bar(0.3)", ab)
    show_moments(
        s.name,
        mean_err=np.abs(xt.mean(axis=0) - np.sqrt(ab) * m0).max(),
        var_ratio=(xt.var(axis=0) / (ab * v0 + 1.0 - ab)).max(),
        n=n,
    )

# %%
# 2. The pieces compose
# ---------------------
#
# The forward process is a Markov chain whose steps compose: going from :math:`s` to a
# later :math:`t` multiplies the signal by :math:`\sqrt{\bar\alpha_t / \bar\alpha_s}`
# and adds the missing noise,
#
# .. math::
#
#    q(x_t \mid x_s) = \mathcal N\Big(x_t;\ \sqrt{\bar\alpha_t / \bar\alpha_s}\, x_s,\
#    \big(1 - \bar\alpha_t / \bar\alpha_s\big) I\Big).
#
# Chaining :math:`q(x_s \mid x_0)` with :math:`q(x_t \mid x_s)` gives back
# :math:`q(x_t \mid x_0)`: the signal factors multiply,
# :math:`\sqrt{\bar\alpha_s}\sqrt{\bar\alpha_t / \bar\alpha_s} = \sqrt{\bar\alpha_t}`,
# and the variances add up,
#
# .. math::
#
#    \frac{\bar\alpha_t}{\bar\alpha_s}(1 - \bar\alpha_s)
#    + \Big(1 - \frac{\bar\alpha_t}{\bar\alpha_s}\Big) = 1 - \bar\alpha_t.
#
# So whatever path produced it, the residual
# :math:`(x_t - \sqrt{\bar\alpha_t}\, x_0) / \sigma_t`, with
# :math:`\sigma_t = \sqrt{1 - \bar\alpha_t}`, must be a standard normal: mean 0,
# variance 1, its two coordinates uncorrelated. The code goes from :math:`s = 0.2` to
# :math:`t = 0.5` in two steps and checks it.

ch.section("2. composing q(x_s | x_0) and q(x_t | x_s)")
sched, s_time, t_time = vp_linear(), 0.2, 0.5
rng = ch.rng(2)
x_s = forward.q_sample(x0, s_time, rng.standard_normal(x0.shape), sched)
mean_ts, var_ts = forward.q_xt_xs(x_s, s_time, t_time, sched)  # (n, 2), (n, 1)
x_t = mean_ts + np.sqrt(var_ts) * rng.standard_normal(x0.shape)
resid = (x_t - np.sqrt(sched.alpha_bar(t_time)) * x0) / sched.sigma(t_time)
show_standard_normal("two-step residual / sigma(t)", resid)

# %%
# 3. The noised data distribution
# -------------------------------
#
# Averaged over the data, the marginal of :math:`x_t` is the data distribution shrunk by
# :math:`\sqrt{\bar\alpha_t}` and convolved with a Gaussian whose width grows with
# :math:`t`,
#
# .. math::
#
#    q_t(x) = \int \mathcal N\big(x;\ \sqrt{\bar\alpha_t}\, x_0,\ \sigma_t^2 I\big)\,
#    p_{\rm data}(x_0)\, dx_0 .
#
# For the eight-Gaussian toy set it is again a mixture of eight Gaussians, which
# npdiff's oracle knows exactly; the figure draws it behind the samples. Each row is one
# schedule, each column one time. The eight clusters shrink towards the origin (the
# factor :math:`\sqrt{\bar\alpha_t}`) while they blur (the noise), and the total spread
# stays about the same. vp_linear has merged the clusters into a ring by
# :math:`t = 0.25` and lost the structure by :math:`t = 0.4`; cosine erases it slowly
# and evenly; log_snr_linear barely touches the data until :math:`t = 0.4` and then
# erases it quickly. The last column is indistinguishable from :math:`\mathcal N(0, I)`:
# that is the prior the samplers of chapter 3 start from.

times = [0.0, 0.1, 0.25, 0.4, 0.6, 1.0]
lim = 4.0
grid = np.linspace(-lim, lim, ch.pick(90, 160))  # (G,)
gx, gy = np.meshgrid(grid, grid)
pts = np.stack([gx.ravel(), gy.ravel()], axis=1)  # (G^2, 2)
eps = ch.rng(3).standard_normal(x0.shape)  # one noise draw for all panels
shown = x0[:800]
fig, axes = plt.subplots(3, len(times), figsize=(2.3 * len(times), 2.4 * 3))
for r, s in enumerate(schedules):
    oracle = data.oracle(s)  # the exact mixture q_t for this schedule
    for c, t in enumerate(times):
        t = min(t, s.t_max)
        dens = np.exp(oracle.log_prob(pts, t)).reshape(gx.shape)  # (G, G)
        xt = forward.q_sample(shown, t, eps[: len(shown)], s)
        draw_density(axes[r, c], dens, lim, xt)
        corner_note(axes[r, c], rf"$\bar\alpha$={float(s.alpha_bar(t)):.2g}")
        if r == 0:
            axes[r, c].set_title(f"t = {t:g}", fontsize=10)
    axes[r, 0].set_ylabel(s.name, fontsize=10)
fig.suptitle("8gaussians dissolving: samples of x_t over the exact q_t", fontsize=11)
fig.tight_layout()
ch.save(fig, "dissolving")

# %%
# 4. Schedules
# ------------
#
# Everything about the noise is in the one function :math:`\bar\alpha(t)`. Two
# equivalent views of it:
#
# * the rate at which signal is destroyed,
#   :math:`\beta(t) = -\frac{d}{dt}\log\bar\alpha(t)`; it is the drift and diffusion
#   coefficient of the VP SDE
#   :math:`dx = -\tfrac12\beta(t)\, x\, dt + \sqrt{\beta(t)}\, dw`
#   (:cite:t:`song2021sde`, Eq. 11), whose marginals are exactly those of
#   :math:`q(x_t \mid x_0)`;
# * the signal-to-noise ratio, best seen on a log scale,
#
#   .. math::
#
#      \lambda(t) = \log \mathrm{SNR}(t) = \log\frac{\bar\alpha_t}{1 - \bar\alpha_t}.
#
#   A schedule is a monotone path of :math:`\lambda` from large (clean) to very negative
#   (noise); :cite:t:`kingma2021vdm` show that the continuous-time loss depends only on
#   its end points, not on its shape in between. The shape still decides where the
#   training effort and the sampler's steps are spent.
#
# npdiff ships three:
#
# * ``vp_linear`` :cite:p:`song2021sde`: :math:`\beta(t) = 0.1 + 19.9\, t`, so
#   :math:`\log\bar\alpha(t) = -(0.1\, t + 9.95\, t^2)`. It destroys information fast:
#   by :math:`t = 0.5` the SNR is already below 0.1.
# * ``cosine`` :cite:p:`nichol2021improved`: with :math:`s = 0.008`,
#
#   .. math::
#
#      \bar\alpha(t) = \frac{\cos^2\big(\frac{t + s}{1 + s}\frac{\pi}{2}\big)}
#      {\cos^2\big(\frac{s}{1 + s}\frac{\pi}{2}\big)},
#
#   gentler in the middle. It reaches :math:`\bar\alpha = 0` exactly at :math:`t = 1`, a
#   singularity (:math:`\beta` is infinite there), so continuous-time methods stop at
#   :math:`t_{\max} = 0.999`.
# * ``log_snr_linear``: :math:`\lambda(t)` falls linearly from :math:`+10` to
#   :math:`-10` (:cite:t:`kingma2021vdm` with a fixed rather than learned schedule).
#   Since :math:`\bar\alpha = \mathrm{sigmoid}(\lambda)`,
#   :math:`\bar\alpha(0) = \mathrm{sigmoid}(10) < 1`: a little noise (std 0.0067) is
#   present even at :math:`t = 0`.
#
# How much information is left at the end? The prior term of the likelihood bound
# (chapter 5) is the KL divergence from :math:`q(x_{t_{\max}} \mid x_0)` to
# :math:`\mathcal N(0, I)`, per dimension
#
# .. math::
#
#    \tfrac12\big(\bar\alpha\, x_0^2 + (1 - \bar\alpha) - 1 - \log(1 - \bar\alpha)\big)
#    \quad\text{at } \bar\alpha = \bar\alpha(t_{\max}),
#
# averaged over the data. The code prints it for each schedule, with the time where the
# SNR crosses 1 (:math:`\lambda = 0`): where each schedule puts the middle of the
# process.

ch.section("4. the end of the process and the schedules' shapes")
for s in schedules:
    ab_end = float(s.alpha_bar(s.t_max))
    kl = gaussian.kl_normal_diag(np.sqrt(ab_end) * x0, np.log1p(-ab_end), 0.0, 0.0)
    tt = np.linspace(1e-6, s.t_max, 100001)
    t_snr1 = tt[np.argmax(s.log_snr(tt) < 0)]  # lambda decreases: first time below 0
    ch.show(f"{s.name}: t_max", s.t_max)
    ch.show(f"{s.name}: alpha_bar(t_max)", ab_end)
    ch.show(f"{s.name}: KL(q(x_tmax|x_0) || N(0,I)) in nats", kl.sum(axis=1).mean(),
            "information left at the end")
    ch.show(f"{s.name}: t where SNR = 1", t_snr1)

# %%
# The three schedules side by side: the fraction of signal :math:`\bar\alpha(t)`, the
# log-SNR :math:`\lambda(t)` and the rate :math:`\beta(t)`.

fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
for s in schedules:
    t = np.linspace(0.0, s.t_max, 1000)
    axes[0].plot(t, s.alpha_bar(t), label=s.name)
    axes[1].plot(t[1:], s.log_snr(t[1:]), label=s.name)
    axes[2].semilogy(t, s.beta(t), label=s.name)
axes[0].set_title(r"$\bar\alpha(t)$: fraction of signal")
axes[1].set_title(r"$\lambda(t)=\log\,$SNR$(t)$")
axes[1].axhline(0.0, color="0.5", lw=0.8)
axes[2].set_title(r"$\beta(t)=-\frac{d}{dt}\log\bar\alpha$")
for ax in axes:
    ax.set_xlabel("t")
    ax.grid(alpha=0.3)
axes[0].legend()
fig.tight_layout()
ch.save(fig, "schedules")

# %%
# 5. The discrete chain
# ---------------------
#
# DDPM works on :math:`T` steps. npdiff derives the chain from the continuous schedule,
#
# .. math::
#
#    \bar\alpha_i = \bar\alpha(i / T), \quad i = 0, \dots, T, \qquad
#    \beta_i = 1 - \frac{\bar\alpha_i}{\bar\alpha_{i-1}},
#
# stored in arrays of length :math:`T + 1` indexed like the paper (index 0 is clean
# data). With :math:`T = 1000`, vp_linear's :math:`\beta_i` are close to, not equal to,
# the table ``linspace(1e-4, 0.02, 1000)`` of :cite:t:`ho2020ddpm`: the chain's
# :math:`\log(1 - \beta_i) = -\int_{(i-1)/T}^{i/T} \beta(t)\, dt`, and
# :math:`\log(1 - \beta)` is not :math:`-\beta`. The code prints how close.

ch.section("5. vp_linear discretized at T = 1000 against DDPM's table")
chain, ddpm = vp_linear().discretize(1000), ddpm_linear(1000)
ch.show("alpha_bar[0] (clean data)", chain.alpha_bar[0])
ch.show("max |beta_i - beta_i(DDPM)|", np.abs(chain.betas[1:] - ddpm.betas[1:]).max(),
        "close, not equal")
ch.show("max |alpha_bar_i - alpha_bar_i(DDPM)|",
        np.abs(chain.alpha_bar - ddpm.alpha_bar).max())
ch.show("alpha_bar[T] vp_linear", chain.alpha_bar[-1])
ch.show("alpha_bar[T] DDPM table", ddpm.alpha_bar[-1])

i = np.arange(1, 1001)  # index 0 is clean data (beta_0 = 0, not drawn on a log axis)
fig, ax = plt.subplots(figsize=(7, 4.2))
ax.semilogy(i, chain.betas[1:], color="C0", label="vp_linear discretized, T = 1000")
ax.semilogy(i, ddpm.betas[1:], "k--", lw=1, label="DDPM table linspace(1e-4, 0.02)")
ax.semilogy(i, cosine().discretize(1000).betas[1:], color="C1",
            label="cosine discretized (clip 0.999)")
ax.semilogy(i, log_snr_linear().discretize(1000).betas[1:], color="C2",
            label="log_snr_linear discretized")
ax.set(xlabel="step i", xlim=(1, 1000), title=r"discrete chain $\beta_i$, $i = 1..T$")
ax.grid(alpha=0.3)
ax.legend(fontsize=8)
fig.tight_layout()
ch.save(fig, "chain")
ch.done()
