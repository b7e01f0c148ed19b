r"""Latent diffusion from the command line: ``npdiff train --latent``, and ``sample`` and ``nll`` on its folder.

``npdiff train --data digits --latent --out DIR`` trains the KL autoencoder
(:func:`npdiff.nn.autoencoder_train.train_autoencoder`, the :class:`~npdiff.nn.autoencoder.AutoencoderConfig`
defaults but for ``--latent-dim`` and ``--beta``) and writes ``DIR/autoencoder.npz``
(:func:`npdiff.checkpoint.save_autoencoder`); then trains the MLP denoiser on the scaled latents
:math:`s z`, z ~ q(z | x) drawn afresh from the training digits each batch (the recipe of
``benchmarks/latent.py``: :data:`LATENT_TRAIN`), and writes ``DIR/model.npz``, an ordinary checkpoint of a
d-dimensional model. The third file, ``DIR/latent.json`` (:data:`LATENT_FILE`), is the marker: it names the
autoencoder beside the model, so ``npdiff sample`` and ``npdiff nll`` given ``DIR`` or ``DIR/model.npz`` build
:class:`~npdiff.latent.LatentDiffusion` from the two files. Without it (model.npz copied alone) the model is
a d-dimensional one, which the digits commands refuse by its dimension.

``sample`` runs any sampler on the latent, then decodes each pixel to its most probable level
(:meth:`~npdiff.latent.LatentDiffusion.decode`): (n, 64) images on the 17 levels. ``nll`` prints LSGM's bound
(:meth:`~npdiff.latent.LatentDiffusion.bound_bits_per_dim`), a bound on the discrete :math:`-\log_2 P(x)/64`.
The flags that make no sense on a latent (the pixel networks' and the pixels' dequantization, the chain's bound,
labels and prompts, thresholding in [-1, 1]) are refused by name.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from ..checkpoint import load_autoencoder, save, save_autoencoder
from ..latent import LatentDiffusion
from ..nn import MLPConfig
from ..nn.autoencoder import AutoencoderConfig
from ..nn.autoencoder_train import train_autoencoder
from ..nn.model import DiffusionMLP
from ..recipes import recipe
from ..train import TrainConfig, Trainer
from ._common import SCHEDULES, UserError, say

__all__ = ["LATENT_FILE", "LATENT_SETS", "LATENT_TRAIN", "PIXEL_ONLY_TRAIN", "check_latent_train", "latent_bound",
           "load_latent", "refuse", "train_latent"]

#: the marker beside ``model.npz``: the autoencoder's file name and what the model is
LATENT_FILE = "latent.json"
_FORMAT = "npdiff-latent-1"
#: the data sets with an autoencoder (8x8 images on 17 levels)
LATENT_SETS = ("digits",)
#: the latent denoiser's training beyond the ``"images"`` recipe, as benchmarks/latent.py measures it
#: (docs/measurements/latent.md): width 128, batch 256, no weight decay, 30,000 steps
LATENT_TRAIN = {"width": 128, "batch_size": 256, "weight_decay": 0.0, "steps": 30_000}
#: ``npdiff train`` flags that shape a pixel model only: refused with ``--latent``
PIXEL_ONLY_TRAIN = {"base_width": "--base-width", "coords": "--coords", "coord_scale": "--coord-scale",
                    "conditional": "--conditional", "p_uncond": "--p-uncond"}


def refuse(given: list[str], what: str) -> None:
    r"""One line naming the flags ``given`` that a latent model cannot take, and why (``what``)."""
    if given:
        raise UserError(f"{', '.join(given)}: {what}")


def check_latent_train(args: argparse.Namespace, data) -> None:
    r"""``--latent``: the digits, the MLP, none of the pixel-only flags; the autoencoder's flags only with it."""
    if not getattr(args, "latent", False):
        given = [f for f, v in (("--latent-dim", args.latent_dim), ("--beta", args.beta), ("--ae-steps", args.ae_steps))
                 if v is not None]
        refuse(given, "the autoencoder's flags apply to --latent only")
        return
    if data.name not in LATENT_SETS:
        raise UserError(f"--latent needs an image data set with an autoencoder ({', '.join(LATENT_SETS)}); "
                        f"got {data.name!r}")
    arch = getattr(args, "arch", None) or "mlp"  # no --arch: the MLP on the latent (the pixels' U-Net default is not its)
    if arch != "mlp":
        raise UserError(f"--latent trains the MLP on the latent; --arch {arch} is not available with it")
    refuse([flag for field, flag in PIXEL_ONLY_TRAIN.items() if getattr(args, field, None) not in (None, False)],
           "shape a pixel model; --latent trains an unconditional MLP on the autoencoder's latent")


def train_latent(data, args: argparse.Namespace, *, out: Path, seed: int) -> dict:
    r"""The autoencoder, then the MLP on its scaled latents; writes ``out``'s three files; the run's figures."""
    rng = np.random.default_rng(seed)
    ae_cfg = AutoencoderConfig(latent_dim=args.latent_dim or AutoencoderConfig.latent_dim,
                               beta=AutoencoderConfig.beta if args.beta is None else args.beta)
    ae_steps = args.ae_steps or 2000
    say(f"training the autoencoder (d = {ae_cfg.latent_dim}, beta {ae_cfg.beta:g}, width {ae_cfg.width} x "
        f"{ae_cfg.depth}) on {data.name} (train split, {data.train.shape[0]} images) for {ae_steps} steps")
    t0 = time.perf_counter()
    try:
        ae, ae_history = train_autoencoder(ae_cfg, data.train, rng=rng, steps=ae_steps, progress=True)
    except FloatingPointError as exc:
        raise UserError(f"--latent: {exc}") from None
    ae_s = time.perf_counter() - t0
    mu, log_var = ae.encode(data.train)  # (N, d)
    s, d = ae.config.scale_factor, ae.config.latent_dim
    say(f"autoencoder: {ae_s:.1f} s, final loss {ae_history['loss'][-max(1, ae_steps // 100):].mean():.3f} nats/image, "
        f"scale factor {s:.4g}")

    def latents(n: int, g: np.random.Generator) -> np.ndarray:
        i = g.integers(0, mu.shape[0], n)  # fresh z ~ q(z | x) of training digits, scaled: (n, d)
        return s * (mu[i] + np.exp(0.5 * log_var[i]) * g.standard_normal((n, d)))

    model_kw, train_kw, schedule = recipe("images")
    model_kw["width"] = LATENT_TRAIN["width"]
    train_kw.update({k: v for k, v in LATENT_TRAIN.items() if k != "width"})
    model_kw.update({f: getattr(args, f) for f in ("width", "depth", "parameterization", "activation")
                     if getattr(args, f, None) is not None})
    train_kw.update({f: getattr(args, f) for f in ("steps", "batch_size", "lr", "lr_schedule", "weight_decay", "ema_decay")
                     if getattr(args, f, None) is not None})
    if getattr(args, "schedule", None):
        schedule = SCHEDULES[args.schedule]()
    model = DiffusionMLP(MLPConfig(dim=d, **model_kw), schedule, rng=rng)
    trainer = Trainer(model, latents, TrainConfig(**train_kw), rng)
    say(f"training {model!r} on the scaled latents for {trainer.config.steps} steps (batch {trainer.config.batch_size})")
    t0 = time.perf_counter()
    history = trainer.run(progress=True)
    seconds = time.perf_counter() - t0
    last = max(1, len(history["loss"]) // 100)
    final = float(np.mean(history["loss"][-last:]))
    out.mkdir(parents=True, exist_ok=True)
    save_autoencoder(out / "autoencoder.npz", ae)
    save(out / "model.npz", trainer.denoiser(ema=False, dtype=np.float32), optimizer=trainer.optimizer,
         step=trainer.step, rng=trainer.rng, history=history, train_config=trainer.config.to_dict(),
         data_name=data.name)
    marker = {"format": _FORMAT, "autoencoder": "autoencoder.npz", "data": data.name, "latent_dim": d,
              "scale_factor": s, "autoencoder_steps": ae_steps, "beta": ae.config.beta}
    (out / LATENT_FILE).write_text(json.dumps(marker, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    say(f"trained {trainer.step} steps in {seconds:.1f} s; final loss {final:.4f} (mean of the last {last} steps); "
        f"wrote {out / 'autoencoder.npz'}, {out / 'model.npz'} and {out / LATENT_FILE}")
    return {"steps": int(trainer.step), "seconds": round(seconds, 3), "final_loss": final, "loss_space": trainer.loss_kind,
            "autoencoder_steps": ae_steps, "autoencoder_seconds": round(ae_s, 3), "latent_dim": d, "scale_factor": s,
            "beta": ae.config.beta, "model": str(out / "model.npz"), "autoencoder": str(out / "autoencoder.npz")}


def load_latent(model_path: str, model) -> tuple[LatentDiffusion, dict] | None:
    r"""The latent model of ``model_path`` (a folder or its model.npz) if :data:`LATENT_FILE` lies beside it, else None."""
    folder = Path(model_path) if Path(model_path).is_dir() else Path(model_path).parent
    marker_path = folder / LATENT_FILE
    if not marker_path.is_file():
        return None
    try:
        marker = json.loads(marker_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UserError(f"{str(marker_path)!r} is not a latent model's marker ({exc})") from None
    name = marker.get("autoencoder") if isinstance(marker, dict) else None
    if not isinstance(marker, dict) or marker.get("format") != _FORMAT or not isinstance(name, str) or "/" in name:
        raise UserError(f"{str(marker_path)!r} is not a latent model's marker (no {_FORMAT!r} format with an autoencoder "
                        "file name)")
    try:
        ae = load_autoencoder(folder / name)
    except (OSError, ValueError) as exc:
        raise UserError(f"the latent model's autoencoder {str(folder / name)!r}: {exc}") from None
    if getattr(model, "dim", None) != ae.latent_dim or getattr(model, "num_classes", 0) or getattr(model, "vocab_size", 0):
        raise UserError(f"model {model_path!r} is not the {ae.latent_dim}-D unconditional denoiser of the autoencoder "
                        f"{str(folder / name)!r} that {str(marker_path)!r} names (retrain with `npdiff train --latent`)")
    return LatentDiffusion(ae, model), marker


def latent_bound(ld: LatentDiffusion, x: np.ndarray, args: argparse.Namespace) -> tuple[dict, dict]:
    r"""``npdiff nll`` on a latent model: LSGM's bound on images x (B, 64), its figures and per-image arrays."""
    t0 = time.perf_counter()
    b = ld.bound_bits_per_dim(x, np.random.default_rng(args.seed), draws=args.draws, rtol=args.rtol, atol=args.atol,
                              progress=True)
    n = b.bpd.shape[0]
    se = float(b.bpd.std(ddof=1) / np.sqrt(n)) if n > 1 else None

    def mean(a: np.ndarray) -> float:
        return float(np.mean(a))
    r = {"n": n, "bpd_bound": mean(b.bpd), "bpd_bound_se": se, "bound": "LSGM, discrete decoder",
         "reconstruction_bpd": mean(b.reconstruction_bpd), "latent_bpd": mean(b.kl_bpd), "draws": b.draws,
         "nfe": int(b.nfe), "seconds": round(time.perf_counter() - t0, 2)}
    return r, {"x": x, "bpd_bound": b.bpd, "reconstruction_bpd": b.reconstruction_bpd, "latent_bpd": b.kl_bpd}
