r"""SDEdit on 2-D sets: faithfulness against realism as the start time t0 varies, realism measured exactly.

    python benchmarks/sdedit_2d.py                   # exact oracles of 8gaussians and rings, and the trained model (~2 min)
    python benchmarks/sdedit_2d.py --plot docs/measurements/sdedit_2d.png

Guides (off-manifold points): ``--n`` points x of the set (``default_rng(seed)``), moved by the rule

.. math:: x^{(g)} = x + (0.5, -0.3) + 0.4\,z,\qquad z \sim \mathcal N(0, I)

(a shift of about a mode's width and isotropic noise). For each strength s (:func:`npdiff.edit.sdedit.sdedit_time`:
:math:`t_0 = \mathrm{round}(1000 s)/1000` on the VP-linear schedule) SDEdit (:func:`npdiff.edit.sdedit.sdedit`)
edits every guide once, with

- ``ddpm``: ancestral DDPM, fixed-large variance, round(200 s) steps of the chain cut at t0;
- ``ode``: the probability-flow ODE, Heun, round(50 s) steps (two evaluations each) to t_min = 1e-3, then Tweedie,

on the set's exact denoiser (``toy2d.load(name).oracle()``, so only SDEdit's own behaviour shows) and on the
trained 8gaussians MLP (the default "2d" recipe, ``--model``, default ``benchmarks/out/models/8gaussians-seed0/model.npz``:
``npdiff train --data 8gaussians --out benchmarks/out/models/8gaussians-seed0``). Reported per row: faithfulness, the mean
Euclidean distance of the output to its guide; realism, the mean TRUE log-density :math:`\log p(x)` of the outputs
under the set's exact density (``Toy2D.log_prob``), with its standard error; beside them the same figure for the
guides themselves (s = 0) and for fresh data points (what a perfect sampler averages, -H(p)).
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from _common import machine_facts, mean_se, write_results  # noqa: E402

from npdiff.checkpoint import load  # noqa: E402
from npdiff.data import toy2d  # noqa: E402
from npdiff.edit.sdedit import sdedit, sdedit_time  # noqa: E402

MODEL = HERE / "out" / "models" / "8gaussians-seed0" / "model.npz"
SHIFT = np.array([0.5, -0.3])
NOISE = 0.4
STRENGTHS = [0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.7, 1.0]
STEPS = {"ddpm": 200, "ode": 50}
COLUMNS = ["data", "denoiser", "sampler", "strength", "t0", "distance", "distance_se", "logp", "logp_se", "nfe",
           "guide_logp", "data_logp"]


def curves(name: str, label: str, denoiser, args) -> list[dict]:
    data = toy2d.load(name)
    rng = np.random.default_rng(args.seed)
    x = data.sample(args.n, rng)  # (N, 2)
    guide = x + SHIFT + NOISE * rng.standard_normal(x.shape)  # (N, 2) the off-manifold rule
    guide_logp, _ = mean_se(data.log_prob(guide))
    data_logp, _ = mean_se(data.log_prob(data.sample(args.n, np.random.default_rng(args.seed + 1))))
    rows = []
    for sampler in args.samplers:
        for s in args.strengths:
            t0 = time.perf_counter()
            res = sdedit(denoiser, guide, np.random.default_rng(args.seed + 2), strength=s, sampler=sampler,
                         steps=STEPS[sampler])
            d, d_se = mean_se(np.linalg.norm(res.x - guide, axis=1))
            lp, lp_se = mean_se(data.log_prob(res.x))
            row = {"data": name, "denoiser": label, "sampler": sampler, "strength": s,
                   "t0": sdedit_time(denoiser.schedule, s)[1], "distance": d, "distance_se": d_se, "logp": lp,
                   "logp_se": lp_se, "nfe": res.nfe, "guide_logp": guide_logp, "data_logp": data_logp}
            print(f"{name:10s} {label:8s} {sampler:4s} s={s:<4g} distance {d:.3f}  log p {lp:.3f} +- {lp_se:.3f}  "
                  f"(guides {guide_logp:.3f}, data {data_logp:.3f})  nfe {res.nfe}  {time.perf_counter() - t0:.1f} s",
                  flush=True)
            rows.append(row)
    return rows


def plot(rows: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = sorted({(r["data"], r["denoiser"]) for r in rows}, key=lambda k: (k[0] != "8gaussians", k))
    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.6), squeeze=False)
    for ax, key in zip(axes[0], keys):
        mine = [r for r in rows if (r["data"], r["denoiser"]) == key]
        for sampler, marker in (("ddpm", "o"), ("ode", "s")):
            rs = [r for r in mine if r["sampler"] == sampler]
            if not rs:
                continue
            ax.plot([r["distance"] for r in rs], [r["logp"] for r in rs], marker=marker, label=sampler)
            for r in rs:
                ax.annotate(f"{r['t0']:g}", (r["distance"], r["logp"]), fontsize=7, xytext=(3, -8),
                            textcoords="offset points")
        ax.axhline(mine[0]["data_logp"], color="k", ls="--", lw=0.8, label="data (-H)")
        ax.axhline(mine[0]["guide_logp"], color="grey", ls=":", lw=0.8, label="guides")
        ax.set_title(f"{key[0]}, {key[1]}")
        ax.set_xlabel("mean distance to the guide")
        ax.set_ylabel("mean true log p(output)")
        ax.legend(fontsize=7)
    fig.suptitle("SDEdit: faithfulness against realism as t0 varies (labels: t0)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--strengths", type=float, nargs="+", default=STRENGTHS)
    ap.add_argument("--samplers", nargs="+", default=["ddpm", "ode"], choices=sorted(STEPS))
    ap.add_argument("--model", type=Path, default=MODEL, help="the trained 8gaussians model (skipped if missing)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--plot", help="also draw the curves to this PNG")
    args = ap.parse_args(argv)
    print(machine_facts(), flush=True)
    rows = []
    for name in ("8gaussians", "rings"):
        rows += curves(name, "oracle", toy2d.load(name).oracle(), args)
    if args.model.exists():
        rows += curves("8gaussians", "trained", load(args.model).denoiser(ema=True), args)
    write_results("sdedit_2d", rows, columns=COLUMNS,
                  notes={"n": args.n, "guide_rule": "x + (0.5, -0.3) + 0.4 z, z ~ N(0, I), x drawn from the set",
                         "steps": "ddpm: round(200 s) chain steps (fixed-large variance); ode: Heun, round(50 s) steps "
                                  "to t_min = 1e-3, then Tweedie",
                         "strength_to_t0": "t0 = max(1, round(1000 s)) / 1000 * t_max",
                         "trained": "the default '2d' recipe on 8gaussians, seed 0, EMA weights", "seed": args.seed})
    if args.plot:
        plot(rows, args.plot)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
