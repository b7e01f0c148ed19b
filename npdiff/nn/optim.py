r"""AdamW with bias correction, global-norm gradient clipping and an EMA of the weights, fused.

One update, over the flat parameter vector :math:`\theta` and its gradient :math:`g`
(:meth:`AdamW.reference_update` writes it line by line in NumPy; :meth:`AdamW.update`, which the
trainer runs, fuses it into :func:`npdiff.nn.fast.kernels.adamw_ema`, a single pass after one pass
for the norm, tested equal to the reference):

.. math::
    g &\leftarrow g\cdot\min\Big(1, \frac{c}{\lVert g\rVert_2 + 10^{-6}}\Big)
        &&\text{(global-norm clipping, Pascanu et al. 2013, Alg. 2; as torch's clip\_grad\_norm\_)}\\
    m &\leftarrow \beta_1 m + (1-\beta_1) g,\quad v \leftarrow \beta_2 v + (1-\beta_2) g^2
        &&\text{(Kingma \& Ba 2015, Alg. 1)}\\
    \theta &\leftarrow \theta(1 - \eta\omega) - \frac{\eta}{1-\beta_1^s}\,
        \frac{m}{\sqrt{v}/\sqrt{1-\beta_2^s} + \epsilon}
        &&\text{(decoupled weight decay, Loshchilov \& Hutter 2019, Alg. 2)}\\
    \bar\theta &\leftarrow \delta_s\bar\theta + (1-\delta_s)\theta
        &&\text{(EMA, Polyak \& Juditsky 1992; Ho et al. 2020, App. B)}

with s the step number (from 1). The EMA decay is :math:`\delta_s = \min(\delta, (1+s)/(10+s))`
when ``ema_warmup`` is on (TensorFlow's ``ExponentialMovingAverage(num_updates=s)``), so a
short run's average is not dominated by the random initial weights; off, :math:`\delta_s = \delta`.
The order of operations and the 1e-6 in the clip follow PyTorch's ``AdamW`` and
``clip_grad_norm_``, so both libraries take the same step from the same state.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._check import as_like, positive_int, real_scalar
from ._validate import check_adamw_hyperparameters, check_optimizer_state
from .fast import kernels as K

__all__ = ["AdamW"]


class AdamW:
    r"""AdamW + clipping + EMA over one flat float32 parameter vector (see the module docstring).

    Parameters
    ----------
    params : (n,) the weights the updates will be applied to (the EMA starts as a copy).
    betas : (float, float)
        Adam's :math:`\beta_1, \beta_2`.
    eps : float
        Adam's :math:`\epsilon`.
    weight_decay : float
        The decoupled weight decay :math:`\omega` (the weights shrink by :math:`\eta\omega` per step,
        :math:`\eta` the learning rate).
    clip_norm : float
        c, the global-norm threshold; 0 disables clipping.
    ema_decay : float
        :math:`\delta` in [0, 1).
    ema_warmup : bool
        Use :math:`\min(\delta, (1+s)/(10+s))`.

    Attributes
    ----------
    m : (n,) array
        Adam's first moment, of the dtype of ``params``.
    v : (n,) array
        Its second moment.
    ema : (n,) array
        The EMA of the weights.
    step : int
        Updates done so far.
    """

    def __init__(self, params: np.ndarray, *, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, clip_norm: float = 1.0, ema_decay: float = 0.999,
                 ema_warmup: bool = True) -> None:
        self.beta1, self.beta2, self.eps, self.weight_decay, self.clip_norm, self.ema_decay = check_adamw_hyperparameters(
            params, betas, eps, weight_decay, clip_norm, ema_decay)
        self.ema_warmup = bool(ema_warmup)
        self.m = np.zeros_like(params)
        self.v = np.zeros_like(params)
        self.ema = params.copy()
        self.step = 0

    def current_ema_decay(self, step: int) -> float:
        r""":math:`\delta_s` of the module docstring for update number ``step``."""
        return min(self.ema_decay, (1.0 + step) / (10.0 + step)) if self.ema_warmup else self.ema_decay

    def update(self, params: np.ndarray, grad: np.ndarray, lr: float) -> float:
        r"""Apply one clipped AdamW step to ``params`` in place and update the EMA.

        ``grad`` is read only (clipping scales it on the fly). Returns the gradient's global
        L2 norm before clipping.
        """
        params, grad = as_like(params, self.m, "params"), as_like(grad, self.m, "grad")
        self.step += 1
        hyper = K.adamw_hyper(params.dtype, real_scalar(lr, "lr", lo=0.0), self.beta1, self.beta2, self.eps,
                              self.weight_decay, self.step, self.current_ema_decay(self.step))
        return K.adamw_ema(params, grad, self.m, self.v, self.ema, hyper, self.clip_norm)

    def reference_update(self, params: np.ndarray, grad: np.ndarray, lr: float) -> float:
        r""":meth:`update` in plain NumPy, one line per formula of the module docstring (the fused kernel's reference).

        Parameters
        ----------
        params : (n,) array
            The weights, updated in place.
        grad : (n,) array
            Their gradient (read only).
        lr : float
            The learning rate :math:`\eta`.

        Returns
        -------
        float
            The gradient's global L2 norm before clipping.
        """
        params, grad = as_like(params, self.m, "params"), as_like(grad, self.m, "grad")
        lr = real_scalar(lr, "lr", lo=0.0)
        self.step += 1
        s, dtype = self.step, params.dtype.type
        norm = float(np.sqrt(np.sum(np.square(grad, dtype=np.float64))))
        g = grad * dtype(min(1.0, self.clip_norm / (norm + 1e-6)) if self.clip_norm > 0 else 1.0)  # clipping
        self.m[...] = self.beta1 * self.m + (1.0 - self.beta1) * g  # Kingma & Ba 2015, Alg. 1
        self.v[...] = self.beta2 * self.v + (1.0 - self.beta2) * g * g
        m_hat = self.m / (1.0 - self.beta1**s)  # bias corrections
        v_hat = self.v / (1.0 - self.beta2**s)
        params[...] = params * (1.0 - lr * self.weight_decay) - lr * m_hat / (np.sqrt(v_hat) + self.eps)  # Alg. 2
        decay = self.current_ema_decay(s)
        self.ema[...] = decay * self.ema + (1.0 - decay) * params  # the EMA of the weights
        return norm

    # -- checkpoints -----------------------------------------------------------------------
    def hyperparameters(self) -> dict[str, Any]:
        r"""The constructor's arguments, JSON-serializable."""
        return {"betas": [self.beta1, self.beta2], "eps": self.eps, "weight_decay": self.weight_decay,
                "clip_norm": self.clip_norm, "ema_decay": self.ema_decay, "ema_warmup": self.ema_warmup}

    def state_arrays(self) -> dict[str, np.ndarray]:
        r"""The state to checkpoint: ``m``, ``v``, ``ema`` (the step counter is saved separately)."""
        return {"adam_m": self.m, "adam_v": self.v, "ema": self.ema}

    def load_state(self, arrays: dict[str, np.ndarray], step: int) -> None:
        r"""Restore :meth:`state_arrays` and the step counter (shapes and dtypes must match)."""
        mine = self.state_arrays()
        for name, arr in check_optimizer_state(arrays, mine).items():
            mine[name][...] = arr
        self.step = positive_int(step, "step", minimum=0)
