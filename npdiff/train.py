r"""Training a denoiser network: the loop, AdamW + EMA, the learning rate, checkpoints and resume.

One step draws a batch and its times, noises it and computes the targets (the objective of
:mod:`npdiff.objective`), then the loss and its hand-written gradient, then one clipped AdamW update
with an EMA of the weights (:mod:`npdiff.nn.optim`). Weights are trained in float32.

The network enters at one place, its ``loss_and_grad`` (``_loss_and_grad_into`` below); everything else
of a step is the same for every network of :data:`NETWORKS`. The MLP
(:class:`~npdiff.nn.model.DiffusionMLP`) runs its fast path
(:meth:`npdiff.nn.fast.FastMLP.loss_and_grad`, the reference :func:`npdiff.nn.mlp.loss_and_grad`
computed into buffers); the U-Net (:class:`~npdiff.nn.unet.model.DiffusionUNet`) runs its forward,
the squared error and its backward (:mod:`npdiff.nn.unet.network`, :func:`npdiff.nn.unet.network.loss_and_grad`
in the weights' float32); the prompt-conditioned MLP (:class:`~npdiff.nn.prompt_mlp.PromptMLP`) its plain
reference :func:`npdiff.nn.prompt_mlp.loss_and_grad` in float64, on data from a sampler returning
``(x, token ids)`` that drops prompt words itself (:func:`npdiff.data.prompts.drop_attributes`); the
context-conditioned MLP (:class:`~npdiff.nn.context_mlp.ContextMLP`) its reference
:func:`npdiff.nn.context_mlp.loss_and_grad`, on data from a sampler returning ``(x, contexts (B, C))``
that draws any augmentation of the context itself (:class:`npdiff.data.lowres.SRData`).

Data is a sampler (``sample(n, rng)`` or an object with ``.sample(n, rng)``), called for fresh
points every step, or a fixed (N, D) array from which each minibatch is drawn uniformly with
replacement (so the generator's state is the whole data-order state, and resuming is exact).
Everything random comes from the one Generator, in a fixed order per step: data, t, eps.

**A conditional network** (``num_classes`` C > 0) trains on labelled data: a sampler returning
``(x, y)``, an object with ``.sample_labelled(n, rng)`` (the toy sets, the digits), or a pair of
arrays ``(X (N, D), Y (N,))``. Each label is then dropped, replaced by the "no label" row C, with
probability ``p_uncond``, so one network learns the conditional and the unconditional model
(Ho & Salimans 2022, Algorithm 1, :math:`p_{uncond}` = 0.1-0.2 in their experiments); the drop
is the step's last draw: data and labels, t, eps, then one uniform per point.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from ._check import as_batch, as_generator, as_labels, positive_int, real_scalar
from .nn.config import MLPConfig
from .nn.context_mlp import ContextMLP
from .nn.context_mlp import loss_and_grad as context_loss_and_grad
from .nn.fast import FastMLP
from .nn.mlp import mse
from .nn.model import DiffusionMLP
from .nn.optim import AdamW
from .nn.prompt_mlp import PromptMLP
from .nn.prompt_mlp import loss_and_grad as prompt_loss_and_grad
from .nn.unet import network as unet_network
from .nn.unet.config import UNetConfig
from .nn.unet.model import DiffusionUNet
from .objective import LossSecondMomentTimes, TimeSampler, noisy_batch
from .parameterization import PREDICTIONS
from .schedule import Schedule, vp_linear
from .threads import blas_threads

__all__ = ["LR_SCHEDULES", "NETWORKS", "TrainConfig", "Trainer", "train"]

#: learning-rate schedules of :meth:`TrainConfig.learning_rate`
LR_SCHEDULES = ("constant", "cosine")
#: the networks the trainer trains
NETWORKS = (DiffusionMLP, DiffusionUNet, PromptMLP, ContextMLP)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    r"""Hyperparameters of a training run (all JSON-serializable; stored in checkpoints).

    Attributes
    ----------
    steps : total number of optimizer steps of the run.
    batch_size : points per step.
    lr, lr_schedule : the peak learning rate and its schedule (:meth:`learning_rate`).
    betas, adam_eps, weight_decay, clip_norm, ema_decay, ema_warmup : see :class:`npdiff.nn.optim.AdamW`.
    t_min : smallest training time; t in [t_min, schedule.t_max].
    log_snr_fraction : share of each batch whose t is drawn with uniform log-SNR, density
        proportional to beta(t) / sigma(t)^2 (:class:`npdiff.objective.TimeSampler`); the rest is
        uniform in t. 0 (default): t ~ U(t_min, t_max).
    loss : space of the squared error, ``"eps"``, ``"x0"`` or ``"v"``; None: the model's parameterization
        (:func:`npdiff.objective.loss_weight`).
    p_uncond : a conditional network's probability of training a point without its label (module
        docstring); unused by an unconditional network.
    loss_second_moment_bins : K > 0 draws t by the loss's second moment over K bins of the base
        density above, importance-weighted so the objective's expectation is unchanged
        (:class:`npdiff.objective.LossSecondMomentTimes`, Nichol & Dhariwal 2021, Sec. 3.3); 0 (default): off.
        The MLP and the U-Net only; its loss histories are saved in checkpoints, so a run resumes exactly.
        What it buys on the 2D sets: docs/measurements/likelihood_levers.md.
    """

    steps: int = 10_000
    batch_size: int = 256
    lr: float = 1e-3
    lr_schedule: str = "constant"
    betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1e-8
    weight_decay: float = 0.0
    clip_norm: float = 1.0
    ema_decay: float = 0.999
    ema_warmup: bool = True
    t_min: float = 1e-5
    loss: str | None = None
    log_snr_fraction: float = 0.0
    p_uncond: float = 0.1
    loss_second_moment_bins: int = 0

    def __post_init__(self) -> None:
        positive_int(self.steps, "steps")
        positive_int(self.batch_size, "batch_size")
        real_scalar(self.lr, "lr", lo=0.0, lo_open=True)
        if not isinstance(self.lr_schedule, str) or self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        real_scalar(self.t_min, "t_min", lo=0.0, hi=1.0, hi_open=True)
        real_scalar(self.log_snr_fraction, "log_snr_fraction", lo=0.0, hi=1.0)
        real_scalar(self.p_uncond, "p_uncond", lo=0.0, hi=1.0)
        if self.loss_second_moment_bins != 0:
            positive_int(self.loss_second_moment_bins, "loss_second_moment_bins", minimum=2)
        if self.loss is not None and (not isinstance(self.loss, str) or self.loss not in PREDICTIONS):
            raise ValueError(f"loss must be one of {PREDICTIONS} or None, got {self.loss!r}")
        if isinstance(self.betas, (str, bytes)) or not hasattr(self.betas, "__len__") or len(self.betas) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2), got {self.betas!r}")
        betas = tuple(real_scalar(b, name, lo=0.0, hi=1.0, hi_open=True) for b, name in zip(self.betas, ("beta1", "beta2")))
        object.__setattr__(self, "betas", betas)
        # the optimizer checks the rest when it is built

    def learning_rate(self, step: int) -> float:
        r"""The learning rate of update number ``step`` (from 1): ``"constant"``, or ``"cosine"`` decay to 0.

        .. math:: \eta_s = \eta\cdot\tfrac12\big(1 + \cos(\pi s / S)\big)

        with S = ``steps`` (Loshchilov & Hutter 2017, Eq. 5 without restarts, from :math:`\eta` to 0).
        """
        if self.lr_schedule == "constant":
            return self.lr
        return self.lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, step / self.steps)))

    def to_dict(self) -> dict[str, Any]:
        r"""A JSON-serializable dict; :meth:`from_dict` inverts it."""
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        r"""Rebuild a config; unknown keys raise ``ValueError`` naming them.

        Configs written before ``warmup_steps``, ``final_lr_ratio`` and ``workers`` were removed
        are read when those hold their defaults (0, 0 and None: the run npdiff still does).
        """
        d = {k: v for k, v in d.items() if not (k in _REMOVED and v == _REMOVED[k])}
        unknown = sorted(set(d) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"unknown training config keys {unknown}")
        return cls(**{**d, "betas": tuple(d.get("betas", (0.9, 0.999)))})


#: options of earlier versions, and the value at which each did nothing
_REMOVED = {"warmup_steps": 0, "final_lr_ratio": 0.0, "workers": None}


def _sampler(data: object, dim: int) -> Callable[[int, np.random.Generator], np.ndarray]:
    if hasattr(data, "sample") and callable(data.sample):
        return data.sample
    if callable(data):
        return data
    arr = as_batch(data, "data", dim=dim)

    def minibatch(n: int, rng: np.random.Generator) -> np.ndarray:
        return arr[rng.integers(0, arr.shape[0], n)]

    return minibatch


def _labelled_sampler(data: object, dim: int, num_classes: int) -> Callable[[int, np.random.Generator], tuple]:
    if hasattr(data, "sample_labelled") and callable(data.sample_labelled):
        return data.sample_labelled
    if isinstance(data, (tuple, list)) and len(data) == 2:
        X = as_batch(data[0], "data[0] (the points)", dim=dim)
        Y = as_labels(data[1], X.shape[0], num_classes, "data[1] (the labels)")
        if Y is None:
            raise ValueError("data[1] (the labels) must be the labels of the points, got None")

        def minibatch(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
            i = rng.integers(0, X.shape[0], n)
            return X[i], Y[i]

        return minibatch
    if callable(data) and not isinstance(data, np.ndarray):
        return data
    raise TypeError(f"data for a conditional network (num_classes = {num_classes}) must come with labels: a sampler "
                    f"returning (x, y), an object with sample_labelled(n, rng), or a pair (X, Y); got {type(data).__name__}")


def _loss_and_grad_into(model: DiffusionMLP | DiffusionUNet, params: np.ndarray, grad: np.ndarray
                        ) -> Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None], float]:
    r"""The one place the trainer meets a network: its ``loss_and_grad`` on the weights ``params``.

    Returns ``step(xt, t, target, weight, rows) -> L`` that writes :math:`\partial L/\partial\theta`
    into ``grad`` (both (n_params,) float32 vectors that the optimizer updates in place); ``rows``
    are the label-table rows of a conditional network (label c, or C for "no label"), else None.
    Everything else of a step (data, times, noise, targets, AdamW + EMA) is the same for every network.
    """
    if isinstance(model, DiffusionUNet):
        return _unet_loss_and_grad_into(model.config, params, grad)
    if isinstance(model, PromptMLP):  # the plain-NumPy float64 reference (no fast path yet); rows: the token ids

        def prompt_step(xt: np.ndarray, t: np.ndarray, target: np.ndarray, weight: np.ndarray, ids: np.ndarray) -> float:
            loss, grad[...] = prompt_loss_and_grad(model.config, params, xt, t, target, weight, ids)
            return loss

        return prompt_step
    if isinstance(model, ContextMLP):  # the plain-NumPy float64 reference as well; rows: the contexts (B, C)

        def context_step(xt: np.ndarray, t: np.ndarray, target: np.ndarray, weight: np.ndarray, c: np.ndarray) -> float:
            loss, grad[...] = context_loss_and_grad(model.config, params, xt, t, target, weight, c)
            return loss

        return context_step
    cfg = model.config
    net = FastMLP(cfg)  # fused kernels and buffers, equal to npdiff.nn.mlp.loss_and_grad
    layers, grads = cfg.layers(params), cfg.layers(grad)  # views: the optimizer's updates reach them
    table, table_grad = cfg.label_table(params), cfg.label_table(grad)

    def step(xt: np.ndarray, t: np.ndarray, target: np.ndarray, weight: np.ndarray, rows: np.ndarray | None) -> float:
        return net.loss_and_grad(layers, grads, xt, t, target, weight, rows, table, table_grad)

    def squared_errors(target: np.ndarray) -> np.ndarray:  # (B,) of the last step, from the output it left in the buffers
        buf = net.buffers(target.shape[0], layers[0][0].dtype)
        return np.mean((buf.out + layers[-1][1] - target) ** 2, axis=1)

    step.squared_errors = squared_errors
    return step


def _unet_loss_and_grad_into(cfg: UNetConfig, params: np.ndarray, grad: np.ndarray
                             ) -> Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None], float]:
    # npdiff.nn.unet.network.loss_and_grad in the weights' dtype (float32): its forward, the loss, its backward
    P = cfg.views(params)  # named views: the optimizer's updates reach them

    last = {}

    def step(xt: np.ndarray, t: np.ndarray, target: np.ndarray, weight: np.ndarray, rows: np.ndarray | None) -> float:
        out, cache = unet_network.forward_unchecked(cfg, P, xt.astype(params.dtype), t, rows)  # (B, D)
        loss, dy = mse(out, target, weight)
        grad[...] = unet_network.backward_unchecked(cfg, P, cache, dy.astype(params.dtype), input_grad=False,
                                                     overwrite_cache=True)[0]
        last["out"] = out
        return float(loss)

    step.squared_errors = lambda target: np.mean((last["out"] - target) ** 2, axis=1)  # (B,) of the last step
    return step


class Trainer:
    r"""State of a training run: float32 weights, gradient, AdamW + EMA state, step, history.

    Parameters
    ----------
    model : the network to start from, a :class:`~npdiff.nn.model.DiffusionMLP` or a
        :class:`~npdiff.nn.unet.model.DiffusionUNet` (its weights are copied as float32; its config
        and schedule are kept).
    data : a sampler ``sample(n, rng)``, an object with ``.sample(n, rng)``, or an (N, D) array; for a
        conditional network labelled data (module docstring).
    config : the :class:`TrainConfig`.
    rng : the Generator that draws data, times and noise (it is advanced in place), or an int seed for a fresh one.

    ``history`` holds one value per step done so far: ``"loss"``, ``"grad_norm"`` (before
    clipping) and ``"lr"``. ``data_name`` is the data's ``.name`` (a toy set's, the digits'),
    recorded in checkpoints so that scoring on another set can be caught.
    """

    def __init__(self, model: DiffusionMLP | DiffusionUNet, data: object, config: TrainConfig,
                 rng: np.random.Generator | int) -> None:
        if not isinstance(model, NETWORKS):
            raise TypeError(f"model must be a DiffusionMLP, a DiffusionUNet, a PromptMLP or a ContextMLP, "
                            f"got {type(model).__name__}")
        if not isinstance(config, TrainConfig):
            raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
        self.rng = as_generator(rng)
        self.network = type(model)  # what denoiser() and checkpoints rebuild
        self.model_config: MLPConfig | UNetConfig = model.config
        self.schedule: Schedule = model.schedule
        self.config = config
        self.loss_kind = config.loss or model.config.parameterization
        C = model.config.num_classes
        self.sample = _labelled_sampler(data, model.config.dim, C) if C else _sampler(data, model.config.dim)
        name = getattr(data, "name", None)
        self.data_name: str | None = name if isinstance(name, str) and name else None  # recorded in checkpoints
        self.times = TimeSampler(self.schedule, config.t_min, config.log_snr_fraction)  # refuses t_min >= t_max
        self.resampler: LossSecondMomentTimes | None = None
        if config.loss_second_moment_bins:
            if isinstance(model, (PromptMLP, ContextMLP)):
                raise ValueError(f"loss_second_moment_bins needs per-example losses, which the {type(model).__name__}'s step "
                                 f"does not keep; set it to 0 (got {config.loss_second_moment_bins})")
            self.resampler = LossSecondMomentTimes(self.times, config.loss_second_moment_bins)
        self.params = model.params.astype(np.float32)  # (n_params,) the weights being trained
        self.grad = np.zeros_like(self.params)
        self._loss_and_grad = _loss_and_grad_into(model, self.params, self.grad)
        self.optimizer = AdamW(self.params, betas=config.betas, eps=config.adam_eps, weight_decay=config.weight_decay,
                               clip_norm=config.clip_norm, ema_decay=config.ema_decay, ema_warmup=config.ema_warmup)
        self.step = 0
        self._history = {k: np.full(min(config.steps, 1024), np.nan) for k in ("loss", "grad_norm", "lr")}
        self._checked = False

    @property
    def history(self) -> dict[str, np.ndarray]:
        r"""Per-step ``loss``, ``grad_norm`` and ``lr`` of the steps done so far (copies, float64)."""
        return {k: v[: self.step].copy() for k, v in self._history.items()}

    def _grow(self, size: int) -> None:
        for k, v in self._history.items():
            if v.shape[0] < size:
                self._history[k] = np.concatenate([v, np.full(size - v.shape[0], np.nan)])

    def train_step(self) -> float:
        r"""One optimizer step (module docstring); returns its loss."""
        cfg, rng = self.config, self.rng
        B, D, C = cfg.batch_size, self.model_config.dim, self.model_config.num_classes
        x0, y = self.sample(B, rng), None  # (B, D), and (B,) labels of a conditional network or (B, L) token ids
        if C or isinstance(self.model_config, (PromptMLP.config_type, ContextMLP.config_type)):  # (x, words or contexts)
            if not (isinstance(x0, tuple) and len(x0) == 2):
                raise TypeError(f"the data sampler of a conditional network must return (x, y), got {type(x0).__name__}")
            x0, y = x0
        if not self._checked:  # check the data once; later batches come from the same source
            x0 = as_batch(x0, "sampled data", dim=D)
            if x0.shape[0] != B:
                raise ValueError(f"the data sampler returned {x0.shape[0]} points, asked for {B}")
            if C and as_labels(y, B, C, "sampled labels") is None:
                raise ValueError("the data sampler returned None for the labels")
            self._checked = True
        if self.resampler is None:
            t = self.times(rng, B)  # (B,)
        else:  # by the losses' second moment, each example weighted by 1 / (K q_k)
            t, bins, importance = self.resampler(rng, B)  # (B,) each
        eps = rng.standard_normal((B, D))  # (B, D)
        if C:  # label dropout: the "no label" row C with probability p_uncond (Ho & Salimans 2022, Alg. 1)
            y = np.where(rng.random(B) < cfg.p_uncond, C, np.asarray(y, dtype=np.int64))  # (B,)
        xt, target, weight = noisy_batch(np.asarray(x0, dtype=np.float64), t, eps, self.schedule,
                                         self.model_config.parameterization, self.loss_kind)
        loss = self._loss_and_grad(xt, t, target, weight if self.resampler is None else weight * importance, y)
        if self.resampler is not None and math.isfinite(loss):  # the objective's own per-example losses, unweighted
            self.resampler.update(bins, weight * self._loss_and_grad.squared_errors(target))
        if not math.isfinite(loss):  # before the update, so the weights stay those of the last good step
            raise FloatingPointError(f"training loss became {loss} at step {self.step + 1} (the weights are kept as "
                                     f"after step {self.step}); lower lr or check the data")
        lr = cfg.learning_rate(self.step + 1)
        grad_norm = self.optimizer.update(self.params, self.grad, lr)
        h = self._history
        if self.step == h["loss"].shape[0]:  # grow by doubling: memory follows the steps done, not planned
            self._grow(min(2 * self.step, self.config.steps))
        h["loss"][self.step], h["grad_norm"][self.step], h["lr"][self.step] = loss, grad_norm, lr
        self.step += 1
        if not math.isfinite(grad_norm):
            raise FloatingPointError(f"the gradient norm became {grad_norm} at step {self.step}; lower lr or check the data")
        return loss

    def check_finite(self) -> None:
        r"""Raise ``FloatingPointError`` naming the step if the weights or their EMA hold NaN/Inf.

        A finite loss does not prove the update that followed it finite (a huge learning rate
        overflows float32 in the update itself); the next step's loss would show it, but the
        last step has no next step. Checked at the end of :meth:`run` and before every save.
        """
        for name, arr in (("weights", self.params), ("EMA weights", self.optimizer.ema)):
            if not np.all(np.isfinite(arr)):
                raise FloatingPointError(f"the {name} became NaN/Inf at step {self.step} "
                                         f"({np.count_nonzero(~np.isfinite(arr))} entries); lower lr")

    @blas_threads()
    def run(self, until: int | None = None, *, progress: bool | None = None, checkpoint_path: str | os.PathLike | None = None,
            checkpoint_every: int | None = None) -> dict[str, np.ndarray]:
        r"""Train up to step ``until`` (default: ``config.steps``) and return :attr:`history`.

        ``progress``: a tqdm bar on stderr with the mean loss of the steps since its last update
        (every 50 steps); None turns it on for runs of 2,000 steps or more.
        With ``checkpoint_path`` the state is saved there every ``checkpoint_every`` steps (if
        given) and at the end, atomically (:mod:`npdiff.checkpoint`).
        """
        until = self.config.steps if until is None else positive_int(until, "until", maximum=self.config.steps)
        if checkpoint_every is not None:
            positive_int(checkpoint_every, "checkpoint_every")
        n = max(0, until - self.step)
        show = n >= 2000 if progress is None else bool(progress)
        bar = None
        if show:
            from tqdm.auto import tqdm

            bar = tqdm(total=n, file=sys.stderr, desc="train", dynamic_ncols=True, leave=False)
        shown = self.step
        try:
            while self.step < until:
                self.train_step()
                if checkpoint_path is not None and checkpoint_every and self.step % checkpoint_every == 0:
                    self.save(checkpoint_path)
                if bar is not None and (self.step % 50 == 0 or self.step == until):
                    # every 50 steps: a bar update costs more than a small step
                    recent = self._history["loss"][shown : self.step]  # (steps since the last update,)
                    bar.set_postfix_str(f"mean loss of the last {recent.shape[0]} steps {recent.mean():.4f}", refresh=False)
                    bar.update(self.step - shown)
                    shown = self.step
        finally:
            if bar is not None:
                bar.close()
        self.check_finite()
        if checkpoint_path is not None:
            self.save(checkpoint_path)
        return self.history

    def denoiser(self, ema: bool = True, dtype: type = np.float64) -> DiffusionMLP | DiffusionUNet:
        r"""The model (of the network trained) with the EMA weights (default) or the raw trained weights."""
        return self.network(self.model_config, self.schedule, self.optimizer.ema if ema else self.params, dtype=dtype)

    # -- checkpoints -------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> None:
        r"""Write the whole state (weights, AdamW + EMA, step, generator, history, configs) atomically.

        Refuses (``FloatingPointError`` naming the step) to write weights that are not finite.
        """
        from . import checkpoint

        self.check_finite()
        checkpoint.save(path, self.denoiser(ema=False, dtype=np.float32), optimizer=self.optimizer, step=self.step,
                        rng=self.rng, history=self.history, train_config=self.config.to_dict(), data_name=self.data_name,
                        time_losses=None if self.resampler is None else (self.resampler.losses, self.resampler.count))

    @classmethod
    def load(cls, path: str | os.PathLike, data: object) -> Trainer:
        r"""Resume from a checkpoint written by :meth:`save`; ``data`` as for the constructor.

        The resumed run continues exactly as the uninterrupted one would (same generator state,
        same optimizer state, same step counter); the loss histories of
        ``loss_second_moment_bins`` too).
        """
        from . import checkpoint

        ck = checkpoint.load(path)
        if ck.train_config is None or ck.optimizer is None or ck.rng is None:
            raise ValueError(f"{os.fspath(path)} holds a model but no training state (optimizer, generator, config)")
        try:
            config = TrainConfig.from_dict(ck.train_config)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{os.fspath(path)} holds an invalid training config: {exc}") from exc
        trainer = cls(ck.raw_model, data, config, ck.rng)
        trainer.data_name = trainer.data_name or ck.data_name
        try:
            trainer.optimizer.load_state(ck.optimizer, ck.step)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{os.fspath(path)} holds an optimizer state that does not fit its model: {exc}") from exc
        if trainer.resampler is not None and ck.time_losses is not None:
            losses, counts = ck.time_losses
            if losses.shape != trainer.resampler.losses.shape or np.any(counts < 0):
                raise ValueError(f"{os.fspath(path)} holds loss histories of shape {losses.shape}, its config "
                                 f"wants {trainer.resampler.losses.shape}")
            trainer.resampler.losses[...], trainer.resampler.count[...] = losses, counts.astype(np.int64)
        trainer.step = ck.step
        trainer._grow(ck.step)
        for k, v in ck.history.items():
            if k in trainer._history:
                trainer._history[k][: v.shape[0]] = v
        return trainer


def train(model: DiffusionMLP | DiffusionUNet | MLPConfig | UNetConfig, data: object, *, rng: np.random.Generator | int,
          schedule: Schedule | None = None, progress: bool | None = None,
          checkpoint_path: str | os.PathLike | None = None, checkpoint_every: int | None = None,
          resume: str | os.PathLike | None = None, use_ema: bool = True,
          **config: Any) -> tuple[DiffusionMLP | DiffusionUNet, dict[str, np.ndarray]]:
    r"""Train a denoiser and return it with its per-step history.

    Parameters
    ----------
    model : a :class:`~npdiff.nn.model.DiffusionMLP` or :class:`~npdiff.nn.unet.model.DiffusionUNet`
        to continue from, or an :class:`~npdiff.nn.config.MLPConfig` or
        :class:`~npdiff.nn.unet.config.UNetConfig` (fresh weights drawn from ``rng``, ``schedule``
        default :func:`~npdiff.schedule.vp_linear`).
    data : sampler ``sample(n, rng)``, object with ``.sample(n, rng)``, or (N, D) array.
    rng : the Generator (or an int seed) for weights, data, times and noise.
    progress, checkpoint_path, checkpoint_every : see :meth:`Trainer.run`.
    resume : a checkpoint path to continue from instead (``model``, ``rng`` and ``config``
        are then taken from the file; ``data`` must be given again).
    use_ema : return the EMA weights (default) or the raw ones.
    **config : fields of :class:`TrainConfig` (``steps``, ``batch_size``, ``lr``, ...).

    Returns
    -------
    model : a float64 network of the kind trained.
    history : ``{"loss", "grad_norm", "lr"}``, arrays with one entry per step.

    Examples
    --------
    >>> from npdiff.nn import MLPConfig
    >>> model, hist = train(MLPConfig(), sampler, rng=0, steps=10_000, batch_size=256)
    """
    if resume is not None:
        trainer = Trainer.load(resume, data)
    else:
        rng = as_generator(rng)
        if isinstance(model, (MLPConfig, UNetConfig)):
            network = DiffusionMLP if isinstance(model, MLPConfig) else DiffusionUNet
            model = network(model, schedule if schedule is not None else vp_linear(), rng=rng)
        elif not isinstance(model, NETWORKS):
            raise TypeError(f"model must be an MLPConfig, a UNetConfig, a DiffusionMLP or a DiffusionUNet, "
                            f"got {type(model).__name__}")
        trainer = Trainer(model, data, TrainConfig(**config), rng)
    history = trainer.run(progress=progress, checkpoint_path=checkpoint_path, checkpoint_every=checkpoint_every)
    return trainer.denoiser(ema=use_ema), history
