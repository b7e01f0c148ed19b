r"""The exact KL divergence of few-step samplers from the data: every sampler x time grid x budget of evaluations.

    python benchmarks/sampler_kl.py                                   # the full table (about an hour on one core)
    python benchmarks/sampler_kl.py --sets 8gaussians --models oracle --n 2000 --nfe 5 10 20 50 --default-grids
    python benchmarks/sampler_kl.py --speed                           # 20 evaluations against RK45, 10,000 points
    python benchmarks/sampler_kl.py --from-json rows.jsonl            # the tables and figure of saved rows

For each set (8gaussians, checkerboard, rings) and each model (the set's exact oracle, and the
default ``"2d"`` recipe trained on it, saved under ``--model-dir`` so a rerun does not retrain),
each deterministic sampler of :func:`npdiff.sample.fast_sample` is a map F from the noise z at
``t_max`` to the ODE's state at ``t_min`` (no final denoising step). Its exact
:math:`\mathrm{KL}(p_F\,\|\,q_{t_{\min}})` to the data at that noise level (the oracle's exact
log-density: for the checkerboard the only finite target, since its data density is 0 off the
squares) comes from :func:`npdiff.likelihood.sampler_kl` on the same ``--n`` noise draws for every
row, as the control-variate estimate with its standard error, the sampler's Jacobian exact by tangents
(:class:`npdiff.likelihood.FastSampler`, the denoiser's ``eps_jvp`` pushed through every step in float64;
the RK45 flow, an adaptive solver, by central differences at h = 1e-6). A row is **not estimable** where
the sampler folds (some det dF/dz <= 0) or E[q/p_F] - 1 exceeds 3 of its standard errors: it then
has no KL, and its cell says "not estimable (folded 12%)". The flow itself, RK45 at
rtol = atol = 1e-8 on the same z, gives the floor: about 0 for an oracle (the prior's mismatch),
the trained model's own KL otherwise; each row also reports its paired distance to that floor.
``dpmpp3m-ref`` is 3M with the reference code's weight of the second difference.

Rows print as they come; then one table per model (nfe columns, each sampler on each grid), the
best row per budget, the rows that do not beat DDIM on the uniform grid, and the figure
``--plot`` (KL against evaluations, one line per sampler on its default grid). ``--json FILE``
appends every row; ``--results NAME`` writes them all to ``benchmarks/results/NAME.json`` (default
``sampler_kl``). ``--default-grids`` runs each sampler on its own default grid only (and DDIM also on the
uniform grid), the rows the docs show.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # small matrices: one BLAS thread (see quality_2d.py)

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from _common import alternate, machine_facts, mean_se, summary, timed, write_results  # noqa: E402

from npdiff import checkpoint, sample  # noqa: E402
from npdiff.data import toy2d  # noqa: E402
from npdiff.likelihood import FastSampler, SolverMap, sampler_kl  # noqa: E402
from npdiff.nn import MLPConfig  # noqa: E402
from npdiff.nn.model import DiffusionMLP  # noqa: E402
from npdiff.recipes import recipe  # noqa: E402
from npdiff.sample.grids import time_grid  # noqa: E402
from npdiff.train import TrainConfig, Trainer  # noqa: E402

SETS = ("8gaussians", "checkerboard", "rings")
NFES = (5, 8, 10, 15, 20, 50, 100)
SAMPLERS = (*sample.FAST_SAMPLERS, "dpmpp3m-ref")


def trained_model(name: str, model_dir: str, seed: int = 0) -> tuple[DiffusionMLP, str]:
    r"""The default 2d recipe trained on ``name``, loaded from ``model_dir/name-seedS/model.npz`` if saved there
    (the layout of ``quality_2d.py --save``, whose ``--load`` reads these)."""
    path = os.path.join(model_dir, f"{name}-seed{seed}", "model.npz")
    if os.path.exists(path):
        return checkpoint.load(path).denoiser(ema=True), f"loaded {path}"
    model_kw, train_kw, schedule = recipe("2d")
    rng = np.random.default_rng(seed)
    trainer = Trainer(DiffusionMLP(MLPConfig(dim=2, **model_kw), schedule, rng=rng), toy2d.load(name),
                      TrainConfig(**train_kw), rng)
    t0 = time.perf_counter()
    trainer.run(progress=False)
    seconds = time.perf_counter() - t0
    os.makedirs(os.path.dirname(path), exist_ok=True)
    trainer.save(path)
    return trainer.denoiser(ema=True), f"trained {trainer.config.steps} steps in {seconds:.0f} s, saved {path}"


def sampler_map(model, name: str, nfe: int, grid: str, t_min: float):
    r"""F: z -> the sampler's ODE state at t_min, with ``nfe`` evaluations on ``grid``; its Jacobian by tangents."""
    if name == "dpmpp3m-ref":
        times = time_grid(model.schedule, nfe, grid, t_min)
        return SolverMap(model, lambda d, z: sample.dpmpp_multistep(d, z, times, order=3, reference_3m=True).x)
    return FastSampler(model, name, nfe, grid=grid, t_min=t_min, denoise=False)


def cv_terms(terms: np.ndarray) -> np.ndarray:
    return terms + np.expm1(-terms)  # delta + e^{-delta} - 1: the control-variate terms of sampler_kl


def run_model(set_name: str, kind: str, args) -> list[dict]:
    data = toy2d.load(set_name)
    oracle = data.oracle()
    if kind == "oracle":
        model, note = oracle, "exact oracle"
    else:
        model, note = trained_model(set_name, args.model_dir)
    print(f"\n## {set_name}, {kind}: {note}", flush=True)
    z = np.random.default_rng(args.seed).standard_normal((args.n, 2))  # the same noise for every row

    def log_q(x):
        return oracle.log_prob(x, args.t_min)  # the data at the sampler's last noise level

    t0 = time.perf_counter()
    nfe_flow = []

    def flow(zz):
        res = sample.ode_sample(model, None, np.random.default_rng(0), x_T=zz, rtol=1e-8, atol=1e-8, t_min=args.t_min,
                                denoise=False)
        nfe_flow.append(res.nfe)
        return res.x

    floor = sampler_kl(flow, z, log_q)  # RK45 is adaptive: central differences (floor.density.jacobian)
    floor_cv = cv_terms(floor.terms)
    print(f"flow (RK45 1e-8, {nfe_flow[0]} nfe): KL {floor.kl_cv:.2e} +- {floor.se_cv:.1e} (plain {floor.kl:.2e} +- "
          f"{floor.se:.1e}), E[q/p_F] - 1 = {floor.ratio - 1:+.1e} +- {floor.ratio_se:.1e}, "
          f"{time.perf_counter() - t0:.0f} s", flush=True)
    rows = [dict(set=set_name, model=kind, sampler="rk45", grid="adaptive", nfe=nfe_flow[0], kl=floor.kl_cv,
                 se=floor.se_cv, kl_plain=floor.kl, se_plain=floor.se, ratio=floor.ratio, ratio_se=floor.ratio_se,
                 excess=0.0, excess_se=0.0, folded=floor.density.folded, estimable=floor.estimable,
                 folded_share=floor.folded_share, cell=cell_of(floor), excess_cell="0", jacobian=floor.density.jacobian)]
    if args.json:
        with open(args.json, "a") as f:
            f.write(json.dumps({**rows[0], "n": args.n, "seed": args.seed, "t_min": args.t_min}) + "\n")
    print("| sampler | grid | nfe | KL (nats) | +- | minus flow | +- | plain KL | E[q/p]-1 | folded | s |", flush=True)
    print("|---|---|---|---|---|---|---|---|---|---|---|", flush=True)
    for name in args.samplers:
        grids = args.grids
        if args.default_grids:
            grids = list(dict.fromkeys([sample.DEFAULT_GRIDS.get(name, "log_snr")] + (["uniform"] if name == "ddim" else [])))
        for grid in grids:
            for nfe in args.nfe:
                if nfe < sample.fast.MIN_NFE.get(name, 3):
                    continue
                t0 = time.perf_counter()
                res = sampler_kl(sampler_map(model, name, nfe, grid, args.t_min), z, log_q)
                ok = res.estimable
                # paired with the flow on the same z; a row that is not estimable has no KL, so no excess either
                excess, excess_se = mean_se(cv_terms(res.terms) - floor_cv) if ok else (None, None)
                row = dict(set=set_name, model=kind, sampler=name, grid=grid, nfe=nfe, kl=res.kl_cv if ok else None,
                           se=res.se_cv if ok else None, kl_plain=res.kl if ok else None, se_plain=res.se if ok else None,
                           ratio=res.ratio, ratio_se=res.ratio_se, excess=excess, excess_se=excess_se,
                           folded=res.density.folded, estimable=ok, folded_share=res.folded_share, cell=cell_of(res),
                           excess_cell=f"{excess:.3g} +- {excess_se:.1g}" if ok else cell_of(res),
                           jacobian=res.density.jacobian, seconds=time.perf_counter() - t0)
                rows.append(row)
                if ok:
                    print(f"| {name} | {grid} | {nfe} | {row['kl']:.2e} | {row['se']:.1e} | {excess:.2e} | {excess_se:.1e} | "
                          f"{res.kl:.2e} | {res.ratio - 1:+.1e} | {row['folded']} | {row['seconds']:.1f} |", flush=True)
                else:
                    print(f"| {name} | {grid} | {nfe} | {res} | | | | | {res.ratio - 1:+.1e} | {row['folded']} | "
                          f"{row['seconds']:.1f} |", flush=True)
                if args.json:
                    with open(args.json, "a") as f:
                        f.write(json.dumps({**row, "n": args.n, "seed": args.seed, "t_min": args.t_min}) + "\n")
    return rows


def cell_of(res) -> str:
    r"""A table cell: the control-variate KL to 3 digits, or "not estimable (...)" (:class:`SamplerKL`'s own text)."""
    return f"{res.kl_cv:.3g}" if res.estimable else str(res)


def fmt(kl: float | None, se: float | None, row: dict | None = None) -> str:
    if kl is None:
        return row["cell"] if row else "not estimable"
    return f"{kl:.3g} ({se:.1g})" if np.isfinite(kl) else "inf"


def summarize(rows: list[dict], args) -> None:
    by = {(r["set"], r["model"], r["sampler"], r["grid"], r["nfe"]): r for r in rows}
    for set_name in args.sets:
        for kind in args.models:
            flow = by.get((set_name, kind, "rk45", "adaptive", next((r["nfe"] for r in rows if r["set"] == set_name and
                                                                     r["model"] == kind and r["sampler"] == "rk45"), 0)))
            if flow is None:
                continue
            key = "excess" if kind == "trained" else "kl"
            what = "KL(p_F || q) minus the flow's" if kind == "trained" else "KL(p_F || q)"
            print(f"\n### {set_name}, {kind}: {what} in nats (standard error); the flow (RK45, {flow['nfe']} nfe): "
                  f"{fmt(flow['kl'], flow['se'])}")
            print("| sampler | grid | " + " | ".join(f"{k} nfe" for k in args.nfe) + " |")
            print("|---|---|" + "---|" * len(args.nfe))
            for name in args.samplers:
                for grid in args.grids:
                    cells = [by.get((set_name, kind, name, grid, k)) for k in args.nfe]
                    print(f"| {name} | {grid} | " + " | ".join(
                        fmt(c[key], c[key + "_se"] if key == "excess" else c["se"], c) if c else "-" for c in cells) + " |")
            best = []
            for k in args.nfe:
                cands = [r for r in rows if r["set"] == set_name and r["model"] == kind and r["nfe"] == k
                         and r.get(key) is not None]
                if cands:
                    b = min(cands, key=lambda r: r[key])
                    best.append(f"{k}: {b['sampler']}/{b['grid']} {fmt(b[key], b[key + '_se'] if key == 'excess' else b['se'])}")
            print("best per budget: " + "; ".join(best))
            worse = [f"{r['sampler']}/{r['grid']}@{r['nfe']}" for r in rows
                     if r["set"] == set_name and r["model"] == kind and r["sampler"] != "rk45"
                     and (r["sampler"], r["grid"]) != ("ddim", "uniform")
                     and (d := by.get((set_name, kind, "ddim", "uniform", r["nfe"]))) is not None
                     and r["kl"] is not None and d["kl"] is not None and r["kl"] >= d["kl"]]
            print(f"rows not beating DDIM on the uniform grid at the same nfe ({len(worse)}): {', '.join(worse) or 'none'}")
            lost = [f"{r['sampler']}/{r['grid']}@{r['nfe']}: {r['cell']}" for r in rows
                    if r["set"] == set_name and r["model"] == kind and r.get("estimable") is False]
            print(f"rows not estimable ({len(lost)}): {'; '.join(lost) or 'none'}")


def plot(rows: list[dict], args) -> None:
    from npdiff.plot import plot_kl_vs_nfe

    panels = {}
    for set_name in args.sets:
        for kind in args.models:
            curves = {}
            for name in args.samplers:
                grid = sample.DEFAULT_GRIDS.get(name, "log_snr")
                pts = [(r["nfe"], r["kl"], r["se"]) for r in rows if r["set"] == set_name and r["model"] == kind
                       and r["sampler"] == name and r["grid"] == grid and r["kl"] is not None]
                if pts:
                    curves[f"{name} ({grid})"] = np.array(pts).T
            pts = [(r["nfe"], r["kl"], r["se"]) for r in rows if r["set"] == set_name and r["model"] == kind
                   and r["sampler"] == "ddim" and r["grid"] == "uniform" and r["kl"] is not None]
            if pts:
                curves["ddim (uniform)"] = np.array(pts).T
            flow = [r for r in rows if r["set"] == set_name and r["model"] == kind and r["sampler"] == "rk45"]
            if curves:
                panels[f"{set_name}, {kind}"] = (curves, flow[0]["kl"] if flow else None)
    os.makedirs(os.path.dirname(os.path.abspath(args.plot)), exist_ok=True)
    plot_kl_vs_nfe(panels, args.plot)
    print(f"\nwrote {args.plot}")


def speed(args) -> None:
    r"""Seconds to sample 10,000 points: dpmpp2m at 20 evaluations (+1 to denoise) against RK45 (rtol = atol = 1e-5)."""
    print(machine_facts(), flush=True)
    model, note = trained_model("8gaussians", args.model_dir)
    print(f"8gaussians model: {note}")
    x_T = np.random.default_rng(1).standard_normal((10_000, 2))
    rows = []
    for dtype in (np.float32, np.float64):
        m = model.with_dtype(dtype)
        fast = timed(lambda m=m: sample.fast_sample(m, None, np.random.default_rng(0), sampler="dpmpp2m", nfe=20, x_T=x_T))
        rk45 = timed(lambda m=m: sample.ode_sample(m, None, np.random.default_rng(0), x_T=x_T))
        fast(), rk45()  # warm-up (Numba compiles)
        mine, peer, ratio = alternate(fast, rk45, args.pairs)
        print(f"{np.dtype(dtype).name}: dpmpp2m 20 nfe ({fast.out.nfe} with denoising) {summary(mine)} s; RK45 "
              f"({rk45.out.nfe} nfe) {summary(peer)} s; RK45 / dpmpp2m {summary(ratio)}", flush=True)
        rows.append({"dtype": np.dtype(dtype).name, "fast_nfe": fast.out.nfe, "fast_s": float(np.median(mine)),
                     "fast_min": float(np.min(mine)), "fast_max": float(np.max(mine)), "rk45_nfe": rk45.out.nfe,
                     "rk45_s": float(np.median(peer)), "rk45_min": float(np.min(peer)), "rk45_max": float(np.max(peer)),
                     "ratio": float(np.median(ratio)), "ratio_min": float(np.min(ratio)),
                     "ratio_max": float(np.max(ratio))})
    write_results("sampler_speed", rows, notes={"n": 10_000, "pairs": args.pairs, "sampler": "dpmpp2m", "nfe": 20})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", nargs="+", default=list(SETS), choices=toy2d.NAMES)
    ap.add_argument("--models", nargs="+", default=["oracle", "trained"], choices=("oracle", "trained"))
    ap.add_argument("--samplers", nargs="+", default=list(SAMPLERS), choices=SAMPLERS)
    ap.add_argument("--grids", nargs="+", default=list(sample.GRIDS), choices=sample.GRIDS)
    ap.add_argument("--nfe", nargs="+", type=int, default=list(NFES))
    ap.add_argument("--n", type=int, default=4000, help="noise draws z, the same for every row (default 4000)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--t-min", type=float, default=1e-3, help="where the samplers stop (default 1e-3)")
    ap.add_argument("--model-dir", default=os.path.join("benchmarks", "out", "models"),
                    help="trained models are saved and reused here (default benchmarks/out/models)")
    ap.add_argument("--default-grids", action="store_true",
                    help="each sampler on its default grid only (DDIM also on the uniform grid)")
    ap.add_argument("--results", default="sampler_kl", help="write the rows to benchmarks/results/NAME.json")
    ap.add_argument("--json", metavar="FILE", help="append one JSON line per row")
    ap.add_argument("--plot", default="docs/samplers_kl.png", help="the KL-against-evaluations figure")
    ap.add_argument("--speed", action="store_true", help="only time 20 evaluations against RK45 on 10,000 points")
    ap.add_argument("--from-json", metavar="FILE", help="only summarize and plot the rows a run appended to FILE")
    ap.add_argument("--pairs", type=int, default=5, help="--speed: alternating runs of each side")
    args = ap.parse_args()
    if args.speed:
        speed(args)
        return
    if args.from_json:
        with open(args.from_json) as f:
            rows = [json.loads(line) for line in f if line.strip()]
        summarize(rows, args)
        plot(rows, args)
        return
    print(machine_facts(), flush=True)
    print(f"n = {args.n}, seed {args.seed}, t_min {args.t_min}", flush=True)
    rows = []
    for set_name in args.sets:
        for kind in args.models:
            rows += run_model(set_name, kind, args)
    columns = ["set", "model", "sampler", "grid", "nfe", "kl", "se", "cell", "estimable", "kl_plain", "se_plain", "excess",
               "excess_se", "excess_cell", "folded", "folded_share", "ratio", "ratio_se", "jacobian"]
    write_results(args.results, rows, columns=columns, notes={"n": args.n, "seed": args.seed, "t_min": args.t_min})
    summarize(rows, args)
    plot(rows, args)


if __name__ == "__main__":
    main()
