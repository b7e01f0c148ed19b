r"""The ``npdiff`` command line (also ``python -m npdiff``).

Commands: ``demo`` (the main job: train, sample, exact NLL, figures), ``train``, ``sample``,
``nll``, ``datasets`` and ``schedules``. Human-readable output and progress bars go to
stderr; with ``--json`` stdout holds exactly one line, a JSON object. ``--out`` names what a
command writes: a folder for ``train`` and ``demo`` (several files), a file for ``sample`` and
``nll``. A user mistake (unknown data set or flag, missing or corrupt model file, a model for
other data, bad numbers) is one clear line on stderr, with the closest name where there is
one, and exit status 2, never a traceback.

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
import difflib
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from . import schedule as sch
from .nn.activations import ACTIVATIONS
from .nn.config import COORDS
from .parameterization import PREDICTIONS
from .reverse import VARIANCES
from .sample.fast import FAST_SAMPLERS
from .sample.grids import GRIDS
from .train import LR_SCHEDULES

SAMPLERS = ("ddpm", "ddim", "ode", "sde")
FAST = tuple(n for n in FAST_SAMPLERS if n not in SAMPLERS)  # few-step samplers; their --steps counts evaluations
SCHEDULES = {"vp_linear": sch.vp_linear, "cosine": sch.cosine, "log_snr_linear": sch.log_snr_linear}
IMAGE_SETS = ("digits",)


class UserError(ValueError):
    r"""A mistake of the user's, reported as one line."""


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _emit(args: argparse.Namespace, payload: dict[str, Any]) -> None:
    if args.json:
        print(json.dumps(payload, sort_keys=True))


def _table(args: argparse.Namespace, line: str) -> None:
    r"""A line of a command's table: on stdout, or on stderr when stdout is reserved for the JSON line."""
    print(line, file=sys.stderr if args.json else sys.stdout)


def _closest(word: str, choices) -> str:
    r"""`` (did you mean X?)`` for the choice closest to ``word``, or nothing when none is close."""
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {match[0]}?)" if match else ""


def _load_data(name: str):
    from .data import toy2d

    if name in toy2d.NAMES:
        return toy2d.load(name)
    if name in IMAGE_SETS:
        from .data.images import digits

        return digits()  # ImportError naming the extra when scikit-learn is missing
    raise UserError(f"unknown data set {name!r}{_closest(name, toy2d.NAMES + IMAGE_SETS)}; choose one of "
                    f"{', '.join(toy2d.NAMES + IMAGE_SETS)} (see `npdiff datasets`)")


def _is_images(data) -> bool:
    from .data.images import ImageSet

    return isinstance(data, ImageSet)


def _load_model(path: str):
    r"""The checkpoint at ``path``, a model file or a folder holding ``model.npz`` (what ``train --out`` writes)."""
    from . import checkpoint

    if not os.path.exists(path):
        raise UserError(f"model {path!r} does not exist (train one with `npdiff train --data NAME --out DIR`, "
                        "then pass DIR or DIR/model.npz)")
    if os.path.isdir(path):
        if not os.path.isfile(os.path.join(path, "model.npz")):
            raise UserError(f"model folder {path!r} holds no model.npz (the file `npdiff train --out {path}` writes)")
        path = os.path.join(path, "model.npz")
    ck = checkpoint.load(path)  # ValueError with the file name when it is not a checkpoint
    return ck, ck.model


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


def _check_data_name(ck, data, args: argparse.Namespace) -> None:
    r"""Refuse a model trained on another data set (the checkpoint records its name), unless the user insists."""
    if ck.data_name is None or ck.data_name == data.name:
        return  # older checkpoints carry no name: nothing to compare
    if not args.other_data:
        raise UserError(f"model {args.model!r} was trained on {ck.data_name!r}, not on {data.name!r}; "
                        "pass --other-data to evaluate it on another data set anyway")
    _say(f"note: model {args.model!r} was trained on {ck.data_name!r}; evaluating it on {data.name!r} as asked")


def _npy_path(path: str) -> Path:
    r"""The file ``np.save`` writes for ``path``: it appends ``.npy`` unless the name ends with it."""
    return Path(path if path.endswith(".npy") else path + ".npy")


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


class _Help(argparse.HelpFormatter):
    r"""Each flag's help ends with its default, unless the text already says it or there is none."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        no_default = action.default is None or action.default is False or action.default is argparse.SUPPRESS
        if action.option_strings and not no_default and "default" not in text:
            text += " (default: %(default)s)"
        return text


class _Parser(argparse.ArgumentParser):
    r"""argparse with its errors on one line naming the command's ``--help``, and the closest flag to a typo."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Help)
        super().__init__(*args, **kwargs)
        self.commands: dict[str, argparse.ArgumentParser] = {}  # filled for the top-level parser

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

    def parse_args(self, args=None, namespace=None):  # type: ignore[override]
        # the subcommand's parser, not the top-level one, reports a flag it does not know
        ns, extras = self.parse_known_args(args, namespace)
        if extras:
            parser = self.commands.get(getattr(ns, "command", None), self)
            flags = [s for a in parser._actions for s in a.option_strings]
            hints = [f"{e.split('=')[0]}{_closest(e.split('=')[0], flags)}" for e in extras if e.startswith("-")]
            hints = [h for h in hints if "did you mean" in h]
            parser.error(f"unrecognized arguments: {' '.join(extras)}" + (f"; {', '.join(hints)}" if hints else ""))
        return ns


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
    last = max(1, len(loss) // 100)
    final = float(np.mean(loss[-last:]))  # mean of the last 1% of steps: one step's loss is noisy
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        save(out / "model.npz", trainer.denoiser(ema=False, dtype=np.float32), optimizer=trainer.optimizer,
             step=trainer.step, rng=trainer.rng, history=history, train_config=trainer.config.to_dict(),
             data_name=data.name)
    stats = {"steps": int(trainer.step), "seconds": round(seconds, 3), "steps_per_s": round(trainer.step / seconds, 1),
             "final_loss": final, "loss_space": trainer.loss_kind}
    _say(f"trained {trainer.step} steps in {seconds:.1f} s ({stats['steps_per_s']} steps/s); final loss {final:.4f} "
         f"(squared error per dimension in {trainer.loss_kind} space, mean of the last {last} steps)")
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


def _eps_moments(model, data, T: int, seed: int, steps: int | None = None):
    r"""What the "analytic" variance needs, on request: E||eps||^2 / D at the chain's times, from training data
    (the train split of images; fresh samples of a 2-D set, which its model trained on)."""
    from .reverse import chain_for
    from .reverse_variance import eps_moments

    x = data.train if _is_images(data) else data.sample(10_000, np.random.default_rng(seed + 1_000_003))
    chain = chain_for(model.schedule, T, steps)
    _say(f"estimating E||eps||^2 / D at {chain.T} steps on {x.shape[0]} training points for the analytic variance ...")
    return eps_moments(model, x, chain, np.random.default_rng(seed + 1_000_033))


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
    out["nll_true_nats"] = float(-log_p_true.mean())
    arrays: dict[str, np.ndarray] = {"x": x, "log_p_true": log_p_true}
    t0 = time.perf_counter()
    if method in ("ode", "both"):
        _say(f"exact ODE likelihood of {n} points (RK45, rtol={rtol}, atol={atol}) ...")
        res = ode_log_likelihood(model, x, rtol=rtol, atol=atol, progress=True)
        gap = log_p_true - res.log_p
        out.update(nll_nats=float(-res.log_p.mean()), gap_nats=float(gap.mean()),
                   gap_se=_se(gap), ode_nfe=int(res.nfe))
        arrays["log_p_model"] = res.log_p
    if method in ("vlb", "both"):
        _say(f"variational bound of {n} points (T = {T}, all terms) ...")
        moments = _eps_moments(model, data, T, seed) if variance == "analytic" else None
        res_v = vlb(model, x, T, rng=rng, variance=variance, eps_moments=moments, progress=True)
        gap_v = log_p_true + res_v.total
        out.update(vlb_nats=float(res_v.total.mean()), vlb_gap_nats=float(gap_v.mean()),
                   vlb_gap_se=_se(gap_v), vlb_nfe=int(res_v.nfe))
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
    # the paired gap is NLL_model - NLL_true on the same points, not NLL_model - entropy: the points' own
    # NLL under the true density differs from the entropy by sampling error, which the pairing cancels
    if "label" in r:
        _say(f"class {r['label']}: the conditional model's log p(x | y) against the true log p(x | y); on these "
             f"{r['n']} points the true NLL is {r['nll_true_nats']:.4f} nats")
    else:
        _say(f"on these {r['n']} points the true density's NLL is {r['nll_true_nats']:.4f} nats "
             f"(the true entropy, its expected NLL, is {r['true_entropy_nats']:.4f})")
    if "nll_nats" in r:
        _say(f"exact NLL {r['nll_nats']:.4f} nats ({r['ode_nfe']} evaluations); paired gap "
             f"{r['gap_nats']:.4f}{_pm(r['gap_se'])} nats = mean of log p_true - log p_model over the same points, "
             "an estimate of KL(data || model)")
    if "vlb_nats" in r:
        _say(f"VLB {r['vlb_nats']:.4f} nats ({r['vlb_nfe']} evaluations); paired gap "
             f"{r['vlb_gap_nats']:.4f}{_pm(r['vlb_gap_se'])} nats (of a bound on the NLL, so above the exact gap)")


def _cmd_nll(args: argparse.Namespace) -> int:
    from .data.images import DIGITS_BASELINES
    from .likelihood import image_bpd

    _check_out_file(args.out, "--out")
    data = _load_data(args.data)
    ck, model = _load_model(args.model)
    _check_dims(model, data, args.model)
    _check_data_name(ck, data, args)
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
        moments = _eps_moments(model, data, T, args.seed) if variance == "analytic" and args.method != "ode" else None
        res = image_bpd(model, x, data.K, np.random.default_rng(args.seed), method=args.method, T=T,
                        variance=variance, eps_moments=moments, draws=args.draws, rtol=args.rtol, atol=args.atol,
                        progress=True)
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
    if args.out:
        out = args.out if args.out.endswith(".npz") else args.out + ".npz"  # np.savez appends it otherwise
        np.savez(out, **arrays)
        _say(f"wrote the per-point values to {out}")
    _emit(args, r)
    return 0


# -- sample ------------------------------------------------------------------------------------


def _run_sampler(model, name: str, n: int, seed: int, steps: int | None, record: bool = False, *,
                 grid: str | None = None, variance: str | None = None, data=None):
    from . import sample

    rng = np.random.default_rng(seed)
    kw: dict[str, Any] = {"record": record, "progress": True}
    if name in FAST:
        return sample.fast_sample(model, n, rng, sampler=name, nfe=steps or 20, grid=grid, **kw)
    if grid is not None:
        if name in ("ddpm", "sde") or (name == "ode" and not steps):
            raise UserError(f"--grid applies to ddim, ode with --steps (Heun) and {', '.join(FAST)}; "
                            f"{name}{'' if steps else ' without --steps'} takes its own times")
        kw["grid"] = grid
    if name == "ddpm":
        if variance == "analytic":
            kw["eps_moments"] = _eps_moments(model, data, 1000, seed, steps)
        return sample.ddpm_sample(model, n, rng, **({"steps": steps} if steps else {}), variance=variance or "large", **kw)
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
    _check_out_file(args.out, "--out")  # a folder given as --out is refused, not filled with FOLDER.npy
    out = _npy_path(args.out)
    _check_out_file(str(out), "--out")
    _check_out_file(args.plot, "--plot")
    if args.variance is not None and args.sampler != "ddpm":
        raise UserError(f"--variance is the reverse variance of the ddpm sampler; --sampler {args.sampler} has none")
    if args.variance == "analytic" and not args.data:
        raise UserError("--variance analytic estimates E||eps||^2 from training data: give the model's --data")
    ck, model = _load_model(args.model)
    label = _check_label(model, args.label)
    if args.guidance is not None and label is None:
        raise UserError("--guidance needs --label (the class to guide towards)")
    if label is not None:  # classifier-free guidance; weight 0 is the conditional model
        _say(f"class {label}, guidance weight {args.guidance or 0.0:g}")
        model = _guided(model, label, args.guidance or 0.0)
    data = _load_data(args.data) if args.data else None
    if data is not None:
        _check_dims(model, data, args.model)
        _check_data_name(ck, data, args)
    t0 = time.perf_counter()
    res = _run_sampler(model, args.sampler, args.n, args.seed, args.steps, grid=args.grid, variance=args.variance,
                       data=data)
    seconds = time.perf_counter() - t0
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
            real = data.sample(res.x.shape[0], np.random.default_rng(args.seed + 1)) if data is not None else None
            plot_samples(res.x, real, args.plot, title=f"{args.sampler} samples" + (f" of {data.name}" if data else ""))
        _say(f"wrote {args.plot}")
    _emit(args, {"n": int(res.x.shape[0]), "nfe": int(res.nfe), "seconds": round(seconds, 3), "out": str(out),
                 "sampler": args.sampler, "grid": args.grid,
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
    seconds: dict[str, float] = {}

    def lap(phase: str, t0: float) -> None:
        seconds[phase] = round(time.perf_counter() - t0, 1)

    t0 = time.perf_counter()
    _say("[1/4] training")
    model, history, train_stats = _train(data, args, out=out, seed=args.seed)
    lap("train", t0)
    t0 = time.perf_counter()
    _say("[2/4] exact likelihood of fresh test points")
    r, _ = _nll(model, data, args.n, args.seed + 1, "ode")
    _report_nll(r)
    lap("nll", t0)
    t0 = time.perf_counter()
    _say("[3/4] sampling 2000 points with the probability-flow ODE (RK45)")
    res = _run_sampler(model, "ode", 2000, args.seed + 2, None, record=True)
    lap("sample", t0)
    t0 = time.perf_counter()
    _say(f"[4/4] the learned density on a {args.grid}x{args.grid} grid (exact ODE likelihood, rtol = atol = 1e-3)")
    g = np.linspace(-4.5, 4.5, args.grid)
    gx, gy = np.meshgrid(g, g, indexing="xy")
    grid = np.stack([gx.ravel(), gy.ravel()], 1)  # (G*G, 2)
    log_p = ode_log_likelihood(model, grid, rtol=1e-3, atol=1e-3, progress=True).log_p.reshape(gx.shape)
    lap("density", t0)
    written = {
        "model.npz": "the trained model (EMA weights for evaluation, training state to resume)",
        "samples.png": "2000 samples beside 2000 data points",
        "trajectory.png": "the samples' path along the probability-flow ODE, from noise at t = 1 to data",
        "density.png": "the learned density beside the true one",
        "loss.png": "the training loss per step",
    }
    plot_samples(res.x, data.sample(2000, np.random.default_rng(args.seed + 3)), out / "samples.png",
                 title="8gaussians: data and samples")
    plot_trajectory(res.trajectory, res.times, out / "trajectory.png")
    plot_loss(history["loss"], out / "loss.png", space=train_stats["loss_space"])
    plot_density(gx, gy, log_p, data.log_prob(grid).reshape(gx.shape), out / "density.png")
    total = time.perf_counter() - t_start
    for name, what in written.items():
        _say(f"  {out / name}: {what}")
    _say(f"demo finished in {total:.0f} s (" + ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items()) + ")")
    _emit(args, {**r, **train_stats, "out": str(out), "total_seconds": round(total, 1), "phase_seconds": seconds})
    return 0


# -- datasets, schedules -------------------------------------------------------------------------


def _cmd_datasets(args: argparse.Namespace) -> int:
    from .data import toy2d

    rows = []
    for name in toy2d.NAMES:
        d = toy2d.load(name)
        rows.append({"name": name, "dim": d.dim, "entropy_nats": round(float(d.entropy), 5)})
        _table(args, f"{name:14s} D={d.dim}  true entropy {d.entropy:.4f} nats")
    images = []
    try:
        d = _load_data("digits")
        images.append({"name": d.name, "dim": d.dim, "K": d.K, "shape": list(d.shape), "train": int(d.train.shape[0]),
                       "test": int(d.test.shape[0])})
        _table(args, f"{d.name:14s} D={d.dim}  {d.shape[0]}x{d.shape[1]} images on {d.K} levels, "
                     f"{d.train.shape[0]} train / {d.test.shape[0]} test (bits/dim)")
    except ImportError as exc:
        _table(args, f"{'digits':14s} unavailable: {exc}")
    _emit(args, {"datasets": rows, "images": images})
    return 0


def _cmd_schedules(args: argparse.Namespace) -> int:
    _check_out_file(args.plot, "--plot")
    names = sorted(SCHEDULES)  # the choices of --schedule, in its order
    schedules = [SCHEDULES[n]() for n in names]
    chains = [s.discretize(args.T) for s in schedules]
    ddpm = sch.ddpm_linear(args.T)
    rows = np.unique(np.round(np.linspace(0, args.T, 11)).astype(int))
    _table(args, f"alpha_bar[t] of the discrete chains, T = {args.T} (index 0 is clean data): the schedules "
                 "`--schedule NAME` trains with, and for comparison")
    _table(args, "Ho et al.'s discrete ddpm_linear table (no --schedule: a denoiser takes continuous time; "
                 "vp_linear is its continuous version)")
    _table(args, "t".rjust(6) + "".join(n.rjust(16) for n in names) + "ddpm_linear".rjust(18))
    for t in rows:
        _table(args, f"{t:6d}" + "".join(f"{c.alpha_bar[t]:16.6e}" for c in chains) + f"{ddpm.alpha_bar[t]:18.6e}")
    if args.plot:
        from .plot import plot_schedules

        plot_schedules(schedules, args.plot)
        _say(f"wrote {args.plot}")
    _emit(args, {"T": args.T, "alpha_bar_T": {n: float(c.alpha_bar[-1]) for n, c in zip(names, chains)},
                 "reference_alpha_bar_T": {"ddpm_linear": float(ddpm.alpha_bar[-1])}})
    return 0


# -- parser --------------------------------------------------------------------------------------


def _recipes_say(field: str) -> str:
    r"""What the recipes choose for ``field``, e.g. ``"default: 512 (2d recipe), 128 (images recipe)"``."""
    import dataclasses

    from .nn import MLPConfig
    from .recipes import RECIPES
    from .train import TrainConfig

    fallback = {f.name: f.default for f in dataclasses.fields(MLPConfig) + dataclasses.fields(TrainConfig)}
    values = {name: r["model"].get(field, r["train"].get(field, fallback[field])) for name, r in RECIPES.items()}
    if len(set(values.values())) == 1:
        return f"default: {next(iter(values.values()))}, every recipe"
    return "default: " + ", ".join(f"{v} ({name} recipe)" for name, v in values.items())


def _model_flags(p: argparse.ArgumentParser, steps_default: int | None) -> None:
    g = p.add_argument_group("model and training (defaults: the '2d' recipe, or 'images' for digits: npdiff/recipes.py)")
    g.add_argument("--steps", type=_positive(int, MAX_STEPS), default=steps_default,
                   help="optimizer steps" + ("" if steps_default else f" ({_recipes_say('steps')})"))
    g.add_argument("--batch-size", dest="batch_size", type=_positive(int, MAX_BATCH),
                   help=f"points per step ({_recipes_say('batch_size')})")
    g.add_argument("--lr", type=_positive(float, 1.0), help=f"peak learning rate ({_recipes_say('lr')})")
    g.add_argument("--lr-schedule", dest="lr_schedule", choices=LR_SCHEDULES,
                   help=f"the learning rate over the run ({_recipes_say('lr_schedule')})")
    g.add_argument("--weight-decay", dest="weight_decay", type=_in_range(float, 0.0, 1.0),
                   help=f"AdamW's decoupled weight decay ({_recipes_say('weight_decay')})")
    g.add_argument("--ema-decay", dest="ema_decay", type=_in_range(float, 0.0, 1.0, hi_open=True),
                   help=f"decay of the weights' moving average, the weights evaluated ({_recipes_say('ema_decay')})")
    g.add_argument("--width", type=_positive(int, MAX_WIDTH), help=f"hidden units ({_recipes_say('width')})")
    g.add_argument("--depth", type=_in_range(int, 0, MAX_DEPTH), help=f"residual blocks ({_recipes_say('depth')})")
    g.add_argument("--activation", choices=sorted(ACTIVATIONS),
                   help=f"the hidden layers' nonlinearity ({_recipes_say('activation')})")
    g.add_argument("--parameterization", choices=PREDICTIONS,
                   help=f"what the network predicts ({_recipes_say('parameterization')})")
    g.add_argument("--coords", choices=COORDS,
                   help=f"what the network sees of x: x itself, its sinusoidal embedding, or both ({_recipes_say('coords')})")
    g.add_argument("--coord-scale", dest="coord_scale", type=_positive(float, 1000.0),
                   help=f"scale of the coordinates' sinusoidal embedding ({_recipes_say('coord_scale')})")
    g.add_argument("--schedule", choices=sorted(SCHEDULES),
                   help="the noise schedule (default: vp_linear; see `npdiff schedules`)")
    g.add_argument("--conditional", action="store_true",
                   help="a class-conditional model of a labelled data set (its labels dropped with probability --p-uncond)")
    g.add_argument("--p-uncond", dest="p_uncond", type=_in_range(float, 0.0, 1.0),
                   help="with --conditional: probability of training a point without its label (default 0.1)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="npdiff", description="Diffusion models from scratch in NumPy. Start with `npdiff demo`; "
                                                "each command's flags: npdiff COMMAND --help.")
    parser.add_argument("--version", action="version", version=f"npdiff {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    seed_help = "seed of the command's random draws: weights, data, times and noise"

    p = sub.add_parser("demo", help="train on 8gaussians, exact NLL against the true entropy, samples, figures")
    p.add_argument("--out", metavar="DIR", default="npdiff-demo",
                   help="folder for model.npz and the figures (created if missing)")
    p.add_argument("--seed", type=_SEED, default=0, help=seed_help)
    p.add_argument("--n", type=_positive(int, MAX_POINTS), default=2000, help="fresh test points for the exact NLL")
    p.add_argument("--grid", type=_positive(int, 1000), default=48, help="points per side of the density heat map")
    _model_flags(p, DEMO_STEPS)
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("train", help="train the MLP denoiser on a data set; writes DIR/model.npz")
    p.add_argument("--data", required=True, help="the data set's name (see `npdiff datasets`)")
    p.add_argument("--out", metavar="DIR", required=True, help="folder for model.npz (created if missing)")
    p.add_argument("--seed", type=_SEED, default=0, help=seed_help)
    _model_flags(p, None)
    p.set_defaults(func=_cmd_train)

    model_help = "the model: the folder `npdiff train --out` wrote, or its model.npz"
    other_data_help = "evaluate the model on --data although it was trained on another set"
    p = sub.add_parser("sample", help="draw samples from a trained model; writes FILE.npy")
    p.add_argument("--model", required=True, help=model_help)
    p.add_argument("--sampler", choices=SAMPLERS + FAST, default="ode",
                   help="ddpm, ddim, ode (RK45, or Heun with --steps), sde, or a few-step ODE sampler "
                        f"({', '.join(FAST)}; `--sampler dpmpp2m --steps 20` is a good fast choice)")
    p.add_argument("--steps", type=_positive(int, MAX_T),
                   help="sampler steps (default: ddpm 1000, ddim 250, sde 1000; ode: adaptive RK45, or this many "
                        "Heun steps; few-step samplers: denoiser evaluations, default 20, plus one to denoise)")
    p.add_argument("--grid", choices=GRIDS, help="where the steps fall: uniform in t, in log-SNR, Karras et al.'s rho = 7 "
                                                 "or quadratic (default: log_snr; edm: karras; ddim and ode: uniform)")
    p.add_argument("--n", type=_positive(int, MAX_POINTS), default=1000, help="number of samples")
    p.add_argument("--seed", type=_SEED, default=0, help="seed of the starting noise and the samplers' noise")
    p.add_argument("--out", metavar="FILE.npy", required=True, help="file for the (n, D) samples (.npy is appended if missing)")
    p.add_argument("--plot", metavar="FILE.png", help="also draw the samples (2-D: a scatter; images: a grid)")
    p.add_argument("--data", help="the model's data set: drawn beside the samples in --plot")
    p.add_argument("--other-data", dest="other_data", action="store_true", help=other_data_help)
    p.add_argument("--variance", choices=VARIANCES,
                   help="ddpm: the reverse variance (default large; analytic needs --data, trace one divergence per step)")
    p.add_argument("--label", type=_in_range(int, 0, MAX_CLASSES), help="a conditional model: the class to sample")
    p.add_argument("--guidance", type=_in_range(float, 0.0, 100.0),
                   help="with --label: classifier-free guidance weight w >= 0 (default 0, the conditional model)")
    p.set_defaults(func=_cmd_sample)

    p = sub.add_parser("nll", help="negative log-likelihood of fresh test points (2-D: against the true entropy; "
                                   "images: bits/dim of the test split)")
    p.add_argument("--model", required=True, help=model_help)
    p.add_argument("--data", required=True, help="the data set to score (see `npdiff datasets`); the model's own, "
                                                 "unless --other-data")
    p.add_argument("--n", type=_positive(int, MAX_POINTS),
                   help="2-D: fresh points (default 2000); images: the first n of the split (default all)")
    p.add_argument("--split", choices=("test", "train"), default="test", help="images: which split")
    p.add_argument("--seed", type=_SEED, default=0, help="seed of the fresh test points (2-D), the dequantization "
                                                         "and the VLB's noise")
    p.add_argument("--method", choices=("ode", "vlb", "both"), default="ode",
                   help="the exact probability-flow ODE likelihood, the variational bound, or both")
    p.add_argument("--T", type=_positive(int, MAX_T), help="steps of the VLB's chain (default 1000; images: the recipe's)")
    p.add_argument("--variance", choices=VARIANCES,
                   help="the VLB's reverse variance (default large; analytic estimates E||eps||^2 on training data, "
                        "trace is per point from the exact divergence)")
    p.add_argument("--draws", type=_positive(int, 1000), default=1, help="images: dequantization draws per image")
    p.add_argument("--rtol", type=_in_range(float, 1e-13, 0.1), default=1e-5, help="RK45's relative tolerance")
    p.add_argument("--atol", type=_in_range(float, 1e-14, 0.1), default=1e-5, help="RK45's absolute tolerance")
    p.add_argument("--out", "--save", dest="out", metavar="FILE.npz",
                   help="also write the points and their per-point log-likelihoods (.npz is appended if missing)")
    p.add_argument("--other-data", dest="other_data", action="store_true", help=other_data_help)
    p.add_argument("--label", type=_in_range(int, 0, MAX_CLASSES),
                   help="a conditional model: score points of this class by log p(x | y)")
    p.set_defaults(func=_cmd_nll)

    p = sub.add_parser("datasets", help="list the data sets with their true entropies")
    p.set_defaults(func=_cmd_datasets)

    p = sub.add_parser("schedules", help="print the noise schedules' alpha_bar table (and plot them)")
    p.add_argument("--T", type=_positive(int, MAX_T), default=1000, help="number of discrete steps")
    p.add_argument("--plot", metavar="FILE.png", help="also draw alpha_bar, log-SNR and beta curves")
    p.set_defaults(func=_cmd_schedules)

    for action in sub.choices.values():
        action.add_argument("--json", action="store_true",
                            help="print one JSON object on stdout, and nothing else there (the rest goes to stderr)")
    parser.commands = dict(sub.choices)
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
