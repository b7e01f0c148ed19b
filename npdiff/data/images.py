r"""Small image sets: the 8x8 UCI handwritten digits, and a reader for MNIST-format IDX files.

**Digits.** :func:`digits` returns the 1,797 grey-level digits of the UCI "Optical
Recognition of Handwritten Digits" set (Alpaydin & Kaynak 1998): 8x8 images whose pixels
count the set pixels of 4x4 blocks of a 32x32 bitmap, so each takes one of K = 17 levels
0..16. It reads the copy that scikit-learn ships inside its wheel
(``sklearn/datasets/data/digits.csv.gz``), so nothing is ever downloaded; scikit-learn is the
optional extra ``pip install "npdiff[images]"``.

**The split** is fixed and documented, so every figure of npdiff is on the same images::

    perm = np.random.default_rng(0).permutation(1797)
    train = perm[:1437]        # 1,437 images (80 %)
    test  = perm[1437:]        #   360 images

Pixels are flattened row by row to D = 64 and mapped to [-1, 1] by the K-level convention of
:mod:`npdiff.gaussian` (level v -> 2v/(K-1) - 1, bins of width 2/(K-1), uniform
dequantization within a bin), so the VLB's discretized decoder, the dequantized ODE
likelihood and bits/dim all agree on the units.

**IDX** (LeCun et al. 1998, the MNIST file format): a big-endian header, two zero bytes, a
type byte (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64) and the
number of dimensions n, then n big-endian uint32 sizes, then the values in C order.
:func:`read_idx` reads such a file, gzipped or not (recognized by its content, not its
name), and :func:`write_idx` writes one.
"""

from __future__ import annotations

import gzip
import importlib.util
import math
import os
import struct
import zlib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from .._check import as_generator, positive_int
from ..gaussian import levels_to_data

__all__ = ["DIGITS_BASELINES", "DIGITS_K", "DIGITS_N_TEST", "DIGITS_N_TRAIN", "ImageSet", "digits", "digits_split",
           "read_idx", "write_idx"]

DIGITS_K = 17  # grey levels 0..16
DIGITS_N_TRAIN = 1437
DIGITS_N_TEST = 360
_DIGITS_N = DIGITS_N_TRAIN + DIGITS_N_TEST

DIGITS_BASELINES = {"uniform over 17 levels": 4.087, "full-covariance Gaussian (dequantized)": 2.954,
                    "mixture of 10 Gaussians": 2.648, "independent per-pixel categorical": 2.431,
                    "mixture of 10-40 per-pixel categoricals": 2.20}
r"""Bits/dim of simple models on the digits' 360 test images, each fitted on the 1,437 training images.

- *uniform over 17 levels*: every level equally likely, :math:`\log_2 17`.
- *full-covariance Gaussian (dequantized)*: mean and covariance by maximum likelihood on the
  uniformly dequantized training images, scored on one dequantization of each test image
  (:func:`npdiff.likelihood.density_to_bpd`); 2.949 with the expectation over the
  dequantization taken in closed form (tutorial 6).
- *independent per-pixel categorical*: 17 probabilities per pixel, (count + 1) / (1437 + 17).
- *mixture of 10 Gaussians*: full covariances, fitted by EM to the dequantized training images.
- *mixture of 10-40 per-pixel categoricals*: fitted by EM, the best of 10 to 40 components.

Tutorial 6 and ``benchmarks/digits.py`` recompute the first three. The two mixtures were
fitted once by code that is not part of npdiff; an EM fit depends on its initialization and
covariance regularization (refits with scikit-learn's ``GaussianMixture`` and a plain EM for
the categoricals gave 2.58-2.95 and 2.21-2.28), so read them as the size of what a mixture
buys, not to the digit.
"""

_EXTRA_HINT = 'the digits need scikit-learn, which ships them: pip install "npdiff[images]" (or pip install scikit-learn)'


@dataclass(frozen=True)
class ImageSet:
    r"""An image data set on K levels with a fixed train/test split.

    Attributes
    ----------
    name : e.g. ``"digits"``.
    train, test : (N, D) float64 images flattened row by row, on the levels 2v/(K-1) - 1.
    train_labels, test_labels : (N,) int64 class labels.
    K : number of grey levels.
    shape : (height, width) of one image; D = height * width.
    """

    name: str
    train: np.ndarray
    test: np.ndarray
    train_labels: np.ndarray
    test_labels: np.ndarray
    K: int
    shape: tuple[int, int]
    _dim: int = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_dim", int(self.shape[0] * self.shape[1]))

    @property
    def dim(self) -> int:
        r"""Data dimension D (pixels per image)."""
        return self._dim

    def split(self, name: str) -> np.ndarray:
        r"""The images of split ``"train"`` or ``"test"``, (N, D)."""
        if not isinstance(name, str) or name not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {name!r}")
        return self.train if name == "train" else self.test

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        r"""n training images drawn uniformly with replacement, on the levels, (n, D)."""
        return self.sample_labelled(n, rng)[0]

    def sample_dequantized(self, n: int, rng: np.random.Generator) -> np.ndarray:
        r"""n training images plus fresh uniform noise :math:`U(-\delta, \delta)`, :math:`\delta = 1/(K-1)`, (n, D)."""
        return self.sample_dequantized_labelled(n, rng)[0]

    def sample_labelled(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        r"""n training images and their labels, (n, D) and (n,) int64, by the draws of :meth:`sample`."""
        n, rng = positive_int(n, "n"), as_generator(rng)  # a seed becomes one Generator for every draw
        i = rng.integers(0, self.train.shape[0], n)  # (n,)
        return self.train[i], self.train_labels[i]

    def sample_dequantized_labelled(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        r"""As :meth:`sample_dequantized`, with the labels: (n, D) and (n,) int64, by the same draws."""
        rng = as_generator(rng)  # a seed becomes one Generator for both draws
        x, y = self.sample_labelled(n, rng)
        delta = 1.0 / (self.K - 1)
        return x + rng.uniform(-delta, delta, size=x.shape), y

    @property
    def num_classes(self) -> int:
        r"""Number of class labels (10 digits)."""
        return int(max(self.train_labels.max(), self.test_labels.max())) + 1

    def __repr__(self) -> str:
        return (f"ImageSet({self.name!r}, {self.shape[0]}x{self.shape[1]}, K={self.K}, "
                f"train={self.train.shape[0]}, test={self.test.shape[0]})")


def digits_split(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    r"""Indices (1437,) and (360,) of the documented train/test split of the 1,797 digits."""
    seed = positive_int(seed, "seed", minimum=0)  # None would give a different split every call
    perm = np.random.default_rng(seed).permutation(_DIGITS_N)  # (1797,)
    return perm[:DIGITS_N_TRAIN], perm[DIGITS_N_TRAIN:]


def _digits_file() -> Path | None:
    # locate scikit-learn's copy without importing scikit-learn (3 s of imports for one small file)
    try:
        spec = importlib.util.find_spec("sklearn")
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        raise ImportError(_EXTRA_HINT)
    for root in spec.submodule_search_locations or []:
        path = Path(root) / "datasets" / "data" / "digits.csv.gz"
        if path.is_file():
            return path
    return None


@lru_cache(maxsize=1)
def _digits_table() -> tuple[np.ndarray, np.ndarray]:
    path = _digits_file()
    if path is not None:
        table = np.loadtxt(path, delimiter=",", dtype=np.int64)  # (1797, 65): 64 pixels, then the label
        levels, labels = table[:, :64], table[:, 64]
    else:  # a future scikit-learn that moved the file: ask its loader
        from sklearn.datasets import load_digits

        bunch = load_digits()
        levels, labels = bunch.data.astype(np.int64), bunch.target.astype(np.int64)
    if levels.shape != (_DIGITS_N, 64) or levels.min() < 0 or levels.max() > DIGITS_K - 1:
        raise ValueError(f"scikit-learn's digits are not the expected 1797 x 64 levels 0..16 (got {levels.shape})")
    levels.setflags(write=False)
    labels.setflags(write=False)
    return levels, labels


def digits() -> ImageSet:
    r"""The 1,797 UCI 8x8 digits on 17 levels in [-1, 1], with the documented split.

    Returns
    -------
    :class:`ImageSet` with ``train`` (1437, 64) and ``test`` (360, 64) float64 images on the
    levels :math:`2v/16 - 1`, their labels, ``K = 17`` and ``shape = (8, 8)``.

    Raises
    ------
    ImportError naming the ``images`` extra when scikit-learn is not installed.
    """
    levels, labels = _digits_table()
    train_idx, test_idx = digits_split()
    x = levels_to_data(levels, DIGITS_K)  # (1797, 64) in [-1, 1]
    return ImageSet("digits", x[train_idx], x[test_idx], labels[train_idx].copy(), labels[test_idx].copy(),
                    DIGITS_K, (8, 8))


# -- IDX ---------------------------------------------------------------------------------------

_IDX_TYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"), 0x09: np.dtype(">i1"), 0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8"),
}
_IDX_CODES = {dt.newbyteorder("=").str.lstrip("<>|="): code for code, dt in _IDX_TYPES.items()}


_MAX_DEFLATE_RATIO = 1100  # deflate expands at most ~1032:1; a header claiming more is forged


def _read_bytes(path: Path) -> bytes:
    r"""The (decompressed) bytes of an IDX file, never more than its header announces.

    A gzipped file is decompressed as a stream: the header is read first, and the data only up
    to the size it announces (refused at once if that exceeds what the compressed file could
    hold), so a small forged or bomb-like file cannot make this allocate gigabytes.
    """
    with open(path, "rb") as f:
        magic = f.read(2)
        f.seek(0)
        if magic != b"\x1f\x8b":  # gzip's magic, whatever the file is called
            return f.read()
        compressed = os.fstat(f.fileno()).st_size
        try:
            with gzip.GzipFile(fileobj=f) as z:
                head = z.read(4)
                if len(head) < 4 or head[0] != 0 or head[1] != 0:
                    return head  # read_idx names what is wrong
                dims = z.read(4 * head[3])
                if len(dims) < 4 * head[3]:
                    return head + dims
                shape = struct.unpack(f">{head[3]}I", dims)
                item = _IDX_TYPES[head[2]].itemsize if head[2] in _IDX_TYPES else 1
                size = math.prod(shape) * item  # Python ints: no overflow
                if size > _MAX_DEFLATE_RATIO * compressed:
                    raise ValueError(f"{path}: IDX header claims shape {shape} ({size} bytes), more than a "
                                     f"{compressed}-byte gzip file can hold")
                chunks, got = [], 0
                while got <= size:  # one byte more than announced reveals trailing data
                    chunk = z.read(min(1 << 20, size + 1 - got))
                    if not chunk:
                        break
                    chunks.append(chunk)
                    got += len(chunk)
        except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as exc:
            raise ValueError(f"{path}: a damaged gzip file ({exc})") from None
    return head + dims + b"".join(chunks)


def read_idx(path: str | os.PathLike) -> np.ndarray:
    r"""Read an IDX file (``.idx``, ``-ubyte``, or gzipped ``.gz``) into an array of its shape and type.

    Parameters
    ----------
    path : a local file, e.g. MNIST's ``train-images-idx3-ubyte.gz`` ((60000, 28, 28) uint8)
        or ``train-labels-idx1-ubyte.gz`` ((60000,) uint8).

    Returns
    -------
    array in native byte order with the file's shape and dtype (uint8, int8, int16, int32,
    float32 or float64).

    Raises
    ------
    ValueError naming the file when it is not a complete IDX file; OSError when it cannot be read.
    """
    path = Path(os.fspath(path))
    raw = _read_bytes(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{path}: not an IDX file (it must start with two zero bytes, a type byte and a rank byte)")
    code, ndim = raw[2], raw[3]
    if code not in _IDX_TYPES:
        raise ValueError(f"{path}: unknown IDX type byte 0x{code:02X} (expected one of "
                         f"{', '.join(f'0x{c:02X}' for c in _IDX_TYPES)})")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated IDX header ({len(raw)} bytes for {ndim} dimensions)")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = _IDX_TYPES[code]
    expected = header + math.prod(shape) * dtype.itemsize  # Python ints: a forged shape cannot overflow to 0
    if len(raw) != expected:
        raise ValueError(f"{path}: IDX file of shape {shape} and type {dtype.newbyteorder('=')} should hold "
                         f"{expected} bytes, holds {len(raw)}")
    arr = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return arr.astype(dtype.newbyteorder("="))


def write_idx(path: str | os.PathLike, array: object, *, compress: bool | None = None) -> Path:
    r"""Write ``array`` as an IDX file; gzipped when ``compress`` (default: when the name ends in ``.gz``).

    The dtype must be one IDX stores: uint8, int8, int16, int32, float32 or float64.
    """
    path = Path(os.fspath(path))
    try:
        arr = np.asarray(array)
    except ValueError as exc:  # ragged nested lists
        raise ValueError(f"array must be a rectangular array, got {type(array).__name__} ({exc})") from None
    key = arr.dtype.newbyteorder("=").str.lstrip("<>|=")
    if key not in _IDX_CODES:
        raise TypeError(f"array must have an IDX dtype (uint8, int8, int16, int32, float32, float64), got {arr.dtype}")
    if arr.ndim == 0 or arr.ndim > 255:
        raise ValueError(f"array must have 1 to 255 dimensions, got {arr.ndim}")
    if max(arr.shape) >= 2**32:
        raise ValueError(f"array dimensions must be below 2**32 (IDX stores them as uint32), got shape {arr.shape}")
    code = _IDX_CODES[key]
    body = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    body += np.ascontiguousarray(arr, dtype=_IDX_TYPES[code]).tobytes()
    if compress is None:
        compress = path.suffix == ".gz"
    with open(path, "wb") as f:
        f.write(gzip.compress(body, mtime=0) if compress else body)
    return path
