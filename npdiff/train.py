r"""Training the MLP denoiser: continuous-time denoising loss, AdamW, EMA, checkpoints and resume.

One step (Ho et al. 2020, Alg. 1, in continuous time as in Kingma et al. 2021, Sec. 4):

.. math::
    x_0 \sim \text{data},\quad t \sim p(t),\quad \epsilon \sim \mathcal N(0, I),\quad
    x_t = \sqrt{\bar\alpha(t)}\,x_0 + \sigma(t)\,\epsilon,\qquad
    L = \frac{1}{BD}\sum_{b} w(t_b)\,\lVert \hat y(x_t, t) - y \rVert^2

where :math:`\hat y` is what the network predicts (``parameterization``: eps, x0 or v) and y
the true value of that quantity (:math:`v = \sqrt{\bar\alpha}\epsilon - \sigma x_0`). The
weight :math:`w` makes the loss the squared error measured in the space named by ``loss``,
whatever the network predicts. With :math:`\mathrm{SNR} = \bar\alpha/\sigma^2` and
:math:`x_t` fixed, the errors of the three predictions are proportional
(Kingma et al. 2021, Eq. 13 and App. E; Salimans & Ho 2022, Sec. 4):

.. math::
    \lVert\epsilon - \hat\epsilon\rVert^2 = \mathrm{SNR}\,\lVert x_0 - \hat x_0\rVert^2,\qquad
    \lVert v - \hat v\rVert^2 = (1 + \mathrm{SNR})\,\lVert x_0 - \hat x_0\rVert^2

so with :math:`f_{\epsilon} = \mathrm{SNR}`, :math:`f_{x_0} = 1`, :math:`f_v = 1 + \mathrm{SNR}`,
:math:`w = f_{\text{loss}} / f_{\text{parameterization}}` (:func:`loss_weight`); e.g. an
x0-predicting network trained with ``loss="eps"`` minimizes exactly the eps-loss, and
``loss == parameterization`` gives w = 1 (the "simple" losses).

The times come from :math:`p(t) = (1 - f)\,\mathcal U(t_{\min}, t_{\max}) + f\,p_\lambda(t)` with
:math:`f` = ``log_snr_fraction`` (0 by default: t uniform), where :math:`p_\lambda` samples the
log-SNR :math:`\lambda(t)` uniformly on :math:`[\lambda(t_{\max}), \lambda(t_{\min})]`. Since
:math:`d\lambda/dt = -\beta(t)/\sigma^2(t)` for a VP schedule, :math:`p_\lambda(t) \propto
\beta(t)/\sigma^2(t)`: exactly the importance sampling of the likelihood weighting (Song,
Durkan, Murray & Ermon 2021, Sec. 4 and Eq. 9: :math:`\lambda(t) = g(t)^2 = \beta(t)` in eps
space gives :math:`\beta/\sigma^2` in front of the eps error). With :math:`f = 1` and
``loss="eps"`` the expected loss is the continuous-time ELBO's denoising term up to a
constant factor (Kingma et al. 2021, Eq. 17, invariant to the schedule in :math:`\lambda`:
Sec. 5.1): :math:`-\tfrac12 \int \lVert\epsilon - \hat\epsilon\rVert^2\,d\lambda`. Of each batch
the first ``round(f B)`` times are drawn this way and the rest uniformly (a stratified mixture).

Data is a sampler (``sample(n, rng)`` or an object with ``.sample(n, rng)``), called for fresh
points every step, or a fixed (N, D) array from which each minibatch is drawn uniformly with
replacement (so the generator's state is the whole data-order state, and resuming is exact).
Everything random comes from the one Generator, in a fixed order per step: data, t, eps, and
the dropout masks when the model's ``dropout`` > 0 (:meth:`npdiff.nn.mlp.MLP.dropout_masks`).
The step computes x_t with :func:`npdiff.forward.q_sample`'s formula but not its input
checks (at batch 32 they cost as much as the forward pass); :func:`denoising_targets` is the
checked public version, and a test holds the two equal.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from ._check import as_batch, as_float_array, as_times, positive_int, real_scalar
from .forward import q_sample
from .nn.mlp import MLP, PARAMETERIZATIONS, MLPConfig
from .nn.model import DiffusionMLP
from .nn.optim import LR_SCHEDULES, AdamW, _learning_rate
from .nn.parallel import ParallelGrad
from .nn.threads import threads
from .schedule import Schedule, vp_linear

__all__ = ["TrainConfig", "Trainer", "denoising_targets", "log_snr_times", "loss_weight", "train"]


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    r"""Hyperparameters of a training run (all JSON-serializable; stored in checkpoints).

    Attributes
    ----------
    steps : total number of optimizer steps of the run.
    batch_size : points per step.
    lr, lr_schedule, warmup_steps, final_lr_ratio : see :func:`npdiff.nn.optim.learning_rate`.
    betas, adam_eps, weight_decay, clip_norm, ema_decay, ema_warmup : see :class:`npdiff.nn.optim.AdamW`.
    t_min : smallest training time; t in [t_min, schedule.t_max].
    log_snr_fraction : share of each batch whose t is drawn with uniform log-SNR, density
        proportional to beta(t) / sigma(t)^2 (the likelihood weighting's importance sampling;
        module docstring); the rest is uniform in t. 0 (default): t ~ U(t_min, t_max).
    loss : space of the squared error, ``"eps"``, ``"x0"`` or ``"v"``; None: the model's parameterization.
    workers : threads that split each batch into row shares (:mod:`npdiff.nn.parallel`); None:
        :func:`npdiff.nn.threads.threads` (``NPDIFF_THREADS``, else 1). The count changes the
        gradient only by float rounding, and a run is reproducible for a given count.
    """

    steps: int = 10_000
    batch_size: int = 256
    lr: float = 1e-3
    lr_schedule: str = "constant"
    warmup_steps: int = 0
    final_lr_ratio: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1e-8
    weight_decay: float = 0.0
    clip_norm: float = 1.0
    ema_decay: float = 0.999
    ema_warmup: bool = True
    t_min: float = 1e-5
    loss: str | None = None
    log_snr_fraction: float = 0.0
    workers: int | None = None

    def __post_init__(self) -> None:
        positive_int(self.steps, "steps")
        positive_int(self.batch_size, "batch_size")
        real_scalar(self.lr, "lr", lo=0.0, lo_open=True)
        if not isinstance(self.lr_schedule, str) or self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        positive_int(self.warmup_steps, "warmup_steps", minimum=0)
        real_scalar(self.final_lr_ratio, "final_lr_ratio", lo=0.0, hi=1.0)
        real_scalar(self.t_min, "t_min", lo=0.0, hi=1.0, hi_open=True)
        real_scalar(self.log_snr_fraction, "log_snr_fraction", lo=0.0, hi=1.0)
        if self.workers is not None:
            positive_int(self.workers, "workers")
        if self.loss is not None and (not isinstance(self.loss, str) or self.loss not in PARAMETERIZATIONS):
            raise ValueError(f"loss must be one of {PARAMETERIZATIONS} or None, got {self.loss!r}")
        if isinstance(self.betas, (str, bytes)) or not hasattr(self.betas, "__len__") or len(self.betas) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2), got {self.betas!r}")
        betas = tuple(real_scalar(b, name, lo=0.0, hi=1.0, hi_open=True) for b, name in zip(self.betas, ("beta1", "beta2")))
        object.__setattr__(self, "betas", betas)
        # the optimizer checks the rest when it is built

    def to_dict(self) -> dict[str, Any]:
        r"""A JSON-serializable dict; :meth:`from_dict` inverts it."""
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        r"""Rebuild a config; unknown keys raise ``ValueError`` naming them."""
        unknown = sorted(set(d) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"unknown training config keys {unknown}")
        return cls(**{**d, "betas": tuple(d.get("betas", (0.9, 0.999)))})


def _check_kind(kind: object, name: str) -> str:
    if not isinstance(kind, str) or kind not in PARAMETERIZATIONS:  # an array would make `in` elementwise
        raise ValueError(f"{name} must be one of {PARAMETERIZATIONS}, got {kind!r}")
    return kind


def loss_weight(log_snr: object, parameterization: str, loss: str) -> np.ndarray:
    r"""Per-example weight :math:`w = f_{\text{loss}}/f_{\text{parameterization}}` (module docstring).

    ``log_snr`` (B,) is :math:`\log(\bar\alpha/\sigma^2)`, +-inf allowed (t where sigma or alpha_bar
    is 0); returns (B,) float64, 0 or +inf where the ratio is (never NaN).
    """
    parameterization, loss = _check_kind(parameterization, "parameterization"), _check_kind(loss, "loss")
    return _loss_weight(as_float_array(log_snr, "log_snr", allow_inf=True), parameterization, loss)


# log(f_loss / f_parameterization) as a function of lambda = log SNR, each written so that lambda = +-inf
# gives +-inf or 0, never inf - inf: f_eps = SNR, f_x0 = 1, f_v = 1 + SNR, so f_v / f_eps = 1 + 1/SNR.
_LOG_RATIO = {
    ("eps", "x0"): lambda lam: lam, ("x0", "eps"): lambda lam: -lam,
    ("v", "x0"): lambda lam: np.logaddexp(0.0, lam), ("x0", "v"): lambda lam: -np.logaddexp(0.0, lam),
    ("v", "eps"): lambda lam: np.logaddexp(0.0, -lam), ("eps", "v"): lambda lam: -np.logaddexp(0.0, -lam),
}


def _loss_weight(log_snr: np.ndarray, parameterization: str, loss: str) -> np.ndarray:
    if loss == parameterization:
        return np.ones(np.shape(log_snr))
    return np.exp(_LOG_RATIO[(loss, parameterization)](log_snr))


def denoising_targets(x0: np.ndarray, t: np.ndarray, eps: np.ndarray, schedule: Schedule, parameterization: str,
                      loss: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Network input, regression target and weight of one batch.

    Returns x_t (B, D) from :func:`npdiff.forward.q_sample`, the target (B, D) (eps, x0 or
    :math:`v = \sqrt{\bar\alpha}\epsilon - \sigma x_0`) and the weight (B,) of :func:`loss_weight`.
    """
    parameterization, loss = _check_kind(parameterization, "parameterization"), _check_kind(loss, "loss")
    xt = q_sample(x0, t, eps, schedule)  # checks x0, t, eps and schedule
    x0, eps = as_batch(x0, "x0"), as_batch(eps, "eps")
    t = as_times(t, x0.shape[0])  # a float t is one time for the whole batch
    _, target, weight = _targets(x0, eps, schedule.log_alpha_bar(t), parameterization, loss)
    return xt, target, weight


def _targets(x0: np.ndarray, eps: np.ndarray, log_ab: np.ndarray, parameterization: str,
             loss: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # the hot-path twin of denoising_targets for checked inputs: q_sample's formula (Ho et al. 2020, Eq. 4)
    # without its input validation, which costs as much as a small batch's whole forward pass
    a = np.exp(0.5 * log_ab)[:, None]  # (B, 1)
    sigma = np.sqrt(-np.expm1(log_ab))[:, None]  # (B, 1)
    xt = a * x0 + sigma * eps  # (B, D)
    if parameterization == "eps":
        target = eps
    elif parameterization == "x0":
        target = x0
    else:
        target = a * eps - sigma * x0  # v (Salimans & Ho 2022, Sec. 4)
    if loss == parameterization:
        weight = np.ones(log_ab.shape[0])
    else:
        weight = _loss_weight(log_ab - np.log(-np.expm1(log_ab)), parameterization, loss)
    return xt, target, weight


# points of the table that inverts lambda(t): log t is smooth in lambda (~ -lambda - log beta_min at high SNR,
# ~0 near t = 1), so linear interpolation at this spacing (~0.006 in lambda) errs by ~1e-5 relative in t
_LOG_SNR_GRID = 4097


class _LogSNRInverse:
    # t(lambda) of a schedule on [t_min, t_max], tabulated once by bisection (lambda decreases in t)
    def __init__(self, schedule: Schedule, t_min: float, t_max: float) -> None:
        lam_hi, lam_lo = float(schedule.log_snr(t_min)), float(schedule.log_snr(t_max))
        if not (math.isfinite(lam_hi) and math.isfinite(lam_lo)) or not lam_lo < lam_hi:
            raise ValueError(f"log-SNR sampling of t needs a finite log-SNR range: lambda(t_min={t_min}) = {lam_hi}, "
                             f"lambda(t_max={t_max}) = {lam_lo} for {schedule!r}; raise t_min above 0")
        self.lam_lo, self.lam_hi, self.t_min, self.t_max = lam_lo, lam_hi, t_min, t_max
        lam = np.linspace(lam_lo, lam_hi, _LOG_SNR_GRID)  # (G,) increasing, so t decreasing
        lo, hi = np.full(lam.shape, t_min), np.full(lam.shape, t_max)  # (G,) brackets of t(lambda)
        for _ in range(80):  # each halves the bracket: 2^-80 of [t_min, t_max] is below float64's resolution
            mid = 0.5 * (lo + hi)
            early = schedule.log_snr(mid) > lam  # lambda(mid) too high: t(lambda) lies later
            lo, hi = np.where(early, mid, lo), np.where(early, hi, mid)
        t = 0.5 * (lo + hi)
        t[0], t[-1] = t_max, t_min  # the ends exactly
        # log t when t > 0 (smooth in lambda); t itself if t_min = 0 with a finite lambda(0) (log_snr_linear)
        self.log = t_min > 0.0
        self.lam, self.y = lam, (np.log(t) if self.log else t)  # (G,), (G,)

    def __call__(self, u: np.ndarray) -> np.ndarray:
        lam = self.lam_lo + u * (self.lam_hi - self.lam_lo)  # (B,) uniform log-SNR
        y = np.interp(lam, self.lam, self.y)  # (B,)
        return np.clip(np.exp(y) if self.log else y, self.t_min, self.t_max)


def _draw_times(rng: np.random.Generator, n: int, t_min: float, t_max: float, fraction: float,
                inverse: _LogSNRInverse | None) -> np.ndarray:
    if fraction == 0.0:  # the plain draw, kept as it was so default runs stay bit-identical
        return rng.uniform(t_min, t_max, n)
    u = rng.uniform(0.0, 1.0, n)  # (n,)
    k = round(fraction * n)  # the first k by log-SNR, the rest uniform in t
    return np.concatenate([inverse(u[:k]), t_min + u[k:] * (t_max - t_min)])  # (n,)


def log_snr_times(n: int, rng: np.random.Generator, schedule: Schedule, *, t_min: float = 1e-5,
                  log_snr_fraction: float = 1.0) -> np.ndarray:
    r"""Training times as the trainer draws them (module docstring): (n,) float64 in [t_min, t_max].

    The first ``round(log_snr_fraction * n)`` have uniform log-SNR,
    :math:`\lambda(t) \sim \mathcal U(\lambda(t_{\max}), \lambda(t_{\min}))`, i.e. density
    :math:`p(t) = \beta(t) / (\sigma^2(t)\,(\lambda(t_{\min}) - \lambda(t_{\max})))` (Song et al.
    2021, "Maximum likelihood training of score-based diffusion models", Sec. 4; Kingma et al.
    2021, Sec. 5.1); the rest are uniform on [t_min, t_max]. lambda(t) is inverted with a table
    of 4,097 points (relative error in t ~1e-5). ``t_min`` must be > 0 when ``log_snr_fraction``
    > 0, since lambda(0) is infinite.
    """
    n = positive_int(n, "n")
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy Generator, got {type(rng).__name__}")
    if not isinstance(schedule, Schedule):
        raise TypeError(f"schedule must be a Schedule, got {type(schedule).__name__}")
    t_max = float(schedule.t_max)
    t_min = real_scalar(t_min, "t_min", lo=0.0, hi=t_max, hi_open=True)
    fraction = real_scalar(log_snr_fraction, "log_snr_fraction", lo=0.0, hi=1.0)
    inverse = _LogSNRInverse(schedule, t_min, t_max) if fraction > 0.0 else None
    return _draw_times(rng, n, t_min, t_max, fraction, inverse)


def _sampler(data: object, dim: int) -> Callable[[int, np.random.Generator], np.ndarray]:
    if hasattr(data, "sample") and callable(data.sample):
        return data.sample
    if callable(data):
        return data
    arr = as_batch(data, "data", dim=dim)

    def minibatch(n: int, rng: np.random.Generator) -> np.ndarray:
        return arr[rng.integers(0, arr.shape[0], n)]

    return minibatch


class Trainer:
    r"""State of a training run: float32 weights, gradient, AdamW + EMA state, step, history.

    Parameters
    ----------
    model : the :class:`~npdiff.nn.model.DiffusionMLP` to start from (its weights are copied
        as float32; its config and schedule are kept).
    data : a sampler ``sample(n, rng)``, an object with ``.sample(n, rng)``, or an (N, D) array.
    config : the :class:`TrainConfig`.
    rng : the Generator that draws data, times and noise (it is advanced in place).

    ``history`` holds one value per step done so far: ``"loss"``, ``"grad_norm"`` (before
    clipping) and ``"lr"``.
    """

    def __init__(self, model: DiffusionMLP, data: object, config: TrainConfig, rng: np.random.Generator) -> None:
        if not isinstance(model, DiffusionMLP):
            raise TypeError(f"model must be a DiffusionMLP, got {type(model).__name__}")
        if not isinstance(config, TrainConfig):
            raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng must be a numpy Generator, got {type(rng).__name__}")
        self.model_config: MLPConfig = model.config
        self.schedule: Schedule = model.schedule
        self.config = config
        self.rng = rng
        self.loss_kind = config.loss or model.config.parameterization
        self.sample = _sampler(data, model.config.dim)
        self.mlp = MLP(model.config)
        self.params = model.params.astype(np.float32)  # (n_params,) the weights being trained
        self.grad = np.zeros_like(self.params)
        self.optimizer = AdamW(self.params, betas=config.betas, eps=config.adam_eps, weight_decay=config.weight_decay,
                               clip_norm=config.clip_norm, ema_decay=config.ema_decay, ema_warmup=config.ema_warmup)
        self.step = 0
        self._history = {k: np.full(min(config.steps, 1024), np.nan) for k in ("loss", "grad_norm", "lr")}
        self._layers = self.mlp.layers(self.params)
        self._grads = self.mlp.layers(self.grad)
        self._work = self.mlp.work(config.batch_size, np.float32)
        workers = min(config.workers or threads(), config.batch_size)
        self._parallel = ParallelGrad(self.mlp, config.batch_size, workers) if workers > 1 else None
        self._t_max = float(self.schedule.t_max)
        if model.config.time_input == "log_t" and config.t_min <= 0.0:
            raise ValueError(f"t_min must be > 0 for a model whose time embedding reads log t, got {config.t_min}")
        if not config.t_min < self._t_max:
            raise ValueError(f"t_min must be below the schedule's t_max = {self._t_max}, got {config.t_min}")
        self._inverse = _LogSNRInverse(self.schedule, config.t_min, self._t_max) if config.log_snr_fraction > 0 else None
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
        B, D = cfg.batch_size, self.model_config.dim
        x0 = self.sample(B, rng)  # (B, D)
        if not self._checked:  # check the data once; later batches come from the same source
            x0 = as_batch(x0, "sampled data", dim=D)
            if x0.shape[0] != B:
                raise ValueError(f"the data sampler returned {x0.shape[0]} points, asked for {B}")
            self._checked = True
        t = _draw_times(rng, B, cfg.t_min, self._t_max, cfg.log_snr_fraction, self._inverse)  # (B,)
        eps = rng.standard_normal((B, D))  # (B, D)
        xt, target, weight = _targets(np.asarray(x0, dtype=np.float64), eps, self.schedule.log_alpha_bar(t),
                                      self.model_config.parameterization, self.loss_kind)
        keep = self.mlp.dropout_masks(rng, B)  # None without dropout: rng is then not advanced
        if self._parallel is None:
            self.mlp._forward(self._layers, xt, t, self._work, keep=keep)
            loss = self.mlp._loss_and_grad(self._layers, self._grads, self._work, target, weight)
        else:  # the batch in row shares on worker threads (npdiff.nn.parallel)
            loss = self._parallel(self._layers, self.grad, xt, t, target, weight, keep)
        if not math.isfinite(loss):  # before the update, so the weights stay those of the last good step
            raise FloatingPointError(f"training loss became {loss} at step {self.step + 1} (the weights are kept as "
                                     f"after step {self.step}); lower lr or check the data")
        # the unchecked cores: TrainConfig validated these once, and checks would cost ~15 us per step
        lr = _learning_rate(self.step + 1, cfg.lr, cfg.lr_schedule, cfg.steps, cfg.warmup_steps, cfg.final_lr_ratio)
        grad_norm = self.optimizer._update(self.params, self.grad, lr)
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

    def run(self, until: int | None = None, *, progress: bool | None = None, checkpoint_path: str | os.PathLike | None = None,
            checkpoint_every: int | None = None) -> dict[str, np.ndarray]:
        r"""Train up to step ``until`` (default: ``config.steps``) and return :attr:`history`.

        ``progress``: a tqdm bar on stderr; None turns it on for runs of 2,000 steps or more.
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
                loss = self.train_step()
                if checkpoint_path is not None and checkpoint_every and self.step % checkpoint_every == 0:
                    self.save(checkpoint_path)
                if bar is not None and (self.step % 50 == 0 or self.step == until):
                    bar.update(self.step - shown)  # every 50 steps: a bar update costs more than a small step
                    shown = self.step
                    bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
        finally:
            if bar is not None:
                bar.close()
        self.check_finite()
        if checkpoint_path is not None:
            self.save(checkpoint_path)
        return self.history

    def denoiser(self, ema: bool = True, dtype: type = np.float64) -> DiffusionMLP:
        r"""The model with the EMA weights (default) or the raw trained weights."""
        return DiffusionMLP(self.model_config, self.schedule, self.optimizer.ema if ema else self.params, dtype=dtype)

    # -- checkpoints -------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> None:
        r"""Write the whole state (weights, AdamW + EMA, step, generator, history, configs) atomically.

        Refuses (``FloatingPointError`` naming the step) to write weights that are not finite.
        """
        from . import checkpoint

        self.check_finite()
        checkpoint.save(path, self.denoiser(ema=False, dtype=np.float32), optimizer=self.optimizer, step=self.step,
                        rng=self.rng, history=self.history, train_config=self.config.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike, data: object) -> Trainer:
        r"""Resume from a checkpoint written by :meth:`save`; ``data`` as for the constructor.

        The resumed run continues exactly as the uninterrupted one would (same generator state,
        same optimizer state, same step counter).
        """
        from . import checkpoint

        ck = checkpoint.load(path)
        if ck.train_config is None or ck.optimizer is None or ck.rng is None:
            raise ValueError(f"{os.fspath(path)} holds a model but no training state (optimizer, generator, config)")
        try:
            config = TrainConfig.from_dict(ck.train_config)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{os.fspath(path)} holds an invalid training config: {exc}") from exc
        trainer = cls(ck.model, data, config, ck.rng)
        try:
            trainer.optimizer.load_state(ck.optimizer, ck.step)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{os.fspath(path)} holds an optimizer state that does not fit its model: {exc}") from exc
        trainer.step = ck.step
        trainer._grow(ck.step)
        for k, v in ck.history.items():
            if k in trainer._history:
                trainer._history[k][: v.shape[0]] = v
        return trainer


def train(model: DiffusionMLP | MLPConfig, data: object, *, rng: np.random.Generator | int,
          schedule: Schedule | None = None, progress: bool | None = None,
          checkpoint_path: str | os.PathLike | None = None, checkpoint_every: int | None = None,
          resume: str | os.PathLike | None = None, use_ema: bool = True,
          **config: Any) -> tuple[DiffusionMLP, dict[str, np.ndarray]]:
    r"""Train a denoiser and return it with its per-step history.

    Parameters
    ----------
    model : a :class:`~npdiff.nn.model.DiffusionMLP` to continue from, or an
        :class:`~npdiff.nn.mlp.MLPConfig` (fresh weights drawn from ``rng``, ``schedule``
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
    (model, history): a float64 :class:`~npdiff.nn.model.DiffusionMLP` and ``{"loss",
    "grad_norm", "lr"}`` arrays with one entry per step.

    Examples
    --------
    >>> from npdiff.nn import MLPConfig
    >>> model, hist = train(MLPConfig(), sampler, rng=0, steps=10_000, batch_size=256)
    """
    if resume is not None:
        trainer = Trainer.load(resume, data)
    else:
        if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
            rng = np.random.default_rng(int(rng))
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng must be a numpy Generator or an int seed, got {type(rng).__name__}")
        if isinstance(model, MLPConfig):
            model = DiffusionMLP(model, schedule if schedule is not None else vp_linear(), rng=rng)
        elif not isinstance(model, DiffusionMLP):
            raise TypeError(f"model must be an MLPConfig or a DiffusionMLP, got {type(model).__name__}")
        trainer = Trainer(model, data, TrainConfig(**config), rng)
    history = trainer.run(progress=progress, checkpoint_path=checkpoint_path, checkpoint_every=checkpoint_every)
    return trainer.denoiser(ema=use_ema), history
