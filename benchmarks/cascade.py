r"""A two-stage cascade on the digits: a 4x4 base model and an 8x8 super-resolution model, against one 8x8 MLP.

Trains, each on one thread:

- the **base** model: the images recipe's MLP on the 4x4 block-sum digits (``npdiff.data.lowres``, 65 levels,
  dequantized), ``--base-steps`` steps;
- **super-resolution** models p(x_8x8 | x_4x4), ``ContextMLP`` (plain NumPy reference; width 128, smaller
  than the recipe's 256 because it has no fast path), context = [nearest up-sampled noised 4x4 | s]: with
  noise-conditioning augmentation, s ~ U(0, s_max) in training for each s_max of ``--aug-max`` (0.5 and 0.1),
  and one without (s = 0), ``--sr-steps`` each;
- the **single-stage** 8x8 MLP of the images recipe, ``--single-steps`` steps (about the base's and one SR
  model's training time together).

Then draws ``--n`` samples of each (ancestral DDPM, ``--steps`` steps, fixed-large variance, in every stage) and
writes to ``benchmarks/results/cascade.json`` the Fréchet distance in the digit classifier's features (with its
floor), the classifier's mean confidence, and for the SR model fed the true 4x4 of the first n training digits
the share whose class is the source digit's. ``cascade_bpd.json``: bits/dim on the test split by the exact ODE
(uniform dequantization, one draw): the base model on all 360 4x4 images (K = 65, D = 16), each SR model's
conditional bits/dim of the 8x8 given its true 4x4 on the first ``--bpd-n`` test images (K = 17, D = 64), their
sum as the cascade's bits/dim of the 8x8 (a valid discrete model of the 8x8, since the 4x4 is a function of it),
and the single-stage MLP on the same images.

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 NUMBA_NUM_THREADS=1 python benchmarks/cascade.py

Checkpoints go to ``benchmarks/out/cascade/`` (``--reuse`` loads them instead of training again).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from _common import write_results

from npdiff import checkpoint
from npdiff.data.images import DIGITS_K, digits
from npdiff.data.lowres import LOWRES_K, SRData, digits_4x4, downsample, sr_context
from npdiff.digit_features import digit_classifier, digit_frechet, nearest_levels
from npdiff.edit.cascade import WithContext, cascade_sample, upsample
from npdiff.likelihood import dequantized_bpd
from npdiff.nn import MLPConfig
from npdiff.nn.context_mlp import ContextMLP, ContextMLPConfig
from npdiff.nn.model import DiffusionMLP
from npdiff.recipes import recipe
from npdiff.sample import ddpm_sample
from npdiff.train import TrainConfig, Trainer

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "out", "cascade")
SR_WIDTH = 128
AUG_MAXES = (0.5, 0.1)
AUG_LEVELS = (0.0, 0.05, 0.2)


def trained(name: str, model, data, steps: int, seed: int, reuse: bool):
    path = os.path.join(OUT, f"{name}.npz")
    if reuse and os.path.exists(path):
        seconds = None
        if os.path.exists(path + ".seconds"):
            with open(path + ".seconds", encoding="utf-8") as f:
                seconds = float(f.read())
        return checkpoint.load(path).model, seconds
    _, train_kw, _ = recipe("images")
    trainer = Trainer(model, data, TrainConfig(**{**train_kw, "steps": steps}), seed)
    t0 = time.perf_counter()
    trainer.run(progress=False)
    seconds = time.perf_counter() - t0
    trainer.save(path)
    with open(path + ".seconds", "w", encoding="utf-8") as f:
        f.write(f"{seconds}\n")
    print(f"{name}: {steps} steps in {seconds:.0f} s, last loss {trainer.history['loss'][-200:].mean():.4f}", file=sys.stderr)
    return trainer.denoiser(), seconds


def confidence(x: np.ndarray) -> float:
    r"""The digit classifier's mean probability of its own label, on images rounded to the 17 levels."""
    clf = digit_classifier()
    logits = clf.features(nearest_levels(x)) @ clf.W2 + clf.b2  # (N, 10)
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    return float(np.mean(p.max(axis=1) / p.sum(axis=1)))


def quality(x: np.ndarray) -> tuple[float, float, float]:
    fd, floor = digit_frechet(x)
    return fd, floor, confidence(x)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base-steps", type=int, default=6000)
    ap.add_argument("--aug-max", type=float, nargs="+", default=list(AUG_MAXES),
                    help="the SR models with augmentation: s ~ U(0, AUG_MAX) in training, one model each")
    ap.add_argument("--sr-steps", type=int, default=8000)
    ap.add_argument("--single-steps", type=int, default=24000)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=250)
    ap.add_argument("--bpd-n", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--reuse", action="store_true")
    ap.add_argument("--bpd-only", action="store_true", help="skip the samples (cascade.json); write cascade_bpd.json only")
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)

    model_kw, _, schedule = recipe("images")
    hi, lo = digits(), digits_4x4()
    base, base_s = trained("base_4x4", DiffusionMLP(MLPConfig(dim=16, **model_kw), schedule, rng=args.seed),
                           lo.sample_dequantized, args.base_steps, args.seed, args.reuse)
    sr_cfg = ContextMLPConfig(dim=64, context_dim=65, **{**model_kw, "width": SR_WIDTH})
    srs = {}
    sr_models = [(f"sr_aug{a:g}", a) for a in args.aug_max] + [("sr_noaug", 0.0)]
    for name, aug in sr_models:
        srs[name] = trained(name, ContextMLP(sr_cfg, schedule, rng=args.seed + 1), SRData(hi.train, schedule, aug),
                            args.sr_steps, args.seed + 1, args.reuse)
    single, single_s = trained("single_8x8", DiffusionMLP(MLPConfig(dim=64, **model_kw), schedule, rng=args.seed + 2),
                               hi.sample_dequantized, args.single_steps, args.seed + 2, args.reuse)

    if not args.bpd_only:
        samples(args, hi, base, base_s, srs, sr_models, single, single_s, sr_cfg)
    bits_per_dim(args, hi, lo, base, srs, sr_models, single)


def samples(args, hi, base, base_s, srs, sr_models, single, single_s, sr_cfg) -> None:
    rows = []

    def row(model, source, aug, x, seconds, train_s, accuracy=None):
        fd, floor, conf = quality(x)
        rows.append({"model": model, "low_res": source, "aug_level": aug, "samples": x.shape[0], "steps": args.steps,
                     "frechet": fd, "floor": floor, "confidence": conf, "source_class": accuracy, "train_s": train_s,
                     "sample_s": seconds})
        print(rows[-1], file=sys.stderr)

    real = hi.train[: args.n]
    row("real digits (first n of the train split)", "-", None, real, None, None)
    t0 = time.perf_counter()
    x = ddpm_sample(single, args.n, args.seed, steps=args.steps).x
    row("single-stage 8x8 MLP", "-", None, x, time.perf_counter() - t0, single_s)
    true_low = downsample(real)  # (n, 16) the true 4x4 of the same training digits
    row("nearest up-sampling of the true 4x4 (no model)", "true 4x4", None,
        np.repeat(np.repeat(true_low.reshape(-1, 4, 4), 2, 1), 2, 2).reshape(-1, 64), None, None)
    for name, aug_max in sr_models:
        label = f"cascade, SR with augmentation s ~ U(0, {aug_max:g})" if aug_max else "cascade, SR without augmentation"
        sr, sr_s = srs[name]
        for aug in (AUG_LEVELS if aug_max else (0.0,)):
            t0 = time.perf_counter()
            up = upsample(sr, true_low, args.seed, aug_level=aug, steps=args.steps)
            acc = float(np.mean(digit_classifier().predict(nearest_levels(up)) == hi.train_labels[: args.n]))
            row(label.replace("cascade, ", "super-resolution only, "), "true 4x4", aug, up, time.perf_counter() - t0, sr_s, acc)
            t0 = time.perf_counter()
            res = cascade_sample(base, sr, args.n, args.seed, aug_level=aug, steps=args.steps)
            row(label, "base samples", aug, res.x, time.perf_counter() - t0, (base_s or 0) + (sr_s or 0))
    write_results("cascade", rows, notes={
        "n": args.n, "sampler": f"ancestral DDPM, {args.steps} steps of T = 1000, fixed-large variance, every stage",
        "base": f"MLP of the images recipe on the 4x4 block sums (K = {LOWRES_K}, dequantized), {args.base_steps} steps",
        "sr": f"ContextMLP width {SR_WIDTH}, depth {sr_cfg.depth}, the images recipe otherwise, {args.sr_steps} steps; "
              f"augmentation s ~ U(0, s_max) for s_max in {list(args.aug_max)}, or s = 0",
        "single": f"MLP of the images recipe on the 8x8 digits, {args.single_steps} steps",
        "classifier": repr(digit_classifier()), "seed": args.seed})



def bits_per_dim(args, hi, lo, base, srs, sr_models, single) -> None:
    r"""Bits/dim on the test split by the exact ODE (module docstring)."""
    bpd_rows = []
    m = args.bpd_n
    x8 = hi.test[:m]  # (m, 64)
    x4 = downsample(x8)  # (m, 16)
    t0 = time.perf_counter()
    b4_all = dequantized_bpd(base, lo.test, LOWRES_K, args.seed).bpd  # (360,)
    bpd_rows.append({"model": "base (4x4)", "images": lo.test.shape[0], "K": LOWRES_K, "D": 16,
                     "bpd": float(np.nanmean(b4_all)), "bpd_se": float(np.nanstd(b4_all, ddof=1) / np.sqrt(b4_all.size)),
                     "seconds": time.perf_counter() - t0})
    b4 = b4_all[:m]
    for name, aug_max in sr_models:
        which = f"SR with augmentation s ~ U(0, {aug_max:g})" if aug_max else "SR without augmentation"
        label = f"{which}, given the true 4x4 (s = 0)"
        sr = srs[name][0]
        t0 = time.perf_counter()
        c = sr_context(x4, 0.0, np.zeros_like(x4), sr.schedule)  # (m, 65) the clean 4x4 at s = 0
        parts = [dequantized_bpd(WithContext(sr, c[i:i + 20]), x8[i:i + 20], DIGITS_K, args.seed + i).bpd
                 for i in range(0, m, 20)]
        b8 = np.concatenate(parts)  # (m,)
        total = (16 * b4 + 64 * b8) / 64  # bits of the 4x4 plus bits of the 8x8 given it, per 8x8 pixel
        for what, v, K, D in ((label, b8, DIGITS_K, 64), (f"cascade = base + {which}", total, DIGITS_K, 64)):
            bpd_rows.append({"model": what, "images": m, "K": K, "D": D, "bpd": float(np.nanmean(v)),
                             "bpd_se": float(np.nanstd(v, ddof=1) / np.sqrt(v.size)), "seconds": time.perf_counter() - t0})
        print(bpd_rows[-2:], file=sys.stderr)
    t0 = time.perf_counter()
    bs = dequantized_bpd(single, x8, DIGITS_K, args.seed).bpd
    bpd_rows.append({"model": "single-stage 8x8 MLP", "images": m, "K": DIGITS_K, "D": 64, "bpd": float(np.nanmean(bs)),
                     "bpd_se": float(np.nanstd(bs, ddof=1) / np.sqrt(bs.size)), "seconds": time.perf_counter() - t0})
    write_results("cascade_bpd", bpd_rows, notes={
        "likelihood": "exact probability-flow ODE (RK45, rtol = atol = 1e-5, t_min = 1e-5), exact trace, uniform "
                      "dequantization, one draw", "test_images": m, "seed": args.seed})


if __name__ == "__main__":
    main()
