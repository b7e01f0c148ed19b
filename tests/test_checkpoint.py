"""Checkpoints: bit-identical round trip, exact resume, atomic writes, clear errors on bad files."""

import os
import pickle

import numpy as np
import pytest

from npdiff import checkpoint
from npdiff.nn import MLPConfig
from npdiff.nn.model import DiffusionMLP
from npdiff.schedule import cosine, vp_linear
from npdiff.train import TrainConfig, Trainer, train

CFG = MLPConfig(width=16, depth=2, emb_dim=8, parameterization="v", activation="silu")


def _data(n, rng):
    return rng.standard_normal((n, 2)) * np.array([1.0, 0.3]) + 0.5


def _trainer(seed=0, steps=20):
    rng = np.random.default_rng(seed)
    model = DiffusionMLP(CFG, cosine(), rng=rng)
    tc = TrainConfig(steps=steps, batch_size=16, lr=3e-3, lr_schedule="cosine", weight_decay=0.01)
    return Trainer(model, _data, tc, rng)


def test_save_then_load_restores_every_array_bit_for_bit(tmp_path):
    tr = _trainer()
    tr.run(until=7, progress=False)
    path = tmp_path / "ck.npz"
    tr.save(path)
    ck = checkpoint.load(path)
    np.testing.assert_array_equal(ck.raw_model.params, tr.params)
    assert ck.raw_model.params.dtype == np.float32
    for name, arr in tr.optimizer.state_arrays().items():
        np.testing.assert_array_equal(ck.optimizer[name], arr, err_msg=name)
    for name, arr in tr.history.items():
        np.testing.assert_array_equal(ck.history[name], arr, err_msg=name)
    assert ck.step == 7 and ck.raw_model.config == CFG and ck.raw_model.schedule == cosine()
    assert ck.train_config == tr.config.to_dict()
    assert ck.rng.bit_generator.state == tr.rng.bit_generator.state
    np.testing.assert_array_equal(ck.rng.standard_normal(5), tr.rng.standard_normal(5))  # same stream
    np.testing.assert_array_equal(ck.denoiser(ema=True).params, tr.optimizer.ema)
    # the loaded denoiser predicts what the trained one predicts
    x = np.random.default_rng(3).standard_normal((4, 2))
    np.testing.assert_array_equal(ck.denoiser().eps(x, 0.3), tr.denoiser().eps(x, 0.3))


def test_resumed_run_follows_the_uninterrupted_trajectory(tmp_path):
    # train 2N steps in one go vs N steps, save, load in a fresh Trainer, N more steps: identical state
    straight = _trainer(seed=4, steps=24)
    straight.run(progress=False)
    first = _trainer(seed=4, steps=24)
    first.run(until=12, progress=False)
    first.save(tmp_path / "half.npz")
    resumed = Trainer.load(tmp_path / "half.npz", _data)
    assert resumed.step == 12
    resumed.run(progress=False)
    np.testing.assert_array_equal(resumed.params, straight.params)
    np.testing.assert_array_equal(resumed.optimizer.ema, straight.optimizer.ema)
    np.testing.assert_array_equal(resumed.optimizer.m, straight.optimizer.m)
    np.testing.assert_array_equal(resumed.history["loss"], straight.history["loss"])


def test_train_checkpoints_periodically_and_resumes(tmp_path):
    path = tmp_path / "run.npz"
    model, hist = train(CFG, _data, rng=8, steps=10, batch_size=8, checkpoint_path=path, checkpoint_every=4,
                        progress=False)
    ck = checkpoint.load(path)
    assert ck.step == 10 and ck.history["loss"].shape == (10,)
    np.testing.assert_array_equal(ck.denoiser().params, model.params)
    # a finished run resumed does no further step and returns the same model
    again, hist2 = train(CFG, _data, rng=0, resume=path, progress=False)
    np.testing.assert_array_equal(again.params, model.params)
    np.testing.assert_array_equal(hist2["loss"], hist["loss"])
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_a_crash_while_saving_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    tr = _trainer()
    path = tmp_path / "ck.npz"
    tr.save(path)
    before = path.read_bytes()
    tr.run(until=3, progress=False)

    def dying_savez(f, **arrays):
        f.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt("power cut")

    monkeypatch.setattr(np, "savez", dying_savez)
    with pytest.raises(KeyboardInterrupt):
        tr.save(path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["ck.npz"]  # the temporary file is gone
    monkeypatch.undo()
    assert checkpoint.load(path).step == 0


def test_truncated_file_raises_a_clear_error(tmp_path):
    tr = _trainer()
    path = tmp_path / "ck.npz"
    tr.save(path)
    data = path.read_bytes()
    for cut in (len(data) // 2, 100, 0):
        bad = tmp_path / f"cut{cut}.npz"
        bad.write_bytes(data[:cut])
        with pytest.raises(ValueError, match=rf"{bad.name}.*not a valid npdiff checkpoint"):
            checkpoint.load(bad)


def test_corrupted_bytes_raise_a_clear_error(tmp_path):
    tr = _trainer()
    path = tmp_path / "ck.npz"
    tr.save(path)
    data = bytearray(path.read_bytes())
    start = data.index(b"params.npy") + 200  # inside the stored weights: the zip CRC catches it
    data[start:start + 8] = b"\x00\xff" * 4
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"ck.npz.*not a valid npdiff checkpoint"):
        checkpoint.load(path)


def test_files_with_pickled_objects_are_refused(tmp_path):
    inside = tmp_path / "object.npz"
    np.savez(inside, npdiff_checkpoint=np.array("npdiff-checkpoint"), config=np.array({"a": 1}, dtype=object))
    with pytest.raises(ValueError, match=r"object.npz.*pickle"):
        checkpoint.load(inside)
    plain = tmp_path / "plain.npz"
    plain.write_bytes(pickle.dumps({"params": [1, 2, 3]}))
    with pytest.raises(ValueError, match=r"plain.npz.*pickle"):
        checkpoint.load(plain)


def test_foreign_files_are_refused(tmp_path):
    other = tmp_path / "other.npz"
    np.savez(other, weights=np.zeros(3))
    with pytest.raises(ValueError, match=r"other.npz.*no 'npdiff-checkpoint' marker"):
        checkpoint.load(other)
    single = tmp_path / "single.npy"
    np.save(single, np.zeros(3))
    with pytest.raises(ValueError, match=r"single.npy.*single array"):
        checkpoint.load(single)
    tr = _trainer()
    good = tmp_path / "good.npz"
    tr.save(good)
    with np.load(good) as z:
        arrays = dict(z)
    arrays["params"] = arrays["params"][:-1]  # weights that do not fit the config
    np.savez(tmp_path / "short.npz", **arrays)
    with pytest.raises(ValueError, match=r"short.npz.*do not describe a model"):
        checkpoint.load(tmp_path / "short.npz")
    with pytest.raises(FileNotFoundError):
        checkpoint.load(tmp_path / "missing.npz")


def test_a_file_cannot_choose_which_callable_restores_the_generator(tmp_path):
    # the generator state names its bit generator; only NumPy's bit generators are accepted
    import json as _json

    from npdiff.checkpoint import load, save
    from npdiff.nn import MLPConfig
    from npdiff.nn.model import DiffusionMLP
    from npdiff.schedule import vp_linear

    model = DiffusionMLP(MLPConfig(width=8, depth=1, emb_dim=8), vp_linear(), rng=np.random.default_rng(0))
    path = save(tmp_path / "m.npz", model, rng=np.random.default_rng(1))
    arrays = dict(np.load(path, allow_pickle=False))
    state = _json.loads(str(arrays["rng_state"]))
    state["bit_generator"] = "seed"  # np.random.seed is a callable of np.random, not a bit generator
    arrays["rng_state"] = np.array(_json.dumps(state))
    np.savez(tmp_path / "evil.npz", **arrays)
    with pytest.raises(ValueError, match="unknown bit generator 'seed'"):
        load(tmp_path / "evil.npz")
    assert load(path).rng.bit_generator.state == np.random.default_rng(1).bit_generator.state


def test_model_is_the_ema_denoiser_and_raw_model_the_trained_weights(tmp_path):
    tr = _trainer()
    tr.run(until=9, progress=False)
    tr.save(tmp_path / "ck.npz")
    ck = checkpoint.load(tmp_path / "ck.npz")
    np.testing.assert_array_equal(ck.model.params, tr.optimizer.ema)  # what `npdiff sample` and `nll` evaluate
    np.testing.assert_array_equal(ck.raw_model.params, tr.params)
    assert not np.array_equal(ck.model.params, ck.raw_model.params)
    x = np.random.default_rng(5).standard_normal((3, 2))
    np.testing.assert_array_equal(ck.model.eps(x, 0.4), ck.denoiser().eps(x, 0.4))
    # a file without an optimizer state (a model saved alone) has one set of weights: model is it
    checkpoint.save(tmp_path / "alone.npz", tr.denoiser())
    alone = checkpoint.load(tmp_path / "alone.npz")
    np.testing.assert_array_equal(alone.model.params, tr.optimizer.ema)
    assert alone.raw_model is alone.model


def test_the_training_data_sets_name_is_recorded_and_older_files_without_it_load(tmp_path):
    from npdiff.data import toy2d

    moons = toy2d.load("moons")
    tr = Trainer(DiffusionMLP(CFG, cosine(), rng=0), moons, TrainConfig(steps=2, batch_size=8), 0)
    tr.run(progress=False)
    tr.save(tmp_path / "moons.npz")
    assert checkpoint.load(tmp_path / "moons.npz").data_name == "moons"
    assert Trainer.load(tmp_path / "moons.npz", _data).data_name == "moons"  # a resumed run keeps the name
    checkpoint.save(tmp_path / "named.npz", tr.denoiser(), data_name="rings")
    assert checkpoint.load(tmp_path / "named.npz").data_name == "rings"
    checkpoint.save(tmp_path / "unnamed.npz", tr.denoiser())  # what every file looked like before the name
    with np.load(tmp_path / "unnamed.npz") as z:
        assert '"data"' not in str(z["config"])
    assert checkpoint.load(tmp_path / "unnamed.npz").data_name is None
    for bad in ("", 3, "x" * 201):
        with pytest.raises(ValueError, match="data_name must be a data set's name"):
            checkpoint.save(tmp_path / "bad.npz", tr.denoiser(), data_name=bad)


def test_a_forged_data_name_is_refused_on_load(tmp_path):
    import json

    checkpoint.save(tmp_path / "ok.npz", DiffusionMLP(CFG, cosine(), rng=0), data_name="moons")
    with np.load(tmp_path / "ok.npz") as z:
        arrays = dict(z)
    config = json.loads(str(arrays["config"]))
    np.savez(tmp_path / "forged.npz", **{**arrays, "config": np.array(json.dumps({**config, "data": ["moons"]}))})
    with pytest.raises(ValueError, match=r"forged\.npz is not a valid npdiff checkpoint: config 'data' must be"):
        checkpoint.load(tmp_path / "forged.npz")


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_the_file_honours_the_umask_like_any_new_file(tmp_path, umask):
    old = os.umask(umask)
    try:
        path = checkpoint.save(tmp_path / "m.npz", DiffusionMLP(CFG, cosine(), rng=0))
        plain = tmp_path / "plain.txt"
        plain.write_text("x")
    finally:
        os.umask(old)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask == os.stat(plain).st_mode & 0o777


def test_save_creates_missing_folders_and_refuses_a_folder_as_the_file(tmp_path):
    # a long run must not end on a path it cannot write: the folders are made, a folder is named in the error
    model = DiffusionMLP(MLPConfig(dim=2, width=8, depth=1, emb_dim=4), vp_linear(), rng=np.random.default_rng(0))
    path = checkpoint.save(tmp_path / "new" / "deeper" / "model.npz", model)
    assert path.is_file() and np.array_equal(checkpoint.load(path).model.params, model.params)
    with pytest.raises(IsADirectoryError, match="path must name a checkpoint file"):
        checkpoint.save(tmp_path / "new", model)
