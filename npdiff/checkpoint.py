r"""Checkpoints: one ``.npz`` file with the weights, the training state and a JSON config.

Layout (every entry a plain array; nothing is pickled)::

    npdiff_checkpoint   "npdiff-checkpoint"   marks the file as ours
    config              JSON: {"version", "arch" ("mlp", "unet", "prompt_mlp" or "context_mlp"; absent in older
                               files, which hold an MLP), "model" (the network's config: MLPConfig,
                               UNetConfig, PromptMLPConfig or ContextMLPConfig), "schedule" (Schedule.config()),
                               "step", "optimizer" (AdamW hyperparameters or null),
                               "train" (TrainConfig or null), "history" (names of the series),
                               "data" (the training data set's name; absent in older files)}
    rng_state           JSON of ``rng.bit_generator.state`` (only with a generator)
    params              (n_params,) the weights (float32 from training)
    adam_m, adam_v, ema (n_params,) AdamW moments and the EMA weights (only with an optimizer)
    history_<name>      (step,) per-step series (loss, grad_norm, lr)

An autoencoder's file (:func:`save_autoencoder`, :mod:`npdiff.nn.autoencoder`) is the same kind of archive
with the marker ``"npdiff-autoencoder"``, its config (``{"version", "model"}``, the scale factor inside) and
``params``; it is read by the same checked reader, and neither loader takes the other's file.

Writing is atomic: the file is written to a temporary file in the same directory, flushed
to disk, then renamed over the target (``os.replace``), so a crash mid-save leaves the
previous checkpoint intact; the file gets the permissions of any new file (0666 less the
user's umask), not the temporary file's private 0600. Reading uses ``allow_pickle=False``, and any file that is not a
complete npdiff checkpoint (truncated, corrupted, foreign, or holding a pickled object)
raises ``ValueError`` naming the file and what is wrong. Saving then loading restores every
array bit for bit.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ._atomic import write_atomically
from ._check import positive_int
from .nn.autoencoder import Autoencoder, AutoencoderConfig
from .nn.config import MLPConfig
from .nn.context_mlp import ContextMLP, ContextMLPConfig
from .nn.model import DiffusionMLP
from .nn.optim import AdamW
from .nn.prompt_mlp import PromptMLP, PromptMLPConfig
from .nn.unet.config import UNetConfig
from .nn.unet.model import DiffusionUNet
from .schedule import schedule_from_config

__all__ = ["ARCHITECTURES", "AUTOENCODER_FORMAT", "FORMAT", "VERSION", "Checkpoint", "arch_of", "load", "load_autoencoder",
           "save", "save_autoencoder"]

FORMAT = "npdiff-checkpoint"
VERSION = 1
#: the marker of an autoencoder's file (:func:`save_autoencoder`): neither loader takes the other's file
AUTOENCODER_FORMAT = "npdiff-autoencoder"
_AUTOENCODER_VERSION = 1
#: each network a checkpoint can hold, by its ``arch`` name: (config class, denoiser class)
ARCHITECTURES: dict[str, tuple[type, type]] = {"mlp": (MLPConfig, DiffusionMLP), "unet": (UNetConfig, DiffusionUNet),
                                               "prompt_mlp": (PromptMLPConfig, PromptMLP),
                                               "context_mlp": (ContextMLPConfig, ContextMLP)}
#: the ``arch`` of a checkpoint written before the field existed: only the MLP existed then
_OLDEST_ARCH = "mlp"
_BIT_GENERATORS = {"PCG64": np.random.PCG64, "PCG64DXSM": np.random.PCG64DXSM, "Philox": np.random.Philox,
                   "SFC64": np.random.SFC64, "MT19937": np.random.MT19937}


@dataclasses.dataclass
class Checkpoint:
    r"""What :func:`load` returns.

    Attributes
    ----------
    model : the denoiser to use, a float64 network of :data:`ARCHITECTURES`: the EMA
        weights when the file holds an optimizer state, else the saved weights (what ``npdiff
        sample`` and ``npdiff nll`` evaluate).
    raw_model : the saved weights as trained (float32 from training), the start of a resumed run.
    step : optimizer steps done.
    optimizer : {"adam_m", "adam_v", "ema"} arrays, or None.
    optimizer_config : the AdamW hyperparameters, or None.
    rng : a Generator restored to the saved state, or None.
    history : {name: (step,) array}.
    train_config : the :class:`~npdiff.train.TrainConfig` dict, or None.
    path : the file it came from.
    data_name : the name of the data set it was trained on, or None (not recorded, or an older file).
    time_losses : the loss histories (K, k) and counts (K,) of a run that draws t by the loss's second
        moment (:class:`~npdiff.objective.LossSecondMomentTimes`), or None.
    """

    model: Any
    raw_model: Any
    step: int
    optimizer: dict[str, np.ndarray] | None
    optimizer_config: dict[str, Any] | None
    rng: np.random.Generator | None
    history: dict[str, np.ndarray]
    train_config: dict[str, Any] | None
    path: Path
    data_name: str | None = None
    time_losses: tuple[np.ndarray, np.ndarray] | None = None

    def denoiser(self, ema: bool = True, dtype: type = np.float64) -> Any:
        r"""The model with the EMA weights (when saved and ``ema``) or the raw weights."""
        params = self.optimizer["ema"] if (ema and self.optimizer is not None) else self.raw_model.params
        return type(self.raw_model)(self.raw_model.config, self.raw_model.schedule, params, dtype=dtype)

    @property
    def arch(self) -> str:
        r"""The network's architecture name (a key of :data:`ARCHITECTURES`)."""
        return arch_of(self.raw_model)


def arch_of(model: object) -> str:
    r"""The ``arch`` name of a denoiser network (a key of :data:`ARCHITECTURES`); ``TypeError`` for anything else."""
    for name, (_, cls) in ARCHITECTURES.items():
        if type(model) is cls:
            return name
    raise TypeError(f"model must be one of the networks {', '.join(c.__name__ for _, c in ARCHITECTURES.values())}, "
                    f"got {type(model).__name__}")


def _json_array(obj: object) -> np.ndarray:
    return np.array(json.dumps(obj, sort_keys=True))  # a 0-d unicode array, loadable without pickle


def save(path: str | os.PathLike, model: Any, *, optimizer: AdamW | None = None, step: int = 0,
         rng: np.random.Generator | None = None, history: dict[str, np.ndarray] | None = None,
         train_config: dict[str, Any] | None = None, data_name: str | None = None,
         time_losses: tuple[np.ndarray, np.ndarray] | None = None) -> Path:
    r"""Write a checkpoint atomically (see the module docstring) and return its path.

    Parameters
    ----------
    path : target file (conventionally ending in ``.npz``; the name is used as given). Missing
        parent folders are created, so that a long training run never ends on a path it cannot write.
    model : the network whose weights and config are saved (:data:`ARCHITECTURES`: a
        :class:`~npdiff.nn.model.DiffusionMLP` or a :class:`~npdiff.nn.unet.model.DiffusionUNet`).
    optimizer : its AdamW state (moments and EMA) and hyperparameters, if training is to resume.
    step : optimizer steps done. rng : the generator whose state to save.
    history : per-step series, e.g. ``{"loss": (step,) array}``. train_config : a JSON-able dict.
    data_name : the name of the training data set (e.g. ``"moons"``), so that scoring the model
        on another set can be caught.
    time_losses : (losses (K, k), counts (K,)) of a second-moment draw of t, so a resumed run draws alike.
    """
    arch = arch_of(model)
    if rng is not None and not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy Generator or None, got {type(rng).__name__}")
    if not np.all(np.isfinite(model.params)):
        raise ValueError(f"refusing to save a model whose params hold {np.count_nonzero(~np.isfinite(model.params))} "
                         "NaN/Inf values (training diverged?)")
    path = Path(path)
    step = positive_int(step, "step", minimum=0)
    data_name = _check_data_name(data_name, "data_name")
    history = dict(history or {})
    for name, series in history.items():  # what load() will demand of each series
        if not isinstance(name, str):
            raise ValueError(f"history names must be strings, got {name!r}")
        series = np.asarray(series)
        if series.dtype not in (np.float32, np.float64) or series.shape != (step,):
            raise ValueError(f"history[{name!r}] must be a float32/float64 series of shape ({step},) (one value per "
                             f"step), got {series.dtype} of shape {series.shape}")
    if time_losses is not None:
        losses, counts = (np.asarray(a, dtype=np.float64) for a in time_losses)
        if losses.ndim != 2 or counts.shape != losses.shape[:1] or not np.all(np.isfinite(losses)):
            raise ValueError(f"time_losses must be finite losses (K, k) and counts (K,), "
                             f"got shapes {losses.shape}, {counts.shape}")
    config = {
        "version": VERSION,
        "arch": arch,
        "model": model.config.to_dict(),
        "schedule": model.schedule.config(),
        "step": int(step),
        "optimizer": optimizer.hyperparameters() if optimizer is not None else None,
        "train": train_config,
        "history": sorted(history),
        **({"time_losses": list(losses.shape)} if time_losses is not None else {}),
        **({"data": data_name} if data_name is not None else {}),
    }
    arrays: dict[str, np.ndarray] = {"npdiff_checkpoint": np.array(FORMAT), "config": _json_array(config),
                                     "params": model.params}
    if rng is not None:
        arrays["rng_state"] = _json_array(rng.bit_generator.state)
    if optimizer is not None:
        arrays.update(optimizer.state_arrays())
        for name in ("adam_m", "adam_v", "ema"):
            if not np.all(np.isfinite(arrays[name])):
                raise ValueError(f"refusing to save an optimizer state whose {name} holds NaN/Inf values")
    for name, series in history.items():
        arrays[f"history_{name}"] = np.asarray(series)
    if time_losses is not None:
        arrays["time_loss_history"], arrays["time_loss_count"] = losses, counts

    if path.is_dir():
        raise IsADirectoryError(f"path must name a checkpoint file, got the folder {str(path)!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_atomically(path, lambda f: np.savez(f, **arrays))


_MAX_NAME = 200  # a data set's name is a word; more is not a name


def _check_data_name(name: object, what: str) -> str | None:
    if name is not None and (not isinstance(name, str) or not name or len(name) > _MAX_NAME):
        raise ValueError(f"{what} must be a data set's name (a non-empty string of at most {_MAX_NAME} characters) "
                         f"or None, got {name!r:.80}")
    return name


def _bad(path: Path, why: str) -> ValueError:
    return ValueError(f"{os.fspath(path)} is not a valid npdiff checkpoint: {why}")


_MAX_ENTRIES = 64  # a checkpoint holds about ten entries
_MAX_TEXT_BYTES = 1 << 20  # the JSON entries are a few kilobytes
_MAX_DEFLATE_RATIO = 1100  # deflate cannot expand more than ~1032:1; a larger claim is a forged header


class _Archive:
    r"""The entries of an .npz, read one at a time after their .npy header has been checked.

    ``np.load`` would allocate whatever shape an entry's header claims before reading a byte
    of it (a header may claim 10^12 elements in a 1 kB file). Here every header is parsed
    first and must agree with the entry's stored size, which must fit in the file on disk;
    the caller then checks the shape against the config before :meth:`read` allocates.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.zip = zipfile.ZipFile(path)
            infos = self.zip.infolist()
        except (OSError, EOFError, zipfile.BadZipFile, ValueError) as exc:
            raise _bad(path, f"truncated or corrupted ({type(exc).__name__}: {exc})") from exc
        if len(infos) > _MAX_ENTRIES:
            raise _bad(path, f"{len(infos)} entries (a checkpoint has at most {_MAX_ENTRIES})")
        disk = os.path.getsize(path)
        self.headers: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
        self.infos = {}
        for info in infos:
            name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            if info.compress_size > disk or info.file_size > max(disk, _MAX_DEFLATE_RATIO * info.compress_size):
                raise _bad(path, f"entry {name!r} claims {info.file_size} bytes in a file of {disk} bytes")
            self.infos[name] = info
            self.headers[name] = self._header(name, info)

    def _header(self, name: str, info: zipfile.ZipInfo) -> tuple[tuple[int, ...], np.dtype]:
        try:
            with self.zip.open(info) as f:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    shape, _, dtype = np.lib.format.read_array_header_1_0(f)
                else:
                    shape, _, dtype = np.lib.format.read_array_header_2_0(f)
                offset = f.tell()
        except (OSError, EOFError, zipfile.BadZipFile, ValueError, SyntaxError) as exc:
            raise _bad(self.path, f"entry {name!r} has no valid .npy header ({type(exc).__name__}: {exc})") from exc
        if dtype.hasobject:
            raise _bad(self.path, f"entry {name!r} holds Python objects, i.e. pickled data, which is never loaded")
        count = math.prod(shape)  # Python ints: no overflow whatever the header claims
        if offset + count * dtype.itemsize != info.file_size:
            raise _bad(self.path, f"entry {name!r} claims shape {shape} of {dtype} ({count * dtype.itemsize} bytes) "
                                  f"but stores {info.file_size - offset} bytes (truncated or forged)")
        return tuple(shape), dtype

    def expect(self, name: str, *, shape: tuple[int, ...] | None = None, kinds: str = "f",
               max_bytes: int | None = None) -> None:
        r"""Refuse entry ``name`` unless its header has this shape, a dtype of these kinds, at most max_bytes."""
        if name not in self.headers:
            raise _bad(self.path, f"missing entry {name!r}")
        got, dtype = self.headers[name]
        if dtype.kind not in kinds or (dtype.kind == "f" and dtype not in (np.dtype(np.float32), np.dtype(np.float64))):
            raise _bad(self.path, f"entry {name!r} has dtype {dtype}, expected {'text' if kinds == 'U' else 'float32/64'}")
        if shape is not None and got != shape:
            raise _bad(self.path, f"entry {name!r} has shape {got}, expected {shape}")
        if max_bytes is not None and math.prod(got) * dtype.itemsize > max_bytes:
            raise _bad(self.path, f"entry {name!r} is {math.prod(got) * dtype.itemsize} bytes, at most {max_bytes} expected")

    def read(self, name: str) -> np.ndarray:
        r"""The array of entry ``name`` (its header already checked by :meth:`expect`)."""
        try:
            with self.zip.open(self.infos[name]) as f:
                arr = np.lib.format.read_array(f, allow_pickle=False)
                f.read(1)  # reach the end of the entry, where zipfile checks the CRC
        except (OSError, EOFError, zipfile.BadZipFile, ValueError) as exc:
            raise _bad(self.path, f"entry {name!r} truncated or corrupted ({type(exc).__name__}: {exc})") from exc
        return arr

    def close(self) -> None:
        self.zip.close()


def _open(path: Path) -> _Archive:
    with open(path, "rb") as f:  # FileNotFoundError passes through
        head = f.read(6)
    if head[:1] == b"\x80":  # pickle protocol >= 2 opcode
        raise _bad(path, "it is a pickle, which is never loaded")
    if head == b"\x93NUMPY":
        raise _bad(path, "it holds a single array, not an .npz archive")
    if not head.startswith(b"PK"):
        raise _bad(path, f"it is not an .npz archive (starts with {head!r}; empty or truncated?)")
    return _Archive(path)


def _json(path: Path, archive: _Archive, name: str) -> Any:
    archive.expect(name, shape=(), kinds="U", max_bytes=4 * _MAX_TEXT_BYTES)
    arr = archive.read(name)
    try:
        return json.loads(str(arr))
    except (json.JSONDecodeError, RecursionError) as exc:
        raise _bad(path, f"entry {name!r} is not valid JSON ({type(exc).__name__}: {exc})") from exc


def _model_size_bound(path: Path, config: dict[str, Any], n_params: int) -> None:
    # every layer of either network has at least as many weights as any of its sizes (a width, a
    # depth, an embedding's features, a class count): sizes beyond the stored weights cannot
    # describe them, and would make the network's layout allocate before the shape check
    model = config.get("model")
    if not isinstance(model, dict):
        raise _bad(path, f"config has no model dict (got {type(model).__name__})")
    for key, value in model.items():
        for v in (value if isinstance(value, list) else [value]):
            if isinstance(v, int) and not isinstance(v, bool) and v > n_params:
                raise _bad(path, f"model {key} = {value} exceeds the {n_params} stored weights")
    # a U-Net's residual blocks (down and up, per level) each hold two 3x3 convolutions, >= 18 weights
    blocks, widths = model.get("num_res_blocks"), model.get("widths")
    if isinstance(blocks, int) and isinstance(widths, list) and 36 * blocks * len(widths) > n_params:
        raise _bad(path, f"model num_res_blocks = {blocks} at {len(widths)} levels needs more than the "
                         f"{n_params} stored weights")


def _arch(path: Path, config: dict[str, Any], expected: str | None) -> str:
    # a file without the field was written when the MLP was the only network
    arch = config.get("arch", _OLDEST_ARCH)
    if not isinstance(arch, str) or arch not in ARCHITECTURES:
        raise _bad(path, f"unknown architecture arch = {arch!r:.80} (expected one of {sorted(ARCHITECTURES)})")
    if expected is not None and arch != expected:
        raise ValueError(f"{os.fspath(path)} holds a network of architecture arch = {arch!r}, "
                         f"where one of architecture {expected!r} is expected")
    return arch


def load(path: str | os.PathLike, arch: str | None = None) -> Checkpoint:
    r"""Read a checkpoint written by :func:`save`; ``ValueError`` naming the file if it is not one.

    ``arch``: the architecture the caller expects (a key of :data:`ARCHITECTURES`); a file holding
    another network raises ``ValueError`` naming both. None (default) takes either.
    Nothing is unpickled, and no array is allocated before its header has been checked
    against the file's size and the config (see :class:`_Archive`).
    """
    if arch is not None and (not isinstance(arch, str) or arch not in ARCHITECTURES):
        raise ValueError(f"arch must be one of {sorted(ARCHITECTURES)} or None, got {arch!r}")
    path = Path(path)
    archive = _open(path)
    try:
        return _load(path, archive, arch)
    finally:
        archive.close()


def _load(path: Path, archive: _Archive, expected: str | None) -> Checkpoint:
    if "npdiff_checkpoint" not in archive.headers:
        raise _bad(path, f"no {FORMAT!r} marker (entries: {sorted(archive.headers)[:8]})")
    archive.expect("npdiff_checkpoint", shape=(), kinds="U", max_bytes=4 * 64)
    if str(archive.read("npdiff_checkpoint")) != FORMAT:
        raise _bad(path, f"no {FORMAT!r} marker (entries: {sorted(archive.headers)[:8]})")
    for needed in ("config", "params"):
        if needed not in archive.headers:
            raise _bad(path, f"missing entry {needed!r}")
    config = _json(path, archive, "config")
    if not isinstance(config, dict) or config.get("version") != VERSION:
        raise _bad(path, f"unsupported version {config.get('version') if isinstance(config, dict) else config!r}")
    step = config.get("step")
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise _bad(path, f"step must be a non-negative int, got {step!r}")
    for key in ("optimizer", "train"):
        if config.get(key) is not None and not isinstance(config[key], dict):
            raise _bad(path, f"config {key!r} must be a dict or null, got {type(config[key]).__name__}")
    try:
        data_name = _check_data_name(config.get("data"), "config 'data'")
    except ValueError as exc:
        raise _bad(path, str(exc)) from None
    arch = _arch(path, config, expected)
    config_cls, network = ARCHITECTURES[arch]
    shape, _ = archive.headers["params"]
    if len(shape) != 1:
        raise _bad(path, f"entry 'params' has shape {shape}, expected a vector of weights")
    _model_size_bound(path, config, shape[0])
    try:
        model_config = config_cls.from_dict(config["model"])
        n_params = model_config.n_params
    except (KeyError, TypeError, ValueError) as exc:
        raise _bad(path, f"its config does not describe a model ({exc})") from exc
    if shape != (n_params,):
        raise _bad(path, f"its config or weights do not describe a model (entry 'params' has shape {shape}, "
                         f"the config's {arch} has {n_params} weights)")
    archive.expect("params", shape=(n_params,))
    params = archive.read("params")
    if not np.all(np.isfinite(params)):
        raise _bad(path, f"its weights hold {np.count_nonzero(~np.isfinite(params))} NaN/Inf values")
    try:
        model = network(model_config, schedule_from_config(config["schedule"]), params)
    except (KeyError, TypeError, ValueError) as exc:
        raise _bad(path, f"its config or weights do not describe a model ({exc})") from exc
    if model.params.dtype != params.dtype:
        raise _bad(path, "weights changed dtype on load")
    optimizer = None
    if config.get("optimizer") is not None:
        names = ("adam_m", "adam_v", "ema")
        if any(n not in archive.headers for n in names):
            raise _bad(path, f"optimizer state incomplete, needs {names}")
        for n in names:
            archive.expect(n, shape=model.params.shape)
        optimizer = {n: archive.read(n) for n in names}
    rng = None
    if "rng_state" in archive.headers:
        state = _json(path, archive, "rng_state")
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
    names = config.get("history", [])
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise _bad(path, f"config 'history' must be a list of names, got {names!r}")
    history = {}
    for name in names:
        if f"history_{name}" not in archive.headers:
            raise _bad(path, f"missing history series {name!r}")
        archive.expect(f"history_{name}", shape=(step,))
        history[name] = archive.read(f"history_{name}")
    time_losses = None
    if config.get("time_losses") is not None:
        shape = config["time_losses"]
        if not (isinstance(shape, list) and len(shape) == 2 and all(isinstance(n, int) and 0 < n <= 1 << 16 for n in shape)):
            raise _bad(path, f"config 'time_losses' must be the shape [K, k] of the loss histories, got {shape!r}")
        archive.expect("time_loss_history", shape=tuple(shape))
        archive.expect("time_loss_count", shape=(shape[0],))
        time_losses = (archive.read("time_loss_history"), archive.read("time_loss_count"))
    ema = model if optimizer is None else network(model.config, model.schedule, optimizer["ema"])
    return Checkpoint(model=ema, raw_model=model, step=step, optimizer=optimizer, optimizer_config=config.get("optimizer"),
                      rng=rng, history=history, train_config=config.get("train"), path=path, data_name=data_name,
                      time_losses=time_losses)


# -- the autoencoder of latent diffusion: its config and weights, in the same checked archive -----------
def save_autoencoder(path: str | os.PathLike, autoencoder: Autoencoder) -> Path:
    r"""Write the autoencoder (config, scale factor included, and weights) to ``path`` atomically; return the path."""
    if not isinstance(autoencoder, Autoencoder):
        raise TypeError(f"autoencoder must be an Autoencoder, got {type(autoencoder).__name__}")
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"path must name a file, got the folder {str(path)!r}")
    config = {"version": _AUTOENCODER_VERSION, "model": autoencoder.config.to_dict()}
    arrays = {"npdiff_checkpoint": np.array(AUTOENCODER_FORMAT), "config": _json_array(config),
              "params": autoencoder.params}
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_atomically(path, lambda f: np.savez(f, **arrays))


def load_autoencoder(path: str | os.PathLike) -> Autoencoder:
    r"""Read a file of :func:`save_autoencoder`; ``ValueError`` naming the file if it is not one.

    The archive is read by :mod:`npdiff.checkpoint`'s checked reader: nothing is unpickled, and the
    weights' header is checked against the config before anything is allocated.
    """
    path = Path(path)
    archive = _open(path)
    try:
        if "npdiff_checkpoint" not in archive.headers:
            raise _bad(path, f"no {AUTOENCODER_FORMAT!r} marker")
        archive.expect("npdiff_checkpoint", shape=(), kinds="U", max_bytes=4 * 64)
        marker = str(archive.read("npdiff_checkpoint"))
        if marker != AUTOENCODER_FORMAT:
            raise _bad(path, f"it holds {marker!r:.40}, not an autoencoder ({AUTOENCODER_FORMAT!r})")
        config = _json(path, archive, "config")
        if not isinstance(config, dict) or config.get("version") != _AUTOENCODER_VERSION:
            raise _bad(path, f"unsupported version {config.get('version') if isinstance(config, dict) else config!r:.40}")
        try:
            cfg = AutoencoderConfig.from_dict(config.get("model"))
        except (TypeError, ValueError) as exc:
            raise _bad(path, f"its config does not describe an autoencoder ({exc})") from exc
        archive.expect("params", shape=(cfg.n_params,))
        params = archive.read("params")
        if not np.all(np.isfinite(params)):
            raise _bad(path, f"its weights hold {np.count_nonzero(~np.isfinite(params))} NaN/Inf values")
        return Autoencoder(cfg, params.astype(np.float64))
    finally:
        archive.close()
