r"""Chapter 1: the forward process, or how data dissolves into noise.

Run:  python tutorials/01_forward_process.py [--quick] [--out DIR]
Writes: 01_dissolving.png (8gaussians at six times under three schedules, over the exact
density of x_t) and 01_schedules.png (alpha_bar, log-SNR, beta and the discrete chain).
"""

# ---------------------------------------------------------------------------------------------
# 1. One line of math
#
# A diffusion model learns to undo a process that is fixed in advance and trivially easy to
# run forwards: take a data point x_0 and blend it with Gaussian noise,
#
#     x_t = sqrt(alpha_bar(t)) x_0 + sqrt(1 - alpha_bar(t)) eps,      eps ~ N(0, I),     (1)
#
# where the schedule alpha_bar(t) falls from 1 at t = 0 (clean data) to nearly 0 at t = 1
# (pure noise). Ho et al. (2020, Eq. 4) write it as the closed-form marginal
#
#     q(x_t | x_0) = N( sqrt(alpha_bar) x_0, (1 - alpha_bar) I ).
#
# Two things make (1) the right kind of noise. First, it is *variance preserving*: if x_0
# has unit variance then so has x_t at every t, so the network sees inputs of one scale
# from start to end. Second, it is a Markov process whose pieces compose: going from s to t
# multiplies the signal by sqrt(alpha_bar(t) / alpha_bar(s)) and adds the missing noise,
#
#     q(x_t | x_s) = N( sqrt(alpha_bar_t / alpha_bar_s) x_s, (1 - alpha_bar_t / alpha_bar_s) I ),
#
# and chaining q(x_s | x_0) with q(x_t | x_s) gives back q(x_t | x_0): the signal factors
# multiply, sqrt(a_s) sqrt(a_t / a_s) = sqrt(a_t), and the variances add up,
# (a_t / a_s)(1 - a_s) + (1 - a_t / a_s) = 1 - a_t. The code below checks both by sampling.
#
# The noised marginal q_t(x) = integral of q(x_t = x | x_0) p(x_0) dx_0 is the data
# distribution convolved with a Gaussian whose width grows with t, after shrinking it by
# sqrt(alpha_bar). For the eight-Gaussian toy set it is again a mixture of eight Gaussians,
# which npdiff's oracle knows exactly; the figure draws it behind the samples.
#
# 2. Schedules
#
# Everything about the noise is in the one function alpha_bar(t). Equivalent views:
#
#   * beta(t) = -d/dt log alpha_bar(t), the rate at which signal is destroyed; it is the
#     drift and diffusion coefficient of the VP SDE dx = -beta/2 x dt + sqrt(beta) dw
#     (Song et al. 2021, Eq. 11), whose marginals are exactly (1);
#   * the signal-to-noise ratio SNR(t) = alpha_bar / (1 - alpha_bar), best seen as
#     lambda(t) = log SNR(t) (Kingma et al. 2021): a schedule is just a monotone path of
#     lambda from large (clean) to very negative (noise), and Kingma et al. show that the
#     continuous-time loss depends only on its endpoints, not its shape in between. The shape
#     still decides where the training effort and the sampler's steps are spent.
#
# npdiff ships three:
#
#   vp_linear       beta(t) = 0.1 + 19.9 t, log alpha_bar = -(0.1 t + 9.95 t^2)
#                   (Song et al. 2021); it destroys information fast: by t = 0.5 the SNR is
#                   already below 0.1.
#   cosine          alpha_bar = cos^2(((t + s)/(1 + s)) pi/2) / cos^2(s/(1+s) pi/2), s = 0.008
#                   (Nichol & Dhariwal 2021); gentler in the middle, and it reaches
#                   alpha_bar = 0 exactly at t = 1, a singularity (beta is infinite there),
#                   so continuous-time methods stop at t_max = 0.999.
#   log_snr_linear  lambda(t) falls linearly from +10 to -10 (Kingma et al. 2021 with a fixed
#                   rather than learned schedule); note alpha_bar(0) = sigmoid(10) < 1, a
#                   little noise (std 0.0067) is present even at t = 0.
#
# 3. The discrete chain
#
# DDPM works on T steps. npdiff derives the chain from the continuous schedule:
# alpha_bar_i = alpha_bar(i / T) for i = 0..T, beta_i = 1 - alpha_bar_i / alpha_bar_{i-1},
# stored in arrays of length T + 1 indexed like the paper (index 0 is clean data). With
# T = 1000, vp_linear's betas are close to, not equal to, DDPM's linspace(1e-4, 0.02, 1000)
# table (because log(1 - beta) is not -beta); the chapter prints how close.
#
# 4. What to look for in the figures
#
# In 01_dissolving.png each row is one schedule, each column one time. The eight clusters
# shrink towards the origin (the factor sqrt(alpha_bar)) while they blur (the noise), and
# the total spread stays about the same. vp_linear has merged the clusters into a ring by
# t = 0.25 and lost the structure by t = 0.4; cosine erases it slowly and evenly;
# log_snr_linear barely touches the data until t = 0.4 and then erases it quickly (its
# log-SNR is linear, so alpha_bar = sigmoid(lambda) is a steep sigmoid in t). The last column is
# indistinguishable from N(0, I): that is the prior the samplers of chapter 3 start from,
# and the printed KL(q(x_1 | x_0) || N(0, I)) says how much information is left there.
# ---------------------------------------------------------------------------------------------

from __future__ import annotations

from _common import Chapter, np, plt

from npdiff import forward, gaussian
from npdiff.data import toy2d
from npdiff.schedule import cosine, ddpm_linear, log_snr_linear, vp_linear

ch = Chapter(1, "the forward process")
data = toy2d.load("8gaussians")
schedules = [vp_linear(), cosine(), log_snr_linear()]
n = ch.pick(1500, 4000)
x0 = data.sample(n, ch.rng(0))  # (n, 2)

# -- the marginal q(x_t | x_0): Monte Carlo moments against the closed form ---------------------
ch.section("q(x_t | x_0) by sampling against its closed form")
m0, v0 = x0.mean(axis=0), x0.var(axis=0)  # (2,) the data's own moments
for s in schedules:
    t = 0.3
    eps = ch.rng(1).standard_normal(x0.shape)  # (n, 2)
    xt = forward.q_sample(x0, t, eps, s)  # Eq. (1)
    ab = float(s.alpha_bar(t))
    # E[x_t] = sqrt(ab) E[x_0] and Var[x_t] = ab Var[x_0] + (1 - ab), both on the same x_0
    mean_err = np.abs(xt.mean(axis=0) - np.sqrt(ab) * m0).max()
    var_ratio = (xt.var(axis=0) / (ab * v0 + 1.0 - ab)).max()
    ch.show(f"{s.name}: alpha_bar(0.3)", ab)
    ch.show(f"{s.name}: max |mean(x_t) - sqrt(ab) mean(x_0)|", mean_err, f"Monte Carlo error ~ {1 / np.sqrt(n):.2g}")
    ch.show(f"{s.name}: max var(x_t) / (ab var(x_0) + 1 - ab)", var_ratio, "1 up to Monte Carlo error")

# -- composition: q(x_s|x_0) followed by q(x_t|x_s) is q(x_t|x_0) -----------------------------
ch.section("composing q(x_s | x_0) and q(x_t | x_s)")
s_sched, s_time, t_time = vp_linear(), 0.2, 0.5
rng = ch.rng(2)
x_s = forward.q_sample(x0, s_time, rng.standard_normal(x0.shape), s_sched)
mean_ts, var_ts = forward.q_xt_xs(x_s, s_time, t_time, s_sched)  # (n, 2), (n, 1)
x_t_two_steps = mean_ts + np.sqrt(var_ts) * rng.standard_normal(x0.shape)
# the residual x_t - sqrt(ab_t) x_0 must be N(0, (1 - ab_t) I) whatever path produced it
resid = (x_t_two_steps - np.sqrt(s_sched.alpha_bar(t_time)) * x0) / s_sched.sigma(t_time)
ch.show("two-step residual / sigma(t): mean", resid.mean(), "0 up to Monte Carlo error")
ch.show("two-step residual / sigma(t): variance", resid.var(), "1 up to Monte Carlo error")
ch.show("two-step residual / sigma(t): correlation of the 2 coordinates", np.corrcoef(resid.T)[0, 1],
        "0: the noise is isotropic")

# -- how much is left at the end, and where each schedule spends its time -----------------------
ch.section("the end of the process and the schedules' shapes")
for s in schedules:
    t_end = s.t_max
    ab_end = float(s.alpha_bar(t_end))
    # KL(q(x_T|x_0) || N(0, I)) per point, averaged over the data (the prior term L_T of chapter 5)
    kl = gaussian.kl_normal_diag(np.sqrt(ab_end) * x0, np.log1p(-ab_end), 0.0, 0.0).sum(axis=1).mean()
    tt = np.linspace(1e-6, s.t_max, 100001)
    t_snr1 = tt[np.argmax(s.log_snr(tt) < 0)]  # log SNR is decreasing: the first time it drops below 0
    ch.show(f"{s.name}: t_max", t_end)
    ch.show(f"{s.name}: alpha_bar(t_max)", ab_end)
    ch.show(f"{s.name}: KL(q(x_tmax|x_0) || N(0,I)) in nats", kl, "information left at the end")
    ch.show(f"{s.name}: t where SNR = 1", t_snr1)

# -- the discrete chain against the classic DDPM table -------------------------------------------
ch.section("vp_linear discretized at T = 1000 against DDPM's linspace(1e-4, 0.02) table")
chain, ddpm = vp_linear().discretize(1000), ddpm_linear(1000)
ch.show("alpha_bar[0] (clean data)", chain.alpha_bar[0])
ch.show("max |beta_i - beta_i(DDPM)|", np.abs(chain.betas[1:] - ddpm.betas[1:]).max(), "close, not equal")
ch.show("max |alpha_bar_i - alpha_bar_i(DDPM)|", np.abs(chain.alpha_bar - ddpm.alpha_bar).max())
ch.show("alpha_bar[T] vp_linear", chain.alpha_bar[-1])
ch.show("alpha_bar[T] DDPM table", ddpm.alpha_bar[-1])

# -- figure 1: the data dissolving, over the exact density of q_t --------------------------------
times = [0.0, 0.1, 0.25, 0.4, 0.6, 1.0]
lim = 4.0
grid = np.linspace(-lim, lim, ch.pick(90, 160))  # (G,)
gx, gy = np.meshgrid(grid, grid)
pts = np.stack([gx.ravel(), gy.ravel()], axis=1)  # (G^2, 2)
fig, axes = plt.subplots(len(schedules), len(times), figsize=(2.3 * len(times), 2.4 * len(schedules)))
eps = ch.rng(3).standard_normal(x0.shape)  # one noise draw for every panel: only the schedule differs
shown = x0[:800]
for r, s in enumerate(schedules):
    oracle = data.oracle(s)  # the exact mixture q_t for this schedule
    for c, t in enumerate(times):
        t = min(t, s.t_max)
        ax = axes[r, c]
        dens = np.exp(oracle.log_prob(pts, t)).reshape(gx.shape)  # a Gaussian mixture: defined at t = 0 too
        ax.imshow(dens, extent=(-lim, lim, -lim, lim), origin="lower", cmap="Blues", vmin=0)
        xt = forward.q_sample(shown, t, eps[: len(shown)], s)
        ax.scatter(xt[:, 0], xt[:, 1], s=1.5, c="k", alpha=0.5, linewidths=0)
        ax.set(xlim=(-lim, lim), ylim=(-lim, lim), xticks=[], yticks=[], aspect="equal")
        if r == 0:
            ax.set_title(f"t = {t:g}", fontsize=10)
        ax.text(0.03, 0.03, rf"$\bar\alpha$={float(s.alpha_bar(t)):.2g}", transform=ax.transAxes, fontsize=7,
                color="0.2")
    axes[r, 0].set_ylabel(s.name, fontsize=10)
fig.suptitle("8gaussians dissolving into noise: samples of x_t over the exact density q_t", fontsize=11)
fig.tight_layout()
ch.save(fig, "dissolving")

# -- figure 2: the schedules -----------------------------------------------------------------------
fig, axes = plt.subplots(1, 4, figsize=(16, 3.6))
for s in schedules:
    t = np.linspace(0.0, s.t_max, 1000)
    axes[0].plot(t, s.alpha_bar(t), label=s.name)
    axes[1].plot(t[1:], s.log_snr(t[1:]), label=s.name)
    axes[2].semilogy(t, s.beta(t), label=s.name)
t_idx = np.arange(1001)
# index 0 is clean data (beta_0 = 0, not drawn on a log axis)
axes[3].semilogy(t_idx[1:], chain.betas[1:], color="C0", label="vp_linear discretized, T=1000")
axes[3].semilogy(t_idx[1:], ddpm.betas[1:], "k--", lw=1, label="DDPM table linspace(1e-4, 0.02)")
axes[3].semilogy(t_idx[1:], cosine().discretize(1000).betas[1:], color="C1", label="cosine discretized (clip 0.999)")
axes[3].semilogy(t_idx[1:], log_snr_linear().discretize(1000).betas[1:], color="C2", label="log_snr_linear discretized")
titles = [r"$\bar\alpha(t)$: fraction of signal", r"$\lambda(t)=\log\,$SNR$(t)$", r"$\beta(t)=-\frac{d}{dt}\log\bar\alpha$",
          r"discrete chain $\beta_i$, $i = 1..T$"]
for ax, title in zip(axes, titles):
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.set_xlabel("t" if ax is not axes[3] else "step i")
axes[1].axhline(0.0, color="0.5", lw=0.8)
axes[0].legend()
axes[3].legend(fontsize=7)
axes[3].set_xlim(1, 1000)
fig.tight_layout()
ch.save(fig, "schedules")
ch.done()
