"""npdiff's BLAS thread policy: one thread inside the work that runs the network, the user's setting wins.

Each test first sets BLAS to two threads (as OpenBLAS's default would on this 2-core machine) and
clears the environment variables, then looks at the count BLAS reports from inside the work.
"""

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from npdiff import threads
from npdiff.analytic import GaussianData
from npdiff.likelihood import ode_log_likelihood, vlb
from npdiff.nn import MLPConfig
from npdiff.nn.model import DiffusionMLP
from npdiff.sample import ddim_sample, ddpm_sample, ode_sample, sde_sample
from npdiff.schedule import vp_linear
from npdiff.train import TrainConfig, Trainer


def blas_counts() -> set[int]:
    return {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}


@pytest.fixture
def two_blas_threads(monkeypatch):
    for name in threads.BLAS_ENV:
        monkeypatch.delenv(name, raising=False)
    with threadpool_limits(limits=2, user_api="blas"):
        assert blas_counts() == {2}
        yield
    # threadpoolctl restores the count the process started with


class Spy:
    """A denoiser (an exact oracle) that notes the BLAS thread counts it was called under."""

    def __init__(self):
        self.oracle = GaussianData(np.zeros(2), np.eye(2), vp_linear())
        self.schedule, self.dim, self.seen = self.oracle.schedule, 2, set()

    def eps(self, x, t):
        self.seen |= blas_counts()
        return self.oracle.eps(x, t)

    def eps_and_divergence(self, x, t):
        self.seen |= blas_counts()
        return self.oracle.eps_and_divergence(x, t)


WORK = {
    "ddpm": lambda d: ddpm_sample(d, 4, np.random.default_rng(0), steps=3),
    "ddim": lambda d: ddim_sample(d, 4, np.random.default_rng(0), steps=3),
    "ode heun": lambda d: ode_sample(d, 4, np.random.default_rng(0), method="heun", steps=2),
    "ode rk45": lambda d: ode_sample(d, 4, np.random.default_rng(0), rtol=1e-2, atol=1e-2),
    "sde": lambda d: sde_sample(d, 4, np.random.default_rng(0), steps=3),
    "ode likelihood": lambda d: ode_log_likelihood(d, np.zeros((4, 2)), rtol=1e-2, atol=1e-2),
    "vlb": lambda d: vlb(d, np.zeros((4, 2)), 5, rng=np.random.default_rng(0)),
}


@pytest.mark.parametrize("name", WORK)
def test_samplers_and_likelihoods_run_on_one_blas_thread_and_restore_the_count(two_blas_threads, name):
    spy = Spy()
    WORK[name](spy)
    assert spy.seen == {1}, f"{name} ran the denoiser under BLAS thread counts {spy.seen}"
    assert blas_counts() == {2}, "the caller's count was not restored"


def test_the_training_loop_runs_on_one_blas_thread(two_blas_threads):
    seen = set()

    def data(n, rng):
        seen.update(blas_counts())
        return rng.standard_normal((n, 2))

    cfg = MLPConfig(width=8, depth=1, emb_dim=8)
    trainer = Trainer(DiffusionMLP(cfg, vp_linear(), rng=np.random.default_rng(0)), data, TrainConfig(steps=3, batch_size=4),
                      np.random.default_rng(1))
    trainer.run(progress=False)
    assert seen == {1} and blas_counts() == {2}


def test_the_count_is_restored_after_an_error(two_blas_threads):
    spy = Spy()
    with pytest.raises(ValueError, match="steps"):
        ddpm_sample(spy, 4, np.random.default_rng(0), steps=0)
    assert blas_counts() == {2}


@pytest.mark.parametrize("name", ["OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"])
def test_a_user_setting_in_the_environment_wins(two_blas_threads, monkeypatch, name):
    monkeypatch.setenv(name, "2")
    assert threads.user_blas_setting() == f"{name}=2"
    spy = Spy()
    WORK["ddpm"](spy)
    assert spy.seen == {2}, f"with {name}=2 npdiff changed BLAS to {spy.seen}"


def test_blas_threads_none_leaves_blas_alone_and_a_bad_count_is_refused(two_blas_threads, monkeypatch):
    monkeypatch.setattr(threads, "BLAS_THREADS", None)
    with threads.blas_threads() as n:
        assert n is None and blas_counts() == {2}
    monkeypatch.setattr(threads, "BLAS_THREADS", 0)
    with pytest.raises(ValueError, match="BLAS_THREADS must be a positive int or None, got 0"):
        WORK["ddpm"](Spy())


def test_an_empty_variable_is_no_setting(monkeypatch):
    for name in threads.BLAS_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", " ")
    assert threads.user_blas_setting() is None
