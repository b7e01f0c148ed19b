"""Chapter 0 writes DDPM from scratch; here each of its pieces meets npdiff's version of it.

The chapter is the project's one deliberate re-implementation: a schedule, a forward sample,
an MLP with a hand-written backward pass, a loss and an ancestral step, all in plain NumPy.
The chapter trains when it runs, so the tests take only its imports and function definitions
(from its syntax tree): nothing trains here. Every expected value
comes from the library or from central differences, never from the chapter itself.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from npdiff.forward import q_sample_discrete
from npdiff.nn.mlp import mse
from npdiff.objective import loss_weight
from npdiff.parameterization import prediction_target
from npdiff.reverse import ReverseVariance, p_mean_log_variance
from npdiff.schedule import ddpm_linear, vp_linear

REPO = Path(__file__).resolve().parent.parent
CHAPTER = REPO / "tutorials" / "00_the_whole_idea.py"
FUNCTIONS = ("ddpm_schedule", "q_sample", "features", "init_mlp", "mlp", "mlp_backward", "loss_and_grad",
             "adam_step", "p_sample_step")


@pytest.fixture(scope="module")
def ch0() -> SimpleNamespace:
    r"""The chapter's functions, defined without running the chapter (its imports run; NumPy stands in for _common's)."""
    tree = ast.parse(CHAPTER.read_text(encoding="utf-8"), filename=str(CHAPTER))
    imports = [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom)) and not (
        isinstance(node, ast.ImportFrom) and node.module == "_common")]
    defs = [node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name in FUNCTIONS]
    namespace: dict[str, object] = {"np": np}
    exec(compile(ast.Module(body=imports + defs, type_ignores=[]), str(CHAPTER), "exec"), namespace)
    missing = [name for name in FUNCTIONS if name not in namespace]
    assert not missing, f"chapter 0 no longer defines {missing} at module level"
    return SimpleNamespace(**{name: namespace[name] for name in FUNCTIONS})


@pytest.mark.parametrize("T", [1, 2, 10, 1000])
def test_schedule_is_the_library_ddpm_table(ch0, T: int) -> None:
    # betas = linspace(1e-4, 0.02, T) behind beta_0 = 0, alpha_bar = cumprod(1 - betas): ddpm_linear's arrays
    betas, alpha_bar = ch0.ddpm_schedule(T)
    chain = ddpm_linear(T)
    assert betas.shape == alpha_bar.shape == (T + 1,)
    np.testing.assert_allclose(betas, chain.betas, rtol=1e-15, atol=0, err_msg=f"betas, T={T}")
    np.testing.assert_allclose(alpha_bar, chain.alpha_bar, rtol=1e-14, atol=0, err_msg=f"alpha_bar, T={T}")


def test_forward_sample_is_the_library_q_sample(ch0) -> None:
    rng = np.random.default_rng(1)
    T = 1000
    _, alpha_bar = ch0.ddpm_schedule(T)
    x0, eps = rng.standard_normal((64, 2)), rng.standard_normal((64, 2))
    t = np.concatenate([[0, 1, T], rng.integers(1, T + 1, 61)])  # both ends of the chain and between
    expected = q_sample_discrete(x0, t, eps, ddpm_linear(T))
    np.testing.assert_allclose(ch0.q_sample(x0, t, eps, alpha_bar), expected, rtol=1e-14, atol=1e-15)


def test_loss_and_its_gradient_are_the_library_objective(ch0) -> None:
    # the library's eps objective: target prediction_target("eps"), weight loss_weight(eps, eps), loss mse
    rng = np.random.default_rng(2)
    T, B = 1000, 32
    chain = ddpm_linear(T)
    x0, eps = rng.standard_normal((B, 2)), rng.standard_normal((B, 2))
    t = rng.integers(1, T + 1, B)
    ab = chain.alpha_bar[t]  # (B,)
    eps_hat = eps + 0.3 * rng.standard_normal((B, 2))  # any prediction
    target = prediction_target("eps", x0, eps, np.sqrt(ab)[:, None], np.sqrt(1.0 - ab)[:, None])
    weight = loss_weight(np.log(ab / (1.0 - ab)), "eps", "eps")  # (B,)
    expected_loss, expected_grad = mse(eps_hat, target, weight)
    loss, grad = ch0.loss_and_grad(eps_hat, eps)
    assert loss == pytest.approx(expected_loss, rel=1e-14)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-14, atol=0)


def test_hand_gradient_matches_central_differences(ch0) -> None:
    # d L / d theta for every weight of a small network, L the chapter's loss through its features and MLP
    rng = np.random.default_rng(3)
    T, B = 1000, 16
    _, alpha_bar = ch0.ddpm_schedule(T)
    params = ch0.init_mlp(rng, [2 + 2 * 8, 12, 12, 2])
    for p in params:  # nonzero biases, so their gradients are exercised away from the initial zeros
        p += 0.1 * rng.standard_normal(p.shape)
    x0, eps = rng.standard_normal((B, 2)), rng.standard_normal((B, 2))
    t = rng.integers(1, T + 1, B)
    e = ch0.features(ch0.q_sample(x0, t, eps, alpha_bar), t)  # (B, 18)

    def loss_of(ps: list[np.ndarray]) -> float:
        return float(ch0.loss_and_grad(ch0.mlp(ps, e)[0], eps)[0])

    eps_hat, cache = ch0.mlp(params, e)
    grads = ch0.mlp_backward(params, cache, ch0.loss_and_grad(eps_hat, eps)[1])
    assert [g.shape for g in grads] == [p.shape for p in params]
    h = 1e-6
    for k, (p, g) in enumerate(zip(params, grads)):
        numeric = np.empty_like(p)
        for idx in np.ndindex(p.shape):
            keep = p[idx]
            p[idx] = keep + h
            up = loss_of(params)
            p[idx] = keep - h
            down = loss_of(params)
            p[idx] = keep
            numeric[idx] = (up - down) / (2 * h)
        scale = np.abs(numeric).max()
        assert scale > 0, f"parameter {k} has an identically zero gradient: the check would be empty"
        np.testing.assert_allclose(g, numeric, rtol=0, atol=1e-6 * scale, err_msg=f"parameter {k}, shape {p.shape}")


class _FixedEps:
    r"""A denoiser of the protocol whose prediction is a given array, whatever x and t."""

    def __init__(self, eps_hat: np.ndarray) -> None:
        self.eps_hat = eps_hat
        self.schedule = vp_linear()  # only the chain's alpha_bar enters the step; this sets the call time

    def eps(self, x: np.ndarray, t: float | np.ndarray) -> np.ndarray:
        return self.eps_hat

    def eps_and_divergence(self, x: np.ndarray, t: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.eps_hat, np.zeros(x.shape[0])


@pytest.mark.parametrize("t", [1, 2, 3, 500, 999, 1000])
def test_one_ancestral_step_is_the_library_reverse_step(ch0, t: int) -> None:
    # Ho et al. 2020, Alg. 2 (1/sqrt(alpha_t) (x_t - beta_t / sqrt(1 - alpha_bar_t) eps_hat) + sqrt(beta_t) z)
    # against the library's posterior mean at x0_hat (Eq. 7 and 15) with variance "large" (beta_t); no noise at t = 1
    rng = np.random.default_rng(4)
    T = 1000
    betas, alpha_bar = ch0.ddpm_schedule(T)
    x_t, eps_hat, z = (rng.standard_normal((50, 2)) for _ in range(3))
    mean, log_var, _, _ = p_mean_log_variance(_FixedEps(eps_hat), x_t, t, ReverseVariance(ddpm_linear(T), "large"))
    expected = mean + np.exp(0.5 * log_var)[:, None] * z if t > 1 else mean
    got = ch0.p_sample_step(x_t, t, eps_hat, z, betas, alpha_bar)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12, err_msg=f"t={t}")


_LINE = re.compile(r"^  (?P<name>\S.*?) = (?P<value>\S+)(?:  \(.*\))?$")


@pytest.mark.slow
def test_quick_run_learns_the_data(tmp_path: Path) -> None:
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, str(CHAPTER), "--quick", "--out", str(tmp_path)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "chapter 00 done in" in proc.stdout
    n = {m["name"]: float(m["value"]) for m in map(_LINE.match, proc.stdout.splitlines()) if m}
    assert n["alpha_bar[T]"] == pytest.approx(ddpm_linear(1000).alpha_bar[-1], rel=1e-3)  # printed to 4 digits
    assert n["final loss (mean of the last 5% of steps)"] < 0.5 * n["first loss"]
    # samples on the eight blobs: the mean true log-density within 0.5 nats of -H (a ring would be ~1 nat off);
    # above -H only by Monte Carlo noise (s.e. ~0.03)
    assert -0.5 < n["mean log p_data(samples) + H"] < 0.15
    assert n["energy distance to fresh data"] < 0.05
    from PIL import Image

    for name in ("00_chain.png", "00_samples.png"):
        with Image.open(tmp_path / name) as im:
            assert im.format == "PNG" and im.width >= 600 and im.height >= 300, (name, im.size)
            assert np.asarray(im.convert("L"), dtype=float).std() > 5.0, f"{name} is one flat colour"
