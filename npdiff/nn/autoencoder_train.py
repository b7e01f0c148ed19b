r"""Training the KL autoencoder (:mod:`npdiff.nn.autoencoder`), its latent scale, and its file.

:func:`train_autoencoder` runs AdamW + EMA (:mod:`npdiff.nn.optim`) on minibatches drawn with
replacement from the training images, one Generator for the batches and the noise
:math:`\epsilon` of the reparameterization, in that order each step; then sets the latent's scale
factor :math:`s = 1/\mathrm{std}(\mu(x))`, the standard deviation of all entries of the encoded
training means (Rombach et al. 2022, App. G, "rescale the latent space to unit standard deviation";
diffusers' ``scaling_factor``).

Its file: :func:`npdiff.checkpoint.save_autoencoder` and :func:`npdiff.checkpoint.load_autoencoder`.
"""

from __future__ import annotations

import sys

import numpy as np

from .._check import as_generator, positive_int, real_scalar
from .autoencoder import Autoencoder, AutoencoderConfig
from .optim import AdamW

__all__ = ["latent_scale_factor", "train_autoencoder"]


def latent_scale_factor(autoencoder: Autoencoder, x: object) -> float:
    r""":math:`s = 1/\mathrm{std}(\mu(x))` over every entry of the encoded means of images x (B, D) (module docstring)."""
    if not isinstance(autoencoder, Autoencoder):
        raise TypeError(f"autoencoder must be an Autoencoder, got {type(autoencoder).__name__}")
    mu, _ = autoencoder.encode(x)  # (B, d)
    std = float(mu.std())
    if not np.isfinite(std) or std <= 1e-6:
        raise ValueError(f"x must encode to latents that vary (std of the means {std:.3g}); give more than one image")
    return 1.0 / std


def train_autoencoder(autoencoder: Autoencoder | AutoencoderConfig, data: object, *, rng: np.random.Generator | int,
                      steps: int = 2000, batch_size: int = 128, lr: float = 1e-3, weight_decay: float = 0.0,
                      clip_norm: float = 1.0, ema_decay: float = 0.999, progress: bool | None = None
                      ) -> tuple[Autoencoder, dict[str, np.ndarray]]:
    r"""Train the autoencoder on images and return it (EMA weights, scale factor set) with its history.

    Parameters
    ----------
    autoencoder : an :class:`~npdiff.nn.autoencoder.Autoencoder` to continue from, or a config (fresh
        weights drawn from ``rng``).
    data : (N, D) training images on the K levels.
    rng : the Generator (or int seed) for the weights, the minibatches and the noise.
    steps, batch_size, lr, weight_decay, clip_norm, ema_decay : the run and its AdamW (:class:`~npdiff.nn.optim.AdamW`);
        the learning rate decays to 0 on a cosine.
    progress : a bar on stderr with the mean loss (None: on for runs of 2,000 steps or more).

    Returns
    -------
    autoencoder : the EMA weights, ``config.scale_factor`` = :func:`latent_scale_factor` of ``data``.
    history : ``{"loss", "reconstruction", "kl", "grad_norm"}`` per step; loss terms in nats per image.
    """
    rng = as_generator(rng)
    if isinstance(autoencoder, AutoencoderConfig):
        autoencoder = Autoencoder(autoencoder, rng=rng)
    elif not isinstance(autoencoder, Autoencoder):
        raise TypeError(f"autoencoder must be an Autoencoder or an AutoencoderConfig, got {type(autoencoder).__name__}")
    X, _ = autoencoder.levels(data, "data")  # (N, D) checked once
    steps, batch_size = positive_int(steps, "steps"), positive_int(batch_size, "batch_size")
    lr = real_scalar(lr, "lr", lo=0.0, lo_open=True)
    ae = Autoencoder(autoencoder.config, autoencoder.params)  # a copy whose weights the optimizer moves
    grad = np.zeros_like(ae.params)
    optimizer = AdamW(ae.params, weight_decay=weight_decay, clip_norm=clip_norm, ema_decay=ema_decay)
    history = {k: np.zeros(steps) for k in ("loss", "reconstruction", "kl", "grad_norm")}
    bar = None
    if (steps >= 2000) if progress is None else bool(progress):
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, file=sys.stderr, desc="autoencoder", dynamic_ncols=True, leave=False)
    try:
        for s in range(steps):
            x = X[rng.integers(0, X.shape[0], batch_size)]  # (B, D)
            eps = rng.standard_normal((batch_size, ae.config.latent_dim))  # (B, d)
            with np.errstate(over="ignore", invalid="ignore"):  # a diverging run is stopped below, by name
                figures, grad[...] = ae.loss_and_grad(x, eps)
            step_lr = lr * 0.5 * (1.0 + np.cos(np.pi * (s + 1) / steps))  # cosine to 0
            history["grad_norm"][s] = optimizer.update(ae.params, grad, step_lr)
            for k, value in figures.items():
                history[k][s] = value
            if not np.isfinite(figures["loss"]):
                raise FloatingPointError(f"the autoencoder's loss is not finite at step {s + 1}: lr = {lr:g} or "
                                         f"weight_decay = {weight_decay:g} too large?")
            if bar is not None and ((s + 1) % 50 == 0 or s + 1 == steps):
                bar.set_postfix_str(f"loss {history['loss'][max(0, s - 49):s + 1].mean():.3f}", refresh=False)
                bar.update(50 if (s + 1) % 50 == 0 else (s + 1) % 50)
    finally:
        if bar is not None:
            bar.close()
    trained = Autoencoder(ae.config, optimizer.ema)
    return trained.with_scale_factor(latent_scale_factor(trained, X)), history
