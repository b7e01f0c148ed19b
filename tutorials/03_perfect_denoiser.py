r"""Chapter 3: the perfect denoiser, and what sampling with it looks like.

Run:  python tutorials/03_perfect_denoiser.py [--quick] [--out DIR]
Writes: 03_score_fields.png (exact noised densities and their score fields),
03_samplers.png (DDPM, DDIM, probability-flow ODE and reverse SDE with the exact denoiser),
03_memorization.png (the optimal denoiser of a finite training set reproduces it) and
03_flow.gif (points flowing from noise to data along the probability-flow ODE).
"""

# ---------------------------------------------------------------------------------------------
# 1. What a denoiser should learn
#
# Training (chapter 4) shows a network x_t = sqrt(a) x_0 + sigma eps and asks it for eps,
# minimizing E |eps_hat(x_t, t) - eps|^2. Whatever the network, the best possible answer at
# each (x_t, t) is the conditional mean (a squared error is minimized by the mean):
#
#     eps*(x, t) = E[eps | x_t = x].
#
# Vincent (2011) showed this is the score in disguise. Differentiate the marginal
# q_t(x) = E_{x_0}[ N(x; sqrt(a) x_0, sigma^2 I) ] under the integral:
#
#     grad log q_t(x) = E[ -(x - sqrt(a) x_0) / sigma^2 | x_t = x ] = -E[eps | x_t = x] / sigma,
#
# so eps*(x, t) = -sigma grad log q_t(x), and by the same token the best guess of the clean
# point is Tweedie's formula, E[x_0 | x_t = x] = (x + sigma^2 grad log q_t(x)) / sqrt(a)
# (Efron 2011). No network can beat eps*: its loss is the floor, and the floor is
# D - E|eps*|^2 (expand E|eps - eps*|^2 and use E[eps . eps*] = E|eps*|^2), which the
# chapter checks by Monte Carlo. Chapter 4 draws that floor under the training curve.
#
# 2. Oracles
#
# When the data distribution is a mixture of Gaussians, boxes or blurred circles, q_t is a
# mixture of the same kind (each component convolved with the noise), so log q_t, its
# score, Tweedie's mean and even the divergence of the score are closed-form. npdiff's
# analytic oracles (npdiff.analytic) compute them and follow the same denoiser protocol as
# the trained network: eps(x, t), eps_and_divergence(x, t), schedule. Seven of the eight
# toy sets have one (toy2d.load(name).oracle()); pinwheel does not.
#
# The first figure shows the score fields: arrows of -eps* = sigma grad log q_t over the
# exact density. Late in the process (large t) q_t is nearly N(0, I) and the arrows point at
# the origin; early on they point at the nearest piece of data, with a length that grows
# like the distance to it over sigma.
#
# 3. Four ways to run the process backwards
#
# With the exact eps, every sampler is exact up to its own discretization, which makes the
# oracles the ideal test bench (that is how npdiff's tests check the samplers):
#
#   DDPM  ancestral sampling: x_{t-1} ~ N(mu_tilde(x_t, x0_hat), Sigma_t), chapter 2's
#         posterior with the predicted x_0 (Ho et al. 2020, Alg. 2);
#   DDIM  the same marginals from a deterministic update (Song, Meng & Ermon 2021, Eq. 12),
#         so far fewer steps will do;
#   ODE   the probability-flow ODE dx/dt = -beta/2 (x + grad log q_t(x)) (Song et al. 2021,
#         Eq. 13), a deterministic flow whose marginals are exactly q_t; solved by RK45;
#   SDE   the reverse-time SDE dx = [-beta/2 x - beta grad log q_t] dt + sqrt(beta) dw
#         (Song et al. 2021, Eq. 6), by Euler-Maruyama.
#
# The chapter compares the samples with fresh data: the mean true log-density of the samples
# estimates -H (minus the entropy) when the sampler is right, and the energy distance
# (Szekely & Rizzo 2013) is ~0 when two sets come from one distribution. The animation
# 03_flow.gif follows the probability-flow ODE from noise to data; its frames are spaced
# evenly in log-SNR, since that is where the action is (chapter 1).
#
# 4. The perfect denoiser memorizes
#
# Now take as "data" a finite training set of N points, the empirical distribution. Its q_t
# is a mixture of N Gaussians, and Tweedie's formula gives E[x_0 | x_t] as a softmax-weighted
# average of the training points, with weights exp(-|x - sqrt(a) p_i|^2 / 2 sigma^2). As
# t -> 0 the softmax becomes an argmax: the optimal denoiser snaps every point to its
# nearest training example. A sampler driven by it can only reproduce the training set; it
# never produces anything new (Karras et al. 2022 make the same remark). The figure
# 03_memorization.png shows it: the ODE's samples land on training points to rounding error.
# How sharply the softmax snaps depends on the noise level of the last step: the ODE stops at
# sigma = 0.01, DDPM at sigma = 0.01 with 1000 steps but at 0.03 with the quick run's 200,
# where some samples still average two neighbouring training points (the DDPM curve of the
# right panel): closer to the training set than fresh data, but no longer exact copies.
#
# So a network that minimized the training loss perfectly on a finite data set would be
# useless as a generative model. Real models generalize because they are *not* perfect: a
# small network trained for finite time learns a smoother score than the empirical one.
# Chapter 4 trains such a network on fresh samples of the toy distribution each step.
# ---------------------------------------------------------------------------------------------

from __future__ import annotations

from _common import Chapter, np, plt
from matplotlib.animation import FuncAnimation, PillowWriter
from matplotlib.colors import PowerNorm

from npdiff import metrics
from npdiff.analytic import EmpiricalData
from npdiff.data import toy2d
from npdiff.sample import ddim_sample, ddpm_sample, ode_sample, sde_sample

ch = Chapter(3, "the perfect denoiser")

# -- 1. the oracle's loss is the floor: Monte Carlo against D - E|eps*|^2 ----------------------------
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
loss_terms = np.sum((eps - eps_star) ** 2, axis=1)
floor_terms = 2 - np.sum(eps_star**2, axis=1)
ch.show("Monte Carlo loss of the oracle, E|eps - eps*|^2 / D", loss_terms.mean() / 2,
        f"+- {loss_terms.std() / np.sqrt(n) / 2:.2g}")
ch.show("floor (D - E|eps*|^2) / D", floor_terms.mean() / 2, f"+- {floor_terms.std() / np.sqrt(n) / 2:.2g}")
for name, pred in [("0.9 eps*", 0.9 * eps_star), ("1.1 eps*", 1.1 * eps_star), ("eps* + 0.1", eps_star + 0.1),
                   ("zero", np.zeros_like(eps_star))]:
    worse = np.mean(np.sum((eps - pred) ** 2, axis=1) - loss_terms) / 2  # paired: same (x_0, t, eps)
    ch.show(f"extra loss of the predictor {name!r}", worse, "> 0: nothing beats the conditional mean")

# the oracle's score against a finite difference of its own log-density (consistency of the closed forms)
h = 1e-5
xs, ts = xt[:200], t[:200]
fd = np.stack([(oracle.log_prob(xs + h * e, ts) - oracle.log_prob(xs - h * e, ts)) / (2 * h) for e in np.eye(2)], 1)
ch.show("max relative |score - finite difference of log q_t|", np.max(np.abs(oracle.score(xs, ts) - fd) / (1 + np.abs(fd))))

# -- figure 1: score fields over the exact densities ---------------------------------------------------
sets = ["8gaussians", "checkerboard", "rings"]
times = [0.02, 0.1, 0.3, 0.6]
lim = 4.2
g = np.linspace(-lim, lim, ch.pick(100, 200))
gx, gy = np.meshgrid(g, g)
pts = np.stack([gx.ravel(), gy.ravel()], 1)  # (G^2, 2)
q = np.linspace(-lim + 0.3, lim - 0.3, 17)
qx, qy = np.meshgrid(q, q)
qpts = np.stack([qx.ravel(), qy.ravel()], 1)  # (17^2, 2) arrow tails
fig, axes = plt.subplots(len(sets), len(times), figsize=(3.0 * len(times), 3.0 * len(sets)))
for r, name in enumerate(sets):
    o = toy2d.load(name).oracle()
    for c, tt in enumerate(times):
        ax = axes[r, c]
        logp = o.log_prob(pts, tt).reshape(gx.shape)
        # density to the power 0.4: a linear scale would show only the densest piece (the inner ring)
        ax.imshow(np.exp(logp), extent=(-lim, lim, -lim, lim), origin="lower", cmap="Greys", norm=PowerNorm(0.4, vmin=0))
        v = -o.eps(qpts, tt)  # sigma * score, (17^2, 2): points uphill
        length = np.linalg.norm(v, axis=1, keepdims=True)
        v = v / np.maximum(length, 1e-12) * np.minimum(length, 2.0)  # cap the longest arrows, keep direction
        ax.quiver(qpts[:, 0], qpts[:, 1], v[:, 0], v[:, 1], np.minimum(length[:, 0], 2.0), cmap="autumn_r",
                  angles="xy", scale_units="xy", scale=4.0, width=0.006)
        ax.set(xlim=(-lim, lim), ylim=(-lim, lim), xticks=[], yticks=[], aspect="equal")
        if r == 0:
            ax.set_title(f"t = {tt:g}, sigma = {float(o.schedule.sigma(tt)):.2f}", fontsize=10)
    axes[r, 0].set_ylabel(name)
fig.suptitle(r"exact $q_t$ (grey) and $-\epsilon^* = \sigma\nabla\log q_t$ (arrows, capped at 2)", fontsize=11)
fig.tight_layout()
ch.save(fig, "score_fields")

# -- 3. four samplers with the exact denoiser ----------------------------------------------------------
ch.section("3. DDPM, DDIM, probability-flow ODE and reverse SDE with the exact denoiser")
n_samp = ch.pick(1000, 4000)
samplers = [
    ("DDPM", lambda o, r: ddpm_sample(o, n_samp, r, steps=ch.pick(200, 1000))),
    ("DDIM", lambda o, r: ddim_sample(o, n_samp, r, steps=ch.pick(50, 250))),
    ("ODE", lambda o, r: ode_sample(o, n_samp, r)),
    ("SDE", lambda o, r: sde_sample(o, n_samp, r, steps=ch.pick(200, 1000))),
]
rows = ["8gaussians", "checkerboard"]
fig, axes = plt.subplots(len(rows), len(samplers) + 1, figsize=(3.0 * (len(samplers) + 1), 3.4 * len(rows)))
for r, name in enumerate(rows):
    d = toy2d.load(name)
    o = d.oracle()
    fresh = d.sample(n_samp, ch.rng(10 + r))
    ref = d.sample(n_samp, ch.rng(20 + r))
    # the energy distance of two fresh data sets: how small "zero" looks at this sample size
    ch.show(f"{name}: energy distance, data vs data", metrics.energy_distance(fresh, ref), "noise floor")
    panels = [("data", fresh, "")]
    for k, (label, run) in enumerate(samplers):
        res = run(o, ch.rng(30 + 10 * r + k))
        e = metrics.energy_distance(res.x, ref)
        ch.show(f"{name}: {label} energy distance to data", e, f"{res.nfe} evaluations")
        if name == "checkerboard":  # its density is 0 off the squares: count the samples on the board
            on = np.mean(np.isfinite(d.log_prob(res.x)))
            ch.show(f"{name}: {label} fraction of samples on the squares", on, "1 for data")
            note = f"on squares {on:.1%}"
        else:
            mean, se = metrics.mean_log_density(res.x, d)
            ch.show(f"{name}: {label} mean log p(samples) + H", mean + d.entropy, f"0 within ~{3 * se:.2g}; H = {d.entropy:.4f}")
            note = f"mean log p + H = {mean + d.entropy:+.3f}"
        panels.append((f"{label}, {res.nfe} evals", res.x, note))
    for c, (title, x, note) in enumerate(panels):
        ax = axes[r, c]
        ax.scatter(x[:, 0], x[:, 1], s=1.0, alpha=0.5, c="k" if c == 0 else f"C{c - 1}", linewidths=0)
        ax.set(xlim=(-4.2, 4.2), ylim=(-4.2, 4.2), xticks=[], yticks=[], aspect="equal")
        ax.set_title(title, fontsize=10)
        if note:
            ax.text(0.03, 0.03, note, transform=ax.transAxes, fontsize=7.5)
    axes[r, 0].set_ylabel(name)
fig.suptitle("sampling with the exact denoiser: every difference from the data is the sampler's own error", fontsize=11)
fig.tight_layout()
ch.save(fig, "samplers")

# -- 4. the empirical oracle memorizes its training set ------------------------------------------------
ch.section("4. the optimal denoiser of N training points reproduces them")
moons = toy2d.load("moons")
N = 40
train_pts = moons.sample(N, ch.rng(40))  # (N, 2)
emp = EmpiricalData(train_pts)
n_mem = ch.pick(500, 2000)
res_ddpm = ddpm_sample(emp, n_mem, ch.rng(41), steps=ch.pick(200, 1000))  # even the stochastic sampler
res_ode = ode_sample(emp, n_mem, ch.rng(42))
fresh = moons.sample(n_mem, ch.rng(43))
true_samples = ode_sample(moons.oracle(), n_mem, ch.rng(44)).x  # the population oracle, for contrast


def nearest(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    d2 = np.sum((x[:, None, :] - train_pts[None, :, :]) ** 2, axis=-1)  # (n, N)
    return np.sqrt(d2.min(axis=1)), d2.argmin(axis=1)


dist = {}
for label, x in [("empirical oracle, DDPM", res_ddpm.x), ("empirical oracle, ODE", res_ode.x),
                 ("true oracle, ODE", true_samples), ("fresh data", fresh)]:
    dist[label], idx = nearest(x)
    ch.show(f"{label}: median distance to the nearest training point", np.median(dist[label]))
    ch.show(f"{label}: fraction within 1e-3 of a training point", np.mean(dist[label] < 1e-3))
    ch.show(f"{label}: distinct training points reached", np.unique(idx[dist[label] < 1e-3]).size, f"of N = {N}")

fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
ax = axes[0]
ax.scatter(fresh[:, 0], fresh[:, 1], s=3, color="0.75", linewidths=0, label="fresh data (the population)")
ax.scatter(res_ddpm.x[:, 0], res_ddpm.x[:, 1], s=30, facecolors="none",
           edgecolors="C3", linewidths=0.8, label=f"{n_mem} DDPM samples, empirical oracle")
ax.scatter(train_pts[:, 0], train_pts[:, 1], s=8, color="k", marker="x", linewidths=1, label=f"the N = {N} training points")
ax.set(aspect="equal", title="every sample lands on a training point")
ax.legend(fontsize=8, loc="upper right")
ax = axes[1]
for label, color, ls in zip(dist, ["C3", "C1", "C0", "0.5"], ["-", "--", "-", ":"]):
    d = np.sort(np.maximum(dist[label], 1e-17))  # exact hits (distance 0) drawn at 1e-17
    ax.step(d, np.arange(1, d.size + 1) / d.size, where="post", color=color, ls=ls, lw=1.6, label=label)
ax.set(xscale="log", xlim=(1e-17, 10), ylim=(0, 1.02), xlabel="distance to the nearest training point",
       ylabel="fraction of samples within that distance", title="the empirical oracle's samples are copies")
ax.grid(alpha=0.3)
ax.legend(fontsize=8, loc="center left")
fig.tight_layout()
ch.save(fig, "memorization")

# -- the animation: the probability-flow ODE from noise to data ---------------------------------------
ch.section("the probability-flow ODE, animated")
rings = toy2d.load("rings")
o = rings.oracle()
n_anim = ch.pick(300, 2000)
steps = ch.pick(200, 600)  # fine steps: the frames are picked among the recorded states
flow = ode_sample(o, n_anim, ch.rng(50), method="heun", steps=steps, record=True)  # trajectory (steps + 1, n, 2)
ch.show("flow: number of recorded states", flow.trajectory.shape[0])
mean, se = metrics.mean_log_density(flow.x, rings)
ch.show("flow: mean log p(samples) + H", mean + rings.entropy, f"rings, 0 within ~{3 * se:.2g} plus the Heun error")
# frames evenly spaced in log-SNR from -4 (below it q_t is a featureless blob) to the end: uniform in t
# would spend most frames on that blob
lam = o.schedule.log_snr(flow.times)  # increasing along the trajectory (noise -> data)
wanted = np.linspace(max(lam[0], -4.0), lam[-1], ch.pick(14, 70))
frames = np.unique(np.concatenate([[0], np.searchsorted(lam, wanted).clip(0, len(lam) - 1)]))
frames = np.concatenate([frames, np.full(ch.pick(3, 15), frames[-1])])  # hold the last frame a moment
fig, ax = plt.subplots(figsize=(4.2, 4.2))
trail_ids = np.arange(min(12, n_anim))
dots = ax.scatter(flow.trajectory[0, :, 0], flow.trajectory[0, :, 1], s=ch.pick(6, 3), c="k", alpha=0.6, linewidths=0)
trails = [ax.plot([], [], lw=0.8, color="C3", alpha=0.8)[0] for _ in trail_ids]
title = ax.set_title("probability-flow ODE, t = 1.000", fontsize=10)  # a placeholder for tight_layout
ax.set(xlim=(-4, 4), ylim=(-4, 4), xticks=[], yticks=[], aspect="equal")
fig.tight_layout()


def draw(k: int) -> list:
    f = frames[k]
    dots.set_offsets(flow.trajectory[f])
    for line, i in zip(trails, trail_ids):
        line.set_data(flow.trajectory[: f + 1, i, 0], flow.trajectory[: f + 1, i, 1])
    title.set_text(f"probability-flow ODE, t = {flow.times[f]:.3f}")
    return [dots, *trails, title]


anim = FuncAnimation(fig, draw, frames=len(frames), blit=False)
gif = ch.path("flow.gif")
anim.save(gif, writer=PillowWriter(fps=10), dpi=ch.pick(60, 90))
plt.close(fig)
print(f"animation: {gif}")
ch.done()
