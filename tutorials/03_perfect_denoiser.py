r"""
Chapter 3: the perfect denoiser, and what sampling with it looks like
=====================================================================

Before any network is trained, this chapter asks what a denoiser should learn, computes
the answer exactly for toy data sets whose noised densities are known in closed form,
and runs the samplers with it: every difference between their samples and the data is
then the sampler's own error. It ends with the catch: the perfect denoiser of a finite
training set can only reproduce that set. From the repository root (``--quick`` takes
seconds; figures go to ``--out``):

Run::

    python tutorials/03_perfect_denoiser.py [--quick] [--out DIR]
"""

from _common import (
    Chapter,
    central_difference,
    draw_density,
    max_relative_error,
    np,
    plt,
    save_animation,
    scatter_panel,
    show_memorization,
    show_sampler_quality,
)
from matplotlib.colors import PowerNorm

from npdiff import metrics
from npdiff.analytic import EmpiricalData
from npdiff.data import toy2d
from npdiff.sample import ddim_sample, ddpm_sample, ode_sample, sde_sample

ch = Chapter(3, "the perfect denoiser")

# %%
# 1. What a denoiser should learn
# -------------------------------
#
# Training (chapter 4) shows a network
# :math:`x_t = \sqrt{\bar\alpha_t}\, x_0 + \sigma_t \epsilon` and asks it for
# :math:`\epsilon`, minimizing
# :math:`\mathbb E\, \|\hat\epsilon(x_t, t) - \epsilon\|^2`. Whatever the network, the
# best possible answer at each :math:`(x, t)` is the conditional mean (a squared error
# is minimized by the mean),
#
# .. math::
#
#    \epsilon^*(x, t) = \mathbb E[\epsilon \mid x_t = x].
#
# :cite:t:`vincent2011` showed that this is the score in disguise. Differentiate the
# marginal
# :math:`q_t(x) = \mathbb E_{x_0} \mathcal N(x; \sqrt{\bar\alpha_t} x_0, \sigma_t^2 I)`
# under the integral:
#
# .. math::
#
#    \nabla \log q_t(x)
#    = \mathbb E\Big[-\frac{x - \sqrt{\bar\alpha_t}\, x_0}{\sigma_t^2}
#    \,\Big|\, x_t = x\Big]
#    = -\frac{\mathbb E[\epsilon \mid x_t = x]}{\sigma_t},
#    \qquad\text{so}\qquad \epsilon^*(x, t) = -\sigma_t \nabla \log q_t(x),
#
# and by the same token the best guess of the clean point is Tweedie's formula
# :cite:p:`efron2011tweedie`,
#
# .. math::
#
#    \mathbb E[x_0 \mid x_t = x]
#    = \frac{x + \sigma_t^2 \nabla \log q_t(x)}{\sqrt{\bar\alpha_t}}.
#
# No network can beat :math:`\epsilon^*`: its loss is the floor. Expanding the square
# and using :math:`\mathbb E[\epsilon \cdot \epsilon^*] = \mathbb E\|\epsilon^*\|^2`
# (condition on :math:`x_t` first),
#
# .. math::
#
#    \mathbb E\, \|\epsilon - \epsilon^*\|^2 = D - \mathbb E\, \|\epsilon^*\|^2 .
#
# The code estimates both sides by Monte Carlo on 8gaussians, and shows that four other
# predictors, each compared on the same draws of :math:`(x_0, t, \epsilon)`, lose more.
# Chapter 4 draws this floor under the training curve.

ch.section("1. the exact denoiser's loss is the floor D - E|eps*|^2")
data = toy2d.load("8gaussians")
oracle = data.oracle()  # exact eps*(x, t) for vp_linear
rng = ch.rng(0)
n = ch.pick(4000, 40_000)
x0 = data.sample(n, rng)  # (n, 2)
t = rng.uniform(1e-3, 1.0, n)  # (n,) the training distribution of times (chapter 4)
eps = rng.standard_normal(x0.shape)
ab = oracle.schedule.alpha_bar(t)[:, None]  # (n, 1)
xt = np.sqrt(ab) * x0 + np.sqrt(1.0 - ab) * eps
eps_star = oracle.eps(xt, t)  # (n, 2)
loss = np.sum((eps - eps_star) ** 2, axis=1)  # |eps - eps*|^2
floor = 2 - np.sum(eps_star**2, axis=1)  # D - |eps*|^2, D = 2
ch.show("Monte Carlo loss of the oracle, E|eps - eps*|^2 / D", loss.mean() / 2,
        f"+- {loss.std() / np.sqrt(n) / 2:.2g}")
ch.show("floor (D - E|eps*|^2) / D", floor.mean() / 2,
        f"+- {floor.std() / np.sqrt(n) / 2:.2g}")
others = {"0.9 eps*": 0.9 * eps_star, "1.1 eps*": 1.1 * eps_star,
          "eps* + 0.1": eps_star + 0.1, "zero": np.zeros_like(eps_star)}
for name, pred in others.items():
    extra = np.mean(np.sum((eps - pred) ** 2, axis=1) - loss) / 2  # paired draws
    ch.show(f"extra loss of the predictor {name!r}", extra,
            "> 0: nothing beats the conditional mean")

# %%
# 2. Oracles
# ----------
#
# When the data distribution is a mixture of Gaussians, boxes or blurred circles,
# :math:`q_t` is a mixture of the same kind (each component convolved with the noise),
# so :math:`\log q_t`, its score, Tweedie's mean and even the divergence of the score
# are closed-form. npdiff's analytic oracles (``npdiff.analytic``) compute them and
# follow the same denoiser protocol as the trained network: ``eps(x, t)``,
# ``eps_and_divergence(x, t)``, ``schedule``. Seven of the eight toy sets have one
# (``toy2d.load(name).oracle()``); pinwheel does not. The code checks the oracle's score
# against a central difference of its own log-density.

ch.section("2. the oracle's score against its own log-density")
xs, ts = xt[:200], t[:200]
fd = np.stack([central_difference(lambda x: oracle.log_prob(x, ts), xs, e, 1e-5)
               for e in np.eye(2)], axis=1)  # (200, 2) d log q_t / dx
ch.show("max relative |score - finite difference of log q_t|",
        max_relative_error(oracle.score(xs, ts), fd))

# %%
# The figure shows the score fields: arrows of
# :math:`-\epsilon^* = \sigma_t \nabla \log q_t` over the exact density. Late in the
# process (large :math:`t`) :math:`q_t` is nearly :math:`\mathcal N(0, I)` and the
# arrows point at the origin; early on they point at the nearest piece of data, with a
# length that grows like the distance to it over :math:`\sigma_t`.

sets, times, lim = ["8gaussians", "checkerboard", "rings"], [0.02, 0.1, 0.3, 0.6], 4.2
g = np.linspace(-lim, lim, ch.pick(100, 200))
gx, gy = np.meshgrid(g, g)
pts = np.stack([gx.ravel(), gy.ravel()], 1)  # (G^2, 2)
q = np.linspace(-lim + 0.3, lim - 0.3, 17)
qx, qy = np.meshgrid(q, q)
tails = np.stack([qx.ravel(), qy.ravel()], 1)  # (17^2, 2) arrow tails
fig, axes = plt.subplots(3, 4, figsize=(12, 9))
for r, name in enumerate(sets):
    o = toy2d.load(name).oracle()
    for c, tt in enumerate(times):
        ax = axes[r, c]
        dens = np.exp(o.log_prob(pts, tt)).reshape(gx.shape)
        # density to the power 0.4: a linear scale would show only the densest piece
        draw_density(ax, dens, lim, cmap="Greys", norm=PowerNorm(0.4, vmin=0))
        v = -o.eps(tails, tt)  # sigma * score, (17^2, 2): points uphill
        length = np.linalg.norm(v, axis=1, keepdims=True)
        v = v / np.maximum(length, 1e-12) * np.minimum(length, 2.0)  # capped at 2
        ax.quiver(*tails.T, *v.T, np.minimum(length[:, 0], 2.0), cmap="autumn_r",
                  angles="xy", scale_units="xy", scale=4.0, width=0.006)
        if r == 0:
            sigma = float(o.schedule.sigma(tt))
            ax.set_title(f"t = {tt:g}, sigma = {sigma:.2f}", fontsize=10)
    axes[r, 0].set_ylabel(name)
fig.suptitle(r"exact $q_t$ (grey) and $-\epsilon^* = \sigma\nabla\log q_t$ "
             "(arrows, capped at 2)", fontsize=11)
fig.tight_layout()
ch.save(fig, "score_fields")

# %%
# 3. Four ways to run the process backwards
# -----------------------------------------
#
# With the exact :math:`\epsilon^*`, every sampler is exact up to its own
# discretization, which makes the oracles the ideal test bench (that is how npdiff's
# tests check the samplers). With :math:`\hat x_0` the clean point implied by the
# prediction:
#
# * DDPM, ancestral sampling (:cite:t:`ho2020ddpm`, Alg. 2): chapter 2's posterior with
#   the predicted :math:`x_0`,
#
#   .. math::
#
#      x_{t-1} \sim \mathcal N\big(\tilde\mu_t(x_t, \hat x_0),\ \Sigma_t\big);
#
# * DDIM (:cite:t:`song2021ddim`, Eq. 12): the same marginals from a deterministic
#   update, so far fewer steps will do,
#
#   .. math::
#
#      x_s = \sqrt{\bar\alpha_s}\, \hat x_0 + \sigma_s\, \hat\epsilon;
#
# * the probability-flow ODE (:cite:t:`song2021sde`, Eq. 13), a deterministic flow whose
#   marginals are exactly :math:`q_t`, solved by RK45,
#
#   .. math::
#
#      \frac{dx}{dt} = -\tfrac12 \beta(t) \big(x + \nabla \log q_t(x)\big);
#
# * the reverse-time SDE (:cite:t:`song2021sde`, Eq. 6), by Euler-Maruyama,
#
#   .. math::
#
#      dx = \big[-\tfrac12 \beta(t)\, x - \beta(t) \nabla \log q_t(x)\big]\, dt
#      + \sqrt{\beta(t)}\, d\bar w .
#
# The code compares the samples with fresh data. When a sampler is right, the mean true
# log-density of its samples estimates :math:`-H` (minus the entropy of the data), so
# :math:`\overline{\log p} + H` is 0 within its standard error; on the checkerboard,
# whose density is 0 off the squares, it counts the samples on the squares instead. And
# the energy distance (Székely and Rizzo, 2013) of two sets :math:`X, Y`,
#
# .. math::
#
#    \mathcal E = 2\, \mathbb E\|X - Y\| - \mathbb E\|X - X'\| - \mathbb E\|Y - Y'\|,
#
# is 0 when they come from one distribution; its estimate on two fresh data sets shows
# how small "zero" looks at this sample size.

ch.section("3. DDPM, DDIM, probability-flow ODE and reverse SDE with the exact eps*")
n_samp = ch.pick(1000, 4000)
samplers = {
    "DDPM": lambda o, r: ddpm_sample(o, n_samp, r, steps=ch.pick(200, 1000)),
    "DDIM": lambda o, r: ddim_sample(o, n_samp, r, steps=ch.pick(50, 250)),
    "ODE": lambda o, r: ode_sample(o, n_samp, r),
    "SDE": lambda o, r: sde_sample(o, n_samp, r, steps=ch.pick(200, 1000)),
}
rows = ["8gaussians", "checkerboard"]
fig, axes = plt.subplots(2, 5, figsize=(15, 6.8))  # per row: data, then 4 samplers
for r, name in enumerate(rows):
    d = toy2d.load(name)
    o = d.oracle()
    fresh, ref = d.sample(n_samp, ch.rng(10 + r)), d.sample(n_samp, ch.rng(20 + r))
    e_floor = metrics.energy_distance(fresh, ref)  # how small "zero" looks
    ch.show(f"{name}: energy distance, data vs data", e_floor, "noise floor")
    scatter_panel(axes[r, 0], fresh, "data", color="k")
    axes[r, 0].set_ylabel(name)
    for k, (label, run) in enumerate(samplers.items()):
        res = run(o, ch.rng(30 + 10 * r + k))
        note = show_sampler_quality(name, label, res, d, ref,
                                    count_support=name == "checkerboard")
        scatter_panel(axes[r, k + 1], res.x, f"{label}, {res.nfe} evals", f"C{k}", note)
fig.suptitle("sampling with the exact denoiser: every difference from the data is the "
             "sampler's own error", fontsize=11)
fig.tight_layout()
ch.save(fig, "samplers")

# %%
# 4. The perfect denoiser memorizes
# ---------------------------------
#
# Now take as "data" a finite training set of :math:`N` points :math:`p_1, \dots, p_N`,
# the empirical distribution. Its :math:`q_t` is a mixture of :math:`N` Gaussians, and
# Tweedie's formula gives the clean point as a softmax-weighted average of the training
# points,
#
# .. math::
#
#    \mathbb E[x_0 \mid x_t = x] = \sum_{i=1}^N w_i(x)\, p_i, \qquad
#    w_i(x) \propto
#    \exp\Big(-\frac{\|x - \sqrt{\bar\alpha_t}\, p_i\|^2}{2 \sigma_t^2}\Big).
#
# As :math:`t \to 0` the softmax becomes an argmax: the optimal denoiser snaps every
# point to its nearest training example. A sampler driven by it can only reproduce the
# training set; it never produces anything new (:cite:t:`karras2022edm` make the same
# remark). The code runs DDPM and the ODE with the empirical oracle of 40 points of
# moons and measures each sample's distance to the nearest training point, against the
# population oracle's samples and fresh data.

ch.section("4. the optimal denoiser of N training points reproduces them")
moons, N = toy2d.load("moons"), 40
train_pts = moons.sample(N, ch.rng(40))  # (N, 2)
emp = EmpiricalData(train_pts)  # the optimal denoiser of these N points
n_mem = ch.pick(500, 2000)
res_ddpm = ddpm_sample(emp, n_mem, ch.rng(41), steps=ch.pick(200, 1000))
res_ode = ode_sample(emp, n_mem, ch.rng(42))
fresh = moons.sample(n_mem, ch.rng(43))
true_samples = ode_sample(moons.oracle(), n_mem, ch.rng(44)).x  # population oracle


def nearest(x):
    r"""Distance from each row of x (n, 2) to the nearest training point, its index."""
    d2 = np.sum((x[:, None, :] - train_pts[None, :, :]) ** 2, axis=-1)  # (n, N)
    return np.sqrt(d2.min(axis=1)), d2.argmin(axis=1)


dist = {}
samples = {"empirical oracle, DDPM": res_ddpm.x, "empirical oracle, ODE": res_ode.x,
           "true oracle, ODE": true_samples, "fresh data": fresh}
for label, x in samples.items():
    dist[label], idx = nearest(x)
    show_memorization(label, dist[label], idx, N)

# %%
# The figure shows it: the ODE's samples land on training points to rounding error. How
# sharply the softmax snaps depends on the noise level of the last step: the ODE stops
# at :math:`\sigma = 0.01`, DDPM at :math:`\sigma = 0.01` with 1000 steps but at 0.03
# with the quick run's 200, where some samples still average two neighbouring training
# points (the DDPM curve of the right panel): closer to the training set than fresh
# data, but no longer exact copies.
#
# So a network that minimized the training loss perfectly on a finite data set would be
# useless as a generative model. Real models generalize because they are *not* perfect:
# a small network trained for finite time learns a smoother score than the empirical
# one. Chapter 4 trains such a network on fresh samples of the toy distribution at each
# step.

fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
ax = axes[0]
ax.scatter(fresh[:, 0], fresh[:, 1], s=3, color="0.75", linewidths=0,
           label="fresh data (the population)")
ax.scatter(res_ddpm.x[:, 0], res_ddpm.x[:, 1], s=30, facecolors="none", edgecolors="C3",
           linewidths=0.8, label=f"{n_mem} DDPM samples, empirical oracle")
ax.scatter(train_pts[:, 0], train_pts[:, 1], s=8, color="k", marker="x", linewidths=1,
           label=f"the N = {N} training points")
ax.set(aspect="equal", title="every sample lands on a training point")
ax.legend(fontsize=8, loc="upper right")
ax = axes[1]
for label, color, ls in zip(dist, ["C3", "C1", "C0", "0.5"], ["-", "--", "-", ":"]):
    d = np.sort(np.maximum(dist[label], 1e-17))  # exact hits (0) drawn at 1e-17
    share = np.arange(1, d.size + 1) / d.size
    ax.step(d, share, where="post", color=color, ls=ls, lw=1.6, label=label)
ax.set(xscale="log", xlim=(1e-17, 10), ylim=(0, 1.02),
       xlabel="distance to the nearest training point",
       ylabel="fraction of samples within that distance",
       title="the empirical oracle's samples are copies")
ax.grid(alpha=0.3)
ax.legend(fontsize=8, loc="center left")
fig.tight_layout()
ch.save(fig, "memorization")

# %%
# 5. The probability-flow ODE, animated
# -------------------------------------
#
# The animation follows the probability-flow ODE of the rings' exact denoiser from noise
# to data. Its frames are spaced evenly in the log-SNR
# :math:`\lambda(t) = \log\big(\bar\alpha_t / (1 - \bar\alpha_t)\big)` from :math:`-4`
# (below it :math:`q_t` is a featureless blob) to the end, since that is where the
# action is (chapter 1): frames uniform in :math:`t` would spend most of the film on the
# blob. A few points leave a trail.

ch.section("5. the probability-flow ODE, animated")
rings = toy2d.load("rings")
o = rings.oracle()
n_anim = ch.pick(300, 2000)
steps = ch.pick(200, 600)  # fine steps: the frames are picked among the recorded states
flow = ode_sample(o, n_anim, ch.rng(50), method="heun", steps=steps, record=True)
ch.show("flow: number of recorded states", flow.trajectory.shape[0])  # steps + 1
mean, se = metrics.mean_log_density(flow.x, rings)
ch.show("flow: mean log p(samples) + H", mean + rings.entropy,
        f"rings, 0 within ~{3 * se:.2g} plus the Heun error")
lam = o.schedule.log_snr(flow.times)  # increasing along the trajectory (noise -> data)
wanted = np.linspace(max(lam[0], -4.0), lam[-1], ch.pick(14, 70))
frames = np.searchsorted(lam, wanted).clip(0, len(lam) - 1)
frames = np.unique(np.concatenate([[0], frames]))
frames = np.concatenate([frames, np.full(ch.pick(3, 15), frames[-1])])  # hold the end
anim = save_animation(ch, flow, frames, "flow.gif", "probability-flow ODE",
                      dot_size=ch.pick(6, 3), dpi=ch.pick(60, 90))
ch.done()
