"""The conditional MLP: the label table's hand-written gradient against central differences (float64), the fast path
against the reference to 1e-12, the unconditional layout unchanged, label dropout in the trainer, checkpoints."""

import numpy as np
import pytest

from npdiff import checkpoint
from npdiff.data import toy2d
from npdiff.nn import MLPConfig, mlp
from npdiff.nn.fast import FastMLP
from npdiff.nn.model import DiffusionMLP
from npdiff.schedule import vp_linear
from npdiff.train import TrainConfig, Trainer, train

from .test_nn_mlp import _fd_grad  # central differences in float64, one parameter at a time

SMALL = dict(dim=2, width=6, depth=2, emb_dim=6, num_classes=3)


def _batch(rng, B=7, D=2):
    return rng.standard_normal((B, D)) * 1.5, rng.uniform(0.05, 0.95, B), rng.standard_normal((B, D))


@pytest.mark.parametrize("labels", ["per_point", "one", "none"])
def test_every_gradient_of_a_conditional_network_matches_central_differences(labels):
    cfg = MLPConfig(activation="silu", coords="raw+sinusoidal", **SMALL)
    rng = np.random.default_rng(40)
    theta = cfg.init_params(rng, np.float64) * 3.0
    x, t, target = _batch(rng)
    y = {"per_point": np.array([0, 2, 1, 1, 0, 2, 2]), "one": 1, "none": None}[labels]
    loss, grad = mlp.loss_and_grad(cfg, theta, x, t, target, None, y)
    np.testing.assert_allclose(loss, np.mean((mlp.forward(cfg, theta, x, t, y)[0] - target) ** 2), rtol=1e-12)
    fd = _fd_grad(lambda p: np.mean((mlp.forward(cfg, p, x, t, y)[0] - target) ** 2), theta.copy())  # the loss, forward only
    scale = np.maximum(np.abs(fd), 1e-3 * np.abs(fd).max())
    err = np.abs(grad - fd) / scale
    assert err.max() < 1e-6, f"relative error {err.max():.2e} at parameter {err.argmax()} of {theta.size}"
    # the table's rows are the first bias's gradient split by label: they sum to it, and unused rows get nothing
    dE, db0 = cfg.label_table(grad), cfg.layers(grad)[0][1]
    np.testing.assert_allclose(dE.sum(axis=0), db0, rtol=1e-12, atol=1e-15)
    used = {"per_point": {0, 1, 2}, "one": {1}, "none": {3}}[labels]  # row 3 = C: "no label"
    for c in range(4):
        assert (np.any(dE[c] != 0.0)) == (c in used), f"row {c} of the table's gradient"


def test_the_label_moves_the_output_but_not_the_jacobian_structure():
    # J v by the reference's forward mode against central differences, for a conditional network with labels
    cfg = MLPConfig(**SMALL)
    rng = np.random.default_rng(41)
    theta = cfg.init_params(rng, np.float64) * 2.0
    x, t, _ = _batch(rng, B=4)
    y = np.array([2, 0, 1, 2])
    h = 1e-6
    J = np.empty((4, 2, 2))
    for j in range(2):
        xp, xm = x.copy(), x.copy()
        xp[:, j] += h
        xm[:, j] -= h
        J[:, :, j] = (mlp.forward(cfg, theta, xp, t, y)[0] - mlp.forward(cfg, theta, xm, t, y)[0]) / (2 * h)
    out, tr = mlp.divergence(cfg, theta, x, t, y)
    np.testing.assert_allclose(tr, np.trace(J, axis1=1, axis2=2), rtol=1e-6, atol=1e-8)
    assert np.all(np.abs(out - mlp.forward(cfg, theta, x, t, (y + 1) % 3)[0]) > 1e-3)  # another label, another answer


@pytest.mark.parametrize("case", ["per_point", "one_label", "one_time_one_label", "none"])
def test_conditional_fast_path_equals_the_reference_in_float64(case):
    cfg = MLPConfig(dim=3, width=16, depth=2, emb_dim=8, coords="raw+sinusoidal", num_classes=4)
    rng = np.random.default_rng(42)
    theta = cfg.init_params(rng, np.float64) * 2.0
    x, t, target = _batch(rng, B=9, D=3)
    weight = rng.uniform(0.2, 2.0, 9)
    y = {"per_point": rng.integers(0, 4, 9), "one_label": 3, "one_time_one_label": 2, "none": None}[case]
    if case == "one_time_one_label":
        t = np.full(9, 0.37)
    rows = cfg.label_index(cfg.check_labels(y, 9), 9)
    fast = FastMLP(cfg)
    grad = np.full_like(theta, np.nan)  # every entry must be written, the table's too
    loss = fast.loss_and_grad(cfg.layers(theta), cfg.layers(grad), x, t, target, weight, rows, cfg.label_table(theta),
                              cfg.label_table(grad))
    ref_loss, ref_grad = mlp.loss_and_grad(cfg, theta, x, t, target, weight, y)
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-12)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-12, atol=1e-12 * np.abs(ref_grad).max())
    y_ref, div_ref = mlp.divergence(cfg, theta, x, t, y)
    np.testing.assert_allclose(fast.output(cfg.layers(theta), x, t, rows, cfg.label_table(theta)), y_ref, rtol=1e-12,
                               atol=1e-13)
    out, tr = fast.output_and_trace(cfg.layers(theta), x, t, rows, cfg.label_table(theta))
    np.testing.assert_allclose(out, y_ref, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(tr, div_ref, rtol=1e-12, atol=1e-12 * np.abs(div_ref).max())


def test_unconditional_layout_and_config_are_unchanged():
    plain, cond = MLPConfig(width=8, depth=1, emb_dim=8), MLPConfig(width=8, depth=1, emb_dim=8, num_classes=5)
    assert plain.n_params == sum(i * o + o for i, o in plain.layer_shapes) and plain.label_table(np.zeros(plain.n_params)) is None
    assert cond.n_params == plain.n_params + 6 * 8
    a, b = plain.init_params(np.random.default_rng(3), np.float64), cond.init_params(np.random.default_rng(3), np.float64)
    np.testing.assert_array_equal(b[:plain.n_params], a)  # the same draws, the table last
    assert "num_classes" not in plain.to_dict() and cond.to_dict()["num_classes"] == 5
    assert MLPConfig.from_dict(plain.to_dict()) == plain and MLPConfig.from_dict(cond.to_dict()) == cond


def test_an_unconditional_checkpoint_is_written_as_before_and_loads(tmp_path):
    import json
    import zipfile

    model = DiffusionMLP(MLPConfig(width=8, depth=1, emb_dim=8), vp_linear(), rng=np.random.default_rng(4))
    checkpoint.save(tmp_path / "u.npz", model)
    with zipfile.ZipFile(tmp_path / "u.npz") as z, z.open("config.npy") as f:
        config = json.loads(str(np.lib.format.read_array(f)))
    assert "num_classes" not in config["model"]  # the file an earlier npdiff wrote and reads
    loaded = checkpoint.load(tmp_path / "u.npz").model
    assert loaded.num_classes == 0 and loaded.config == model.config
    np.testing.assert_array_equal(loaded.params, model.params)


def test_conditional_model_answers_with_labels_and_refuses_bad_ones():
    rng = np.random.default_rng(43)
    model = DiffusionMLP(MLPConfig(parameterization="v", **SMALL), vp_linear(), rng=rng)
    plain = DiffusionMLP(MLPConfig(**{**SMALL, "num_classes": 0}), vp_linear(), rng=rng)
    x, t, _ = _batch(rng, B=5)
    assert model.num_classes == 3 and plain.num_classes == 0
    per_point = np.array([0, 1, 2, 2, 1])
    rows = np.stack([model.eps(x[i:i + 1], t[i], c)[0] for i, c in enumerate(per_point)])
    np.testing.assert_allclose(model.eps(x, t, per_point), rows, rtol=1e-12, atol=1e-14)
    # y = None is the "no label" row: the reference network fed row C
    ref = mlp.forward(model.config, model.params, x, t)[0]
    np.testing.assert_allclose(model.predict(x, t), ref, rtol=1e-12, atol=1e-13)
    eps, div = model.eps_and_divergence(x, t, 1)
    np.testing.assert_allclose(eps, model.eps(x, t, 1), rtol=1e-12, atol=1e-14)
    assert div.shape == (5,)
    with pytest.raises(ValueError, match="y must be None: this model has no labels"):
        plain.eps(x, t, 1)
    with pytest.raises(ValueError, match=r"y must be integers in 0\.\.2"):
        model.eps(x, t, 3)
    with pytest.raises(ValueError, match=r"y must be an int or an array of shape \(5,\)"):
        model.eps(x, t, [0, 1])
    with pytest.raises(ValueError, match="num_classes must be an integer >= 0"):
        MLPConfig(num_classes=-1)


def test_trainer_drops_labels_with_probability_p_uncond_from_its_generator():
    # a sampler that records the labels the network saw: p_uncond = 0 keeps all, 1 drops all, 0.5 about half
    cfg = MLPConfig(**SMALL)
    d = toy2d.load("circles")
    for p, lo, hi in ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0), (0.5, 0.4, 0.6)):
        seen = []
        tr = Trainer(DiffusionMLP(cfg, vp_linear(), rng=np.random.default_rng(0)), d,
                     TrainConfig(steps=20, batch_size=64, p_uncond=p), np.random.default_rng(1))
        original = tr._loss_and_grad  # the trainer's one seam with the network: (xt, t, target, weight, rows)

        def spy(*args, _orig=original, _seen=seen):
            _seen.append(args[4].copy())  # the label rows of the step
            return _orig(*args)

        tr._loss_and_grad = spy
        tr.run(progress=False)
        rows = np.concatenate(seen)
        share = np.mean(rows == 3)
        assert lo <= share <= hi, (p, share)
        assert set(np.unique(rows[rows < 3])) <= {0, 1}  # circles has two labels


def test_conditional_training_is_reproducible_and_checkpoints_round_trip(tmp_path):
    cfg = MLPConfig(**{**SMALL, "num_classes": 8})
    kw = dict(steps=30, batch_size=32, lr=3e-3, progress=False)
    data = toy2d.load("8gaussians")
    m1, h1 = train(cfg, data, rng=5, **kw)
    m2, h2 = train(cfg, data, rng=5, **kw)
    np.testing.assert_array_equal(h1["loss"], h2["loss"])
    np.testing.assert_array_equal(m1.params, m2.params)
    # a pair of arrays is labelled data too
    x, y = data.sample_labelled(200, np.random.default_rng(6))
    m3, _ = train(cfg, (x, y), rng=5, **kw)
    assert np.all(np.isfinite(m3.params))
    tr = Trainer(DiffusionMLP(cfg, vp_linear(), rng=np.random.default_rng(7)), data, TrainConfig(steps=10, batch_size=16),
                 np.random.default_rng(8))
    tr.run(progress=False, checkpoint_path=tmp_path / "c.npz")
    ck = checkpoint.load(tmp_path / "c.npz")
    assert ck.model.config == cfg and ck.model.num_classes == 8
    xs = np.random.default_rng(9).standard_normal((4, 2))
    np.testing.assert_array_equal(ck.denoiser().eps(xs, 0.3, 5), tr.denoiser().eps(xs, 0.3, 5))
    resumed = Trainer.load(tmp_path / "c.npz", data)
    assert resumed.config.p_uncond == 0.1 and resumed.step == 10
    with pytest.raises(TypeError, match="must come with labels"):
        Trainer(DiffusionMLP(cfg, vp_linear(), rng=np.random.default_rng(7)), x, TrainConfig(steps=2), np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"data\[1\] \(the labels\) must be integers in 0\.\.7"):
        Trainer(DiffusionMLP(cfg, vp_linear(), rng=np.random.default_rng(7)), (x, y + 1), TrainConfig(steps=2),
                np.random.default_rng(0))
    with pytest.raises(ValueError, match="p_uncond must lie in"):
        TrainConfig(p_uncond=1.5)
