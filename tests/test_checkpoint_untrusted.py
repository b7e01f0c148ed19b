"""Checkpoints (and IDX image files) from untrusted sources: every damaged or forged file is a clear
ValueError naming the file.

Loading never unpickles, and never allocates what a forged .npy header claims: a header that
announces 10^12 elements is refused from its size alone, before any array is built (the test
runs under an address-space limit far below what that array would need). Saving is atomic:
a write that fails midway leaves the previous checkpoint loadable and bit-identical.
"""

import gzip
import io
import json
import os
import pickle
import resource
import struct
import zipfile

import numpy as np
import pytest

from npdiff import checkpoint
from npdiff.data.images import read_idx, write_idx
from npdiff.nn import MLPConfig
from npdiff.nn.model import DiffusionMLP
from npdiff.schedule import vp_linear
from npdiff.train import TrainConfig, Trainer

CFG = MLPConfig(width=8, depth=1, emb_dim=8)


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """A checkpoint with every entry (weights, AdamW + EMA, generator, history) and its arrays."""
    d = tmp_path_factory.mktemp("ck")
    rng = np.random.default_rng(0)
    tr = Trainer(DiffusionMLP(CFG, vp_linear(), rng=rng), lambda n, r: r.standard_normal((n, 2)),
                 TrainConfig(steps=4, batch_size=8), rng)
    tr.run(progress=False)
    path = d / "good.npz"
    tr.save(path)
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    return path, arrays


def _write(path, arrays):
    np.savez(path, **arrays)
    return path


def _refused(path, *words):
    with pytest.raises(ValueError) as info:
        checkpoint.load(path)
    msg = str(info.value)
    assert path.name in msg and "not a valid npdiff checkpoint" in msg, msg
    for w in words:
        assert w in msg, f"expected {w!r} in {msg!r}"
    return msg


def test_the_fixture_loads(good):
    path, arrays = good
    ck = checkpoint.load(path)
    np.testing.assert_array_equal(ck.raw_model.params, arrays["params"])
    assert ck.step == 4 and set(ck.history) == {"loss", "grad_norm", "lr"}


@pytest.mark.parametrize("fraction", [0.0, 0.01, 0.25, 0.5, 0.75, 0.99])
def test_every_truncation_is_refused(good, tmp_path, fraction):
    path, _ = good
    data = path.read_bytes()
    bad = tmp_path / "cut.npz"
    bad.write_bytes(data[: int(len(data) * fraction)])
    _refused(bad)


@pytest.mark.parametrize("entry, value, words", [
    ("params", lambda a: a["params"].reshape(1, -1), ("params",)),
    ("params", lambda a: a["params"][:-3], ("params", "do not describe a model")),
    ("params", lambda a: a["params"].astype(np.int32), ("params",)),
    ("params", lambda a: a["params"].astype(np.complex64), ("params",)),
    ("params", lambda a: a["params"].astype(">f4"), ("params",)),
    ("params", lambda a: np.where(np.arange(a["params"].size) == 3, np.nan, a["params"]).astype(np.float32), ("NaN",)),
    ("adam_m", lambda a: a["adam_m"][:5], ("adam_m",)),
    ("ema", lambda a: a["ema"].astype(np.float16), ("ema",)),
    ("history_loss", lambda a: a["history_loss"][:2], ("history_loss",)),
    ("config", lambda a: np.array(b"{}"), ("config",)),
    ("config", lambda a: np.array("{not json"), ("config", "JSON")),
    ("config", lambda a: np.array("[" * 100_000), ("config", "JSON")),
    ("config", lambda a: np.array(json.dumps({**json.loads(str(a["config"])), "version": 99})), ("version",)),
    ("config", lambda a: np.array(json.dumps({**json.loads(str(a["config"])), "step": -1})), ("step",)),
    ("config", lambda a: np.array(json.dumps({**json.loads(str(a["config"])), "history": 7})), ("history",)),
    ("npdiff_checkpoint", lambda a: np.array("something-else"), ("marker",)),
    ("rng_state", lambda a: np.array(json.dumps({"bit_generator": "os.system", "state": {}})), ("generator",)),
])
def test_wrong_shapes_dtypes_and_configs_are_refused(good, tmp_path, entry, value, words):
    _, arrays = good
    bad = _write(tmp_path / "bad.npz", {**arrays, entry: value(arrays)})
    _refused(bad, *words)


@pytest.mark.parametrize("change, words", [
    ({"activation": "relu"}, ("activation",)),
    ({"parameterization": "flow"}, ("parameterization",)),
    ({"architecture": "unet"}, ("architecture",)),
    ({"width": 10**15}, ("width", "exceeds")),
    ({"emb_dim": 10**12}, ("emb_dim", "exceeds")),
    ({"depth": -1}, ("depth",)),
])
def test_an_unknown_or_absurd_architecture_is_refused(good, tmp_path, change, words):
    _, arrays = good
    config = json.loads(str(arrays["config"]))
    config["model"] = {**config["model"], **change}
    _refused(_write(tmp_path / "arch.npz", {**arrays, "config": np.array(json.dumps(config))}), *words)


def test_missing_config_or_schedule_is_refused(good, tmp_path):
    _, arrays = good
    _refused(_write(tmp_path / "noconf.npz", {k: v for k, v in arrays.items() if k != "config"}), "config")
    _refused(_write(tmp_path / "noparams.npz", {k: v for k, v in arrays.items() if k != "params"}), "params")
    config = json.loads(str(arrays["config"]))
    config["schedule"] = {"kind": "exotic"}
    _refused(_write(tmp_path / "sched.npz", {**arrays, "config": np.array(json.dumps(config))}), "schedule")


@pytest.mark.parametrize("change, words", [
    ({"train": 5}, ("'train'", "dict")),
    ({"train": {"steps": -1}}, ("training config", "steps")),
    ({"train": {"steps": 4, "no_such_key": 1}}, ("training config", "no_such_key")),
    ({"optimizer": "adam"}, ("'optimizer'", "dict")),
])
def test_resuming_from_a_bad_training_state_is_a_clear_error(good, tmp_path, change, words):
    from npdiff.train import train

    _, arrays = good
    config = {**json.loads(str(arrays["config"])), **change}
    bad = _write(tmp_path / "state.npz", {**arrays, "config": np.array(json.dumps(config))})
    with pytest.raises(ValueError) as info:
        train(CFG, lambda n, r: r.standard_normal((n, 2)), rng=0, resume=bad, progress=False)
    assert bad.name in str(info.value) and all(w in str(info.value) for w in words), str(info.value)


def _forge_header(path, entry, shape, dtype="<f8"):
    """Rewrite an entry's .npy header to claim another shape, keeping its bytes (and CRC) consistent."""
    with zipfile.ZipFile(path) as z:
        members = {i.filename: z.read(i) for i in z.infolist()}
    raw = members[f"{entry}.npy"]
    header_len = struct.unpack("<H", raw[8:10])[0]
    body = raw[10 + header_len:]
    header = repr({"descr": dtype, "fortran_order": False, "shape": shape}).encode()
    header += b" " * (63 - (10 + len(header)) % 64) + b"\n"
    members[f"{entry}.npy"] = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + body
    out = path.with_name("forged.npz")
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return out


def _limit_address_space(megabytes):
    """Cap this process's address space so that allocating what a forged header claims would fail loudly."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    used = int(open("/proc/self/statm").read().split()[0]) * resource.getpagesize()
    resource.setrlimit(resource.RLIMIT_AS, (used + megabytes * 2**20, hard))
    return soft, hard


@pytest.mark.parametrize("entry, shape", [("params", (10**12,)), ("history_loss", (10**12,)), ("adam_v", (10**12,)),
                                          ("params", (10**6, 10**6))])
def test_a_header_claiming_a_huge_array_is_refused_without_allocating(good, tmp_path, entry, shape):
    _, arrays = good
    src = _write(tmp_path / "src.npz", arrays)
    forged = _forge_header(src, entry, shape)
    assert forged.stat().st_size < 100_000  # a small file claiming 8 TB
    soft, hard = _limit_address_space(512)  # 10^12 float64 would need 8 TB; any attempt raises MemoryError
    try:
        msg = _refused(forged, entry)
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    assert "claims" in msg or "shape" in msg, msg


def test_pickled_objects_are_refused_and_never_run(good, tmp_path):
    _, arrays = good
    ran = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (open, (str(ran), "w"))  # would create a file if unpickled

    bad = tmp_path / "objects.npz"
    np.savez(bad, **{**arrays, "params": np.array([Evil()], dtype=object)})
    _refused(bad, "params", "pickled")
    config_obj = tmp_path / "config_obj.npz"
    np.savez(config_obj, **{**arrays, "config": np.array({"a": Evil()}, dtype=object)})
    _refused(config_obj, "config", "pickled")
    raw = tmp_path / "raw.npz"
    raw.write_bytes(pickle.dumps(Evil()))
    _refused(raw, "pickle")
    assert not ran.exists()


def test_a_zip_with_another_format_inside_is_refused(tmp_path):
    bad = tmp_path / "zipped_text.npz"
    with zipfile.ZipFile(bad, "w") as z:
        z.writestr("npdiff_checkpoint.npy", b"hello")
        z.writestr("config.npy", b"{}")
    _refused(bad, "header")
    many = tmp_path / "many.npz"
    np.savez(many, **{f"a{i}": np.zeros(1) for i in range(100)})
    _refused(many, "entries")


def test_save_refuses_non_finite_weights(tmp_path):
    # DiffusionMLP refuses NaN/Inf params itself, so the weights are spoiled after construction (as a
    # diverging training run would spoil them in place)
    with pytest.raises(ValueError, match="params must be finite"):
        DiffusionMLP(CFG, vp_linear(), np.full(DiffusionMLP(CFG, vp_linear(), rng=np.random.default_rng(0)).params.size,
                                               np.inf))
    model = DiffusionMLP(CFG, vp_linear(), rng=np.random.default_rng(0))
    model.params[7] = np.inf
    with pytest.raises(ValueError, match="NaN/Inf"):
        checkpoint.save(tmp_path / "m.npz", model)
    assert not os.listdir(tmp_path)


@pytest.mark.parametrize("failure", ["disk_full", "fsync", "rename"])
def test_a_save_failing_midway_leaves_the_previous_checkpoint_intact(good, tmp_path, monkeypatch, failure):
    path, _ = good
    target = tmp_path / "ck.npz"
    target.write_bytes(path.read_bytes())
    before = target.read_bytes()
    model = DiffusionMLP(CFG, vp_linear(), rng=np.random.default_rng(5))

    if failure == "disk_full":  # the write stops after some bytes
        real_savez = np.savez

        def savez(f, **arrays):
            buf = io.BytesIO()
            real_savez(buf, **arrays)
            f.write(buf.getvalue()[: len(buf.getvalue()) // 2])
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(np, "savez", savez)
    elif failure == "fsync":
        monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(5, "Input/output error")))
    else:
        monkeypatch.setattr(os, "replace", lambda a, b: (_ for _ in ()).throw(OSError(18, "Invalid cross-device link")))
    with pytest.raises(OSError):
        checkpoint.save(target, model)
    monkeypatch.undo()
    assert target.read_bytes() == before
    assert os.listdir(tmp_path) == ["ck.npz"], os.listdir(tmp_path)  # no temporary file left behind
    np.testing.assert_array_equal(checkpoint.load(target).model.params, checkpoint.load(path).model.params)


# -- IDX files (MNIST's format) -------------------------------------------------------------------


def _idx(shape, code=0x08, body=b""):
    return bytes([0, 0, code, len(shape)]) + b"".join(struct.pack(">I", n) for n in shape) + body


@pytest.mark.parametrize("name, raw, words", [
    # 2^31 cubed overflowed int64 to 0 bytes expected, so an empty body passed the size check
    ("overflow.idx", _idx((2**31, 2**31, 2**31)), ("should hold",)),
    ("huge.idx", _idx((10**9,)) + b"\0" * 100, ("should hold",)),
    ("bomb.idx.gz", gzip.compress(_idx((10**9,)) + b"\0" * 10**6, mtime=0), ("claims", "gzip")),
    ("trailing.idx.gz", gzip.compress(_idx((4,), body=b"\1" * 5), mtime=0), ("should hold",)),
    ("short.idx.gz", gzip.compress(_idx((4,), body=b"\1" * 3), mtime=0), ("should hold",)),
    ("header.idx.gz", gzip.compress(_idx((4, 4))[:9], mtime=0), ("header",)),
])
def test_forged_idx_files_are_refused_without_allocating(tmp_path, name, raw, words):
    path = tmp_path / name
    path.write_bytes(raw)
    soft, hard = _limit_address_space(256)  # a 1 GB body (or 2^93 bytes) would not fit
    try:
        with pytest.raises(ValueError) as info:
            read_idx(path)
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    assert name in str(info.value) and all(w in str(info.value) for w in words), str(info.value)


def test_idx_round_trip_still_exact_through_the_streaming_reader(tmp_path):
    arr = np.arange(2 * 3 * 5, dtype=np.int16).reshape(2, 3, 5) - 7
    for name in ("a.idx", "a.idx.gz"):
        np.testing.assert_array_equal(read_idx(write_idx(tmp_path / name, arr)), arr)


def test_write_idx_names_what_it_cannot_store(tmp_path):
    with pytest.raises(ValueError, match="array must be a rectangular array"):
        write_idx(tmp_path / "r.idx", [[1, 2], [3]])
    with pytest.raises(ValueError, match="below 2\\*\\*32"):
        write_idx(tmp_path / "w.idx", np.zeros((0, 2**32), np.uint8))


@pytest.mark.parametrize("history, step, words", [
    ({"nfe": np.array([1, 2, 3])}, 3, ("history['nfe']", "float32/float64", "int64")),
    ({"loss": [0.5, 0.4]}, 0, ("history['loss']", "shape (0,)")),
    ({3: np.zeros(2)}, 2, ("history names must be strings",)),
])
def test_save_refuses_a_history_that_load_would_refuse(tmp_path, history, step, words):
    # whatever save writes, load must read back: the same rules for each series, checked before writing
    model = DiffusionMLP(CFG, vp_linear(), rng=np.random.default_rng(0))
    with pytest.raises(ValueError) as info:
        checkpoint.save(tmp_path / "m.npz", model, step=step, history=history)
    assert all(w in str(info.value) for w in words), str(info.value)
    assert not os.listdir(tmp_path)
    ok = checkpoint.save(tmp_path / "ok.npz", model, step=2, history={"loss": np.array([0.5, 0.4])})
    np.testing.assert_array_equal(checkpoint.load(ok).history["loss"], [0.5, 0.4])
