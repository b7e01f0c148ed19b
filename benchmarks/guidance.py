r"""Conditional models and guidance: what guidance samples, exactly, and how well the trained models condition.

    python benchmarks/guidance.py oracle                     # the exact table on the labelled 8gaussians oracle (~1 min)
    python benchmarks/guidance.py train --models benchmarks/out/guidance-models   # train (or reuse) the conditional models
    python benchmarks/guidance.py 2d --models benchmarks/out/guidance-models      # per-class gaps of the 2-D models
    python benchmarks/guidance.py digits --models benchmarks/out/guidance-models  # bits/dim, accuracy and diversity by w
    python benchmarks/guidance.py uncond --p-uncond 0.3     # the unconditional mode's gap and the guided spread at w = 3

``oracle``: for the labelled 8gaussians oracle, label 0, and w in {0, 0.5, 1, 2, 4}, the tilted target
:math:`p_w(x\mid y) \propto p(x\mid y)^{1+w}p(x)^{-w}` by quadrature (:class:`npdiff.analytic.TiltedTarget`), and

- the exact KL(guided ODE samples || p_w): the ODE's samples are a flow of N(0, I), so their exact log-density is
  the flow's likelihood (:func:`npdiff.likelihood.ode_log_likelihood` on the guided denoiser, the same RK45 at
  rtol = atol = 1e-5 from t_min = 1e-5, where the samples are taken without the last denoising step), and
  KL = E[log p_ode(x) - log p_w(x)] over the samples, with its standard error;
- the mean log p_w of the guided ODE's and the guided DDPM's (1,000 steps, fixed-large variance) samples beside
  -H(p_w), what samples of p_w would average; and their energy distance to samples of p_w (the grid's
  histogram), beside the energy distance between two independent samples of p_w (its noise floor);
- the Gaussian closed form: p(x|y) = N((1, -0.5), diag(0.25, 0.5)), p(x) = N(0, I), w = 2: the guided
  ODE's output Gaussian (its moment equations solved to 1e-12) against npdiff's sampler and likelihood,
  and against the tilted Gaussian.

``train``: the "2d" recipe with ``num_classes`` set (p_uncond 0.1) on 8gaussians and 2spirals, and the
"images" recipe with 10 classes on the digits; checkpoints under ``--models``, reused when present
(``--steps`` shortens every run, for a smoke test).

``2d``: for each model, the exact conditional NLL of 5,000 fresh test points drawn with their labels
(``default_rng(10_000)``, the points of ``benchmarks/quality_2d.py`` and ``npdiff nll --seed 10000``),
as the paired gap mean[log p(x|y) - log p_model(x|y)] per class and averaged, and the same network's
unconditional mode (y = None) against log p(x).

``uncond``: the conditional 8gaussians model (the "2d" recipe with ``--p-uncond`` and ``--set FIELD=VALUE``
overrides) scored twice: its unconditional mode's paired gap on the 5,000 points above, and the guided ODE's
spread at w = 3 (per label, the root mean squared distance of 1,000 RK45 samples to the label's centre, averaged
over the labels) beside the exact labelled oracle's; one row per variant in ``benchmarks/results/guidance_uncond.json``.

``digits``: conditional and unconditional (y = None) test bits/dim of the conditional model (exact ODE,
one dequantization), and for w in {0, 1, 2, 4} guided DDPM samples of each digit scored by a logistic
regression fitted to the training split (the share classified as their label) and their diversity (the
mean distance from each sample to its nearest other sample of the same digit, beside the same figure for
as many real test digits).
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

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from _common import machine_facts, write_results  # noqa: E402

from npdiff.data import toy2d  # noqa: E402
from npdiff.nn import MLPConfig  # noqa: E402
from npdiff.nn.model import DiffusionMLP  # noqa: E402
from npdiff.recipes import recipe  # noqa: E402
from npdiff.train import TrainConfig, Trainer  # noqa: E402

SETS_2D = ("8gaussians", "2spirals")
WEIGHTS = (0.0, 0.5, 1.0, 2.0, 4.0)


# -- training ------------------------------------------------------------------------------------------
def trained(models: Path, name: str, *, seed: int = 0, steps: int | None = None, p_uncond: float = 0.1,
            train_overrides: dict | None = None) -> DiffusionMLP:
    r"""The conditional model of data set ``name`` (a toy set or "digits"), trained once and saved under ``models``.

    ``train_overrides`` (TrainConfig fields) change the recipe; they and a non-default ``p_uncond`` name the file.
    """
    suffix = "" if p_uncond == 0.1 else f"-puncond{p_uncond:g}"
    suffix += "".join(f"-{k}{v}" for k, v in sorted((train_overrides or {}).items()))
    path = models / f"{name}-conditional-seed{seed}{suffix}.npz"
    images = name == "digits"
    model_kw, train_kw, schedule = recipe("images" if images else "2d")
    train_kw["p_uncond"] = p_uncond
    train_kw.update(train_overrides or {})
    if steps is not None:
        train_kw["steps"] = steps
    if images:
        from npdiff.data.images import digits

        data = digits()
        source = data.sample_dequantized_labelled
    else:
        data = toy2d.load(name)
        source = data
    if path.exists():
        trainer = Trainer.load(path, source)
        if trainer.step >= trainer.config.steps:
            return trainer.denoiser(ema=True)
        print(f"resuming {path} at step {trainer.step}", flush=True)
    else:
        rng = np.random.default_rng(seed)
        config = MLPConfig(dim=data.dim, num_classes=data.num_classes, **model_kw)
        trainer = Trainer(DiffusionMLP(config, schedule, rng=rng), source, TrainConfig(**train_kw), rng)
    t0 = time.perf_counter()
    print(f"training {name} ({trainer.config.steps} steps) ...", flush=True)
    trainer.run(progress=True, checkpoint_path=path, checkpoint_every=2000)
    print(f"trained {name} in {time.perf_counter() - t0:.0f} s; saved {path}", flush=True)
    return trainer.denoiser(ema=True)


def cmd_train(args: argparse.Namespace) -> None:
    args.models.mkdir(parents=True, exist_ok=True)
    for name in args.sets:
        trained(args.models, name, seed=args.seed, steps=args.steps, p_uncond=args.p_uncond)


# -- oracle: what guidance samples, exactly ---------------------------------------------------------------
def exact_kl_of_guided_ode(g, target, n: int, rng: np.random.Generator, t_min: float = 1e-5) -> dict:
    r"""KL(samples of the guided ODE || target) by the flow's exact likelihood; the samples and their log-densities."""
    from npdiff.likelihood import ode_log_likelihood
    from npdiff.sample import ode_sample

    res = ode_sample(g, n, rng, t_min=t_min, denoise=False)  # the flow's state at t_min: the density the likelihood gives
    ll = ode_log_likelihood(g, res.x, t_min=t_min)
    d = ll.log_p - target.log_prob(res.x)  # (n,)
    return {"x": res.x, "kl": float(d.mean()), "kl_se": float(d.std(ddof=1) / np.sqrt(n)), "nfe": res.nfe + ll.nfe}


def gaussian_closed_form(w: float = 2.0, t_min: float = 1e-4) -> dict:
    r"""The guided ODE of p(x|y) = N(mu_c, diag v_c) and p(x) = N(0, I): its output Gaussian three ways."""
    from scipy.integrate import solve_ivp

    from npdiff.analytic import GaussianData
    from npdiff.guidance import guided
    from npdiff.likelihood import ode_log_likelihood
    from npdiff.sample import ode_sample
    from npdiff.schedule import vp_linear

    sched = vp_linear()
    mu_c, v_c = np.array([1.0, -0.5]), np.array([0.25, 0.5])

    class TwoGaussians:  # p(x|y) and p(x) both Gaussian: no mixture is, this pair is for the check
        num_classes, dim, schedule = 1, 2, sched
        cond, uncond = GaussianData(mu_c, v_c, sched), GaussianData(np.zeros(2), np.ones(2), sched)

        def eps(self, x, t, y=None):
            return (self.uncond if y is None else self.cond).eps(x, t)

        def eps_and_divergence(self, x, t, y=None):
            return (self.uncond if y is None else self.cond).eps_and_divergence(x, t)

    def rhs(t, z):  # per coordinate dx/dt = A x + b: dm/dt = A m + b, dS/dt = 2 A S
        a, s2, beta = np.sqrt(sched.alpha_bar(t)), sched.sigma(t) ** 2, sched.beta(t)
        pc, pu = 1.0 / (a * a * v_c + s2), 1.0 / (a * a + s2)
        A = -0.5 * beta * (1.0 - (1 + w) * pc + w * pu)
        return np.concatenate([A * z[:2] - 0.5 * beta * (1 + w) * pc * a * mu_c, 2 * A * z[2:]])

    sol = solve_ivp(rhs, (sched.t_max, t_min), np.array([0.0, 0.0, 1.0, 1.0]), rtol=1e-12, atol=1e-12)
    m, S = sol.y[:2, -1], sol.y[2:, -1]
    g = guided(TwoGaussians(), 0, w)
    x = ode_sample(g, 20000, np.random.default_rng(1), t_min=t_min, denoise=False, rtol=1e-8, atol=1e-8).x
    z = m + np.sqrt(S) * np.random.default_rng(2).standard_normal((200, 2))
    ll = ode_log_likelihood(g, z, t_min=t_min, rtol=1e-8, atol=1e-8).log_p
    exact = -0.5 * np.sum((z - m) ** 2 / S + np.log(2 * np.pi * S), axis=1)
    prec = (1 + w) / v_c - w
    return {"w": w, "ode_mean": m, "ode_var": S, "sampled_mean": x.mean(0), "sampled_var": x.var(0),
            "likelihood_err": float(np.max(np.abs(ll - exact))), "tilted_mean": (1 + w) * mu_c / v_c / prec,
            "tilted_var": 1.0 / prec}


def cmd_oracle(args: argparse.Namespace) -> None:
    from npdiff.analytic import TiltedTarget
    from npdiff.guidance import guided
    from npdiff.metrics import energy_distance
    from npdiff.sample import ddpm_sample

    oracle, y, n = toy2d.load("8gaussians").oracle(), 0, args.n
    print(f"\nlabelled 8gaussians oracle, label {y}, {n} samples per sampler, seed {args.seed}")
    print("| w | log Z_w | H(p_w) | KL(ODE samples \\|\\| p_w) | E log p_w: ODE | E log p_w: DDPM | -H(p_w) | "
          "energy dist. ODE | energy dist. DDPM | floor | nfe (ODE + likelihood) | s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    for w in args.w:
        t0 = time.perf_counter()
        target = TiltedTarget(oracle, y, w, half_width=6.5, spacing=0.05)
        g = guided(oracle, y, w)
        rng = np.random.default_rng([args.seed, int(100 * w)])
        ode = exact_kl_of_guided_ode(g, target, n, rng)
        x_ddpm = ddpm_sample(g, n, rng, steps=1000).x
        ref, ref2 = target.sample(n, rng), target.sample(n, rng)

        def mean_se(v):
            return f"{v.mean():.3f} +- {v.std(ddof=1) / np.sqrt(v.size):.3f}"

        print(f"| {w:g} | {target.log_normalizer:.4f} | {target.entropy:.4f} | **{ode['kl']:.4f} +- {ode['kl_se']:.4f}** | "
              f"{mean_se(target.log_prob(ode['x']))} | {mean_se(target.log_prob(x_ddpm))} | {-target.entropy:.3f} | "
              f"{energy_distance(ode['x'], ref):.4f} | {energy_distance(x_ddpm, ref):.4f} | {energy_distance(ref2, ref):.4f} | "
              f"{ode['nfe']} | {time.perf_counter() - t0:.0f} |", flush=True)
        lp_ode, lp_ddpm = target.log_prob(ode["x"]), target.log_prob(x_ddpm)
        rows.append({"w": w, "log_z": target.log_normalizer, "entropy": target.entropy, "kl": ode["kl"],
                     "kl_se": ode["kl_se"], "logp_ode": lp_ode.mean(), "logp_ode_se": lp_ode.std(ddof=1) / np.sqrt(n),
                     "logp_ddpm": lp_ddpm.mean(), "logp_ddpm_se": lp_ddpm.std(ddof=1) / np.sqrt(n),
                     "neg_entropy": -target.entropy, "energy_ode": energy_distance(ode["x"], ref),
                     "energy_ddpm": energy_distance(x_ddpm, ref), "floor": energy_distance(ref2, ref), "nfe": ode["nfe"]})
    write_results("guidance_oracle", rows, notes={"n": n, "seed": args.seed, "label": y})
    r = gaussian_closed_form()
    print(f"\nGaussian closed form, w = {r['w']:g}: p(x|y) = N((1, -0.5), diag(0.25, 0.5)), p(x) = N(0, I)")
    print("| | mean | variance |\n|---|---|---|")
    for label, mk, vk in (("guided ODE, moment equations", "ode_mean", "ode_var"),
                          ("guided ODE, npdiff's sampler (20,000 samples)", "sampled_mean", "sampled_var"),
                          ("tilted Gaussian p(x|y)^(1+w) p(x)^-w", "tilted_mean", "tilted_var")):
        print(f"| {label} | ({r[mk][0]:.4f}, {r[mk][1]:.4f}) | ({r[vk][0]:.4f}, {r[vk][1]:.4f}) |")
    write_results("guidance_gaussian", [
        {"what": label, "mean_1": r[mk][0], "mean_2": r[mk][1], "var_1": r[vk][0], "var_2": r[vk][1]}
        for label, mk, vk in (("guided ODE, moment equations", "ode_mean", "ode_var"),
                              ("guided ODE, npdiff's sampler (20,000 samples)", "sampled_mean", "sampled_var"),
                              ("tilted Gaussian p(x|y)^(1+w) p(x)^-w", "tilted_mean", "tilted_var"))],
        notes={"w": r["w"], "likelihood_err": r["likelihood_err"]})
    print(f"npdiff's exact likelihood of the guided flow against the closed-form Gaussian: max |error| "
          f"{r['likelihood_err']:.1e} nats over 200 points")


# -- 2d: the trained conditional models, class by class ----------------------------------------------------
README_UNCONDITIONAL_GAP = {"8gaussians": (0.0093, 0.0021), "2spirals": (0.0297, 0.0034)}  # the README's quality table


def cmd_2d(args: argparse.Namespace) -> None:
    from npdiff.analytic import TiltedTarget
    from npdiff.guidance import guided
    from npdiff.likelihood import ode_log_likelihood

    for name in args.sets:
        model = trained(args.models, name, seed=args.seed, p_uncond=args.p_uncond)
        data = toy2d.load(name)
        print(f"\n{name}: the conditional '2d' recipe, p_uncond = {args.p_uncond:g}, seed {args.seed}")
        x, y = data.sample_labelled(args.n, np.random.default_rng(10_000 + args.seed))  # the points of quality_2d.py
        print(f"\n{name}: {args.n} test points with their labels (default_rng({10_000 + args.seed})), exact ODE NLL at "
              f"rtol = atol = 1e-5 from t_min = 1e-5")
        print("| class | n | log p(x\\|y) - log p_model(x\\|y) | nfe | s |\n|---|---|---|---|---|")
        gaps, t_all = [], time.perf_counter()
        for c in range(data.num_classes):
            t0 = time.perf_counter()
            i = y == c
            res = ode_log_likelihood(guided(model, c, 0.0), x[i])  # w = 0: the conditional model, one label for the batch
            gap = data.log_prob(x[i], c) - res.log_p
            gaps.append(gap)
            print(f"| {c} | {i.sum()} | {gap.mean():.4f} +- {gap.std(ddof=1) / np.sqrt(gap.size):.4f} | {res.nfe} | "
                  f"{time.perf_counter() - t0:.0f} |", flush=True)
        per_class = np.array([g.mean() for g in gaps])
        allg = np.concatenate(gaps)
        print(f"| mean over classes | {args.n} | **{per_class.mean():.4f}** +- {allg.std(ddof=1) / np.sqrt(allg.size):.4f} | | "
              f"{time.perf_counter() - t_all:.0f} |")
        t0 = time.perf_counter()
        res = ode_log_likelihood(model, x)  # y = None: the same network's unconditional mode
        gap_u = data.log_prob(x) - res.log_p
        ref, ref_se = README_UNCONDITIONAL_GAP.get(name, (np.nan, np.nan))
        print(f"unconditional mode (y = None): paired gap log p(x) - log p_model(x) = **{gap_u.mean():.4f} +- "
              f"{gap_u.std(ddof=1) / np.sqrt(gap_u.size):.4f}** ({res.nfe} nfe, {time.perf_counter() - t0:.0f} s); "
              f"the unconditional recipe's, README: {ref} +- {ref_se}", flush=True)
        if name == "8gaussians":  # the trained model's guided ODE against the tilted target, exactly
            print("\ntrained model, label 0: KL(guided ODE samples || p_w), exact (oracle's p_w by quadrature)")
            print("| w | KL | nfe |\n|---|---|---|")
            for w in WEIGHTS:
                target = TiltedTarget(data.oracle(), 0, w, half_width=6.5, spacing=0.05)
                r = exact_kl_of_guided_ode(guided(model, 0, w), target, 2000, np.random.default_rng([args.seed, 7, int(10 * w)]))
                print(f"| {w:g} | {r['kl']:.4f} +- {r['kl_se']:.4f} | {r['nfe']} |", flush=True)


# -- uncond: the conditional 8gaussians model's unconditional mode and its guided spread ------------------------
def guided_spread(denoiser, centres: np.ndarray, w: float, n: int, rng: np.random.Generator, t_min: float = 1e-5) -> np.ndarray:
    r"""Root mean squared distance of the guided ODE's samples of each label to that label's centre, (C,).

    For label c, ``n`` RK45 samples (rtol = atol = 1e-5, the state at ``t_min``) of the guided field
    :math:`(1 + w)\epsilon(x, t, c) - w\epsilon(x, t, \varnothing)`, and :math:`\sqrt{E\|x - \mu_c\|^2}`.
    """
    from npdiff.guidance import guided
    from npdiff.sample import ode_sample

    out = np.empty(centres.shape[0])
    for c in range(centres.shape[0]):
        x = ode_sample(guided(denoiser, c, w), n, rng, t_min=t_min, denoise=False).x  # (n, 2)
        out[c] = np.sqrt(np.mean(np.sum((x - centres[c]) ** 2, axis=1)))
    return out


def cmd_uncond(args: argparse.Namespace) -> None:
    import json

    from _common import split_overrides

    from npdiff.likelihood import ode_log_likelihood

    data = toy2d.load("8gaussians")
    oracle = data.oracle()
    _, train_over = split_overrides(args.set)
    path = Path(__file__).resolve().parent / "results" / f"{args.results}.json"
    rows = json.loads(path.read_text())["rows"] if path.exists() else []
    t0 = time.perf_counter()
    ref = guided_spread(oracle, oracle.means, args.w, args.n_spread, np.random.default_rng([args.seed, 3]))
    print(f"exact labelled oracle, w = {args.w:g}: spread {ref.mean():.4f} (per label {np.round(ref, 3).tolist()}; "
          f"{time.perf_counter() - t0:.0f} s)", flush=True)
    t0 = time.perf_counter()
    model = trained(args.models, "8gaussians", seed=args.seed, p_uncond=args.p_uncond, train_overrides=train_over)
    train_s = time.perf_counter() - t0
    x = data.sample(args.n, np.random.default_rng(10_000 + args.seed))  # the points of quality_2d.py
    res = ode_log_likelihood(model, x)  # y = None: the network's unconditional mode
    gap = data.log_prob(x) - res.log_p  # (n,)
    spread = guided_spread(model, oracle.means, args.w, args.n_spread, np.random.default_rng([args.seed, 3]))
    _, train_kw, _ = recipe("2d")
    train_kw.update(train_over)
    row = {"p_uncond": args.p_uncond, "steps": train_kw["steps"], "bins": train_kw.get("loss_second_moment_bins", 0),
           "seed": args.seed, "gap": float(gap.mean()), "gap_se": float(gap.std(ddof=1) / np.sqrt(args.n)),
           "w": args.w, "spread": float(spread.mean()), "oracle_spread": float(ref.mean()),
           "spread_ratio": float(spread.mean() / ref.mean()), "train_s": train_s}
    print(f"p_uncond {args.p_uncond:g}, {row['steps']} steps, second-moment bins {row['bins']}: unconditional mode (y = None) "
          f"paired gap **{row['gap']:.4f} +- {row['gap_se']:.4f}**; guided ODE spread at w = {args.w:g}: **{row['spread']:.4f}** "
          f"(oracle {row['oracle_spread']:.4f}, ratio {row['spread_ratio']:.3f}; per label {np.round(spread, 3).tolist()})",
          flush=True)
    key = ("p_uncond", "steps", "bins", "seed", "w")
    rows = [r for r in rows if tuple(r.get(k) for k in key) != tuple(row[k] for k in key)] + [row]
    write_results(args.results, rows, notes={"n": args.n, "n_spread": args.n_spread, "t_min": 1e-5, "rtol": 1e-5,
                                             "test_points": "default_rng(10000 + seed)"})


# -- digits: bits/dim, and guided samples scored --------------------------------------------------------------
README_UNCONDITIONAL_BPD = (2.367, 0.017)  # the README's unconditional "images" recipe, exact ODE, test split


def nearest_other(x: np.ndarray) -> np.ndarray:
    r"""Distance from each row of x (n, D) to its nearest other row, (n,)."""
    d = np.linalg.norm(x[:, None, :] - x[None, :, :], axis=2)
    np.fill_diagonal(d, np.inf)
    return d.min(axis=1)


def cmd_digits(args: argparse.Namespace) -> None:
    from sklearn.linear_model import LogisticRegression

    from npdiff.data.images import digits
    from npdiff.guidance import guided
    from npdiff.likelihood import image_bpd
    from npdiff.sample import ddpm_sample

    d = digits()
    model = trained(args.models, "digits", seed=args.seed)
    print(f"\ndigits: conditional model ({model!r})")
    t0 = time.perf_counter()
    rng = np.random.default_rng(args.seed + 1)
    bpd_c = np.full(d.test.shape[0], np.nan)
    for c in range(10):  # one label per solve: each digit's test images with their label
        i = np.flatnonzero(d.test_labels == c)
        bpd_c[i] = image_bpd(guided(model, c, 0.0), d.test[i], d.K, rng, method="ode").ode.bpd
    bpd_u = image_bpd(model, d.test, d.K, np.random.default_rng(args.seed + 1), method="ode").ode.bpd
    ok = np.isfinite(bpd_c) & np.isfinite(bpd_u)
    diff = bpd_u[ok] - bpd_c[ok]
    print(f"test bits/dim (exact ODE, one dequantization, {ok.sum()} of {ok.size} images finite; "
          f"{time.perf_counter() - t0:.0f} s):")
    def mean_se(v: np.ndarray) -> str:
        return f"{v.mean():.3f} +- {v.std(ddof=1) / np.sqrt(v.size):.3f}"

    print(f"| model | bits/dim |\n|---|---|\n| conditional, log p(x \\| y) | **{mean_se(bpd_c[ok])}** |\n"
          f"| the same network, y = None | {mean_se(bpd_u[ok])} |\n"
          f"| unconditional recipe (README) | {README_UNCONDITIONAL_BPD[0]} +- {README_UNCONDITIONAL_BPD[1]} |")
    print(f"unconditional (y = None) - conditional: {diff.mean():.4f} +- {diff.std(ddof=1) / np.sqrt(diff.size):.4f} "
          f"bits/dim (paired); for exact models the mutual information I(x; y) / D, in [0, log2(10)/64 = "
          f"{np.log2(10) / 64:.4f}]; README unconditional - conditional: {README_UNCONDITIONAL_BPD[0] - bpd_c[ok].mean():.4f}")
    reader = LogisticRegression(max_iter=5000).fit(d.train, d.train_labels)
    acc_real = reader.score(d.test, d.test_labels)
    per = min(np.bincount(d.test_labels))
    real_div = np.mean([nearest_other(d.test[d.test_labels == c][:per]).mean() for c in range(10)])
    print(f"\nguided DDPM samples ({args.steps} steps), {per} per digit; reader: logistic regression on the training "
          f"split, {100 * acc_real:.1f}% on real test digits; diversity of {per} real test digits per digit: {real_div:.3f}")
    print("| w | classified as their label | mean distance to the nearest other sample of its digit | s |\n|---|---|---|---|")
    labels = np.repeat(np.arange(10), per)
    for w in args.w:
        t0 = time.perf_counter()
        x = np.clip(ddpm_sample(guided(model, labels, w), labels.size, np.random.default_rng([args.seed, 3, int(10 * w)]),
                                steps=args.steps).x, -1.0, 1.0)
        acc = np.mean(reader.predict(x) == labels)
        div = np.mean([nearest_other(x[labels == c]).mean() for c in range(10)])
        print(f"| {w:g} | {100 * acc:.1f}% | {div:.3f} | {time.perf_counter() - t0:.0f} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train", help="train (or reuse) the conditional models")
    p.add_argument("--models", type=Path, default=Path("benchmarks/out/guidance-models"))
    p.add_argument("--sets", nargs="+", default=[*SETS_2D, "digits"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, help="shorten every training (a smoke run)")
    p.add_argument("--p-uncond", type=float, default=0.1, help="label dropout probability (default 0.1)")
    p.set_defaults(func=cmd_train)
    p = sub.add_parser("oracle", help="the exact table on the labelled 8gaussians oracle")
    p.add_argument("--n", type=int, default=4000, help="samples per sampler and weight (default 4000)")
    p.add_argument("--w", type=float, nargs="+", default=list(WEIGHTS))
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_oracle)
    p = sub.add_parser("2d", help="per-class exact gaps of the trained 2-D conditional models")
    p.add_argument("--models", type=Path, default=Path("benchmarks/out/guidance-models"))
    p.add_argument("--sets", nargs="+", default=list(SETS_2D))
    p.add_argument("--n", type=int, default=5000, help="test points (default 5000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--p-uncond", type=float, default=0.1, help="the models trained with this label dropout (default 0.1)")
    p.set_defaults(func=cmd_2d)
    p = sub.add_parser("uncond", help="the conditional 8gaussians model's unconditional gap and guided spread")
    p.add_argument("--models", type=Path, default=Path("benchmarks/out/guidance-models"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--p-uncond", type=float, default=0.1, help="label dropout probability (default 0.1)")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="override a TrainConfig field")
    p.add_argument("--n", type=int, default=5000, help="test points of the unconditional gap (default 5000)")
    p.add_argument("--n-spread", type=int, default=1000, help="guided samples per label (default 1000)")
    p.add_argument("--w", type=float, default=3.0, help="guidance weight of the spread (default 3)")
    p.add_argument("--results", default="guidance_uncond", help="benchmarks/results/NAME.json, one row per variant")
    p.set_defaults(func=cmd_uncond)
    p = sub.add_parser("digits", help="bits/dim, accuracy and diversity of the conditional digits model")
    p.add_argument("--models", type=Path, default=Path("benchmarks/out/guidance-models"))
    p.add_argument("--w", type=float, nargs="+", default=[0.0, 1.0, 2.0, 4.0])
    p.add_argument("--steps", type=int, default=1000, help="DDPM steps (default 1000)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_digits)
    args = ap.parse_args()
    print(machine_facts(), flush=True)
    args.func(args)


if __name__ == "__main__":
    main()
