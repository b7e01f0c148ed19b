r"""Chapter 2: closed-form posteriors and the rest of the Gaussian math, checked on screen.

Run:  python tutorials/02_posteriors.py [--quick] [--out DIR]
Writes: 02_posterior.png (Bayes' rule in one dimension, the posterior as a regression of the
forward process run backwards, the two reverse variances, the discretized decoder).
"""

# ---------------------------------------------------------------------------------------------
# Chapter 1 ran the process forwards. Sampling runs it backwards, one step s < t at a time,
# and the step we would like to take is q(x_s | x_t). We do not know it (it depends on the
# whole data distribution), but if we also knew where the chain started, x_0, the reverse
# step would be a plain Gaussian, and that Gaussian is the backbone of DDPM's loss, its
# sampler and its likelihood bound. This chapter derives it and checks it, together with
# the three other pieces of Gaussian algebra the library leans on.
#
# 1. The posterior q(x_s | x_t, x_0)
#
# Write a_s = alpha_bar(s), a_t = alpha_bar(t) and a_ts = a_t / a_s (the signal kept from s
# to t). By Bayes' rule and the Markov property,
#
#     q(x_s | x_t, x_0) = q(x_t | x_s) q(x_s | x_0) / q(x_t | x_0).
#
# As a function of x_s the numerator is the product of two Gaussian factors,
#
#     q(x_s | x_0) = N(x_s; sqrt(a_s) x_0, (1 - a_s) I)                  (a prior)
#     q(x_t | x_s) = N(x_t; sqrt(a_ts) x_s, (1 - a_ts) I)                (a likelihood),
#
# and the log of a product of Gaussians is a quadratic in x_s. Completing the square,
# precisions add and means are precision-weighted:
#
#     1 / var  = 1 / (1 - a_s) + a_ts / (1 - a_ts)
#     mean     = var [ sqrt(a_s) x_0 / (1 - a_s) + sqrt(a_ts) x_t / (1 - a_ts) ].
#
# Putting the fractions over 1 - a_t (use a_ts (1 - a_s) + (1 - a_ts) = 1 - a_t) gives the
# form in npdiff.forward.q_posterior (Kingma et al. 2021, Sec. 3.3; for neighbouring steps
# of a discrete chain it is Ho et al. 2020, Eq. 7):
#
#     var  = (1 - a_ts)(1 - a_s) / (1 - a_t)
#     mean = sqrt(a_s) (1 - a_ts) / (1 - a_t) x_0  +  sqrt(a_ts) (1 - a_s) / (1 - a_t) x_t.
#
# The chapter checks it three independent ways: pointwise against Bayes' rule (three
# Gaussian densities evaluated with log_normal_diag), against the precision-weighted form
# above, and by simulation: run the forward process from a fixed x_0 many times and regress
# x_s on x_t. For jointly Gaussian variables the regression line *is* the conditional mean
# and the residual variance *is* the conditional variance, so the posterior appears without
# any algebra.
#
# 2. The reverse step and the noise-prediction loss
#
# A model replaces the unknown x_0 by its prediction x0_hat = (x_t - sigma_t eps_hat) / sqrt(a_t)
# and uses p(x_s | x_t) = N(mean(x_t, x0_hat), Sigma). If Sigma is the posterior variance,
# the KL between two Gaussians of equal variance is |mean_q - mean_p|^2 / (2 Sigma), and
# since both means are linear in x_0 resp. x0_hat,
#
#     KL( q(x_{t-1}|x_t,x_0) || p(x_{t-1}|x_t) ) = beta_t^2 / (2 Sigma_t alpha_t (1 - a_t)) |eps - eps_hat|^2
#
# (Ho et al. 2020, Eq. 12): every term of the likelihood bound is a weighted squared error
# of the predicted noise. Dropping the weight gives DDPM's "simple" loss, the one chapter 4
# trains with. The chapter checks the identity numerically with npdiff.gaussian.kl_normal_diag.
#
# Which Sigma? Ho et al. offer two fixed choices: beta_tilde_t (the posterior variance,
# exact if x_0 were a single point) and beta_t (exact if x_0 were N(0, I)). The figure shows
# they differ only during the first few dozen steps, where beta_tilde_t -> 0; chapter 5 shows
# that this difference matters for the likelihood.
#
# 3. KL between Gaussians
#
#     KL( N(m1, v1) || N(m2, v2) ) = 1/2 [ log(v2/v1) + v1/v2 + (m1 - m2)^2 / v2 - 1 ]
#
# per dimension. npdiff computes it from log-variances and evaluates v1/v2 - 1 - log(v1/v2)
# as expm1(d) - d, so nearly equal variances lose no digits. Checked here against direct
# numerical integration of p log(p / q).
#
# 4. The discretized decoder
#
# For data on K levels (an 8-bit image has K = 256) the last step of the chain must put
# probability mass on the levels, not density on the real line. Ho et al. (2020, Eq. 13)
# integrate the Gaussian over each level's bin, of width 2/(K - 1) on [-1, 1], and give the
# two outer bins the tails out to -inf and +inf. The probabilities then sum to one exactly,
# whatever the mean and variance; the chapter checks that to rounding error, including for
# a decoder centred far outside [-1, 1] (computed in log space with log_ndtr, so the tails
# do not underflow).
#
# 5. Four names for one prediction
#
# Given x_t = sqrt(a) x_0 + sigma eps, predicting eps, x_0, v = sqrt(a) eps - sigma x_0
# (Salimans & Ho 2022) or the score -eps / sigma are linear reparameterizations of each
# other (npdiff.parameterization). The score of q(x_t | x_0) is checked here against a
# finite difference of its log-density.
# ---------------------------------------------------------------------------------------------

from __future__ import annotations

from _common import Chapter, np, plt
from scipy import integrate
from scipy.stats import norm

from npdiff import forward, gaussian, parameterization
from npdiff.schedule import cosine, log_snr_linear, vp_linear

ch = Chapter(2, "closed-form posteriors and the Gaussian math")
schedules = [vp_linear(), cosine(), log_snr_linear()]
D = 3

# -- 1a. the posterior against Bayes' rule, pointwise -----------------------------------------------
ch.section("1. q(x_s | x_t, x_0) against Bayes' rule, evaluated pointwise")
rng = ch.rng(0)
worst_bayes, worst_square = 0.0, 0.0
n_pairs = ch.pick(20, 200)
for s_fn in schedules:
    for _ in range(n_pairs):
        t = rng.uniform(0.05, s_fn.t_max)
        s = rng.uniform(0.01, 0.95) * t
        x0 = rng.standard_normal((4, D))  # (B, D)
        xt = forward.q_sample(x0, t, rng.standard_normal((4, D)), s_fn)
        xs = rng.standard_normal((4, D))  # anywhere: the identity holds at every x_s
        mean, var = forward.q_posterior(x0, xt, s, t, s_fn)  # (B, D), (B, 1)
        lhs = gaussian.log_normal_diag(xs, mean, np.log(var))
        m_ts, v_ts = forward.q_xt_xs(xs, s, t, s_fn)  # q(x_t | x_s)
        m_s0, v_s0 = forward.q_xt_x0(x0, s, s_fn)  # q(x_s | x_0)
        m_t0, v_t0 = forward.q_xt_x0(x0, t, s_fn)  # q(x_t | x_0)
        rhs = (gaussian.log_normal_diag(xt, m_ts, np.log(v_ts)) + gaussian.log_normal_diag(xs, m_s0, np.log(v_s0))
               - gaussian.log_normal_diag(xt, m_t0, np.log(v_t0)))
        worst_bayes = max(worst_bayes, float(np.max(np.abs(lhs - rhs) / (1.0 + np.abs(rhs)))))
        # 1b. the precision-weighted form of the derivation, computed from scratch
        a_s, a_t = float(s_fn.alpha_bar(s)), float(s_fn.alpha_bar(t))
        a_ts = a_t / a_s
        prec = 1.0 / (1.0 - a_s) + a_ts / (1.0 - a_ts)
        mean_sq = (np.sqrt(a_s) * x0 / (1.0 - a_s) + np.sqrt(a_ts) * xt / (1.0 - a_ts)) / prec
        worst_square = max(worst_square, float(np.max(np.abs(mean_sq - mean)) / (1.0 + np.abs(mean).max())),
                           abs(1.0 / prec - float(var[0, 0])) / float(var[0, 0]))
ch.show("max relative |log q(x_s|x_t,x_0) - Bayes' rule|", worst_bayes, f"{3 * n_pairs} random (s, t), 3 schedules")
ch.show("max relative |q_posterior - precision-weighted form|", worst_square, "rounding error")

# -- 1c. the posterior as a regression of the forward process run backwards -------------------------
ch.section("1c. the posterior by simulation: regress x_s on x_t from a fixed x_0")
sched, s_time, t_time, x0_1d = vp_linear(), 0.15, 0.3, 1.0
n_sim = ch.pick(20_000, 200_000)
rng = ch.rng(1)
x0_col = np.full((n_sim, 1), x0_1d)  # (n, 1) the same starting point every time
xs_sim = forward.q_sample(x0_col, s_time, rng.standard_normal((n_sim, 1)), sched)
m, v = forward.q_xt_xs(xs_sim, s_time, t_time, sched)
xt_sim = m + np.sqrt(v) * rng.standard_normal((n_sim, 1))
slope, intercept = np.polyfit(xt_sim[:, 0], xs_sim[:, 0], 1)
resid_var = np.var(xs_sim[:, 0] - (slope * xt_sim[:, 0] + intercept), ddof=2)
# the closed form is linear in x_t: mean = c0 x_0 + c_t x_t; read c_t and c0 x_0 off two evaluations
mean0, var_q = forward.q_posterior([[x0_1d]], [[0.0]], s_time, t_time, sched)
mean1, _ = forward.q_posterior([[x0_1d]], [[1.0]], s_time, t_time, sched)
c_t, c0x0 = float(mean1[0, 0] - mean0[0, 0]), float(mean0[0, 0])
# standard errors of least squares: Var[slope] = s^2 / (n Var x_t), Var[intercept] = s^2 (1 + mean^2 / Var x_t) / n
var_xt, mean_xt = xt_sim.var(), xt_sim.mean()
se_slope = np.sqrt(resid_var / (n_sim * var_xt)) / abs(c_t)
se_icpt = np.sqrt(resid_var * (1.0 + mean_xt**2 / var_xt) / n_sim)
se_var = np.sqrt(2.0 / n_sim)  # of a Gaussian sample variance, relative
ch.show("regression slope / closed-form coefficient of x_t", slope / c_t, f"1 within 3 se = {3 * se_slope:.2g}")
ch.show("regression intercept - closed-form c_0 x_0", intercept - c0x0, f"0 within 3 se = {3 * se_icpt:.2g}")
ch.show("residual variance / closed-form posterior variance", resid_var / float(var_q[0, 0]), f"1 within 3 se = {3 * se_var:.2g}")

# -- 1d. the discrete chain's posterior is the continuous one at neighbouring times --------------------
ch.section("1d. the discrete chain's posterior equals the continuous one at neighbouring times")
T = 1000
worst_chain = 0.0
for s_fn in schedules:
    chain = s_fn.discretize(T, t_end=s_fn.t_max, clip=False)  # unclipped: alpha_bar[i] = alpha_bar(times[i])
    idx = np.arange(2, T + 1)
    x0 = rng.standard_normal((idx.size, D))
    xt = rng.standard_normal((idx.size, D))
    mean_d, var_d, _ = forward.q_posterior_discrete(x0, xt, idx, chain)
    mean_c, var_c = forward.q_posterior(x0, xt, chain.times[idx - 1], chain.times[idx], s_fn)
    worst_chain = max(worst_chain, float(np.max(np.abs(mean_d - mean_c))), float(np.max(np.abs(var_d / var_c - 1.0))))
ch.show("max difference, discrete (Ho Eq. 7) vs continuous posterior", worst_chain, f"T = {T}, steps 2..T, 3 schedules")

# -- 2. every KL term of the bound is a weighted noise-prediction error -----------------------------
ch.section("2. KL(q || p) with Sigma = beta_tilde equals Ho et al.'s weighted |eps - eps_hat|^2")
chain = vp_linear().discretize(T)
idx = rng.integers(2, T + 1, size=ch.pick(200, 2000))
x0 = rng.standard_normal((idx.size, D))
eps = rng.standard_normal((idx.size, D))
eps_hat = eps + 0.3 * rng.standard_normal((idx.size, D))  # a deliberately imperfect "network"
xt = forward.q_sample_discrete(x0, idx, eps, chain)
ab = chain.alpha_bar[idx][:, None]
x0_hat = parameterization.convert(eps_hat, "eps", "x0", xt, ab)  # Ho et al. 2020, Eq. 15
mean_q, var_q, log_var_q = forward.q_posterior_discrete(x0, xt, idx, chain)
mean_p, _, _ = forward.q_posterior_discrete(x0_hat, xt, idx, chain)
kl = gaussian.kl_normal_diag(mean_q, log_var_q, mean_p, log_var_q).sum(axis=1)  # (B,)
beta, alpha, var_t = chain.betas[idx], chain.alphas[idx], chain.posterior_variance[idx]
ho_eq12 = beta**2 / (2.0 * var_t * alpha * (1.0 - chain.alpha_bar[idx])) * np.sum((eps - eps_hat) ** 2, axis=1)
ch.show("max relative |KL - Ho Eq. 12 weight * |eps - eps_hat|^2|", np.max(np.abs(kl - ho_eq12) / ho_eq12))

# -- 3. KL between Gaussians against quadrature ---------------------------------------------------
ch.section("3. KL between 1-D Gaussians: closed form against numerical integration")
worst_kl = 0.0
for _ in range(ch.pick(10, 50)):
    m1, m2 = rng.normal(0, 2, 2)
    l1, l2 = rng.normal(0, 1.5, 2)
    p, q = norm(m1, np.exp(0.5 * l1)), norm(m2, np.exp(0.5 * l2))
    lo, hi = m1 - 12 * p.std(), m1 + 12 * p.std()
    quad, _ = integrate.quad(lambda x, p=p, q=q: p.pdf(x) * (p.logpdf(x) - q.logpdf(x)), lo, hi, limit=200, epsabs=1e-13)
    closed = float(gaussian.kl_normal_diag(m1, l1, m2, l2))
    worst_kl = max(worst_kl, abs(closed - quad) / max(1.0, quad))
ch.show("max relative |KL closed form - quadrature|", worst_kl)
ch.show("KL of two Gaussians 1e-12 apart in log-variance", float(gaussian.kl_normal_diag(0.0, 1e-12, 0.0, 0.0)),
        "(1e-12)^2 / 4 = 2.5e-25 to all digits: no cancellation")

# -- 4. the discretized decoder sums to one ----------------------------------------------------------
ch.section("4. the discretized Gaussian decoder sums to 1 over the K levels")
worst_sum = 0.0
for K in (2, 8, 256):
    levels = gaussian.levels_to_data(np.arange(K), K)  # (K,) the K data values in [-1, 1]
    for mu, log_var in [(0.0, np.log(0.1)), (0.37, np.log(1e-6)), (-3.0, 0.0), (25.0, np.log(0.01)), (0.5, np.log(1e4))]:
        logp = gaussian.discretized_gaussian_log_likelihood(levels, mu, log_var, K=K)
        worst_sum = max(worst_sum, abs(float(np.exp(logp).sum()) - 1.0))
ch.show("max |sum_v p(v) - 1|", worst_sum, "K = 2, 8, 256; means from -3 to 25, variances 1e-6 to 1e4")
far = float(gaussian.discretized_gaussian_log_likelihood(-1.0, 25.0, np.log(0.01), K=256))
ch.show("log p(level 0 | mean 25, std 0.1)", far, "finite 260 standard deviations out (log_ndtr)")

# -- 5. parameterizations ---------------------------------------------------------------------------
ch.section("5. eps, x0, v and score are one prediction under four names")
x0 = rng.standard_normal((500, D))
eps = rng.standard_normal((500, D))
t = rng.uniform(0.01, 0.99, 500)
s_fn = vp_linear()
xt = forward.q_sample(x0, t, eps, s_fn)
ab = s_fn.alpha_bar(t)[:, None]  # (B, 1)
trip = eps
for src, dst in [("eps", "x0"), ("x0", "v"), ("v", "score"), ("score", "eps")]:
    trip = parameterization.convert(trip, src, dst, xt, ab)
ch.show("max |eps -> x0 -> v -> score -> eps - eps|", np.abs(trip - eps).max())
ch.show("max |convert(eps, 'eps', 'x0') - x_0|", np.abs(parameterization.convert(eps, "eps", "x0", xt, ab) - x0).max())
# the score of q(x_t | x_0) by central differences of its log-density
h = 1e-5
mean, var = forward.q_xt_x0(x0, t, s_fn)
fd = np.empty_like(xt)
for d in range(D):
    e = np.zeros(D)
    e[d] = h
    up, down = gaussian.log_normal_diag(xt + e, mean, np.log(var)), gaussian.log_normal_diag(xt - e, mean, np.log(var))
    fd[:, d] = (up - down) / (2 * h)
score = parameterization.convert(eps, "eps", "score", xt, ab)
ch.show("max relative |score - finite difference of log q(x_t|x_0)|", np.max(np.abs(score - fd) / (1.0 + np.abs(fd))))

# -- the figure ----------------------------------------------------------------------------------------
fig, axes = plt.subplots(2, 2, figsize=(11, 8))

# (a) Bayes' rule in one dimension: prior x likelihood, normalized numerically, against the closed form
ax = axes[0, 0]
x_obs = float(xt_sim[0, 0])
grid = np.linspace(-1.5, 2.5, 2001)[:, None]  # (G, 1) candidate x_s
m_s0, v_s0 = forward.q_xt_x0(np.full_like(grid, x0_1d), s_time, sched)
prior = np.exp(gaussian.log_normal_diag(grid, m_s0, np.log(v_s0)))
m_ts, v_ts = forward.q_xt_xs(grid, s_time, t_time, sched)
like = np.exp(gaussian.log_normal_diag(np.full_like(grid, x_obs), m_ts, np.log(v_ts)))
dx = grid[1, 0] - grid[0, 0]
post_num = prior * like / np.sum(prior * like * dx)
mean_c, var_c = forward.q_posterior([[x0_1d]], [[x_obs]], s_time, t_time, sched)
post_cf = norm.pdf(grid[:, 0], mean_c[0, 0], np.sqrt(var_c[0, 0]))
ax.plot(grid, prior, label=r"prior $q(x_s|x_0)$")
ax.plot(grid, like / np.sum(like * dx), label=r"likelihood $q(x_t|x_s)$ (normalized in $x_s$)")
ax.plot(grid[::60], post_num[::60], "o", ms=4, color="k", label="prior x likelihood, normalized numerically")
ax.plot(grid, post_cf, color="C3", lw=2, alpha=0.8, label=r"closed form $q(x_s|x_t,x_0)$")
ax.axvline(x0_1d * np.sqrt(float(sched.alpha_bar(s_time))), color="0.6", ls=":", lw=1)
ax.set_title(f"Bayes' rule: $x_0$ = {x0_1d:g}, $x_t$ = {x_obs:.2f} (s = {s_time}, t = {t_time}, vp_linear)", fontsize=10)
ax.set_xlabel(r"$x_s$")
ax.legend(fontsize=7.5, loc="upper left")

# (b) the same posterior as the regression of simulated x_s on x_t
ax = axes[0, 1]
k = min(4000, n_sim)
ax.scatter(xt_sim[:k, 0], xs_sim[:k, 0], s=2, alpha=0.25, color="C0", linewidths=0, label="forward runs from the same $x_0$")
xx = np.linspace(xt_sim[:, 0].min(), xt_sim[:, 0].max(), 50)
mm = c0x0 + c_t * xx
sd = np.sqrt(var_q[0, 0])
ax.plot(xx, mm, color="C3", lw=2, label=r"closed-form posterior mean $\tilde\mu(x_t, x_0)$")
ax.fill_between(xx, mm - 2 * sd, mm + 2 * sd, color="C3", alpha=0.15, label=r"$\pm 2$ posterior std")
ax.set(xlabel=r"$x_t$", ylabel=r"$x_s$", title="the posterior is the regression of $x_s$ on $x_t$")
ax.legend(fontsize=7.5, loc="upper left")

# (c) the two fixed reverse variances along the chain
ax = axes[1, 0]
for s_fn, color in zip(schedules[:2], ["C0", "C1"]):
    c = s_fn.discretize(T)
    i = np.arange(2, T + 1)
    ax.semilogx(i, c.posterior_variance[i] / c.betas[i], color=color, label=rf"{s_fn.name}: $\tilde\beta_t / \beta_t$")
ax.axhline(1.0, color="0.5", lw=0.8)
ax.set(xlabel="step t of the chain (T = 1000)", ylabel="ratio", ylim=(0, 1.05),
       title=r"posterior variance $\tilde\beta_t$ against $\beta_t$: equal except early on")
ax.legend(fontsize=8)
ax.grid(alpha=0.3, which="both")

# (d) the discretized decoder on K = 8 levels
ax = axes[1, 1]
K, mu, std = 8, 0.2, 0.35
levels = gaussian.levels_to_data(np.arange(K), K)
probs = np.exp(gaussian.discretized_gaussian_log_likelihood(levels, mu, 2 * np.log(std), K=K))
width = 2.0 / (K - 1)
ax.bar(levels, probs, width=0.9 * width, color="C2", alpha=0.7, label=f"p(level), sum = {probs.sum():.12f}")
xx = np.linspace(-1.6, 1.6, 400)
ax.plot(xx, norm.pdf(xx, mu, std) * width, color="k", label=r"$\mathcal{N}(\mu, \sigma^2)$ density x bin width")
for edge in levels[:-1] + width / 2:
    ax.axvline(edge, color="0.8", lw=0.6)
ax.set(xlabel="data value (K = 8 levels in [-1, 1])", title="discretized decoder: outer bins take the tails")
ax.legend(fontsize=8)
fig.tight_layout()
ch.save(fig, "posterior")
ch.done()
