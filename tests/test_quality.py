"""Quality of the default 2d recipe: the quick version of benchmarks/quality_2d.py (issue 8).

The full table (eight sets, thousands of steps, 5,000 test points) lives in the benchmark;
here one short run catches a change that breaks the recipe or the likelihood path.
"""

import numpy as np

from npdiff.data import toy2d
from npdiff.gaussian import log_normal_full
from npdiff.likelihood import ode_log_likelihood
from npdiff.nn import MLPConfig
from npdiff.recipes import recipe
from npdiff.train import train

STEPS = 1500  # ~17 s at width 128, batch 512 (one core); enough for 8gaussians to leave the Gaussian fit far behind
N_TEST = 400


def test_default_recipe_gap_is_a_plausible_kl_and_beats_the_gaussian_fit():
    # The paired gap mean_x [log p_true(x) - log p_model(x)] estimates KL(data || model) >= 0, so an
    # honest likelihood cannot leave it below -3 standard errors (a divergence or prior term with the
    # wrong sign or scale would); and a trained model must beat the best single Gaussian, whose NLL is
    # computed here from the closed form, independently of the diffusion code.
    data = toy2d.load("8gaussians")
    model_kw, train_kw, schedule = recipe("2d")
    train_kw["steps"] = STEPS
    model, history = train(MLPConfig(dim=2, **model_kw), data, rng=0, schedule=schedule, progress=False, **train_kw)
    assert np.all(np.isfinite(history["loss"])), "training loss became non-finite"

    rng = np.random.default_rng(1)
    x = data.sample(N_TEST, rng)  # (n, 2) fresh test points
    res = ode_log_likelihood(model, x)
    gap = data.log_prob(x) - res.log_p  # (n,)
    mean, se = gap.mean(), gap.std(ddof=1) / np.sqrt(N_TEST)
    assert np.isfinite(mean) and np.isfinite(se), f"paired gap {mean} +- {se} is not finite"
    assert mean > -3.0 * se, f"paired gap {mean:.4f} +- {se:.4f} nats is a negative KL beyond noise"

    x_fit = data.sample(50_000, rng)  # (50000, 2) the Gaussian fit's own data
    gauss_nll = -np.mean(log_normal_full(x, x_fit.mean(0), np.cov(x_fit, rowvar=False)))
    nll = -res.log_p.mean()
    assert nll < gauss_nll, (f"after {STEPS} steps the model's NLL {nll:.4f} is not below the Gaussian fit's "
                             f"{gauss_nll:.4f} (true entropy {data.entropy:.4f})")
