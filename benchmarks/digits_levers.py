r"""Training levers of the digits U-Net for its likelihood, each paired with the recipe without them on two seeds.

    python benchmarks/digits_levers.py --variants baseline likelihood_weighting levels early_stopping --seeds 0 1
    python benchmarks/digits_levers.py --seeds 1 --variants early_stopping levels   # a second process, other core
    python benchmarks/digits_levers.py --report                                  # the table, from the saved runs

A *variant* trains the U-Net of ``npdiff train --data digits`` (the ``"images"`` recipe's ``"unet"`` entry,
:func:`npdiff.recipes.recipe`, with the same draws) with the training fields of ``OVERRIDES``:

- ``baseline``: the recipe without likelihood weighting, as it was when this benchmark measured it: the squared
  error in the space of the network's prediction (v), t uniform (``loss=None``, ``log_snr_fraction=0``); every
  other variant is paired with it;
- ``likelihood_weighting``: the squared error in eps space with t drawn with uniform log-SNR, density proportional
  to :math:`-d\lambda/dt`, so the expected loss is the continuous-time bound's diffusion term up to a constant
  (the likelihood weighting of Song et al. 2021; Kingma et al. 2021, Eq. 17): ``loss="eps"``,
  ``log_snr_fraction=1``, which the recipe took for what this benchmark measured;
- ``levels``: the baseline trained on the 17 levels themselves, no dequantization: the data the bound's chain and its
  discretized decoder score (Ho et al. 2020, Sec. 3.3);
- ``early_stopping``: the baseline with the last ``--n-val`` training images held out; every ``--val-every`` steps from the
  half-way point the EMA weights are scored by the recipe's bound (its chain, the analytic variance with its
  statistics from those images) on the held-out images, and the best weights are kept.

Each run is scored on the same images with the same draws as its seed's ``baseline`` run: the recipe's bound
(:func:`npdiff.recipes.bound_times`, 50 steps, the analytic variance, E||eps||^2 on ``--n-stats`` training
images that are not scored) on the whole test split and the first ``--n-train`` training images, and the exact
ODE (uniform dequantization, S = 1, image i's offsets from ``default_rng([seed, i])``, RK45 at rtol = atol =
``--rtol``, float32 network) on the first ``--n-ode`` images of each split. Per-image bits/dim are kept in
``benchmarks/out/digits_levers/``; ``--report`` pairs each variant with the baseline:

.. math:: \Delta = \overline{b^{variant}} - \overline{b^{baseline}},\qquad
          \mathrm{SE}(\Delta) = \mathrm{std}(b^{variant}_i - b^{baseline}_i) / \sqrt n

and a lever helps where :math:`\Delta < -2\,\mathrm{SE}(\Delta)` on both seeds.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import glob  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from _common import write_results  # noqa: E402

from npdiff.checkpoint import save  # noqa: E402
from npdiff.data.images import digits  # noqa: E402
from npdiff.likelihood import bound_chain, dequantized_bpd, vlb  # noqa: E402
from npdiff.nn.unet import UNetConfig  # noqa: E402
from npdiff.nn.unet.model import DiffusionUNet  # noqa: E402
from npdiff.recipes import bound_times, recipe  # noqa: E402
from npdiff.reverse_variance import eps_moments  # noqa: E402
from npdiff.train import TrainConfig, Trainer  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "out", "digits_levers")
VARIANTS = ("baseline", "likelihood_weighting", "levels", "early_stopping")
_UNWEIGHTED = {"loss": None, "log_snr_fraction": 0.0}
#: training fields each variant sets in the recipe (all of them, so that a later change of the recipe leaves its runs alone)
OVERRIDES = {"baseline": _UNWEIGHTED, "likelihood_weighting": {"loss": "eps", "log_snr_fraction": 1.0},
             "levels": _UNWEIGHTED, "early_stopping": _UNWEIGHTED}


def recipe_moments(model, stats: np.ndarray, seed: int):
    r"""E||eps||^2 / D of ``model`` at the times of the recipe's bound chain, estimated on the images ``stats``."""
    chain = bound_chain(model.schedule, times=bound_times(model.schedule))
    return eps_moments(model, stats, chain, np.random.default_rng(seed + 1))


def bound_bpd(model, x: np.ndarray, moments, K: int, seed: int) -> np.ndarray:
    r"""(B,) bits/dim of the recipe's bound of levels x: its chain, the analytic variance with ``moments``."""
    res = vlb(model, x, rng=np.random.default_rng(seed + 3), variance="analytic", K=K, eps_moments=moments,
              times=bound_times(model.schedule))
    return res.total / (x.shape[1] * np.log(2.0))


def ode_bpd(model, x: np.ndarray, K: int, seed: int, rtol: float) -> np.ndarray:
    r"""(B,) exact ODE bits/dim, uniform dequantization, S = 1, image i's offsets from ``default_rng([seed, i])``."""
    net = model.with_dtype(np.float32)
    out = np.empty(x.shape[0])
    for i in range(x.shape[0]):
        out[i] = dequantized_bpd(net, x[i : i + 1], K, np.random.default_rng([seed, i]), rtol=rtol, atol=rtol).bpd[0]
    return out


def train_config(variant: str) -> TrainConfig:
    r"""The recipe's training fields with the variant's."""
    return TrainConfig(**{**recipe("images", arch="unet")[1], **OVERRIDES[variant]})


def train_variant(variant: str, seed: int, args, d) -> tuple[DiffusionUNet, dict]:
    r"""The EMA U-Net of one run and its facts (seconds, steps, the step kept)."""
    model_kw, _, schedule = recipe("images", arch="unet")
    config = train_config(variant)
    rng = np.random.default_rng(seed)
    model = DiffusionUNet(UNetConfig(image_size=d.shape[0], channels=1, **model_kw), schedule, rng=rng)
    if variant == "early_stopping":  # the last n_val training images held out, scored at the checks
        val = d.train[-args.n_val :]
        d = dataclasses.replace(d, train=d.train[: -args.n_val], train_labels=d.train_labels[: -args.n_val])
    # the sampler npdiff train uses: with the same seed the same draws
    trainer = Trainer(model, d.sample if variant == "levels" else d.sample_dequantized, config, rng)
    facts = {"steps": config.steps, "train_images": int(d.train.shape[0])}
    t0 = time.perf_counter()
    if variant != "early_stopping":
        trainer.run(progress=True)
        facts["seconds"] = time.perf_counter() - t0
        return trainer.denoiser(ema=True), facts
    best, checks, scoring = None, [], 0.0
    for until in range(config.steps // 2, config.steps + 1, args.val_every):
        trainer.run(until=until, progress=True)
        s0 = time.perf_counter()
        net = trainer.denoiser(ema=True, dtype=np.float32)
        score = float(bound_bpd(net, val, recipe_moments(net, val, seed), d.K, seed).mean())
        scoring += time.perf_counter() - s0
        checks.append({"step": until, "val_bpd": score})
        print(f"    step {until}: held-out bound {score:.4f} bits/dim", flush=True)
        if best is None or score < best[0]:
            best = (score, until, trainer.optimizer.ema.copy())
    facts.update(seconds=time.perf_counter() - t0, scoring_seconds=scoring, checks=checks, kept_step=best[1])
    return DiffusionUNet(trainer.model_config, trainer.schedule, best[2]), facts


def run_one(variant: str, seed: int, args, d) -> None:
    path = os.path.join(OUT, f"{variant}_seed{seed}.json")
    if os.path.exists(path):
        print(f"{variant} seed {seed}: saved in {path}; skipped", flush=True)
        return
    os.makedirs(OUT, exist_ok=True)
    marker = path + ".running"  # two processes (one per core) share the runs: each takes a run no one holds
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL))
    except FileExistsError:
        print(f"{variant} seed {seed}: another process holds it ({marker}; delete it if none does); skipped", flush=True)
        return
    try:
        train_and_score(variant, seed, path, args, d)
    finally:
        os.remove(marker)


def train_and_score(variant: str, seed: int, path: str, args, d) -> None:
    print(f"{variant} seed {seed}: training", flush=True)
    model, facts = train_variant(variant, seed, args, d)
    save(os.path.join(OUT, f"{variant}_seed{seed}.npz"), model.with_dtype(np.float32),
         step=facts.get("kept_step", facts["steps"]), train_config=train_config(variant).to_dict(), data_name=d.name)
    print(f"  trained in {facts['seconds']:.0f} s", flush=True)
    stats = d.train[args.n_train : args.n_train + args.n_stats]  # training images that are never scored
    moments = recipe_moments(model, stats, args.eval_seed)  # once per model: both splits use the same
    scores, timing = {}, {}
    for split, x in (("test", d.test), ("train", d.train[: args.n_train])):
        t0 = time.perf_counter()
        scores[f"bound_{split}"] = bound_bpd(model, x, moments, d.K, args.eval_seed).tolist()
        timing[f"bound_{split}"] = time.perf_counter() - t0
    for split, n in (("test", args.n_ode), ("train", args.n_train_ode)):
        t0 = time.perf_counter()
        scores[f"ode_{split}"] = ode_bpd(model, d.split(split)[:n], d.K, args.eval_seed, args.rtol).tolist()
        timing[f"ode_{split}"] = time.perf_counter() - t0
    for k, v in scores.items():
        print(f"  {k}: {np.mean(v):.4f} bits/dim ({len(v)} images, {timing[k]:.0f} s)", flush=True)
    with open(path, "w") as f:
        json.dump({"variant": variant, "seed": seed, "facts": facts, "scores": scores, "eval_seconds": timing,
                   "rtol": args.rtol, "eval_seed": args.eval_seed}, f)


def report() -> None:
    runs = {}
    for p in sorted(glob.glob(os.path.join(OUT, "*.json"))):
        with open(p) as f:
            r = json.load(f)
        runs[(r["variant"], r["seed"])] = r
    rows = []
    for (variant, seed), r in sorted(runs.items(), key=lambda kv: (VARIANTS.index(kv[0][0]), kv[0][1])):
        base = runs.get(("baseline", seed))
        for key, b in r["scores"].items():
            measure, split = key.split("_")
            b = np.asarray(b)
            row = {"variant": variant, "seed": seed, "measure": measure, "split": split, "images": int(b.size),
                   "bpd": float(b.mean()), "bpd_se": float(b.std(ddof=1) / np.sqrt(b.size)),
                   "train_s": round(r["facts"]["seconds"]), "kept_step": r["facts"].get("kept_step", r["facts"]["steps"]),
                   "diff": None, "diff_se": None, "helps": None}
            if base is not None and variant != "baseline":
                diff = b - np.asarray(base["scores"][key])
                row["diff"], row["diff_se"] = float(diff.mean()), float(diff.std(ddof=1) / np.sqrt(diff.size))
                row["helps"] = "yes" if row["diff"] < -2 * row["diff_se"] else "no"
            rows.append(row)
    write_results("digits_levers", rows, notes={
        "units": "bits/dim of the 17-level digits; bound: the recipe's chain (50 steps to t = 0.02 and the decoder), "
                 "analytic variance, no dequantization; ode: exact probability-flow ODE, uniform dequantization, S = 1",
        "diff": "paired over the same images and draws with the baseline run of the same seed",
        "runs": {f"{v}_seed{s}": {k: r["facts"][k] for k in r["facts"] if k != "checks"} | {"rtol": r["rtol"]}
                 for (v, s), r in runs.items()},
        "early_stopping_checks": {f"seed{s}": r["facts"]["checks"] for (v, s), r in runs.items()
                                  if v == "early_stopping"}})
    for row in rows:
        d = f"  {row['diff']:+.4f} +- {row['diff_se']:.4f} {row['helps']}" if row["diff"] is not None else ""
        print(f"{row['variant']:22s} {row['seed']} {row['measure']:5s} {row['split']:5s} {row['bpd']:.4f} +- "
              f"{row['bpd_se']:.4f}{d}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    ap.add_argument("--n-train", type=int, default=120, help="training images the bound scores (default 120, the first)")
    ap.add_argument("--n-stats", type=int, default=300, help="training images after those, for E||eps||^2")
    ap.add_argument("--n-ode", type=int, default=40, help="test images the ODE scores (default 40, the first)")
    ap.add_argument("--n-train-ode", type=int, default=24, help="training images the ODE scores (default 24)")
    ap.add_argument("--rtol", type=float, default=1e-3)
    ap.add_argument("--n-val", type=int, default=144, help="early_stopping: training images held out (the last)")
    ap.add_argument("--val-every", type=int, default=500, help="early_stopping: steps between its checks")
    ap.add_argument("--eval-seed", type=int, default=0, help="the draws of every scoring, the same for every run")
    ap.add_argument("--report", action="store_true", help="only pair the saved runs and write the table")
    args = ap.parse_args()
    if not args.report:
        d = digits()
        for seed in args.seeds:  # one seed of every variant first: a cut-off run still pairs
            for variant in args.variants:
                run_one(variant, seed, args, d)
    report()


if __name__ == "__main__":
    main()
