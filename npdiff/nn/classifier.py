r"""A classifier of noisy inputs, :math:`p_\phi(y \mid x_t, t)`, differentiated by hand: what classifier guidance needs.

The network is the MLP of :mod:`npdiff.nn.mlp` (the same embedding, first layer, residual blocks
and layer functions, each with its backward) with C outputs, the logits f:

.. math::
    f = \mathrm{MLP}(x, t) \in \mathbb R^C,\qquad
    \log p_\phi(y \mid x, t) = f_y - \log\textstyle\sum_c e^{f_c}

**Training** minimizes the softmax cross-entropy on noised inputs
:math:`x_t = \sqrt{\bar\alpha(t)}\,x_0 + \sigma(t)\,\epsilon`, t uniform (Dhariwal & Nichol 2021,
Sec. 4 and App. B, who train their classifier on the diffusion's noisy images):

.. math:: L = -\frac1B\sum_b \log p_\phi(y_b \mid x_{t,b}, t_b),\qquad
          \frac{\partial L}{\partial f_b} = \frac{\mathrm{softmax}(f_b) - e_{y_b}}{B}

and the backward pass of :mod:`npdiff.nn.mlp` carries that to every weight.

**Guidance** needs the input gradient. With :math:`\bar f = e_y - \mathrm{softmax}(f)`, the
gradient of :math:`\log p_\phi(y \mid x, t)` with respect to the logits, the same backward pass
continues past the first layer to the network input e (:math:`\bar e = \bar z_0 W_0^\top`) and
through the embedding to x:

.. math:: \frac{\partial\log p_\phi}{\partial x_d} = \bar e_{x_d}
          + \sum_k \bar e_{\sin,k}\,c f_k\cos(c f_k x_d) - \bar e_{\cos,k}\,c f_k\sin(c f_k x_d)

(the raw column of :math:`x_d`, then its sinusoidal block, :mod:`npdiff.nn.embedding`). Everything
is plain NumPy in float64: the classifier is small and is called once per sampler step.
The exact Laplacian of :math:`\log p_\phi` (second derivatives of the network) is not
implemented, so classifier guidance with this classifier samples but has no exact divergence.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._check import as_generator, as_labels, positive_int, real_scalar
from ..forward import q_sample_unchecked
from ..schedule import Schedule, schedule_from_config
from .config import Layers, MLPConfig, init_layers, layer_views
from .embedding import embed, embed_tangent
from .mlp import dense, dense_backward, hidden, hidden_backward, residual_block, residual_block_backward
from .optim import AdamW

__all__ = ["NoisyClassifier", "train_classifier"]


def _log_softmax(f: np.ndarray) -> np.ndarray:
    m = f.max(axis=1, keepdims=True)
    return f - m - np.log(np.sum(np.exp(f - m), axis=1, keepdims=True))  # (B, C)


class NoisyClassifier:
    r"""The classifier :math:`p_\phi(y \mid x_t, t)` of the module docstring.

    Parameters
    ----------
    body : the architecture of the network's body and inputs (an :class:`~npdiff.nn.config.MLPConfig`
        without labels; its ``parameterization`` is unused), whose output layer here has C units.
    num_classes : C. schedule : the diffusion's schedule (guidance checks it against the denoiser's).
    params : (n_params,) weights; None draws PyTorch-style initial weights from ``rng``.
    """

    def __init__(self, body: MLPConfig, num_classes: int, schedule: Schedule, params: np.ndarray | None = None, *,
                 rng: np.random.Generator | None = None) -> None:
        if not isinstance(body, MLPConfig) or body.num_classes:
            raise TypeError(f"body must be an MLPConfig without labels, got {body!r}")
        if not isinstance(schedule, Schedule):
            raise TypeError(f"schedule must be a continuous npdiff Schedule, got {type(schedule).__name__}")
        self.body, self.schedule = body, schedule
        self.num_classes = positive_int(num_classes, "num_classes", minimum=2)
        self.layer_shapes = [*body.layer_shapes[:-1], (body.width, self.num_classes)]
        self.n_params = sum(i * o + o for i, o in self.layer_shapes)
        if params is None:
            params = np.empty(self.n_params)
            init_layers(layer_views(params, self.layer_shapes), as_generator(rng))
        self.params = self.check_params(params).astype(np.float64, copy=True)

    @property
    def dim(self) -> int:
        r"""Data dimension D."""
        return self.body.dim

    def check_params(self, params: object) -> np.ndarray:
        r"""A finite float vector of length ``n_params``; else a clear error."""
        if not isinstance(params, np.ndarray) or params.dtype not in (np.float32, np.float64):
            raise TypeError(f"params must be a float32 or float64 numpy array, got {type(params).__name__}")
        if params.shape != (self.n_params,) or not np.all(np.isfinite(params)):
            raise ValueError(f"params must be a finite vector of shape ({self.n_params},), got shape {params.shape}")
        return params

    def layers(self, params: np.ndarray) -> Layers:
        r"""Views ``(W, b)`` of each layer into ``params``, the last one (H, C)."""
        return layer_views(params, self.layer_shapes)

    # -- the network and its backward pass, by npdiff.nn.mlp's layer functions -------------------------
    def _forward(self, layers: Layers, x: np.ndarray, t: np.ndarray):
        cfg = self.body
        act = _activation(cfg.activation)
        e = embed(x, t, emb_dim=cfg.emb_dim, time_scale=cfg.time_scale, coord_scale=cfg.coord_scale, raw=cfg.raw,
                  coord=cfg.sinusoidal)  # (B, E)
        h, z = hidden(e, *layers[0], act)
        hs, zs = [h], [z]
        for W, b in layers[1:-1]:
            h, z = residual_block(h, W, b, act)
            hs.append(h)
            zs.append(z)
        return dense(h, *layers[-1]), (e, hs, zs)  # logits (B, C)

    def _backward(self, layers: Layers, cache: tuple, df: np.ndarray) -> tuple[list, np.ndarray]:
        r"""Gradients (dW, db) of every layer and dL/de (B, E), given dL/df (B, C)."""
        act = _activation(self.body.activation)
        e, hs, zs = cache
        grads = [None] * len(layers)
        dW, db, dh = dense_backward(df, hs[-1], layers[-1][0])
        grads[-1] = (dW, db)
        for k in range(len(layers) - 2, 0, -1):
            dW, db, dh = residual_block_backward(dh, hs[k - 1], zs[k], layers[k][0], act)
            grads[k] = (dW, db)
        dW, db, de = hidden_backward(dh, e, zs[0], layers[0][0], act)
        grads[0] = (dW, db)
        return grads, de

    def _input_gradient(self, x: np.ndarray, de: np.ndarray) -> np.ndarray:
        r"""dL/dx (B, D) from dL/de: the raw columns, plus each sinusoidal block times its derivative."""
        cfg = self.body
        D = x.shape[1]
        dx = de[:, :D].copy() if cfg.raw else np.zeros_like(x)  # (B, D)
        if cfg.sinusoidal:
            col = D if cfg.raw else 0
            d_emb = embed_tangent(x, emb_dim=cfg.emb_dim, coord_scale=cfg.coord_scale)  # (D, B, emb_dim)
            for d in range(D):
                dx[:, d] += np.sum(de[:, col + d * cfg.emb_dim:col + (d + 1) * cfg.emb_dim] * d_emb[d], axis=1)
        return dx

    def _door(self, x: object, t: object, y: object = None, *, labels: bool = False):
        x, t = self.body.check_inputs(x, t)
        if not labels:
            return x, t, None
        if y is None:
            raise ValueError("y must be the labels (an int or one per point), got None")
        return x, t, as_labels(y, x.shape[0], self.num_classes)

    # -- public ------------------------------------------------------------------------------------
    def class_log_prob(self, x: object, t: object) -> np.ndarray:
        r""":math:`\log p_\phi(y \mid x, t)` for every class, (B, C); x (B, D), t a float or (B,)."""
        x, t, _ = self._door(x, t)
        return _log_softmax(self._forward(self.layers(self.params), x, t)[0])

    def class_log_prob_grad(self, x: object, t: object, y: object) -> np.ndarray:
        r""":math:`\nabla_x\log p_\phi(y \mid x, t)` (B, D) by the backward pass (module docstring)."""
        x, t, y = self._door(x, t, y, labels=True)
        layers = self.layers(self.params)
        f, cache = self._forward(layers, x, t)
        df = -np.exp(_log_softmax(f))  # (B, C): e_y - softmax(f)
        df[np.arange(x.shape[0]), y] += 1.0
        return self._input_gradient(x, self._backward(layers, cache, df)[1])

    def loss_and_grad(self, x: object, t: object, y: object, params: np.ndarray | None = None) -> tuple[float, np.ndarray]:
        r"""Softmax cross-entropy of labels y at noisy inputs x, times t, and its gradient (n_params,).

        ``params`` (default: the classifier's own) lets a caller differentiate other weights of the same layout.
        """
        x, t, y = self._door(x, t, y, labels=True)
        layers = self.layers(self.params if params is None else self.check_params(params).astype(np.float64))
        f, cache = self._forward(layers, x, t)
        log_p = _log_softmax(f)  # (B, C)
        B = x.shape[0]
        df = np.exp(log_p)  # (B, C): (softmax(f) - e_y) / B
        df[np.arange(B), y] -= 1.0
        grads, _ = self._backward(layers, cache, df / B)
        return float(-log_p[np.arange(B), y].mean()), np.concatenate([np.concatenate([W.ravel(), b]) for W, b in grads])

    def config_dict(self) -> dict[str, Any]:
        r"""Architecture, classes and schedule as a JSON-serializable dict."""
        return {"body": self.body.to_dict(), "num_classes": self.num_classes, "schedule": self.schedule.config()}

    @classmethod
    def from_config_dict(cls, d: dict[str, Any], params: np.ndarray) -> NoisyClassifier:
        r"""Inverse of :meth:`config_dict` given the weights."""
        return cls(MLPConfig.from_dict(d["body"]), d["num_classes"], schedule_from_config(d["schedule"]), params)

    def __repr__(self) -> str:
        b = self.body
        return f"NoisyClassifier(D={b.dim}, classes={self.num_classes}, width={b.width}, depth={b.depth}, {self.schedule!r})"


def _activation(name: str):
    from .activations import gelu, silu  # the reference network's elementwise math

    return {"gelu": gelu, "silu": silu}[name]


def train_classifier(classifier: NoisyClassifier, data: object, rng: np.random.Generator, *, steps: int = 4000,
                     batch_size: int = 256, lr: float = 2e-3, t_min: float = 1e-3) -> np.ndarray:
    r"""Train ``classifier`` in place on noised labelled data; returns the per-step losses (steps,).

    ``data`` has ``sample_labelled(n, rng)`` (or is a sampler returning (x, y)); each step draws
    (x_0, y), then t uniform on [t_min, t_max], then eps, noises x_0 (:func:`npdiff.forward.q_sample`)
    and takes one AdamW step (clipped at norm 1) with a cosine learning-rate decay. The weights
    end as their EMA (decay 0.999). A loss that stops being finite raises ``FloatingPointError``.
    """
    if not isinstance(classifier, NoisyClassifier):
        raise TypeError(f"classifier must be a NoisyClassifier, got {type(classifier).__name__}")
    sample = data.sample_labelled if hasattr(data, "sample_labelled") else data
    if not callable(sample):
        raise TypeError(f"data must have sample_labelled(n, rng) or be a sampler returning (x, y), got {type(data).__name__}")
    rng = as_generator(rng)
    steps, batch_size = positive_int(steps, "steps"), positive_int(batch_size, "batch_size")
    lr = real_scalar(lr, "lr", lo=0.0, lo_open=True)
    schedule = classifier.schedule
    t_min = real_scalar(t_min, "t_min", lo=0.0, hi=schedule.t_max, hi_open=True)
    params = classifier.params
    opt = AdamW(params, clip_norm=1.0, ema_decay=0.999)
    losses = np.empty(steps)
    for s in range(steps):
        x0, y = sample(batch_size, rng)
        t = rng.uniform(t_min, schedule.t_max, batch_size)  # (B,)
        eps = rng.standard_normal(x0.shape)
        xt = q_sample_unchecked(np.asarray(x0, dtype=np.float64), t, eps, schedule)  # (B, D)
        with np.errstate(over="ignore", invalid="ignore"):  # a run that diverges is reported below, not warned about
            losses[s], grad = classifier.loss_and_grad(xt, t, y)
        if not (np.isfinite(losses[s]) and np.all(np.isfinite(grad))):  # before the update: the weights stay finite
            raise FloatingPointError(f"the classifier's loss became {losses[s]} at step {s + 1}; lower lr")
        opt.update(params, grad, lr * 0.5 * (1.0 + np.cos(np.pi * (s + 1) / steps)))
    if not np.all(np.isfinite(opt.ema)):
        raise FloatingPointError(f"the classifier's weights became NaN/Inf at step {steps}; lower lr")
    params[...] = opt.ema
    return losses
