r"""Model quality on FFJORD's eight 2D sets: exact test NLL of the default recipe against the true entropy.

    python benchmarks/quality_2d.py                        # the full table (all eight sets)
    python benchmarks/quality_2d.py --sets 8gaussians 2spirals --n-test 2000 --no-vlb
    python benchmarks/quality_2d.py --sets moons --set width=256 --set lr_schedule=constant
    python benchmarks/quality_2d.py --sets 8gaussians --seeds 0 1 2
    python benchmarks/quality_2d.py --seeds 0 1 --no-vlb --fast none && \
        python benchmarks/quality_2d.py --seeds 2 --append --no-vlb --fast none   # the recipes page's table, in two runs

For each set, :func:`run_set` trains the default ``"2d"`` recipe of :mod:`npdiff.recipes`
(``--set FIELD=VALUE`` overrides any field of :class:`~npdiff.nn.MLPConfig` or
:class:`~npdiff.train.TrainConfig`, ``--schedule`` the schedule), then draws fresh test
points from a generator independent of training and reports

- H, the set's true entropy (nats), the floor of every model's expected test NLL;
- the exact NLL of the probability-flow ODE (:func:`npdiff.likelihood.ode_log_likelihood`,
  RK45 at rtol = atol = 1e-5, from ``t_min`` = 1e-5 as ``npdiff nll`` does) and its nfe;
- the paired gap: the mean over the test points of :math:`\log p_{true}(x) - \log p_{model}(x)`,
  an unbiased estimate of KL(data || model), with its standard error (std / sqrt(n));
- the variational bound's gap the same way (:func:`npdiff.likelihood.vlb`, T = 1000,
  "large" variance): an upper bound on the NLL, so its gap is at least the ODE's in
  expectation only if the ODE and the SDE model agree (they need not: Song et al. 2021);
- the NLL of a Gaussian fitted (mean, full covariance) to 100,000 training points: the
  baseline a model must beat;
- the paired gap of a few-step sampler (``--fast``, default DPM-Solver++(2M) at 20 evaluations,
  ending at the same ``t_min``): its samples' exact log-density at the test points,
  :func:`npdiff.likelihood.sampler_log_density_at`, by Newton's method from the RK45 flow's
  encoding of each point, beside the RK45 flow's own gap;
- training and likelihood seconds (on a shared machine, wall times of that moment).

Test points come from ``default_rng(10_000 + seed)``, so two recipes are compared on the
same points (a paired comparison, far less noisy than comparing NLLs). ``npdiff nll
--model DIR/model.npz --data NAME --n 5000 --seed 10000`` reproduces a row for a model saved
with ``--save DIR``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

# One BLAS thread unless the caller says otherwise, set before NumPy loads: the matrices are small (256
# points through 128 units), and on a busy 2-core machine OpenBLAS's second thread made training 20x slower
# (measured: 10-13 against 260-300 steps/s with a neighbour's job running).
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from _common import split_overrides, write_results  # noqa: E402

from npdiff import checkpoint  # noqa: E402
from npdiff.data import toy2d  # noqa: E402
from npdiff.gaussian import log_normal_full  # noqa: E402
from npdiff.likelihood import ode_log_likelihood, sampler_log_density_at, vlb  # noqa: E402
from npdiff.nn import MLPConfig  # noqa: E402
from npdiff.nn.model import DiffusionMLP  # noqa: E402
from npdiff.recipes import recipe  # noqa: E402
from npdiff.sample import fast_sample  # noqa: E402
from npdiff.schedule import Schedule, schedule_from_config  # noqa: E402
from npdiff.train import TrainConfig, Trainer  # noqa: E402


def gaussian_fit_nll(data: toy2d.Toy2D, x_test: np.ndarray, rng: np.random.Generator, n_fit: int = 100_000) -> float:
    r"""Mean NLL of ``x_test`` under the Gaussian with the mean and covariance of ``n_fit`` fresh points."""
    x_fit = data.sample(n_fit, rng)  # (n_fit, 2)
    mean, cov = x_fit.mean(0), np.cov(x_fit, rowvar=False)
    return float(-np.mean(log_normal_full(x_test, mean, cov)))


def run_set(name: str, *, seed: int = 0, model_overrides: dict | None = None, train_overrides: dict | None = None,
            schedule: Schedule | None = None, n_test: int = 5000, t_min: float = 1e-5, with_vlb: bool = True,
            save: str | None = None, load: str | None = None, fast: str | None = "dpmpp2m", fast_nfe: int = 20) -> dict:
    r"""Train the default 2d recipe (with overrides) on set ``name`` and measure it; one row of the table.

    With ``load`` (a ``model.npz`` saved by ``save``) the model is read instead of trained.
    """
    model_kw, train_kw, default_schedule = recipe("2d")
    model_kw.update(model_overrides or {})
    train_kw.update(train_overrides or {})
    schedule = schedule or default_schedule
    data = toy2d.load(name)
    rng = np.random.default_rng(seed)
    if load:
        ck = checkpoint.load(load)
        model, train_s, steps, history = ck.denoiser(ema=True), float("nan"), ck.step, ck.history
    else:
        trainer = Trainer(DiffusionMLP(MLPConfig(dim=2, **model_kw), schedule, rng=rng), data, TrainConfig(**train_kw), rng)
        t0 = time.perf_counter()
        history = trainer.run(progress=False)
        train_s = time.perf_counter() - t0
        if save:
            os.makedirs(save, exist_ok=True)
            trainer.save(os.path.join(save, "model.npz"))
        model, steps = trainer.denoiser(ema=True), trainer.step  # float64 compute: the likelihood's ODE wants it

    test_rng = np.random.default_rng(10_000 + seed)  # the CLI's `npdiff nll --seed 10000 + seed`
    x = data.sample(n_test, test_rng)  # (n, 2) fresh test points
    log_p_true = data.log_prob(x)  # (n,)
    t0 = time.perf_counter()
    res = ode_log_likelihood(model, x, t_min=t_min)
    ode_s = time.perf_counter() - t0
    gap = log_p_true - res.log_p  # (n,) paired: log p_true - log p_model at the same points
    row = {"set": name, "seed": seed, "steps": steps, "H": data.entropy,
           "nll": float(-res.log_p.mean()), "gap": float(gap.mean()), "gap_se": float(gap.std(ddof=1) / np.sqrt(n_test)),
           "gauss_nll": gaussian_fit_nll(data, x, np.random.default_rng(20_000 + seed)),
           "train_s": train_s, "ode_s": ode_s, "nfe": res.nfe,
           "final_loss": float(np.mean(history["loss"][-max(1, steps // 100):]))}
    if fast:
        t0 = time.perf_counter()

        def sampler(z: np.ndarray) -> np.ndarray:  # noise at t_max -> the few-step sampler's state at t_min
            return fast_sample(model, None, rng, sampler=fast, nfe=fast_nfe, t_min=t_min, denoise=False, x_T=z).x

        dens = sampler_log_density_at(sampler, x, res.x_end)  # F(z) = x by Newton from the flow's encoding
        gap_f = log_p_true - dens.log_p  # (n,)
        row.update(fast=f"{fast}@{fast_nfe}", fast_gap=float(gap_f.mean()),
                   fast_gap_se=float(gap_f.std(ddof=1) / np.sqrt(n_test)), fast_residual=float(dens.residual.max()),
                   fast_folded=dens.folded, fast_s=time.perf_counter() - t0)
    if with_vlb:
        t0 = time.perf_counter()
        bound = vlb(model, x, 1000, rng=np.random.default_rng(30_000 + seed)).total  # (n,)
        gap_v = log_p_true + bound
        row.update(vlb_gap=float(gap_v.mean()), vlb_gap_se=float(gap_v.std(ddof=1) / np.sqrt(n_test)),
                   vlb_s=time.perf_counter() - t0)
    return row


HEADER = ("| set | H | NLL | paired gap +- SE | VLB gap +- SE | few-step gap +- SE | Gaussian fit NLL | train s | NLL s | "
          "VLB s | nfe |\n|---|---|---|---|---|---|---|---|---|---|---|")


def format_row(r: dict) -> str:
    vlb_txt, vlb_s = (f"{r['vlb_gap']:.3f} +- {r['vlb_gap_se']:.3f}", f"{r['vlb_s']:.0f}") if "vlb_gap" in r else ("-", "-")
    fast_txt = f"{r['fast_gap']:.4f} +- {r['fast_gap_se']:.4f} ({r['fast']})" if "fast_gap" in r else "-"
    return (f"| {r['set']} | {r['H']:.4f} | {r['nll']:.4f} | {r['gap']:.4f} +- {r['gap_se']:.4f} | {vlb_txt} | {fast_txt} | "
            f"{r['gauss_nll']:.4f} | {r['train_s']:.0f} | {r['ode_s']:.0f} | {vlb_s} | {r['nfe']} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", nargs="+", default=list(toy2d.NAMES), choices=toy2d.NAMES, metavar="SET")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--n-test", type=int, default=5000, help="fresh test points per set (default 5000)")
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                    help="override a field of the recipe's MLPConfig or TrainConfig (repeatable)")
    ap.add_argument("--schedule", help='a schedule config as JSON, e.g. \'{"kind": "log_snr_linear"}\'')
    ap.add_argument("--t-min", type=float, default=1e-5, help="start of the likelihood ODE (default 1e-5)")
    ap.add_argument("--no-vlb", action="store_true", help="skip the variational bound")
    ap.add_argument("--save", metavar="DIR", help="save each model as DIR/SET-seedS/model.npz")
    ap.add_argument("--load", metavar="DIR", help="read each model from DIR/SET-seedS/model.npz instead of training it")
    ap.add_argument("--fast", default="dpmpp2m", help="the few-step sampler of the extra gap column ('none' to skip)")
    ap.add_argument("--fast-nfe", type=int, default=20, help="its evaluations (default 20)")
    ap.add_argument("--json", metavar="FILE", help="append one JSON line per row to FILE")
    ap.add_argument("--append", action="store_true",
                    help="keep the results file's rows of other sets and seeds (a table measured in several runs)")
    ap.add_argument("--results", default="quality_2d",
                    help="write the rows to benchmarks/results/NAME.json, rewritten after each row (default quality_2d)")
    args = ap.parse_args()
    model_kw, train_kw = split_overrides(args.set)
    schedule = schedule_from_config(json.loads(args.schedule)) if args.schedule else None
    print(f"recipe '2d' with model overrides {model_kw}, training overrides {train_kw}, schedule "
          f"{schedule or recipe('2d')[2]!r}; {args.n_test} test points, t_min {args.t_min}", flush=True)
    print(HEADER, flush=True)
    kept, runs = [], []
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", f"{args.results}.json")
    if args.append and os.path.exists(path):
        with open(path) as f:
            old = json.load(f)
        done = {(n, s) for s in args.seeds for n in args.sets}
        kept = [r for r in old["rows"] if (r["set"], r["seed"]) not in done]
        runs = old.get("notes", {}).get("runs", [old["command"]])
    runs = [*runs, "python " + " ".join([os.path.relpath(sys.argv[0]), *sys.argv[1:]])]
    rows = []
    for seed, name in [(s, n) for s in args.seeds for n in args.sets]:  # every set on a seed before the next seed
        save = os.path.join(args.save, f"{name}-seed{seed}") if args.save else None
        load = os.path.join(args.load, f"{name}-seed{seed}", "model.npz") if args.load else None
        r = run_set(name, seed=seed, model_overrides=model_kw, train_overrides=train_kw, schedule=schedule,
                    n_test=args.n_test, t_min=args.t_min, with_vlb=not args.no_vlb, save=save, load=load,
                    fast=None if args.fast == "none" else args.fast, fast_nfe=args.fast_nfe)
        print(format_row(r), flush=True)
        rows.append(r)
        columns = [c for c in ("set", "seed", "steps", "H", "nll", "gap", "gap_se", "vlb_gap", "vlb_gap_se", "fast",
                               "fast_gap", "fast_gap_se", "gauss_nll", "train_s", "ode_s", "nfe") if c in r]
        write_results(args.results, kept + rows, columns=columns,
                      notes={"n_test": args.n_test, "t_min": args.t_min, "model_overrides": model_kw,
                             "train_overrides": train_kw, **({"runs": runs} if args.append else {})})
        if args.json:
            with open(args.json, "a") as f:
                f.write(json.dumps({**r, "model_overrides": model_kw, "train_overrides": train_kw,
                                    "schedule": (schedule or recipe("2d")[2]).config(), "t_min": args.t_min}) + "\n")


if __name__ == "__main__":
    main()
