r"""
Chapter 2: closed-form posteriors and the rest of the Gaussian math
===================================================================

Chapter 1 ran the process forwards. Sampling runs it backwards, one step :math:`s < t`
at a time, and the step we would like to take is :math:`q(x_s \mid x_t)`. We do not know
it (it depends on the whole data distribution), but if we also knew where the chain
started, :math:`x_0`, the reverse step would be a plain Gaussian, and that Gaussian is
the backbone of DDPM's loss, its sampler and its likelihood bound. This chapter derives
it and checks it on screen, together with the other pieces of Gaussian algebra the
library leans on. From the repository root (``--quick`` takes seconds; figures go to
``--out``):

Run::

    python tutorials/02_posteriors.py [--quick] [--out DIR]
"""

from _common import (
    Chapter,
    central_difference,
    max_relative_error,
    np,
    plt,
    show_posterior_regression,
)
from scipy import integrate
from scipy.stats import norm

from npdiff import forward, gaussian, parameterization
from npdiff.schedule import cosine, log_snr_linear, vp_linear

ch = Chapter(2, "closed-form posteriors and the Gaussian math")
schedules = [vp_linear(), cosine(), log_snr_linear()]
D = 3

# %%
# 1. The posterior :math:`q(x_s \mid x_t, x_0)`
# ---------------------------------------------
#
# Write :math:`a_s = \bar\alpha_s`, :math:`a_t = \bar\alpha_t` and
# :math:`a_{ts} = a_t / a_s` (the signal kept from :math:`s` to :math:`t`). By Bayes'
# rule and the Markov property,
#
# .. math::
#
#    q(x_s \mid x_t, x_0) = \frac{q(x_t \mid x_s)\, q(x_s \mid x_0)}{q(x_t \mid x_0)}.
#
# As a function of :math:`x_s` the numerator is the product of two Gaussian factors, a
# prior and a likelihood,
#
# .. math::
#
#    q(x_s \mid x_0) = \mathcal N\big(x_s;\ \sqrt{a_s}\, x_0,\ (1 - a_s) I\big), \qquad
#    q(x_t \mid x_s) = \mathcal N\big(x_t;\ \sqrt{a_{ts}}\, x_s,\ (1 - a_{ts}) I\big),
#
# and the log of a product of Gaussians is a quadratic in :math:`x_s`. Completing the
# square, precisions add and means are precision-weighted:
#
# .. math::
#
#    \frac{1}{\tilde\beta} = \frac{1}{1 - a_s} + \frac{a_{ts}}{1 - a_{ts}}, \qquad
#    \tilde\mu = \tilde\beta \Big(\frac{\sqrt{a_s}\, x_0}{1 - a_s}
#    + \frac{\sqrt{a_{ts}}\, x_t}{1 - a_{ts}}\Big).
#
# Putting the fractions over :math:`1 - a_t` (use
# :math:`a_{ts}(1 - a_s) + (1 - a_{ts}) = 1 - a_t`) gives the form that
# ``npdiff.forward.q_posterior`` computes (:cite:t:`kingma2021vdm`, Sec. 3.3; for
# neighbouring steps of a discrete chain it is Eq. 7 of :cite:t:`ho2020ddpm`):
#
# .. math::
#
#    \tilde\beta = \frac{(1 - a_{ts})(1 - a_s)}{1 - a_t}, \qquad
#    \tilde\mu = \frac{\sqrt{a_s}\,(1 - a_{ts})}{1 - a_t}\, x_0
#    + \frac{\sqrt{a_{ts}}\,(1 - a_s)}{1 - a_t}\, x_t .
#
# The code checks it twice on random :math:`(s, t, x_0, x_t, x_s)`: pointwise against
# Bayes' rule (three Gaussian log-densities) and against the precision-weighted form
# computed from scratch.

def log_q(x, mean, var):
    r"""log N(x; mean, var I), summed over the D coordinates."""
    return gaussian.log_normal_diag(x, mean, np.log(var))


def posterior_errors(sched, rng):
    r"""Relative errors of q_posterior at a random (s, t): Bayes, mean, variance."""
    t = rng.uniform(0.05, sched.t_max)
    s = rng.uniform(0.01, 0.95) * t
    x0 = rng.standard_normal((4, D))  # (B, D)
    xt = forward.q_sample(x0, t, rng.standard_normal((4, D)), sched)
    xs = rng.standard_normal((4, D))  # anywhere: the identity holds at every x_s
    mean, var = forward.q_posterior(x0, xt, s, t, sched)  # (B, D), (B, 1)
    bayes = (log_q(xt, *forward.q_xt_xs(xs, s, t, sched))  # q(x_t | x_s)
             + log_q(xs, *forward.q_xt_x0(x0, s, sched))  # q(x_s | x_0)
             - log_q(xt, *forward.q_xt_x0(x0, t, sched)))  # q(x_t | x_0)
    a_s, a_t = float(sched.alpha_bar(s)), float(sched.alpha_bar(t))
    a_ts = a_t / a_s
    prec = 1.0 / (1.0 - a_s) + a_ts / (1.0 - a_ts)  # 1 / beta_tilde
    mean_sq = (np.sqrt(a_s) * x0 / (1.0 - a_s)
               + np.sqrt(a_ts) * xt / (1.0 - a_ts)) / prec  # mu_tilde
    return (max_relative_error(log_q(xs, mean, var), bayes),
            float(np.max(np.abs(mean_sq - mean)) / (1.0 + np.abs(mean).max())),
            abs(1.0 / prec - float(var[0, 0])) / float(var[0, 0]))


ch.section("1. q(x_s | x_t, x_0) against Bayes' rule, evaluated pointwise")
rng = ch.rng(0)
n_pairs = ch.pick(20, 200)
errors = np.array([posterior_errors(sched, rng) for sched in schedules
                   for _ in range(n_pairs)])  # (3 n_pairs, 3)
ch.show("max relative |log q(x_s|x_t,x_0) - Bayes' rule|", errors[:, 0].max(),
        f"{3 * n_pairs} random (s, t), 3 schedules")
ch.show("max relative |q_posterior - precision-weighted form|", errors[:, 1:].max(),
        "rounding error")

# %%
# 2. The posterior by simulation
# ------------------------------
#
# The posterior also appears without any algebra. Run the forward process from one fixed
# :math:`x_0` many times, first to :math:`x_s` and then on to :math:`x_t`, and regress
# :math:`x_s` on :math:`x_t`. For jointly Gaussian variables the regression line *is*
# the conditional mean and the residual variance *is* the conditional variance: the
# slope must be the coefficient of :math:`x_t` in :math:`\tilde\mu`, the intercept the
# term in :math:`x_0`, and the residual variance :math:`\tilde\beta`. The closed form is
# linear in :math:`x_t`, so two evaluations (at :math:`x_t = 0` and :math:`x_t = 1`)
# read off both coefficients.

ch.section("2. the posterior by simulation: regress x_s on x_t from a fixed x_0")
sched, s_time, t_time, x0_1d = vp_linear(), 0.15, 0.3, 1.0
n_sim = ch.pick(20_000, 200_000)
rng = ch.rng(1)
x0_col = np.full((n_sim, 1), x0_1d)  # (n, 1) the same starting point every time
xs_sim = forward.q_sample(x0_col, s_time, rng.standard_normal((n_sim, 1)), sched)
m, v = forward.q_xt_xs(xs_sim, s_time, t_time, sched)
xt_sim = m + np.sqrt(v) * rng.standard_normal((n_sim, 1))  # (n, 1)
slope, intercept = np.polyfit(xt_sim[:, 0], xs_sim[:, 0], 1)
resid_var = np.var(xs_sim[:, 0] - (slope * xt_sim[:, 0] + intercept), ddof=2)
# mu_tilde = c0 x_0 + c_t x_t: read c_t and c0 x_0 off two evaluations
mean0, var_q = forward.q_posterior([[x0_1d]], [[0.0]], s_time, t_time, sched)
mean1, _ = forward.q_posterior([[x0_1d]], [[1.0]], s_time, t_time, sched)
c_t, c0x0 = float(mean1[0, 0] - mean0[0, 0]), float(mean0[0, 0])
show_posterior_regression(slope, intercept, resid_var, c_t, c0x0, var_q[0, 0], xt_sim)

# %%
# The figure shows the posterior both ways. On the left, Bayes' rule in one dimension
# for the first simulated :math:`x_t`: the prior :math:`q(x_s \mid x_0)` times the
# likelihood :math:`q(x_t \mid x_s)`, normalized numerically on a grid (dots), lands on
# the closed-form :math:`q(x_s \mid x_t, x_0)`. On the right, the simulated pairs with
# the closed-form mean :math:`\tilde\mu` and :math:`\pm 2` posterior standard
# deviations.

fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
ax = axes[0]
x_obs = float(xt_sim[0, 0])
grid = np.linspace(-1.5, 2.5, 2001)[:, None]  # (G, 1) candidate x_s
dx = grid[1, 0] - grid[0, 0]
prior = np.exp(log_q(grid, *forward.q_xt_x0(np.full_like(grid, x0_1d), s_time, sched)))
obs = np.full_like(grid, x_obs)
like = np.exp(log_q(obs, *forward.q_xt_xs(grid, s_time, t_time, sched)))
post_num = prior * like / np.sum(prior * like * dx)
mean_c, var_c = forward.q_posterior([[x0_1d]], [[x_obs]], s_time, t_time, sched)
post_cf = norm.pdf(grid[:, 0], mean_c[0, 0], np.sqrt(var_c[0, 0]))
ax.plot(grid, prior, label=r"prior $q(x_s|x_0)$")
ax.plot(grid, like / np.sum(like * dx),
        label=r"likelihood $q(x_t|x_s)$ (normalized in $x_s$)")
ax.plot(grid[::60], post_num[::60], "o", ms=4, color="k",
        label="prior x likelihood, normalized numerically")
ax.plot(grid, post_cf, color="C3", lw=2, alpha=0.8,
        label=r"closed form $q(x_s|x_t,x_0)$")
ax.axvline(x0_1d * np.sqrt(float(sched.alpha_bar(s_time))), color="0.6", ls=":", lw=1)
ax.set_title(f"Bayes' rule: $x_0$ = {x0_1d:g}, $x_t$ = {x_obs:.2f} "
             f"(s = {s_time}, t = {t_time}, vp_linear)", fontsize=10)
ax.set_xlabel(r"$x_s$")
ax.legend(fontsize=7.5, loc="upper left")

ax = axes[1]
k = min(4000, n_sim)
ax.scatter(xt_sim[:k, 0], xs_sim[:k, 0], s=2, alpha=0.25, color="C0", linewidths=0,
           label="forward runs from the same $x_0$")
xx = np.linspace(xt_sim[:, 0].min(), xt_sim[:, 0].max(), 50)
mm, sd = c0x0 + c_t * xx, np.sqrt(var_q[0, 0])
ax.plot(xx, mm, color="C3", lw=2,
        label=r"closed-form posterior mean $\tilde\mu(x_t, x_0)$")
ax.fill_between(xx, mm - 2 * sd, mm + 2 * sd, color="C3", alpha=0.15,
                label=r"$\pm 2$ posterior std")
ax.set(xlabel=r"$x_t$", ylabel=r"$x_s$",
       title="the posterior is the regression of $x_s$ on $x_t$")
ax.legend(fontsize=7.5, loc="upper left")
fig.tight_layout()
ch.save(fig, "posterior")

# %%
# 3. The discrete chain
# ---------------------
#
# A chain of :math:`T` steps (chapter 1) has :math:`\bar\alpha_i = \bar\alpha(t_i)`,
# :math:`\alpha_i = 1 - \beta_i = \bar\alpha_i / \bar\alpha_{i-1}`, and
# :cite:t:`ho2020ddpm` (Eq. 6-7) write its posterior as
#
# .. math::
#
#    q(x_{i-1} \mid x_i, x_0) = \mathcal N\big(x_{i-1};\ \tilde\mu_i(x_i, x_0),\
#    \tilde\beta_i I\big), \qquad
#    \tilde\mu_i = \frac{\sqrt{\bar\alpha_{i-1}}\,\beta_i}{1 - \bar\alpha_i}\, x_0
#    + \frac{\sqrt{\alpha_i}\,(1 - \bar\alpha_{i-1})}{1 - \bar\alpha_i}\, x_i, \qquad
#    \tilde\beta_i = \frac{1 - \bar\alpha_{i-1}}{1 - \bar\alpha_i}\, \beta_i .
#
# It is the continuous posterior of section 1 at the neighbouring times
# :math:`s = t_{i-1}`, :math:`t = t_i` (then :math:`a_{ts} = \alpha_i`). The code
# compares the two at every step of an unclipped chain of :math:`T = 1000` steps.

ch.section("3. the discrete chain's posterior is the continuous one at neighbour times")
T = 1000


def chain_errors(sched, rng):
    r"""Largest |mean| and |variance ratio - 1| gaps, discrete against continuous."""
    chain = sched.discretize(T, t_end=sched.t_max, clip=False)  # unclipped: exact t_i
    i = np.arange(2, T + 1)
    x0, xt = rng.standard_normal((i.size, D)), rng.standard_normal((i.size, D))
    mean_d, var_d, _ = forward.q_posterior_discrete(x0, xt, i, chain)
    s, t = chain.times[i - 1], chain.times[i]  # (T - 1,) neighbouring times
    mean_c, var_c = forward.q_posterior(x0, xt, s, t, sched)
    return (float(np.max(np.abs(mean_d - mean_c))),
            float(np.max(np.abs(var_d / var_c - 1.0))))


ch.show("max difference, discrete (Ho Eq. 7) vs continuous posterior",
        max(max(chain_errors(sched, rng)) for sched in schedules),
        f"T = {T}, steps 2..T, 3 schedules")

# %%
# 4. The reverse step and the noise-prediction loss
# -------------------------------------------------
#
# A model replaces the unknown :math:`x_0` by its prediction
# :math:`\hat x_0 = (x_t - \sigma_t \hat\epsilon) / \sqrt{\bar\alpha_t}`
# (:cite:t:`ho2020ddpm`, Eq. 15) and steps with
# :math:`p(x_{t-1} \mid x_t) = \mathcal N(\tilde\mu_t(x_t, \hat x_0), \Sigma_t)`. If
# :math:`\Sigma_t = \tilde\beta_t I`, the KL divergence between two Gaussians of equal
# variance is :math:`\|\mu_q - \mu_p\|^2 / 2\tilde\beta_t`, and since both means are
# linear in :math:`x_0` and :math:`\hat x_0` respectively,
#
# .. math::
#
#    D_{\rm KL}\big(q(x_{t-1} \mid x_t, x_0)\,\big\|\,p(x_{t-1} \mid x_t)\big)
#    = \frac{\beta_t^2}{2 \tilde\beta_t\, \alpha_t (1 - \bar\alpha_t)}\,
#    \|\epsilon - \hat\epsilon\|^2
#
# (:cite:t:`ho2020ddpm`, Eq. 12): every term of the likelihood bound is a weighted
# squared error of the predicted noise. Dropping the weight gives DDPM's "simple" loss,
# the one chapter 4 trains with. The code checks the identity with a deliberately
# imperfect :math:`\hat\epsilon = \epsilon + 0.3\, z`.

ch.section("4. KL(q || p) with Sigma = beta_tilde is a weighted |eps - eps_hat|^2")
chain = vp_linear().discretize(T)
t = rng.integers(2, T + 1, size=ch.pick(200, 2000))  # (B,) steps of the chain
x0 = rng.standard_normal((t.size, D))
eps = rng.standard_normal((t.size, D))
eps_hat = eps + 0.3 * rng.standard_normal((t.size, D))  # an imperfect "network"
xt = forward.q_sample_discrete(x0, t, eps, chain)
ab = chain.alpha_bar[t][:, None]  # (B, 1)
x0_hat = parameterization.convert(eps_hat, "eps", "x0", xt, ab)  # Ho et al., Eq. 15
mean_q, var_q, log_var_q = forward.q_posterior_discrete(x0, xt, t, chain)
mean_p, _, _ = forward.q_posterior_discrete(x0_hat, xt, t, chain)
kl = gaussian.kl_normal_diag(mean_q, log_var_q, mean_p, log_var_q).sum(axis=1)  # (B,)
beta, alpha, beta_tilde = chain.betas[t], chain.alphas[t], chain.posterior_variance[t]
weight = beta**2 / (2.0 * beta_tilde * alpha * (1.0 - chain.alpha_bar[t]))
ho_eq12 = weight * np.sum((eps - eps_hat) ** 2, axis=1)
ch.show("max relative |KL - Ho Eq. 12 weight * |eps - eps_hat|^2|",
        max_relative_error(kl, ho_eq12, floor=0.0))

# %%
# Which :math:`\Sigma_t`? :cite:t:`ho2020ddpm` offer two fixed choices:
# :math:`\tilde\beta_t` (the posterior variance, exact if :math:`x_0` were a single
# point) and :math:`\beta_t` (exact if :math:`x_0` were :math:`\mathcal N(0, I)`). Their
# ratio is
#
# .. math::
#
#    \frac{\tilde\beta_t}{\beta_t} = \frac{1 - \bar\alpha_{t-1}}{1 - \bar\alpha_t},
#
# which the figure draws along the chain: the two differ only during the first few dozen
# steps, where :math:`\tilde\beta_t \to 0`. Chapter 5 shows that this difference matters
# for the likelihood.

fig, ax = plt.subplots(figsize=(7, 4.4))
for sched, color in zip(schedules[:2], ["C0", "C1"]):
    c = sched.discretize(T)
    i = np.arange(2, T + 1)
    ax.semilogx(i, c.posterior_variance[i] / c.betas[i], color=color,
                label=rf"{sched.name}: $\tilde\beta_t / \beta_t$")
ax.axhline(1.0, color="0.5", lw=0.8)
ax.set(xlabel="step t of the chain (T = 1000)", ylabel="ratio", ylim=(0, 1.05),
       title=r"posterior variance $\tilde\beta_t$ against $\beta_t$: equal but early")
ax.legend(fontsize=8)
ax.grid(alpha=0.3, which="both")
fig.tight_layout()
ch.save(fig, "variances")

# %%
# 5. KL between Gaussians
# -----------------------
#
# Per dimension,
#
# .. math::
#
#    D_{\rm KL}\big(\mathcal N(m_1, v_1)\,\big\|\,\mathcal N(m_2, v_2)\big)
#    = \frac12\Big[\log\frac{v_2}{v_1} + \frac{v_1}{v_2}
#    + \frac{(m_1 - m_2)^2}{v_2} - 1\Big].
#
# ``npdiff.gaussian.kl_normal_diag`` computes it from log-variances and evaluates
# :math:`v_1/v_2 - 1 - \log(v_1/v_2)` as :math:`\mathrm{expm1}(d) - d` with
# :math:`d = \log v_1 - \log v_2`, so nearly equal variances lose no digits: two
# Gaussians :math:`10^{-12}` apart in log-variance are
# :math:`d^2/4 = 2.5 \cdot 10^{-25}` nats apart, to all digits. The code checks the
# closed form against numerical integration of :math:`\int p \log(p / q)`.

ch.section("5. KL between 1-D Gaussians: closed form against numerical integration")


def kl_quadrature_error(rng):
    r"""|closed form - quadrature| / max(1, KL) for one random pair of 1-D Gaussians."""
    m1, m2 = rng.normal(0, 2, 2)
    l1, l2 = rng.normal(0, 1.5, 2)  # log-variances
    p, q = norm(m1, np.exp(0.5 * l1)), norm(m2, np.exp(0.5 * l2))
    lo, hi = m1 - 12 * p.std(), m1 + 12 * p.std()
    quad, _ = integrate.quad(lambda x: p.pdf(x) * (p.logpdf(x) - q.logpdf(x)), lo, hi,
                             limit=200, epsabs=1e-13)
    closed = float(gaussian.kl_normal_diag(m1, l1, m2, l2))
    return abs(closed - quad) / max(1.0, quad)


ch.show("max relative |KL closed form - quadrature|",
        max(kl_quadrature_error(rng) for _ in range(ch.pick(10, 50))))
ch.show("KL of two Gaussians 1e-12 apart in log-variance",
        float(gaussian.kl_normal_diag(0.0, 1e-12, 0.0, 0.0)),
        "(1e-12)^2 / 4 = 2.5e-25 to all digits: no cancellation")

# %%
# 6. The discretized decoder
# --------------------------
#
# For data on :math:`K` levels (an 8-bit image has :math:`K = 256`) the last step of the
# chain must put probability mass on the levels, not density on the real line.
# :cite:t:`ho2020ddpm` (Eq. 13) integrate the Gaussian over each level's bin, of width
# :math:`2/(K - 1)` on :math:`[-1, 1]`,
#
# .. math::
#
#    p(x_0 = v \mid x_1) = \int_{\delta_-(v)}^{\delta_+(v)}
#    \mathcal N\big(x;\ \mu_\theta(x_1),\ \sigma_1^2\big)\, dx,
#    \qquad \delta_\pm(v) = v \pm \frac{1}{K - 1},
#
# and give the two outer bins the tails out to :math:`-\infty` and :math:`+\infty`. The
# probabilities then sum to one exactly, whatever the mean and variance; the code checks
# that to rounding error, including for a decoder centred far outside :math:`[-1, 1]`
# (computed in log space with ``log_ndtr``, so the tails do not underflow). The figure
# shows the bins for :math:`K = 8`.

ch.section("6. the discretized Gaussian decoder sums to 1 over the K levels")


def decoder_mass_error(K, mu, log_var):
    r"""|sum over the K levels of p(level) - 1|."""
    levels = gaussian.levels_to_data(np.arange(K), K)  # (K,) the data values in [-1, 1]
    logp = gaussian.discretized_gaussian_log_likelihood(levels, mu, log_var, K=K)
    return abs(float(np.exp(logp).sum()) - 1.0)


cases = [(0.0, np.log(0.1)), (0.37, np.log(1e-6)), (-3.0, 0.0), (25.0, np.log(0.01)),
         (0.5, np.log(1e4))]  # (mean, log-variance)
ch.show("max |sum_v p(v) - 1|",
        max(decoder_mass_error(K, mu, lv) for K in (2, 8, 256) for mu, lv in cases),
        "K = 2, 8, 256; means from -3 to 25, variances 1e-6 to 1e4")
far = gaussian.discretized_gaussian_log_likelihood(-1.0, 25.0, np.log(0.01), K=256)
ch.show("log p(level 0 | mean 25, std 0.1)", far,
        "finite 260 standard deviations out (log_ndtr)")

K, mu, std = 8, 0.2, 0.35
levels = gaussian.levels_to_data(np.arange(K), K)
logp = gaussian.discretized_gaussian_log_likelihood(levels, mu, 2 * np.log(std), K=K)
probs = np.exp(logp)  # (K,)
width = 2.0 / (K - 1)
fig, ax = plt.subplots(figsize=(7, 4.4))
ax.bar(levels, probs, width=0.9 * width, color="C2", alpha=0.7,
       label=f"p(level), sum = {probs.sum():.12f}")
xx = np.linspace(-1.6, 1.6, 400)
ax.plot(xx, norm.pdf(xx, mu, std) * width, color="k",
        label=r"$\mathcal{N}(\mu, \sigma^2)$ density x bin width")
for edge in levels[:-1] + width / 2:
    ax.axvline(edge, color="0.8", lw=0.6)
ax.set(xlabel="data value (K = 8 levels in [-1, 1])",
       title="discretized decoder: outer bins take the tails")
ax.legend(fontsize=8)
fig.tight_layout()
ch.save(fig, "decoder")

# %%
# 7. Four names for one prediction
# --------------------------------
#
# Given :math:`x_t = \sqrt{\bar\alpha_t}\, x_0 + \sigma_t \epsilon`, predicting
# :math:`\epsilon`, :math:`x_0`, the velocity
# :math:`v = \sqrt{\bar\alpha_t}\, \epsilon - \sigma_t x_0`
# :cite:p:`salimans2022progressive` or the score
#
# .. math::
#
#    \nabla_{x_t} \log q(x_t \mid x_0)
#    = -\frac{x_t - \sqrt{\bar\alpha_t}\, x_0}{\sigma_t^2}
#    = -\frac{\epsilon}{\sigma_t}
#
# are linear reparameterizations of each other (``npdiff.parameterization``). The code
# converts :math:`\epsilon` around the circle :math:`\epsilon \to x_0 \to v \to` score
# :math:`\to \epsilon` and checks the score against a central difference of
# :math:`\log q(x_t \mid x_0)`.

ch.section("7. eps, x0, v and score are one prediction under four names")
x0 = rng.standard_normal((500, D))
eps = rng.standard_normal((500, D))
t = rng.uniform(0.01, 0.99, 500)
sched = vp_linear()
xt = forward.q_sample(x0, t, eps, sched)
ab = sched.alpha_bar(t)[:, None]  # (B, 1)
trip = eps
for src, dst in [("eps", "x0"), ("x0", "v"), ("v", "score"), ("score", "eps")]:
    trip = parameterization.convert(trip, src, dst, xt, ab)
ch.show("max |eps -> x0 -> v -> score -> eps - eps|", np.abs(trip - eps).max())
ch.show("max |convert(eps, 'eps', 'x0') - x_0|",
        np.abs(parameterization.convert(eps, "eps", "x0", xt, ab) - x0).max())
mean, var = forward.q_xt_x0(x0, t, sched)
fd = np.stack([central_difference(lambda x: log_q(x, mean, var), xt, e, 1e-5)
               for e in np.eye(D)], axis=1)  # (B, D) d log q / d x_t
score = parameterization.convert(eps, "eps", "score", xt, ab)
ch.show("max relative |score - finite difference of log q(x_t|x_0)|",
        max_relative_error(score, fd))
ch.done()
