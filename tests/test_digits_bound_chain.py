"""The image recipe's bound chain: its times, and `npdiff nll` running it by default with the per-pixel variance."""

import json

import numpy as np
import pytest

from npdiff.checkpoint import load, save
from npdiff.cli import main
from npdiff.data.images import digits
from npdiff.likelihood import vlb
from npdiff.nn import MLPConfig
from npdiff.nn.model import DiffusionMLP
from npdiff.recipes import RECIPES, bound_times
from npdiff.schedule import cosine, vp_linear


@pytest.mark.parametrize("schedule", [vp_linear(), cosine()])
def test_the_recipes_chain_is_uniform_in_sqrt_t_down_to_its_t_min(schedule):
    ev = RECIPES["images"]["eval"]
    times = bound_times(schedule)
    K, t_min = ev["vlb_T"], ev["vlb_t_min"]
    # K steps, one evaluation each: K - 1 between the times, then the decoder's from t_min to clean data
    want = np.linspace(np.sqrt(schedule.t_max), np.sqrt(t_min), K) ** 2  # written out, not the grid builder
    np.testing.assert_allclose(times, want, rtol=1e-12)
    assert times.size == K and np.all(np.diff(times) < 0)


def test_the_recipes_chain_refuses_what_is_not_a_schedule():
    with pytest.raises(TypeError, match="schedule"):
        bound_times("vp_linear")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("bound_chain")
    save(d / "model.npz", DiffusionMLP(MLPConfig(dim=64, width=16, depth=1, emb_dim=8), vp_linear(),
                                       rng=np.random.default_rng(0)), data_name="digits")
    return d


def _nll(capsys, *flags):
    code = main(["nll", "--data", "digits", "--n", "5", "--method", "vlb", "--json", *flags])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out.strip().splitlines()[-1]), err


def test_nll_runs_the_recipes_chain_with_the_diagonal_variance_by_default(model_dir, capsys):
    path = str(model_dir / "model.npz")
    r, err = _nll(capsys, "--model", path)
    assert r["vlb_T"] == RECIPES["images"]["eval"]["vlb_T"] and r["vlb_variance"] == "diagonal"
    assert "quadratic grid, the decoder from t = 0.02" in err and "diagonal variance" in err, err
    model, x = load(path).denoiser(ema=True), digits().test[:5]
    direct = vlb(model, x, rng=np.random.default_rng(0), K=17, times=bound_times(model.schedule), variance="diagonal")
    assert r["bpd_vlb"] == pytest.approx(float((direct.total / (64 * np.log(2))).mean()), rel=1e-12)
    # --T keeps its meaning: that many uniform steps, the decoder from t = 1/T
    r, err = _nll(capsys, "--model", path, "--T", "7", "--variance", "large")
    direct = vlb(model, x, 7, rng=np.random.default_rng(0), K=17, variance="large")
    assert r["vlb_T"] == 7 and "quadratic" not in err
    assert r["bpd_vlb"] == pytest.approx(float((direct.total / (64 * np.log(2))).mean()), rel=1e-12)
