r"""Checkpoints: one ``.npz`` file with the weights, the training state and a JSON config.

Layout (every entry a plain array; nothing is pickled)::

    npdiff_checkpoint   "npdiff-checkpoint"   marks the file as ours
    config              JSON: {"version", "model" (MLPConfig), "schedule" (Schedule.config()),
                               "step", "optimizer" (AdamW hyperparameters or null),
                               "train" (TrainConfig or null), "history" (names of the series)}
    rng_state           JSON of ``rng.bit_generator.state`` (only with a generator)
    params              (n_params,) the weights (float32 from training)
    adam_m, adam_v, ema (n_params,) AdamW moments and the EMA weights (only with an optimizer)
    history_<name>      (step,) per-step series (loss, grad_norm, lr)

Writing is atomic: the file is written to a temporary file in the same directory, flushed
to disk, then renamed over the target (``os.replace``), so a crash mid-save leaves the
previous checkpoint intact. Reading uses ``allow_pickle=False``, and any file that is not a
complete npdiff checkpoint (truncated, corrupted, foreign, or holding a pickled object)
raises ``ValueError`` naming the file and what is wrong. Saving then loading restores every
array bit for bit.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from .nn.model import DiffusionMLP
from .nn.optim import AdamW

__all__ = ["FORMAT", "VERSION", "Checkpoint", "load", "save"]

FORMAT = "npdiff-checkpoint"
VERSION = 1
_BIT_GENERATORS = {"PCG64": np.random.PCG64, "PCG64DXSM": np.random.PCG64DXSM, "Philox": np.random.Philox,
                   "SFC64": np.random.SFC64, "MT19937": np.random.MT19937}


@dataclasses.dataclass
class Checkpoint:
    r"""What :func:`load` returns.

    Attributes
    ----------
    model : the :class:`~npdiff.nn.model.DiffusionMLP` with the saved (raw) weights, float64 compute.
    step : optimizer steps done.
    optimizer : {"adam_m", "adam_v", "ema"} arrays, or None.
    optimizer_config : the AdamW hyperparameters, or None.
    rng : a Generator restored to the saved state, or None.
    history : {name: (step,) array}.
    train_config : the :class:`~npdiff.train.TrainConfig` dict, or None.
    path : the file it came from.
    """

    model: DiffusionMLP
    step: int
    optimizer: dict[str, np.ndarray] | None
    optimizer_config: dict[str, Any] | None
    rng: np.random.Generator | None
    history: dict[str, np.ndarray]
    train_config: dict[str, Any] | None
    path: Path

    def denoiser(self, ema: bool = True, dtype: type = np.float64) -> DiffusionMLP:
        r"""The model with the EMA weights (when saved and ``ema``) or the raw weights."""
        params = self.optimizer["ema"] if (ema and self.optimizer is not None) else self.model.params
        return DiffusionMLP(self.model.config, self.model.schedule, params, dtype=dtype)


def _json_array(obj: object) -> np.ndarray:
    return np.array(json.dumps(obj, sort_keys=True))  # a 0-d unicode array, loadable without pickle


def save(path: str | os.PathLike, model: DiffusionMLP, *, optimizer: AdamW | None = None, step: int = 0,
         rng: np.random.Generator | None = None, history: dict[str, np.ndarray] | None = None,
         train_config: dict[str, Any] | None = None) -> Path:
    r"""Write a checkpoint atomically (see the module docstring) and return its path.

    Parameters
    ----------
    path : target file (conventionally ending in ``.npz``; the name is used as given).
    model : the :class:`~npdiff.nn.model.DiffusionMLP` whose weights and config are saved.
    optimizer : its AdamW state (moments and EMA) and hyperparameters, if training is to resume.
    step : optimizer steps done. rng : the generator whose state to save.
    history : per-step series, e.g. ``{"loss": (step,) array}``. train_config : a JSON-able dict.
    """
    if not isinstance(model, DiffusionMLP):
        raise TypeError(f"model must be a DiffusionMLP, got {type(model).__name__}")
    if rng is not None and not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy Generator or None, got {type(rng).__name__}")
    path = Path(path)
    history = dict(history or {})
    config = {
        "version": VERSION,
        **model.config_dict(),
        "step": int(step),
        "optimizer": optimizer.hyperparameters() if optimizer is not None else None,
        "train": train_config,
        "history": sorted(history),
    }
    arrays: dict[str, np.ndarray] = {"npdiff_checkpoint": np.array(FORMAT), "config": _json_array(config),
                                     "params": model.params}
    if rng is not None:
        arrays["rng_state"] = _json_array(rng.bit_generator.state)
    if optimizer is not None:
        arrays.update(optimizer.state_arrays())
    for name, series in history.items():
        arrays[f"history_{name}"] = np.asarray(series)

    fd, tmp = tempfile.mkstemp(dir=path.parent if str(path.parent) else ".", prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _bad(path: Path, why: str) -> ValueError:
    return ValueError(f"{os.fspath(path)} is not a valid npdiff checkpoint: {why}")


def _read_all(path: Path) -> dict[str, np.ndarray]:
    with open(path, "rb") as f:  # FileNotFoundError passes through
        head = f.read(6)
    if head[:1] == b"\x80":  # pickle protocol >= 2 opcode; np.load would call anything unknown "pickled" too
        raise _bad(path, "it is a pickle, which is never loaded")
    if not (head.startswith(b"PK") or head == b"\x93NUMPY"):
        raise _bad(path, f"it is not an .npz archive (starts with {head!r}; empty or truncated?)")
    try:
        z = np.load(path, allow_pickle=False)
        if isinstance(z, np.lib.npyio.NpzFile):
            with z:
                return {name: z[name] for name in z.files}  # read every entry now, so CRC errors surface here
    except FileNotFoundError:
        raise
    except ValueError as exc:
        if "pickle" in str(exc):
            raise _bad(path, f"it contains pickled data, which is never loaded ({exc})") from exc
        raise _bad(path, f"unreadable ({exc})") from exc
    except (OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise _bad(path, f"truncated or corrupted ({type(exc).__name__}: {exc})") from exc
    raise _bad(path, "it holds a single array, not an .npz archive")


def _json(path: Path, arrays: dict[str, np.ndarray], name: str) -> Any:
    arr = arrays[name]
    if arr.dtype.kind != "U" or arr.ndim != 0:
        raise _bad(path, f"entry {name!r} must be a JSON string, got {arr.dtype} of shape {arr.shape}")
    try:
        return json.loads(str(arr))
    except json.JSONDecodeError as exc:
        raise _bad(path, f"entry {name!r} is not valid JSON ({exc})") from exc


def load(path: str | os.PathLike) -> Checkpoint:
    r"""Read a checkpoint written by :func:`save` (``allow_pickle=False``); ``ValueError`` if it is not one."""
    path = Path(path)
    arrays = _read_all(path)
    if "npdiff_checkpoint" not in arrays or str(arrays["npdiff_checkpoint"]) != FORMAT:
        raise _bad(path, f"no {FORMAT!r} marker (entries: {sorted(arrays)[:8]})")
    for needed in ("config", "params"):
        if needed not in arrays:
            raise _bad(path, f"missing entry {needed!r}")
    config = _json(path, arrays, "config")
    if not isinstance(config, dict) or config.get("version") != VERSION:
        raise _bad(path, f"unsupported version {config.get('version') if isinstance(config, dict) else config!r}")
    try:
        model = DiffusionMLP.from_config_dict(config, arrays["params"])
    except (KeyError, TypeError, ValueError) as exc:
        raise _bad(path, f"its config or weights do not describe a model ({exc})") from exc
    if model.params.dtype != arrays["params"].dtype:
        raise _bad(path, "weights changed dtype on load")
    optimizer = None
    if config.get("optimizer") is not None:
        names = ("adam_m", "adam_v", "ema")
        if any(n not in arrays for n in names):
            raise _bad(path, f"optimizer state incomplete, needs {names}")
        optimizer = {n: arrays[n] for n in names}
        for n, a in optimizer.items():
            if a.shape != model.params.shape:
                raise _bad(path, f"{n!r} has shape {a.shape}, expected {model.params.shape}")
    rng = None
    if "rng_state" in arrays:
        state = _json(path, arrays, "rng_state")
        try:
            # only NumPy's bit generators by name: a file never chooses which callable runs
            name = state["bit_generator"]
            if name not in _BIT_GENERATORS:
                raise ValueError(f"unknown bit generator {name!r}; expected one of {sorted(_BIT_GENERATORS)}")
            bit_gen = _BIT_GENERATORS[name]()
            bit_gen.state = state
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise _bad(path, f"its generator state cannot be restored ({exc})") from exc
        rng = np.random.Generator(bit_gen)
    history = {}
    for name in config.get("history", []):
        if f"history_{name}" not in arrays:
            raise _bad(path, f"missing history series {name!r}")
        history[name] = arrays[f"history_{name}"]
    step = config.get("step")
    if not isinstance(step, int) or step < 0:
        raise _bad(path, f"step must be a non-negative int, got {step!r}")
    return Checkpoint(model=model, step=step, optimizer=optimizer, optimizer_config=config.get("optimizer"), rng=rng,
                      history=history, train_config=config.get("train"), path=path)
