r"""The ``npdiff`` command line (also ``python -m npdiff``).

Commands: ``demo`` (the main job: train, sample, exact NLL, figures), ``train``, ``sample``,
``nll``, ``datasets`` and ``schedules``. Human-readable output and progress bars go to
stderr; with ``--json`` the last line on stdout is one JSON object. A user mistake (unknown
data set, missing or corrupt model file, a model for other data dimensions, bad numbers)
is one clear line on stderr and exit status 2, never a traceback.

Image data (``--data digits``) trains on the train split (the ``"images"`` recipe) and
``nll`` reports bits/dim of the test split (``--split train`` for the other) by the exact
ODE likelihood of dequantized images and by the VLB with the discretized decoder
(``--method both``); a solve that diverges is reported as such, never as a number.

Labels: ``train --conditional`` trains a class-conditional model on a labelled data set (the
toy sets' own labels, the digits' classes) with label dropout; ``sample --label Y --guidance W``
draws classifier-free guided samples of class Y; ``nll --label Y`` scores points of class Y by
the conditional model's :math:`\log p(x \mid y)`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from . import schedule as sch
from .nn.activations import ACTIVATIONS
from .nn.config import COORDS
from .parameterization import PREDICTIONS
from .reverse import VARIANCES
from .train import LR_SCHEDULES

SAMPLERS = ("ddpm", "ddim", "ode", "sde")
SCHEDULES = {"vp_linear": sch.vp_linear, "cosine": sch.cosine, "log_snr_linear": sch.log_snr_linear}
IMAGE_SETS = ("digits",)


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
    if name in IMAGE_SETS:
        from .data.images import digits

        return digits()  # ImportError naming the extra when scikit-learn is missing
    raise UserError(f"unknown data set {name!r}; choose one of {', '.join(toy2d.NAMES + IMAGE_SETS)} "
                    "(see `npdiff datasets`)")


def _is_images(data) -> bool:
    from .data.images import ImageSet

    return isinstance(data, ImageSet)


def _load_model(path: str):
    from . import checkpoint

    if not os.path.exists(path):
        raise UserError(f"model file {path!r} does not exist (train one with `npdiff train --out DIR`)")
    ck = checkpoint.load(path)  # ValueError with the file name when it is not a checkpoint
    return ck, ck.denoiser(ema=True)


def _check_out_file(path: str | None, flag: str) -> None:
    r"""Refuse an output file that could not be written, before the work that would fill it."""
    if path is None:
        return
    parent = Path(path).parent
    if os.path.isdir(path):
        raise UserError(f"{flag} {path!r} is a folder, expected a file name")
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise UserError(f"{flag} {path!r}: folder {str(parent)!r} does not exist or is not writable")


def _check_out_dir(path: str, flag: str) -> None:
    r"""Refuse an output folder that could not be created or written, before training for it."""
    p = Path(path)
    while not p.exists() and p != p.parent:  # the nearest ancestor that exists must be a writable folder
        p = p.parent
    if not p.is_dir() or not os.access(p, os.W_OK):
        raise UserError(f"{flag} {path!r}: {str(p)!r} is not a writable folder")


def _check_dims(model, data, model_path: str) -> None:
    if model.dim != data.dim:
        raise UserError(f"model {model_path!r} was trained on {model.dim}-D data, but data set {data.name!r} is {data.dim}-D")


def _positive(kind: type, maximum: float | None = None):
    r"""A positive int or finite float, at most ``maximum``: a bigger count would only exhaust memory or time."""
    most = "" if maximum is None else f" at most {maximum:,}" if kind is int else f" at most {maximum:g}"

    def parse(text: str):
        try:
            value = kind(text)
        except (ValueError, OverflowError):
            raise argparse.ArgumentTypeError(f"expected a positive {kind.__name__}{most}, got {text!r}") from None
        if not value > 0 or (kind is float and not np.isfinite(value)) or (maximum is not None and value > maximum):
            raise argparse.ArgumentTypeError(f"expected a positive {kind.__name__}{most}, got {text!r}")
        return value

    parse.__name__ = f"positive {kind.__name__}"
    return parse


def _in_range(kind: type, lo: float, hi: float, *, hi_open: bool = False):
    r"""A finite number in [lo, hi] (or [lo, hi))."""
    right = ")" if hi_open else "]"

    def parse(text: str):
        try:
            value = kind(text)
        except (ValueError, OverflowError):
            value = None
        if value is None or not np.isfinite(value) or value < lo or value > hi or (hi_open and value == hi):
            article = "an" if kind is int else "a"
            raise argparse.ArgumentTypeError(f"expected {article} {kind.__name__} in [{lo}, {hi}{right}, got {text!r}")
        return value

    parse.__name__ = f"{kind.__name__} in range"
    return parse


# Upper bounds of the counts: far beyond any sensible run, far below what would exhaust memory or never end.
MAX_STEPS = 10_000_000
MAX_BATCH = 65_536
MAX_WIDTH = 4_096
MAX_DEPTH = 64
MAX_POINTS = 1_000_000
MAX_T = 100_000
MAX_CLASSES = 100_000
_SEED = _in_range(int, 0, 2**63 - 1)


class _Parser(argparse.ArgumentParser):
    r"""argparse with its errors on one line (the usage is one ``--help`` away)."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# -- train -------------------------------------------------------------------------------------


def _train(data, args: argparse.Namespace, *, out: Path | None, seed: int):
    from .checkpoint import save
    from .nn import MLPConfig
    from .nn.model import DiffusionMLP
    from .recipes import recipe
    from .train import TrainConfig, Trainer

    images = _is_images(data)
    model_kw, train_kw, schedule = recipe("images" if images else "2d")
    for field in ("width", "depth", "parameterization", "activation"):
        if getattr(args, field, None) is not None:
            model_kw[field] = getattr(args, field)
    for field in ("coords", "coord_scale"):
        if getattr(args, field, None) is not None:
            model_kw[field] = getattr(args, field)
    for field in ("steps", "batch_size", "lr", "lr_schedule", "weight_decay", "ema_decay", "p_uncond"):
        if getattr(args, field, None) is not None:
            train_kw[field] = getattr(args, field)
    conditional = getattr(args, "conditional", False)
    if conditional:
        if not getattr(data, "num_classes", 0):
            raise UserError(f"--conditional needs a labelled data set; {data.name!r} has no labels")
        model_kw["num_classes"] = data.num_classes
    if getattr(args, "schedule", None):
        schedule = SCHEDULES[args.schedule]()
    rng = np.random.default_rng(seed)
    model = DiffusionMLP(MLPConfig(dim=data.dim, **model_kw), schedule, rng=rng)
    source, what = data, data.name
    if images:  # the train split only; fresh uniform dequantization per batch unless the recipe says otherwise
        from .recipes import RECIPES

        dequantize = RECIPES["images"].get("data", {}).get("dequantize", True)
        source = data.sample_dequantized if dequantize else data.sample
        if conditional:
            source = data.sample_dequantized_labelled if dequantize else data.sample_labelled
        what = f"{data.name} (train split, {data.train.shape[0]} images{', dequantized' if dequantize else ''})"
    trainer = Trainer(model, source, TrainConfig(**train_kw), rng)
    _say(f"training {model!r} on {what} for {trainer.config.steps} steps (batch {trainer.config.batch_size})")
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
    _check_out_dir(args.out, "--out")
    data = _load_data(args.data)
    out = Path(args.out)
    _, _, stats = _train(data, args, out=out, seed=args.seed)
    _say(f"wrote {out / 'model.npz'}")
    _emit(args, {**stats, "model": str(out / "model.npz")})
    return 0


# -- nll ---------------------------------------------------------------------------------------


def _image_eval_default(key: str, fallback: Any) -> Any:
    from .recipes import RECIPES

    return RECIPES.get("images", {}).get("eval", {}).get(key, fallback)


def _se(values: np.ndarray) -> float | None:
    r"""Standard error of the mean; None for one value (JSON has no NaN)."""
    return float(values.std(ddof=1) / np.sqrt(values.size)) if values.size > 1 else None


def _pm(se: float | None) -> str:
    return "" if se is None else f" +- {se:.4f}"


def _nll(model, data, n: int, seed: int, method: str, *, rtol: float = 1e-5, atol: float = 1e-5, T: int = 1000,
         variance: str = "large", label: int | None = None) -> tuple[dict, dict]:
    from .likelihood import ode_log_likelihood, vlb

    rng = np.random.default_rng(seed)
    if label is None:
        x = data.sample(n, rng)  # (n, D) fresh test points
        log_p_true = data.log_prob(x)
        out: dict[str, Any] = {"n": n, "true_entropy_nats": float(data.entropy)}
    else:  # fresh points of class `label`: the first n of labelled draws, log p(x | y) against the conditional model
        if label >= getattr(data, "num_classes", 0):
            raise UserError(f"--label {label} is not a class of data set {data.name!r} ({data.num_classes} classes)")
        x = np.empty((0, data.dim))
        while x.shape[0] < n:
            xs, ys = data.sample_labelled(max(n, 64) * data.num_classes, rng)
            x = np.concatenate([x, xs[ys == label]])
        x = x[:n]
        log_p_true = data.log_prob(x, label)
        model = _guided(model, label, 0.0)
        out = {"n": n, "label": label}
    arrays: dict[str, np.ndarray] = {"x": x, "log_p_true": log_p_true}
    t0 = time.perf_counter()
    if method in ("ode", "both"):
        _say(f"exact ODE likelihood of {n} points (RK45, rtol={rtol}, atol={atol}) ...")
        res = ode_log_likelihood(model, x, rtol=rtol, atol=atol)
        gap = log_p_true - res.log_p
        out.update(nll_nats=float(-res.log_p.mean()), gap_nats=float(gap.mean()),
                   gap_se=_se(gap), nfe=int(res.nfe))
        arrays["log_p_model"] = res.log_p
    if method in ("vlb", "both"):
        _say(f"variational bound of {n} points (T = {T}, all terms) ...")
        res_v = vlb(model, x, T, rng=rng, variance=variance)
        gap_v = log_p_true + res_v.total
        out.update(vlb_nats=float(res_v.total.mean()), vlb_gap_nats=float(gap_v.mean()),
                   vlb_gap_se=_se(gap_v))
        out.setdefault("nfe", 0)
        out["nfe"] += int(res_v.nfe)
        arrays["vlb_nats"] = res_v.total
    out["seconds"] = round(time.perf_counter() - t0, 3)
    return out, arrays


#: Training steps of ``npdiff demo``: ~40% of the "2d" recipe's 26k, so the demo ends within two minutes on one core.
DEMO_STEPS = 10_000


def _report_image_nll(r: dict, where: str) -> None:
    if "ode_diverged" in r:
        if r["bpd_ode"] is None:
            rest = (f" (the other {r['n'] - r['ode_diverged']}: {r['bpd_ode_finite']:.4f})"
                    if r["bpd_ode_finite"] is not None else "")
            _say(f"exact ODE likelihood: diverged on {r['ode_diverged']} of {r['n']} {where} images{rest}")
        else:
            _say(f"exact ODE likelihood (uniform dequantization, exact trace): {r['bpd_ode']:.4f}"
                 f"{_pm(r['bpd_ode_se'])} bits/dim on {r['n']} {where} images")
    if "vlb_diverged" in r:
        head = f"VLB (T = {r['vlb_T']}, {r['vlb_variance']} variance, decoder with {r['K']} levels)"
        if r["bpd_vlb"] is None:
            _say(f"{head}: not finite on {r['vlb_diverged']} of {r['n']} {where} images")
        else:
            _say(f"{head}: {r['bpd_vlb']:.4f}{_pm(r['bpd_vlb_se'])} bits/dim on {r['n']} {where} images")


def _report_nll(r: dict) -> None:
    if "label" in r:
        _say(f"class {r['label']}: the conditional model's log p(x | y) against the true log p(x | y)")
    if "nll_nats" in r and "true_entropy_nats" not in r:
        _say(f"exact NLL {r['nll_nats']:.4f} nats: paired gap {r['gap_nats']:.4f}{_pm(r['gap_se'])} nats "
             f"({r['nfe']} evaluations)")
    elif "nll_nats" in r:
        _say(f"exact NLL {r['nll_nats']:.4f} nats vs true entropy {r['true_entropy_nats']:.4f}: "
             f"paired gap {r['gap_nats']:.4f}{_pm(r['gap_se'])} nats ({r['nfe']} evaluations)")
    if "vlb_nats" in r:
        _say(f"VLB {r['vlb_nats']:.4f} nats: gap {r['vlb_gap_nats']:.4f}{_pm(r['vlb_gap_se'])} nats")


def _cmd_nll(args: argparse.Namespace) -> int:
    from .data.images import DIGITS_BASELINES
    from .likelihood import image_bpd

    _check_out_file(args.save, "--save")
    data = _load_data(args.data)
    _, model = _load_model(args.model)
    _check_dims(model, data, args.model)
    label = _check_label(model, args.label)
    if _is_images(data):
        x = data.split(args.split)
        if label is not None:  # the split's images of that class, scored by log p(x | y)
            x = x[(data.train_labels if args.split == "train" else data.test_labels) == label]
            model = _guided(model, label, 0.0)
        x = x[: args.n] if args.n else x
        T = args.T or _image_eval_default("vlb_T", 50)
        variance = args.variance or _image_eval_default("vlb_variance", "large")
        where = f"{args.split}-split"
        _say(f"bits/dim of {x.shape[0]} {where} {data.name} images ({args.method}) ...")
        t0 = time.perf_counter()
        res = image_bpd(model, x, data.K, np.random.default_rng(args.seed), method=args.method, T=T,
                        variance=variance, draws=args.draws, rtol=args.rtol, atol=args.atol)
        r = {**res.summary(), "data": data.name, "split": args.split, "seconds": round(time.perf_counter() - t0, 2),
             **({"label": label} if label is not None else {})}
        _report_image_nll(r, where)
        if args.split == "test":
            _say("for reference, simple models on the test split: "
                 + "; ".join(f"{k} {v:.3f}" for k, v in DIGITS_BASELINES.items()))
        arrays = {"x": x}
        if res.ode is not None:
            arrays["bpd_ode"] = res.ode.bpd  # NaN where the flow diverged
        if res.vlb is not None:
            arrays.update(bpd_vlb=res.bpd_vlb, vlb_terms_bpd=res.vlb_terms_bpd.mean(axis=0))  # (B,), (T+1,)
    else:
        r, arrays = _nll(model, data, args.n or 2000, args.seed, args.method, rtol=args.rtol, atol=args.atol,
                         T=args.T or 1000, variance=args.variance or "large", label=label)
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


def _check_label(model, label: int | None) -> int | None:
    r"""--label against the model's classes, before any work."""
    if label is None:
        return None
    if not model.num_classes:
        raise UserError("--label needs a conditional model (trained with --conditional); this model has no labels")
    if label >= model.num_classes:
        raise UserError(f"--label must be in 0..{model.num_classes - 1} for this model, got {label}")
    return label


def _guided(model, label: int, w: float):
    from .guidance import guided

    return guided(model, label, w)


def _cmd_sample(args: argparse.Namespace) -> int:
    _check_out_file(args.out, "--out")
    _check_out_file(args.plot, "--plot")
    _, model = _load_model(args.model)
    label = _check_label(model, args.label)
    if args.guidance is not None and label is None:
        raise UserError("--guidance needs --label (the class to guide towards)")
    if label is not None:  # classifier-free guidance; weight 0 is the conditional model
        _say(f"class {label}, guidance weight {args.guidance or 0.0:g}")
        model = _guided(model, label, args.guidance or 0.0)
    data = _load_data(args.data) if args.data else None
    if data is not None:
        _check_dims(model, data, args.model)
    t0 = time.perf_counter()
    res = _run_sampler(model, args.sampler, args.n, args.seed, args.steps)
    seconds = time.perf_counter() - t0
    out = Path(args.out)
    np.save(out, res.x)
    _say(f"wrote {res.x.shape[0]} samples to {out} ({res.nfe} evaluations, {seconds:.1f} s)")
    if args.plot:
        from .plot import plot_image_grid, plot_samples

        side = math.isqrt(model.dim)
        if data is not None and _is_images(data):
            real = data.test[np.random.default_rng(args.seed + 1).permutation(data.test.shape[0])[:res.x.shape[0]]]
            plot_image_grid(res.x[:100], real[:100], args.plot, shape=data.shape, title=f"{args.sampler} samples")
        elif model.dim > 2 and side * side == model.dim:  # square images without their data set
            plot_image_grid(res.x[:100], None, args.plot, shape=(side, side), title=f"{args.sampler} samples")
        else:
            plot_samples(res.x, None, args.plot, title=f"{args.sampler} samples")
        _say(f"wrote {args.plot}")
    _emit(args, {"n": int(res.x.shape[0]), "nfe": int(res.nfe), "seconds": round(seconds, 3), "out": str(out),
                 **({"label": label, "guidance": args.guidance or 0.0} if label is not None else {})})
    return 0


# -- demo --------------------------------------------------------------------------------------


def _cmd_demo(args: argparse.Namespace) -> int:
    from .likelihood import ode_log_likelihood
    from .plot import plot_density, plot_loss, plot_samples, plot_trajectory

    _check_out_dir(args.out, "--out")
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
    images = []
    try:
        d = _load_data("digits")
        images.append({"name": d.name, "dim": d.dim, "K": d.K, "shape": list(d.shape), "train": int(d.train.shape[0]),
                       "test": int(d.test.shape[0])})
        print(f"{d.name:14s} D={d.dim}  {d.shape[0]}x{d.shape[1]} images on {d.K} levels, "
              f"{d.train.shape[0]} train / {d.test.shape[0]} test (bits/dim)")
    except ImportError as exc:
        print(f"{'digits':14s} unavailable: {exc}")
    _emit(args, {"datasets": rows, "images": images})
    return 0


def _cmd_schedules(args: argparse.Namespace) -> int:
    _check_out_file(args.plot, "--plot")
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
    g = p.add_argument_group("model and training (defaults: the '2d' or 'images' recipe in npdiff/recipes.py)")
    g.add_argument("--steps", type=_positive(int, MAX_STEPS), default=steps_default, help="optimizer steps")
    g.add_argument("--batch-size", dest="batch_size", type=_positive(int, MAX_BATCH), help="points per step")
    g.add_argument("--lr", type=_positive(float, 1.0), help="peak learning rate")
    g.add_argument("--lr-schedule", dest="lr_schedule", choices=LR_SCHEDULES)
    g.add_argument("--weight-decay", dest="weight_decay", type=_in_range(float, 0.0, 1.0),
                   help="AdamW's decoupled weight decay")
    g.add_argument("--ema-decay", dest="ema_decay", type=_in_range(float, 0.0, 1.0, hi_open=True),
                   help="decay of the weights' moving average")
    g.add_argument("--width", type=_positive(int, MAX_WIDTH), help="hidden units")
    g.add_argument("--depth", type=_in_range(int, 0, MAX_DEPTH), help="residual blocks")
    g.add_argument("--activation", choices=sorted(ACTIVATIONS))
    g.add_argument("--parameterization", choices=PREDICTIONS)
    g.add_argument("--coords", choices=COORDS, help="what the network sees of x: x itself, its sinusoidal embedding, or both")
    g.add_argument("--coord-scale", dest="coord_scale", type=_positive(float, 1000.0),
                   help="scale of the coordinates' sinusoidal embedding (the 2d recipe: 8; tiny-diffusion: 25)")
    g.add_argument("--schedule", choices=sorted(SCHEDULES))
    g.add_argument("--conditional", action="store_true",
                   help="a class-conditional model of a labelled data set (its labels dropped with probability --p-uncond)")
    g.add_argument("--p-uncond", dest="p_uncond", type=_in_range(float, 0.0, 1.0),
                   help="with --conditional: probability of training a point without its label (default 0.1)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="npdiff", description="Diffusion models from scratch in NumPy.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="train on 8gaussians, sample, exact NLL against the true entropy, figures")
    p.add_argument("--out", default="npdiff-demo", help="output folder (default ./npdiff-demo)")
    p.add_argument("--seed", type=_SEED, default=0)
    p.add_argument("--n", type=_positive(int, MAX_POINTS), default=2000, help="test points for the NLL (default 2000)")
    p.add_argument("--grid", type=_positive(int, 1000), default=48, help="grid size of the density heat map (default 48)")
    _model_flags(p, DEMO_STEPS)
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("train", help="train the MLP denoiser on a data set; writes OUT/model.npz")
    p.add_argument("--data", required=True, help="data set name (see `npdiff datasets`)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--seed", type=_SEED, default=0)
    _model_flags(p, None)
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("sample", help="draw samples from a trained model")
    p.add_argument("--model", required=True, help="model.npz written by `npdiff train`")
    p.add_argument("--sampler", choices=SAMPLERS, default="ode")
    p.add_argument("--steps", type=_positive(int, MAX_T), help="sampler steps (ode: Heun steps; default RK45 adaptive)")
    p.add_argument("--n", type=_positive(int, MAX_POINTS), default=1000)
    p.add_argument("--seed", type=_SEED, default=0)
    p.add_argument("--out", required=True, help="FILE.npy for the (n, D) samples")
    p.add_argument("--plot", metavar="FILE.png", help="also draw the samples (2-D: a scatter; images: a grid)")
    p.add_argument("--data", help="the model's data set (images: real test images beside the samples)")
    p.add_argument("--label", type=_in_range(int, 0, MAX_CLASSES), help="a conditional model: the class to sample")
    p.add_argument("--guidance", type=_in_range(float, 0.0, 100.0),
                   help="with --label: classifier-free guidance weight w >= 0 (default 0, the conditional model)")
    p.set_defaults(func=_cmd_sample)

    p = sub.add_parser("nll", help="negative log-likelihood of fresh test points (2-D: against the true entropy; "
                                   "images: bits/dim of the test split)")
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--n", type=_positive(int, MAX_POINTS),
                   help="2-D: fresh points (default 2000); images: the first n of the split (default all)")
    p.add_argument("--split", choices=("test", "train"), default="test", help="images: which split (default test)")
    p.add_argument("--seed", type=_SEED, default=1)
    p.add_argument("--method", choices=("ode", "vlb", "both"), default="ode")
    p.add_argument("--T", type=_positive(int, MAX_T), help="steps of the VLB's chain (default 1000; images: the recipe's)")
    p.add_argument("--variance", choices=VARIANCES, help="the VLB's fixed reverse variance (default large)")
    p.add_argument("--draws", type=_positive(int, 1000), default=1, help="images: dequantization draws per image (default 1)")
    p.add_argument("--rtol", type=_in_range(float, 1e-13, 0.1), default=1e-5, help="RK45's relative tolerance")
    p.add_argument("--atol", type=_in_range(float, 1e-14, 0.1), default=1e-5, help="RK45's absolute tolerance")
    p.add_argument("--save", metavar="FILE.npz", help="write the points and their per-point log-likelihoods")
    p.add_argument("--label", type=_in_range(int, 0, MAX_CLASSES),
                   help="a conditional model: score points of this class by log p(x | y)")
    p.set_defaults(func=_cmd_nll)

    p = sub.add_parser("datasets", help="list the data sets with their true entropies")
    p.set_defaults(func=_cmd_datasets)

    p = sub.add_parser("schedules", help="print the noise schedules' alpha_bar table (and plot them)")
    p.add_argument("--T", type=_positive(int, MAX_T), default=1000, help="number of discrete steps (default 1000)")
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
    except (ValueError, TypeError, OSError, FloatingPointError, ImportError) as exc:
        print(f"npdiff {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"npdiff {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
