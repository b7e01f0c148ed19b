r"""Two likelihood training levers on the 2D sets, each against the plain recipe by paired errors.

    python benchmarks/likelihood_levers.py --seeds 0 --variants baseline second_moment     # train and score
    python benchmarks/likelihood_levers.py --steps 26000 --sets rings checkerboard --variants baseline second_moment
    python benchmarks/likelihood_levers.py --report                                         # the table
    python benchmarks/likelihood_levers.py --speed                                          # its cost in steps/s

A *variant* is the default ``"2d"`` recipe of :mod:`npdiff.recipes` with a few fields changed (``--steps``
shortens every variant alike, to stay within a few minutes of training on one core):

- ``baseline``: the recipe without the second-moment draw (the recipe has it on since this benchmark measured it);
- ``second_moment``: t drawn by the loss's second moment over 64 bins, importance-weighted
  (improved DDPM, Nichol & Dhariwal 2021, Sec. 3.3);
- ``vdm_endpoints``: VDM's learned log-SNR endpoints (Kingma et al. 2021, Sec. 3.4), the schedule
  linear in gamma = -log-SNR from gamma_min = -10 to gamma_max = 10 at the start, the two ends moved by
  SGD (step 0.05, decayed with the learning rate) on the continuous-time bound's hand-derived gradient
  (prior and reconstruction terms in closed form, the diffusion term by Leibniz's rule at the ends)
  beside the network;
- ``log_snr_fixed``: the same schedule with its ends never moved (what the learning adds beyond the shape).

The last two did not help and their option left the library (``REMOVED`` names the commit that holds it);
their saved runs still enter the report.

Each (variant, set, seed) trains one model and scores the same fresh test points (``default_rng(10_000 +
seed)``, as :mod:`benchmarks.quality_2d` does) by the exact probability-flow ODE likelihood
(:func:`npdiff.likelihood.ode_log_likelihood`, RK45 at rtol = atol = 1e-5 from t_min = 1e-5), and keeps the
per-point gaps :math:`g_i = \log p_{true}(x_i) - \log p_{model}(x_i)` in ``benchmarks/out/likelihood_levers/``.
``--report`` pairs each variant with the baseline of the same set and seed on the same points:

.. math:: \Delta = \overline{g^{variant}} - \overline{g^{baseline}},\qquad
          \mathrm{SE}(\Delta) = \mathrm{std}(g^{variant}_i - g^{baseline}_i) / \sqrt n

A lever helps if :math:`\Delta < -2\,\mathrm{SE}(\Delta)` on every seed.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import time

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from _common import alternate, summary, write_results  # noqa: E402

from npdiff.data import toy2d  # noqa: E402
from npdiff.likelihood import ode_log_likelihood  # noqa: E402
from npdiff.nn import MLPConfig  # noqa: E402
from npdiff.nn.model import DiffusionMLP  # noqa: E402
from npdiff.recipes import recipe  # noqa: E402
from npdiff.train import TrainConfig, Trainer  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "out", "likelihood_levers")
SETS = ("8gaussians", "rings", "checkerboard")


def _variant(name: str) -> tuple[dict, object]:
    r"""(training overrides, schedule or None for the recipe's) of a variant."""
    if name == "baseline":  # the recipe without the second-moment draw, which the recipe now has on
        return {"loss_second_moment_bins": 0}, None
    if name == "second_moment":
        return {"loss_second_moment_bins": 64}, None
    if name in REMOVED:
        raise SystemExit(f"variant {name!r} trains with an option the library no longer has (it did not help by 2 paired "
                         f"standard errors on both seeds); its code lives in commit {REMOVED[name]}: check that out to "
                         f"rerun it. Its saved runs still enter --report.")
    raise SystemExit(f"unknown variant {name!r}")


#: variants whose option was measured and removed, and the commit that still holds it (``schedule_lr`` with
#: ``npdiff.schedule.learned_log_snr()``; ``log_snr_fixed``: that schedule with its ends never moved)
REMOVED = {"vdm_endpoints": "6f71f1183af215f6852be1756da546dc38376058",
           "log_snr_fixed": "6f71f1183af215f6852be1756da546dc38376058"}


VARIANTS = ("baseline", "second_moment", "vdm_endpoints", "log_snr_fixed")


def run(variant: str, name: str, seed: int, steps: int, n_test: int) -> dict:
    r"""Train ``variant`` on set ``name`` with ``seed``, score the test points, save their gaps; one row."""
    model_kw, train_kw, schedule = recipe("2d")
    overrides, sched = _variant(variant)
    train_kw.update(overrides, steps=steps)
    schedule = sched or schedule
    data = toy2d.load(name)
    rng = np.random.default_rng(seed)
    trainer = Trainer(DiffusionMLP(MLPConfig(dim=2, **model_kw), schedule, rng=rng), data, TrainConfig(**train_kw), rng)
    t0 = time.perf_counter()
    trainer.run(progress=False)
    train_s = time.perf_counter() - t0
    model = trainer.denoiser(ema=True)
    x = data.sample(n_test, np.random.default_rng(10_000 + seed))  # (n, 2) the same points for every variant
    t0 = time.perf_counter()
    res = ode_log_likelihood(model, x, t_min=1e-5)
    gap = data.log_prob(x) - res.log_p  # (n,)
    row = {"variant": variant, "set": name, "seed": seed, "steps": steps, "n_test": n_test,
           "gap": float(gap.mean()), "gap_se": float(gap.std(ddof=1) / np.sqrt(n_test)), "nfe": int(res.nfe),
           "train_s": train_s, "ode_s": time.perf_counter() - t0, "schedule": model.schedule.config()}
    os.makedirs(OUT, exist_ok=True)
    np.savez(os.path.join(OUT, f"{variant}-{name}-seed{seed}-steps{steps}.npz"), gap=gap, row=json.dumps(row))
    return row


def report() -> list[dict]:
    r"""Every saved variant paired with the baseline of its set and seed: the rows of the results file."""
    saved = {}
    for path in sorted(glob.glob(os.path.join(OUT, "*.npz"))):
        with np.load(path) as f:
            row = json.loads(str(f["row"]))
            saved[(row["variant"], row["set"], row["seed"], row["steps"])] = (row, f["gap"])
    rows = []
    for (variant, name, seed, steps), (row, gap) in sorted(saved.items(), key=lambda kv: (kv[0][3], kv[0][:3])):
        out = {k: row[k] for k in ("variant", "set", "seed", "steps", "n_test", "gap", "gap_se", "nfe", "train_s")}
        out.update(diff=None, diff_se=None, helps=None, gamma_min=None, gamma_max=None)
        base = saved.get(("baseline", name, seed, steps))
        if variant != "baseline" and base is not None and base[1].shape == gap.shape:
            d = gap - base[1]  # (n,) paired on the same points
            out.update(diff=float(d.mean()), diff_se=float(d.std(ddof=1) / np.sqrt(d.size)))
            out["helps"] = bool(out["diff"] < -2.0 * out["diff_se"])
        sched = row["schedule"]
        if sched.get("kind") == "learned_log_snr":
            out.update(gamma_min=sched["gamma_min"], gamma_max=sched["gamma_max"])
        rows.append(out)
    return rows


def speed(steps: int = 2000, pairs: int = 3) -> list[dict]:
    r"""Steps per second of the recipe with and without the second-moment draw, run in alternation on rings."""
    model_kw, train_kw, schedule = recipe("2d")

    def rate(overrides: dict) -> float:
        kw = {**train_kw, **overrides, "steps": steps + 50}
        trainer = Trainer(DiffusionMLP(MLPConfig(dim=2, **model_kw), schedule, rng=0), toy2d.load("rings"), TrainConfig(**kw), 0)
        trainer.run(until=50, progress=False)  # compiled kernels and filled histories before the clock starts
        t0 = time.perf_counter()
        trainer.run(progress=False)
        return steps / (time.perf_counter() - t0)

    base, lever, _ = alternate(lambda: rate(_variant("baseline")[0]), lambda: rate(_variant("second_moment")[0]), pairs)
    ratio = [b / v for b, v in zip(base, lever)]  # > 1: the lever is slower
    return [{"variant": "baseline", "steps_per_s": float(np.median(base)), "runs": summary(base)},
            {"variant": "second_moment", "steps_per_s": float(np.median(lever)), "runs": summary(lever),
             "slowdown": float(np.median(ratio))}]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    ap.add_argument("--sets", nargs="+", default=list(SETS), choices=toy2d.NAMES, metavar="SET")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    ap.add_argument("--steps", type=int, default=8000, help="training steps of every variant (default 8000)")
    ap.add_argument("--n-test", type=int, default=2000, help="fresh test points per set (default 2000)")
    ap.add_argument("--report", action="store_true",
                    help="pair the saved runs and write benchmarks/results/likelihood_levers.json")
    ap.add_argument("--speed", action="store_true", help="steps/s with and without the second-moment draw")
    args = ap.parse_args()
    if args.speed:
        rows = speed()
        rows[0]["slowdown"] = 1.0
        for r in rows:
            print(json.dumps(r), flush=True)
        write_results("likelihood_levers_speed", rows, columns=["variant", "steps_per_s", "runs", "slowdown"],
                      notes={"steps": 2000, "pairs": 3, "set": "rings", "batch": 512})
        return
    if args.report:
        rows = report()
        for r in rows:
            print(json.dumps(r), flush=True)
        columns = ["variant", "set", "seed", "steps", "n_test", "gap", "gap_se", "diff", "diff_se", "helps",
                   "gamma_min", "gamma_max", "nfe", "train_s"]
        write_results("likelihood_levers", rows, columns=[c for c in columns if any(c in r for r in rows)],
                      notes={"pairing": "diff = mean over the same test points of gap(variant) - gap(baseline)",
                             "runs": "python benchmarks/likelihood_levers.py --seeds S --variants V (S = 0, 1; 8000 steps, "
                                     "every set) and the same with --steps 26000 --variants baseline second_moment "
                                     "(8gaussians, rings, checkerboard); 2000 test points, RK45 rtol = atol = 1e-5 "
                                     "from t_min = 1e-5",
                             "removed": REMOVED})
        return
    for seed in args.seeds:
        for name in args.sets:
            for variant in args.variants:
                print(json.dumps(run(variant, name, seed, args.steps, args.n_test)), flush=True)


if __name__ == "__main__":
    main()
