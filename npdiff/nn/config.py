r"""What the MLP denoiser is: its architecture, and the one flat vector its weights live in.

Both implementations of the network, the reference (:mod:`npdiff.nn.mlp`) and the fast path
(:mod:`npdiff.nn.fast`), read the same :class:`MLPConfig` and the same parameter layout:
layer k is ``h @ W_k + b_k`` with ``W_k`` stored (in, out), and every ``W_k`` and ``b_k`` is
a view into ONE flat vector, so the optimizer updates all of them in a single pass. A
conditional network (``num_classes`` C > 0) has one more block at the end of the vector, the
label table (C + 1, H) of :meth:`MLPConfig.label_table`; an unconditional one (C = 0, the
default) has exactly the layout it always had.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from .._check import as_batch, as_flat_params, as_generator, as_labels, as_times, positive_int, real_scalar
from ..parameterization import PREDICTIONS
from .activations import activation
from .embedding import input_width

__all__ = ["COORDS", "EMBEDDING_RANGE", "MLPConfig", "init_layers", "layer_views"]

#: what the network sees of x: x itself, a sinusoidal embedding of each coordinate, or both
COORDS = ("raw", "sinusoidal", "raw+sinusoidal")
#: the largest ``coord_scale * |x|`` whose sine and cosine the fast kernels compute exactly (see MLPConfig.check_inputs)
EMBEDDING_RANGE = 1e6

Layers = list[tuple[np.ndarray, np.ndarray]]


def layer_views(flat: np.ndarray, shapes: list[tuple[int, int]]) -> Layers:
    r"""Views ``(W (in, out), b (out,))`` into the start of ``flat``, one per (in, out) of ``shapes``, in order."""
    out, start = [], 0
    for i, o in shapes:
        out.append((flat[start:start + i * o].reshape(i, o), flat[start + i * o:start + i * o + o]))
        start += i * o + o
    return out


def init_layers(layers: Layers, rng: np.random.Generator) -> None:
    r"""PyTorch's ``nn.Linear`` initialization in place: W and b uniform in :math:`\pm 1/\sqrt{\mathrm{fan\_in}}`.

    (He et al. 2015's Kaiming-uniform with a = sqrt(5), which reduces to this bound.)
    """
    for W, b in layers:
        bound = 1.0 / np.sqrt(W.shape[0])
        W[...] = rng.uniform(-bound, bound, W.shape)
        b[...] = rng.uniform(-bound, bound, b.shape)


@dataclasses.dataclass(frozen=True)
class MLPConfig:
    r"""Architecture of the MLP denoiser.

    Attributes
    ----------
    dim : data dimension D.
    width : hidden units H of every layer.
    depth : number L of residual blocks after the first layer.
    emb_dim : features per sinusoidal embedding (even, >= 4).
    activation : ``"gelu"`` or ``"silu"``.
    parameterization : what the network predicts: ``"eps"``, ``"x0"`` or ``"v"``.
    time_scale : the time embedding reads ``time_scale * t`` (1000: the DDPM step index).
    coords : what the network sees of x (:data:`COORDS`): ``"raw"`` (x itself),
        ``"sinusoidal"`` (each coordinate's sinusoidal embedding, tiny-diffusion's choice) or
        ``"raw+sinusoidal"`` (both).
    coord_scale : the coordinate embedding reads ``coord_scale * x_d``.
    num_classes : C, the number of class labels the network is conditioned on (0: unconditional).
        A conditional network adds row :math:`y` of a learned table (C + 1, H) to the first
        layer's pre-activation, row C being "no label" (:mod:`npdiff.nn.mlp`).
    """

    dim: int = 2
    width: int = 128
    depth: int = 3
    emb_dim: int = 128
    activation: str = "gelu"
    parameterization: str = "eps"
    time_scale: float = 1000.0
    coords: str = "sinusoidal"
    coord_scale: float = 25.0
    num_classes: int = 0

    def __post_init__(self) -> None:
        positive_int(self.dim, "dim")
        positive_int(self.num_classes, "num_classes", minimum=0)
        positive_int(self.width, "width")
        positive_int(self.depth, "depth", minimum=0)
        positive_int(self.emb_dim, "emb_dim", minimum=4)
        if self.emb_dim % 2:
            raise ValueError(f"emb_dim must be even (half sines, half cosines), got {self.emb_dim}")
        activation(self.activation)
        for name, choices in (("parameterization", PREDICTIONS), ("coords", COORDS)):
            if not isinstance(getattr(self, name), str) or getattr(self, name) not in choices:
                raise ValueError(f"{name} must be one of {choices}, got {getattr(self, name)!r}")
        real_scalar(self.time_scale, "time_scale", lo=0.0, lo_open=True)
        real_scalar(self.coord_scale, "coord_scale", lo=0.0, lo_open=True)

    # -- the input layout (npdiff.nn.embedding) -----------------------------------------------
    @property
    def raw(self) -> bool:
        r"""Whether x itself is a network input."""
        return self.coords in ("raw", "raw+sinusoidal")

    @property
    def sinusoidal(self) -> bool:
        r"""Whether each coordinate's sinusoidal embedding is a network input."""
        return self.coords in ("sinusoidal", "raw+sinusoidal")

    @property
    def input_width(self) -> int:
        r"""Number E of network inputs."""
        return input_width(self.dim, self.emb_dim, raw=self.raw, coord=self.sinusoidal)

    # -- the flat parameter vector ------------------------------------------------------------
    @property
    def layer_shapes(self) -> list[tuple[int, int]]:
        r"""(in, out) of every layer: the first, the L residual blocks, the output layer."""
        H = self.width
        return [(self.input_width, H)] + [(H, H)] * self.depth + [(H, self.dim)]

    @property
    def n_params(self) -> int:
        r"""Length of the flat parameter vector: the layers, then the label table of a conditional network."""
        return sum(i * o + o for i, o in self.layer_shapes) + self.label_table_size

    @property
    def label_table_size(self) -> int:
        r"""Entries of the label table, (C + 1) H; 0 for an unconditional network."""
        return (self.num_classes + 1) * self.width if self.num_classes else 0

    def layers(self, flat: np.ndarray) -> Layers:
        r"""Views ``(W (in, out), b (out,))`` into ``flat`` (n_params,), from the first layer to the output layer."""
        return layer_views(flat, self.layer_shapes)

    def label_table(self, flat: np.ndarray) -> np.ndarray | None:
        r"""The view (C + 1, H) of the label table at the end of ``flat``, or None for an unconditional network.

        Row c < C is label c's addition to the first layer's pre-activation, row C the "no label" row.
        """
        if not self.num_classes:
            return None
        return flat[flat.shape[0] - self.label_table_size:].reshape(self.num_classes + 1, self.width)

    def init_params(self, rng: np.random.Generator, dtype: type = np.float32) -> np.ndarray:
        r"""PyTorch's ``nn.Linear`` initialization (:func:`init_layers`); returns a (n_params,) vector of ``dtype``."""
        rng = as_generator(rng)
        flat = np.empty(self.n_params, dtype)
        init_layers(self.layers(flat), rng)
        if self.num_classes:  # each row is a per-class bias of the first layer: drawn like that layer's bias
            table = self.label_table(flat)
            bound = 1.0 / np.sqrt(self.input_width)
            table[...] = rng.uniform(-bound, bound, table.shape)
        return flat

    # -- checks at the door of both implementations ---------------------------------------------
    def check_params(self, flat: object, name: str = "params") -> np.ndarray:
        r"""A finite float32 or float64 vector of length :attr:`n_params`, returned as is; else a clear error."""
        return as_flat_params(flat, self.n_params, name)

    def check_inputs(self, x: object, t: object) -> tuple[np.ndarray, np.ndarray]:
        r"""Points x (B, D) and times t (B,) as float64, refusing x beyond the embedding's range.

        ``coord_scale * |x|`` must stay below :data:`EMBEDDING_RANGE`: the fast kernels reduce
        the sine's argument by multiples of pi/2 exactly only below ~1.6e6, beyond which they
        and their NumPy twins would disagree.
        """
        x = as_batch(x, "x", dim=self.dim)
        if self.sinusoidal and float(np.max(np.abs(x))) * self.coord_scale > EMBEDDING_RANGE:
            raise ValueError(f"x up to |x| = {np.max(np.abs(x)):.3g} is beyond the coordinate embedding's range "
                             f"(coord_scale * |x| <= {EMBEDDING_RANGE:g}, coord_scale = {self.coord_scale:g})")
        return x, as_times(t, x.shape[0])

    def check_labels(self, y: object, n: int) -> np.ndarray | None:
        r"""Labels for a batch of n points: None, or (n,) int64 in 0..C-1 (:func:`npdiff._check.as_labels`).

        Labels given to an unconditional network raise ``ValueError``.
        """
        return as_labels(y, n, self.num_classes)

    def label_index(self, y: np.ndarray | None, n: int) -> np.ndarray | None:
        r"""The label table's row for each of n points: the checked labels y, or C ("no label") for y = None; None if C = 0."""
        if not self.num_classes:
            return None
        return np.full(n, self.num_classes) if y is None else y

    # -- serialization -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        r"""A JSON-serializable dict; :meth:`from_dict` inverts it.

        An unconditional network's dict has no ``num_classes``: it is the dict npdiff wrote before labels existed.
        """
        d = dataclasses.asdict(self)
        if not self.num_classes:
            del d["num_classes"]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MLPConfig:
        r"""Rebuild a config; unknown keys raise ``ValueError`` naming them.

        Configs written before the coordinate inputs became the one setting ``coords`` (with
        the flags ``coord_embedding`` and ``raw_coords``, and the since-removed ``dropout`` and
        ``time_input`` at their defaults) are read as the same network.
        """
        if not isinstance(d, dict):
            raise TypeError(f"an MLP config must be a dict, got {type(d).__name__}")
        d = _from_older(dict(d))
        unknown = sorted(set(d) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"unknown MLP config keys {unknown}")
        return cls(**d)


def _from_older(d: dict[str, Any]) -> dict[str, Any]:
    # the earlier layout: coord_embedding (bool), raw_coords (bool, implied when coord_embedding is off)
    if "coord_embedding" in d or "raw_coords" in d:
        emb, raw = d.pop("coord_embedding", True), d.pop("raw_coords", False)
        if isinstance(emb, bool) and isinstance(raw, bool) and "coords" not in d:
            d["coords"] = "raw+sinusoidal" if emb and raw else ("sinusoidal" if emb else "raw")
    for removed, inert in (("dropout", 0.0), ("time_input", "t")):
        if removed in d and d[removed] == inert:
            del d[removed]  # the option's off position is the network npdiff still builds
    return d
