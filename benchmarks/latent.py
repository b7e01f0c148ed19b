r"""Latent diffusion on the 8x8 digits: the autoencoder, the LSGM bound, the cost of a sample and its quality.

    python benchmarks/latent.py            # the full run (~15 min on one core), writes the results files
    python benchmarks/latent.py --quick    # a smoke run: short trainings, few images, nothing written

1. **The KL weight.** At each beta of ``--betas`` the whole pipeline runs: the autoencoder
   (:mod:`npdiff.nn.autoencoder`: MLP encoder and categorical decoder, latent d = ``--latent-dim``, width
   ``--ae-width``, ``--ae-depth`` hidden layers, ``--ae-steps`` of AdamW at ``--ae-lr``, EMA ``--ae-ema``; the
   scale factor :math:`s = 1/\mathrm{std}` of the encoded training means), then the latent denoiser for
   ``--sweep-denoiser-steps``; on the test digits: the reconstruction code length :math:`-\log p(x\mid z)`,
   z ~ q(z | x), and the KL to N(0, I) (their sum is the bound with a plain Gaussian prior), the LSGM bound on
   the first ``--sweep-images`` and the Fréchet distance of ``--samples`` samples (``latent_beta.json``). The
   beta kept is the one with the lowest bound among those whose Fréchet distance is within 10% of the pixel
   MLP's (the issue's quality goal), else the one with the lowest Fréchet distance.
2. **The autoencoder** of that beta is kept.
3. **The latent denoiser**, an MLP of the protocol (the ``"images"`` recipe's, width ``--width``,
   v-prediction, raw coordinates, no weight decay), is trained for ``--steps`` by npdiff's Trainer on
   :math:`s z`, z ~ q(z | x) drawn afresh from the training digits each step.
4. **The bound** of :meth:`npdiff.latent.LatentDiffusion.bound_bits_per_dim` on the test digits (S = 1 draw of z
   per image; exact ODE log-density of the latent, RK45 at rtol = atol = 1e-5): a bound on the discrete
   :math:`-\log_2 P(x)/64`, beside the pixel MLP's dequantized ODE figure from ``digits.json`` (also a bound on it).
5. **Sampling**: 1,000 samples by ancestral DDPM (1,000 steps, fixed-large variance, the sampler of
   ``digits_frechet.json``), decoded to each pixel's most probable level; their Fréchet distance to the test
   digits in the classifier's features (:func:`npdiff.digit_features.digit_frechet`) with its floor, beside the
   pixel MLP's. The cost of a sample in FLOPs: evaluations x the denoiser's matrix products (2 x in x out per
   layer, the embeddings' sines not counted) + the decoder's, the same count for the pixel MLP of the
   ``"images"`` recipe.

One BLAS thread. Results: ``benchmarks/results/NAME.json`` and ``NAME_beta.json``, ``--name`` (default ``latent``).
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))

from _common import RESULTS, write_results  # noqa: E402

from npdiff.checkpoint import save_autoencoder  # noqa: E402
from npdiff.data.images import digits  # noqa: E402
from npdiff.digit_features import digit_frechet  # noqa: E402
from npdiff.latent import LatentDiffusion  # noqa: E402
from npdiff.nn import MLPConfig  # noqa: E402
from npdiff.nn.autoencoder import AutoencoderConfig, kl_to_standard_normal  # noqa: E402
from npdiff.nn.autoencoder_train import train_autoencoder  # noqa: E402
from npdiff.nn.model import DiffusionMLP  # noqa: E402
from npdiff.recipes import recipe  # noqa: E402
from npdiff.schedule import vp_linear  # noqa: E402
from npdiff.train import TrainConfig, Trainer  # noqa: E402

LN2 = np.log(2.0)


def mlp_flops(cfg: MLPConfig) -> int:
    r"""2 x in x out summed over the MLP's layers: the matrix products of one point's evaluation."""
    return sum(2 * i * o for i, o in cfg.layer_shapes)


def test_terms(ae, x: np.ndarray, rng: np.random.Generator) -> tuple[float, float]:
    r"""Mean reconstruction code length and KL to N(0, I) on images x, in bits per pixel (z ~ q(z | x), one draw)."""
    mu, log_var = ae.encode(x)
    z = mu + np.exp(0.5 * log_var) * rng.standard_normal(mu.shape)
    D = x.shape[1]
    return float(-ae.log_prob(x, z).mean() / (D * LN2)), float(kl_to_standard_normal(mu, log_var).mean() / (D * LN2))


def previous(name: str, model: str, column: str):
    r"""A figure of another results file (None when the file or the row is missing)."""
    try:
        with open(os.path.join(RESULTS, f"{name}.json"), encoding="utf-8") as f:
            rows = json.load(f)["rows"]
    except (OSError, KeyError, ValueError):
        return None
    hits = [r.get(column) for r in rows if model in r.values()]  # the row that names the model
    return hits[0] if hits else None


def build(args, data, beta: float, steps: int, progress: bool, ae=None):
    r"""The autoencoder at ``beta`` (trained here unless given) and the latent MLP trained on its scaled latents."""
    t0 = time.perf_counter()
    if ae is None:
        ae_cfg = AutoencoderConfig(latent_dim=args.latent_dim, width=args.ae_width, depth=args.ae_depth, beta=beta)
        ae, _ = train_autoencoder(ae_cfg, data.train, rng=args.seed, steps=args.ae_steps, lr=args.ae_lr,
                                  ema_decay=args.ae_ema, progress=progress)
    ae_s = time.perf_counter() - t0
    mu_train, log_var_train = ae.encode(data.train)  # (N, d)
    s = ae.config.scale_factor

    def latents(n: int, g: np.random.Generator) -> np.ndarray:
        i = g.integers(0, mu_train.shape[0], n)  # fresh z ~ q(z | x) of training digits, scaled
        return s * (mu_train[i] + np.exp(0.5 * log_var_train[i]) * g.standard_normal((n, args.latent_dim)))

    model_kw, train_kw, _ = recipe("images")
    model_kw.update(width=args.width)
    cfg = MLPConfig(dim=args.latent_dim, **model_kw)
    train_kw.update(steps=steps, batch_size=256, weight_decay=0.0)
    trainer = Trainer(DiffusionMLP(cfg, vp_linear(), rng=args.seed), latents, TrainConfig(**train_kw), args.seed)
    t0 = time.perf_counter()
    trainer.run(progress=progress)
    return ae, ae_s, trainer, time.perf_counter() - t0, cfg


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--latent-dim", type=int, default=12)
    p.add_argument("--betas", default="0.02,0.05,0.1,0.3,1.0")
    p.add_argument("--ae-width", type=int, default=64)
    p.add_argument("--ae-depth", type=int, default=1)
    p.add_argument("--ae-steps", type=int, default=1500)
    p.add_argument("--ae-lr", type=float, default=2e-3)
    p.add_argument("--ae-ema", type=float, default=0.995)
    p.add_argument("--sweep-denoiser-steps", type=int, default=10_000)
    p.add_argument("--sweep-images", type=int, default=120)
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--steps", type=int, default=30_000, help="latent denoiser training steps")
    p.add_argument("--images", type=int, default=360, help="test images for the bound")
    p.add_argument("--samples", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--name", default="latent", help="results files NAME.json and NAME_beta.json")
    p.add_argument("--save", default=None, help="folder to save the autoencoder and the latent denoiser in")
    args = p.parse_args()
    if args.quick:
        args.ae_steps, args.steps, args.images, args.samples = 200, 500, 20, 200
        args.sweep_denoiser_steps, args.sweep_images = 300, 10
    data = digits()
    betas = [float(b) for b in args.betas.split(",")]

    # 1. the KL weight: the whole pipeline at each beta, the denoiser briefly trained
    pixel_frechet = previous("digits_frechet", "MLP (images recipe)", "frechet")
    sweep, autoencoders = [], {}
    for beta in betas:
        t0 = time.perf_counter()
        ae, ae_s, trainer, _, _ = build(args, data, beta, args.sweep_denoiser_steps, progress=False)
        autoencoders[beta] = (ae, ae_s)
        ld = LatentDiffusion(ae, trainer.denoiser(ema=True))
        rec, kl = test_terms(ae, data.test, np.random.default_rng(args.seed + 1))
        bound = ld.bound_bits_per_dim(data.test[: args.sweep_images], np.random.default_rng(args.seed + 2), batch_size=60)
        frechet, _ = digit_frechet(ld.sample(args.samples, np.random.default_rng(args.seed + 3), steps=1000).x)
        sweep.append({"beta": beta, "autoencoder_steps": args.ae_steps, "denoiser_steps": args.sweep_denoiser_steps,
                      "reconstruction_bpd": rec, "kl_bpd": kl, "gaussian_prior_bpd": rec + kl,
                      "bound_bpd": float(bound.bpd.mean()), "bound_images": int(bound.bpd.shape[0]), "frechet": frechet,
                      "scale_factor": ae.config.scale_factor, "run_s": time.perf_counter() - t0})
        print(f"beta {beta:g}: reconstruction {rec:.3f} + KL {kl:.3f} = {rec + kl:.3f} bits/pixel; LSGM bound "
              f"{bound.bpd.mean():.3f}; Fréchet {frechet:.3f}", flush=True)
    # the quality goal first (Fréchet within 10% of the pixel MLP's), then the lowest bound
    good = [r for r in sweep if pixel_frechet is not None and r["frechet"] <= 1.1 * pixel_frechet]
    beta = (min(good, key=lambda r: r["bound_bpd"]) if good else min(sweep, key=lambda r: r["frechet"]))["beta"]

    # 2. and 3. that autoencoder, and the latent denoiser trained longer on s z, z ~ q(z | x)
    ae, ae_s = autoencoders[beta]
    ae, _, trainer, den_s, cfg = build(args, data, beta, args.steps, progress=True, ae=ae)
    s = ae.config.scale_factor
    rec_bpd, kl_bpd = test_terms(ae, data.test, np.random.default_rng(args.seed + 1))
    mu_test, _ = ae.encode(data.test)
    exact = float(np.mean(ae.decode(mu_test) == data.test))  # pixels whose most probable level is the true one
    print(f"autoencoder beta {beta:g}: {ae_s:.0f} s, reconstruction {rec_bpd:.3f}, KL {kl_bpd:.3f} bits/pixel, "
          f"scale {s:.4f}, pixels decoded exactly {exact:.3f}; latent denoiser {args.steps} steps in {den_s:.0f} s, "
          f"final loss {trainer.history['loss'][-500:].mean():.4f}", flush=True)
    denoiser = trainer.denoiser(ema=True)
    if args.save:
        save_autoencoder(os.path.join(args.save, "autoencoder.npz"), ae)
        trainer.save(os.path.join(args.save, "latent_denoiser.npz"))
    ld = LatentDiffusion(ae, denoiser)

    # 4. the bound
    t0 = time.perf_counter()
    bound = ld.bound_bits_per_dim(data.test[: args.images], np.random.default_rng(args.seed + 2), batch_size=60)
    bound_s = time.perf_counter() - t0
    n = bound.bpd.shape[0]
    se = lambda a: float(a.std(ddof=1) / np.sqrt(a.size))  # noqa: E731
    print(f"bound on {n} test images: {bound.bpd.mean():.4f} +- {se(bound.bpd):.4f} bits/pixel "
          f"(reconstruction {bound.reconstruction_bpd.mean():.4f}, latent {bound.kl_bpd.mean():.4f}); {bound_s:.0f} s",
          flush=True)

    # 5. samples and their cost
    t0 = time.perf_counter()
    res = ld.sample(args.samples, np.random.default_rng(args.seed + 3), sampler="ddpm", steps=1000)
    sample_s = time.perf_counter() - t0
    frechet, floor = digit_frechet(res.x)
    pixel_cfg = MLPConfig(dim=64, **recipe("images")[0])
    latent_flops = res.nfe * mlp_flops(cfg) + ae.config.decoder_flops()
    pixel_flops = res.nfe * mlp_flops(pixel_cfg)
    pixel_bpd = previous("digits", "test", "bpd_ode")
    pixel_bpd_se = previous("digits", "test", "bpd_ode_se")
    print(f"sampling: {res.nfe} evaluations, {sample_s:.1f} s; Fréchet {frechet:.3f} (floor {floor:.3f}, pixel MLP "
          f"{pixel_frechet}); FLOPs per sample latent {latent_flops:.3g}, pixel {pixel_flops:.3g} "
          f"({pixel_flops / latent_flops:.2f}x)", flush=True)
    if args.quick:
        return

    rows = [
        {"model": f"latent: autoencoder width {args.ae_width} x {args.ae_depth}, d = {args.latent_dim}, beta {beta:g}; "
                  f"MLP width {args.width}", "bpd": bound.bpd.mean(),
         "bpd_se": se(bound.bpd), "bpd_kind": "LSGM bound, discrete decoder", "reconstruction_bpd":
         bound.reconstruction_bpd.mean(), "latent_bpd": bound.kl_bpd.mean(), "images": n, "frechet": frechet,
         "floor": floor, "samples": args.samples, "steps": res.nfe, "denoiser_flops": mlp_flops(cfg),
         "decoder_flops": ae.config.decoder_flops(), "flops_per_sample": latent_flops,
         "pixel_flops_ratio": pixel_flops / latent_flops, "sample_s": sample_s},
        {"model": "pixels: MLP (images recipe)", "bpd": pixel_bpd, "bpd_se": pixel_bpd_se,
         "bpd_kind": "exact ODE, uniformly dequantized", "reconstruction_bpd": None, "latent_bpd": None,
         "images": 360 if pixel_bpd is not None else None, "frechet": pixel_frechet, "floor": floor,
         "samples": 1000 if pixel_frechet is not None else None, "steps": res.nfe, "denoiser_flops": mlp_flops(pixel_cfg),
         "decoder_flops": 0, "flops_per_sample": pixel_flops, "pixel_flops_ratio": 1.0, "sample_s": None},
    ]
    notes = {"latent_dim": args.latent_dim, "beta": beta, "scale_factor": s, "autoencoder_steps": args.ae_steps,
             "autoencoder_width": ae.config.width, "autoencoder_depth": ae.config.depth, "autoencoder_lr": args.ae_lr,
             "autoencoder_ema_decay": args.ae_ema, "beta_rule": "lowest bound among Fréchet <= 1.1 x the pixel MLP's",
             "autoencoder_params": ae.config.n_params, "autoencoder_train_s": ae_s,
             "autoencoder_test_reconstruction_bpd": rec_bpd, "autoencoder_test_kl_bpd": kl_bpd,
             "pixels_decoded_exactly": exact, "denoiser_steps": args.steps, "denoiser_train_s": den_s,
             "denoiser_params": cfg.n_params, "bound_draws": bound.draws, "bound_nfe": bound.nfe, "bound_s": bound_s,
             "bound_log_q_nats": bound.log_q.mean(), "bound_log_prior_nats": bound.log_prior.mean(),
             "sampler": "ddpm, 1000 steps, fixed-large variance; decoded to the most probable level",
             "pixel_figures": "bpd from digits.json (test split), frechet from digits_frechet.json (same sampler)",
             "seed": args.seed}
    write_results(args.name, rows, notes=notes)
    write_results(f"{args.name}_beta", sweep, notes={"latent_dim": args.latent_dim, "test_images": 360, "chosen_beta": beta,
                                               "pixel_frechet": pixel_frechet})


if __name__ == "__main__":
    main()
