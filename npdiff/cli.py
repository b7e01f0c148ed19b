r"""The ``npdiff`` command line (also ``python -m npdiff``).

Commands: ``demo`` (the main job: train, sample, exact NLL, figures), ``train``, ``sample``,
``nll``, ``datasets`` and ``schedules``. Human-readable output and progress bars go to
stderr; with ``--json`` the last line on stdout is one JSON object. A user mistake (unknown
data set, missing or corrupt model file, a model for other data dimensions, bad numbers)
is one clear line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from . import schedule as sch

SAMPLERS = ("ddpm", "ddim", "ode", "sde")
SCHEDULES = {"vp_linear": sch.vp_linear, "cosine": sch.cosine, "log_snr_linear": sch.log_snr_linear}


class UserError(ValueError):
    r"""A mistake of the user's, reported as one line."""


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _emit(args: argparse.Namespace, payload: dict[str, Any]) -> None:
    if args.json:
        print(json.dumps(payload, sort_keys=True))


def _load_data(name: str):
    from .data import toy2d

    if name in toy2d.NAMES:
        return toy2d.load(name)
    raise UserError(f"unknown data set {name!r}; choose one of {', '.join(toy2d.NAMES)} (see `npdiff datasets`)")


def _load_model(path: str):
    from . import checkpoint

    if not os.path.exists(path):
        raise UserError(f"model file {path!r} does not exist (train one with `npdiff train --out DIR`)")
    ck = checkpoint.load(path)  # ValueError with the file name when it is not a checkpoint
    return ck, ck.denoiser(ema=True)


def _check_dims(model, data, model_path: str) -> None:
    if model.dim != data.dim:
        raise UserError(f"model {model_path!r} was trained on {model.dim}-D data, but data set {data.name!r} is {data.dim}-D")


def _positive(kind: type):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a positive {kind.__name__}, got {text!r}") from None
        if not value > 0 or (kind is float and not np.isfinite(value)):
            raise argparse.ArgumentTypeError(f"expected a positive {kind.__name__}, got {text!r}")
        return value

    parse.__name__ = f"positive {kind.__name__}"
    return parse


# -- train -------------------------------------------------------------------------------------


def _train(data, args: argparse.Namespace, *, out: Path | None, seed: int):
    from .checkpoint import save
    from .nn import MLPConfig
    from .nn.model import DiffusionMLP
    from .recipes import recipe
    from .train import TrainConfig, Trainer

    model_kw, train_kw, schedule = recipe("2d")
    for field in ("width", "depth", "parameterization", "activation"):
        if getattr(args, field, None) is not None:
            model_kw[field] = getattr(args, field)
    if getattr(args, "coord_embedding", None):
        model_kw["coord_embedding"] = True
    for field in ("steps", "batch_size", "lr", "lr_schedule"):
        if getattr(args, field, None) is not None:
            train_kw[field] = getattr(args, field)
    if getattr(args, "schedule", None):
        schedule = SCHEDULES[args.schedule]()
    rng = np.random.default_rng(seed)
    model = DiffusionMLP(MLPConfig(dim=data.dim, **model_kw), schedule, rng=rng)
    trainer = Trainer(model, data, TrainConfig(**train_kw), rng)
    _say(f"training {model!r} on {data.name} for {trainer.config.steps} steps (batch {trainer.config.batch_size})")
    t0 = time.perf_counter()
    history = trainer.run(progress=True)
    seconds = time.perf_counter() - t0
    loss = history["loss"]
    final = float(np.mean(loss[-max(1, len(loss) // 100) :]))  # mean of the last 1% of steps
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        save(out / "model.npz", trainer.denoiser(ema=False, dtype=np.float32), optimizer=trainer.optimizer,
             step=trainer.step, rng=trainer.rng, history=history, train_config=trainer.config.to_dict())
    stats = {"steps": int(trainer.step), "seconds": round(seconds, 3), "steps_per_s": round(trainer.step / seconds, 1),
             "final_loss": final}
    _say(f"trained {trainer.step} steps in {seconds:.1f} s ({stats['steps_per_s']} steps/s); final loss {final:.4f}")
    return trainer.denoiser(ema=True), history, stats


def _cmd_train(args: argparse.Namespace) -> int:
    data = _load_data(args.data)
    out = Path(args.out)
    _, _, stats = _train(data, args, out=out, seed=args.seed)
    _say(f"wrote {out / 'model.npz'}")
    _emit(args, {**stats, "model": str(out / "model.npz")})
    return 0


# -- nll ---------------------------------------------------------------------------------------


def _nll(model, data, n: int, seed: int, method: str, *, rtol: float = 1e-5, atol: float = 1e-5) -> tuple[dict, dict]:
    from .likelihood import ode_log_likelihood, vlb

    rng = np.random.default_rng(seed)
    x = data.sample(n, rng)  # (n, D) fresh test points
    log_p_true = data.log_prob(x)
    out: dict[str, Any] = {"n": n, "true_entropy_nats": float(data.entropy)}
    arrays: dict[str, np.ndarray] = {"x": x, "log_p_true": log_p_true}
    t0 = time.perf_counter()
    if method in ("ode", "both"):
        _say(f"exact ODE likelihood of {n} points (RK45, rtol={rtol}, atol={atol}) ...")
        res = ode_log_likelihood(model, x, rtol=rtol, atol=atol)
        gap = log_p_true - res.log_p
        out.update(nll_nats=float(-res.log_p.mean()), gap_nats=float(gap.mean()),
                   gap_se=float(gap.std(ddof=1) / np.sqrt(n)), nfe=int(res.nfe))
        arrays["log_p_model"] = res.log_p
    if method in ("vlb", "both"):
        _say(f"variational bound of {n} points (T = 1000, all terms) ...")
        res_v = vlb(model, x, 1000, rng=rng)
        gap_v = log_p_true + res_v.total
        out.update(vlb_nats=float(res_v.total.mean()), vlb_gap_nats=float(gap_v.mean()),
                   vlb_gap_se=float(gap_v.std(ddof=1) / np.sqrt(n)))
        out.setdefault("nfe", 0)
        out["nfe"] += int(res_v.nfe)
        arrays["vlb_nats"] = res_v.total
    out["seconds"] = round(time.perf_counter() - t0, 3)
    return out, arrays


def _report_nll(r: dict) -> None:
    if "nll_nats" in r:
        _say(f"exact NLL {r['nll_nats']:.4f} nats vs true entropy {r['true_entropy_nats']:.4f}: "
             f"paired gap {r['gap_nats']:.4f} +- {r['gap_se']:.4f} nats ({r['nfe']} evaluations)")
    if "vlb_nats" in r:
        _say(f"VLB {r['vlb_nats']:.4f} nats: gap {r['vlb_gap_nats']:.4f} +- {r['vlb_gap_se']:.4f} nats")


def _cmd_nll(args: argparse.Namespace) -> int:
    data = _load_data(args.data)
    _, model = _load_model(args.model)
    _check_dims(model, data, args.model)
    r, arrays = _nll(model, data, args.n, args.seed, args.method, rtol=args.rtol, atol=args.atol)
    _report_nll(r)
    if args.save:
        np.savez(args.save, **arrays)
        _say(f"wrote {args.save}")
    _emit(args, r)
    return 0


# -- sample ------------------------------------------------------------------------------------


def _run_sampler(model, name: str, n: int, seed: int, steps: int | None, record: bool = False):
    from . import sample

    rng = np.random.default_rng(seed)
    kw: dict[str, Any] = {"record": record, "progress_bar": True}
    if name == "ddpm":
        return sample.ddpm_sample(model, n, rng, **({"steps": steps} if steps else {}), **kw)
    if name == "ddim":
        return sample.ddim_sample(model, n, rng, **({"steps": steps} if steps else {}), **kw)
    if name == "sde":
        return sample.sde_sample(model, n, rng, **({"steps": steps} if steps else {}), **kw)
    if steps:
        return sample.ode_sample(model, n, rng, method="heun", steps=steps, **kw)
    return sample.ode_sample(model, n, rng, **kw)


def _cmd_sample(args: argparse.Namespace) -> int:
    _, model = _load_model(args.model)
    t0 = time.perf_counter()
    res = _run_sampler(model, args.sampler, args.n, args.seed, args.steps)
    seconds = time.perf_counter() - t0
    out = Path(args.out)
    np.save(out, res.x)
    _say(f"wrote {res.x.shape[0]} samples to {out} ({res.nfe} evaluations, {seconds:.1f} s)")
    if args.plot:
        from .plot import plot_samples

        plot_samples(res.x, None, args.plot, title=f"{args.sampler} samples")
        _say(f"wrote {args.plot}")
    _emit(args, {"n": int(res.x.shape[0]), "nfe": int(res.nfe), "seconds": round(seconds, 3), "out": str(out)})
    return 0


# -- demo --------------------------------------------------------------------------------------


def _cmd_demo(args: argparse.Namespace) -> int:
    from .likelihood import ode_log_likelihood
    from .plot import plot_density, plot_loss, plot_samples, plot_trajectory

    t_start = time.perf_counter()
    data = _load_data("8gaussians")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model, history, train_stats = _train(data, args, out=out, seed=args.seed)
    r, _ = _nll(model, data, args.n, args.seed + 1, "ode")
    _report_nll(r)
    _say("sampling with the probability-flow ODE and drawing figures ...")
    res = _run_sampler(model, "ode", 2000, args.seed + 2, None, record=True)
    plot_samples(res.x, data.sample(2000, np.random.default_rng(args.seed + 3)), out / "samples.png",
                 title="8gaussians: data and samples")
    plot_trajectory(res.trajectory, res.times, out / "trajectory.png")
    plot_loss(history["loss"], out / "loss.png")
    g = np.linspace(-4.5, 4.5, args.grid)
    gx, gy = np.meshgrid(g, g, indexing="xy")
    grid = np.stack([gx.ravel(), gy.ravel()], 1)  # (G*G, 2)
    log_p = ode_log_likelihood(model, grid, rtol=1e-3, atol=1e-3).log_p.reshape(gx.shape)
    plot_density(gx, gy, log_p, data.log_prob(grid).reshape(gx.shape), out / "density.png")
    total = time.perf_counter() - t_start
    _say(f"figures: {', '.join(str(out / f) for f in ('samples.png', 'trajectory.png', 'density.png', 'loss.png'))}")
    _say(f"demo finished in {total:.0f} s; model in {out / 'model.npz'}")
    _emit(args, {**r, **train_stats, "out": str(out), "total_seconds": round(total, 1)})
    return 0


# -- datasets, schedules -------------------------------------------------------------------------


def _cmd_datasets(args: argparse.Namespace) -> int:
    from .data import toy2d

    rows = []
    for name in toy2d.NAMES:
        d = toy2d.load(name)
        rows.append({"name": name, "dim": d.dim, "entropy_nats": round(float(d.entropy), 5)})
        print(f"{name:14s} D={d.dim}  true entropy {d.entropy:.4f} nats")
    _emit(args, {"datasets": rows})
    return 0


def _cmd_schedules(args: argparse.Namespace) -> int:
    schedules = [sch.vp_linear(), sch.cosine(), sch.log_snr_linear()]
    chains = [s.discretize(args.T) for s in schedules]
    ddpm = sch.ddpm_linear(args.T)
    rows = np.unique(np.round(np.linspace(0, args.T, 11)).astype(int))
    names = [s.name for s in schedules] + ["ddpm_linear"]
    print(f"alpha_bar[t] of the discrete chains, T = {args.T} (index 0 is clean data)")
    print("t".rjust(6) + "".join(n.rjust(16) for n in names))
    for t in rows:
        vals = [c.alpha_bar[t] for c in chains] + [ddpm.alpha_bar[t]]
        print(f"{t:6d}" + "".join(f"{v:16.6e}" for v in vals))
    if args.plot:
        from .plot import plot_schedules

        plot_schedules(schedules, args.plot)
        _say(f"wrote {args.plot}")
    _emit(args, {"T": args.T, "alpha_bar_T": {n: float(c.alpha_bar[-1]) for n, c in zip(names, [*chains, ddpm])}})
    return 0


# -- parser --------------------------------------------------------------------------------------


def _model_flags(p: argparse.ArgumentParser, steps_default: int | None) -> None:
    g = p.add_argument_group("model and training (defaults: the '2d' recipe in npdiff/recipes.py)")
    g.add_argument("--steps", type=_positive(int), default=steps_default, help="optimizer steps")
    g.add_argument("--batch-size", dest="batch_size", type=_positive(int), help="points per step")
    g.add_argument("--lr", type=_positive(float), help="peak learning rate")
    g.add_argument("--lr-schedule", dest="lr_schedule", choices=("constant", "cosine"))
    g.add_argument("--width", type=_positive(int), help="hidden units")
    g.add_argument("--depth", type=int, help="residual blocks")
    g.add_argument("--activation", choices=("gelu", "silu"))
    g.add_argument("--parameterization", choices=("eps", "x0", "v"))
    g.add_argument("--coord-embedding", dest="coord_embedding", action="store_true",
                   help="embed each coordinate sinusoidally (tiny-diffusion style)")
    g.add_argument("--schedule", choices=sorted(SCHEDULES))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="npdiff", description="Diffusion models from scratch in NumPy.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="train on 8gaussians, sample, exact NLL against the true entropy, figures")
    p.add_argument("--out", default="npdiff-demo", help="output folder (default ./npdiff-demo)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n", type=_positive(int), default=2000, help="test points for the NLL (default 2000)")
    p.add_argument("--grid", type=_positive(int), default=48, help="grid size of the density heat map (default 48)")
    _model_flags(p, None)
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("train", help="train the MLP denoiser on a data set; writes OUT/model.npz")
    p.add_argument("--data", required=True, help="data set name (see `npdiff datasets`)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--seed", type=int, default=0)
    _model_flags(p, None)
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("sample", help="draw samples from a trained model")
    p.add_argument("--model", required=True, help="model.npz written by `npdiff train`")
    p.add_argument("--sampler", choices=SAMPLERS, default="ode")
    p.add_argument("--steps", type=_positive(int), help="sampler steps (ode: Heun steps; default RK45 adaptive)")
    p.add_argument("--n", type=_positive(int), default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="FILE.npy for the (n, D) samples")
    p.add_argument("--plot", metavar="FILE.png", help="also scatter the samples")
    p.set_defaults(func=_cmd_sample)

    p = sub.add_parser("nll", help="negative log-likelihood of fresh test points, against the true entropy")
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--n", type=_positive(int), default=2000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--method", choices=("ode", "vlb", "both"), default="ode")
    p.add_argument("--rtol", type=_positive(float), default=1e-5)
    p.add_argument("--atol", type=_positive(float), default=1e-5)
    p.add_argument("--save", metavar="FILE.npz", help="write the points and their per-point log-likelihoods")
    p.set_defaults(func=_cmd_nll)

    p = sub.add_parser("datasets", help="list the data sets with their true entropies")
    p.set_defaults(func=_cmd_datasets)

    p = sub.add_parser("schedules", help="print the noise schedules' alpha_bar table (and plot them)")
    p.add_argument("--T", type=_positive(int), default=1000, help="number of discrete steps (default 1000)")
    p.add_argument("--plot", metavar="FILE.png", help="also draw alpha_bar, log-SNR and beta curves")
    p.set_defaults(func=_cmd_schedules)

    for action in sub.choices.values():
        action.add_argument("--json", action="store_true", help="print one JSON object as the last line on stdout")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError, OSError, FloatingPointError) as exc:
        print(f"npdiff {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"npdiff {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
