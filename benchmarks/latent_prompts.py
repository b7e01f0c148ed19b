r"""A prompt model on the autoencoder's latent (Stable Diffusion's two ideas together): adherence, quality, cost.

    python benchmarks/latent_prompts.py            # trains (or reuses) the latent prompt model, samples, scores
    python benchmarks/latent_prompts.py --quick    # a smoke run: a short training, few samples, nothing written

The autoencoder is the wide one of ``benchmarks/latent.py --name latent_wide --save benchmarks/out/latent_wide``
(width 256 x 2, d = 12, beta 0.25), read from ``--autoencoder``. The latent prompt model is
:class:`npdiff.nn.prompt_mlp.PromptMLP` of dimension d = 12 (``--width``, default 128, against the pixel model's 256;
3 residual blocks, 8 query tokens, text width 32; cosine schedule, eps-prediction, as the pixel prompt model of
``benchmarks/prompt_adherence.py``), trained by npdiff's Trainer with the pixel model's recipe
(:func:`npdiff.data.prompts.training_sampler`: the HELD_OUT cells left out, attribute dropout 0.3, the empty prompt
0.1; batch 128, lr 2e-3 with cosine decay, EMA 0.995) for ``--train-steps`` (12,000, as the pixel model) on the scaled latents
:math:`s z`, z ~ q(z | x) drawn afresh for every batch's digits. It is kept in ``benchmarks/out/``.

Then, as ``benchmarks/prompt_adherence.py`` does, for each w of ``--w``: ``--n`` samples for each of its ten seen
and three held-out prompts from the classifier-free guided model (:func:`npdiff.guidance.guided`, the empty prompt
as the unconditional model) by deterministic DDIM (eta = 0, ``--steps`` steps) on the latent, the same starting
noise at every w, decoded to each pixel's most probable level (:class:`npdiff.latent.LatentDiffusion`), and read
back from the pixels (:func:`npdiff.adherence.prompt_adherence`). Static thresholding is left out: the latent is not
bounded to [-1, 1] as the pixels are.

Quality: the Fréchet distance (:func:`npdiff.digit_features.digit_frechet`) of ``--frechet-samples`` samples of the
empty prompt (the unguided, unconditional model) by the same sampler, beside the pixel prompt model's by the same
sampler with and without static thresholding (its checkpoint ``--pixel-model``, the one of
``benchmarks/prompt_adherence.py``; its adherence figures are those of ``prompt_adherence.json`` and, without
thresholding, ``prompt_adherence_unclipped.json``). Cost: FLOPs per guided sample, 2 x steps evaluations (the prompt and the
empty prompt) x the network's matrix products (the MLP's layers, the text encoder's and the cross-attention's
projections and attention products) + one pass of the decoder, against the pixel prompt model's.

One BLAS thread. Results: ``benchmarks/results/NAME.json`` (adherence) and ``NAME_cost.json`` (quality and cost),
``--name`` (default ``latent_prompts``).
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from _common import RESULTS, machine_facts, write_results  # noqa: E402

from npdiff import checkpoint  # noqa: E402
from npdiff.adherence import prompt_adherence  # noqa: E402
from npdiff.data import prompts as P  # noqa: E402
from npdiff.data.images import digits  # noqa: E402
from npdiff.digit_features import digit_frechet  # noqa: E402
from npdiff.guidance import guided  # noqa: E402
from npdiff.latent import LatentDiffusion  # noqa: E402
from npdiff.nn.prompt_mlp import PromptMLP, PromptMLPConfig  # noqa: E402
from npdiff.sample import ddim_sample  # noqa: E402
from npdiff.schedule import cosine  # noqa: E402
from npdiff.train import TrainConfig, Trainer  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"
#: the seen and held-out prompts of benchmarks/prompt_adherence.py
SEEN = tuple(P.prompt_text(k, k % 3, (k + 2) % 3) for k in range(10))
HELD = tuple(f"{ink} {P.DIGIT_WORDS[k]} {slant}" for k, ink, slant in P.HELD_OUT)
#: the pixel prompt model of benchmarks/prompt_adherence.py
PIXEL_CONFIG = PromptMLPConfig(dim=64, width=256, depth=3, emb_dim=32, text_width=32, query_tokens=8)


def prompt_mlp_flops(cfg: PromptMLPConfig) -> int:
    r"""2 x multiply-adds of one point's evaluation: the MLP's layers, the text encoder, the cross-attention.

    The encoder: L + 1 tokens through four C x C projections and the (L + 1)^2 C score and value products; the
    cross-attention: Q query tokens of H / Q features projected to C and back, L + 1 keys and values projected,
    and the Q (L + 1) C score and value products. Softmax, norms and the embeddings' sines are not counted.
    """
    C, Q, Hq, T = cfg.text_width, cfg.query_tokens, cfg.width // cfg.query_tokens, cfg.max_words + 1
    mlp = sum(2 * i * o for i, o in cfg.mlp.layer_shapes)
    encoder = 2 * (4 * T * C * C + 2 * T * T * C)
    cross = 2 * (2 * Q * Hq * C + 2 * T * C * C + 2 * Q * T * C)
    return mlp + encoder + cross


def latent_sampler(ae, x: np.ndarray, labels: np.ndarray):
    r"""The prompts' training sampler with each image replaced by a fresh scaled latent s z, z ~ q(z | x)."""
    pixels, s = P.training_sampler(x, labels, 0.3, 0.1), ae.config.scale_factor

    def sample(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        xb, ids = pixels(n, rng)  # (n, 64), (n, L)
        mu, log_var = ae.encode(xb)  # (n, d) each
        return s * (mu + np.exp(0.5 * log_var) * rng.standard_normal(mu.shape)), ids

    sample.images = pixels.images
    return sample


def trained(ae, cfg: PromptMLPConfig, steps: int, seed: int, path: Path) -> tuple[PromptMLP, float | None]:
    r"""The EMA latent prompt model (module docstring), from ``path`` when it is there; and its training seconds."""
    if path.exists():
        return checkpoint.load(path, arch="prompt_mlp").model, None
    ds = digits()
    trainer = Trainer(PromptMLP(cfg, cosine(), rng=seed), latent_sampler(ae, ds.train, ds.train_labels),
                      TrainConfig(steps=steps, batch_size=128, lr=2e-3, lr_schedule="cosine", ema_decay=0.995),
                      rng=seed + 1)
    t0 = time.perf_counter()
    trainer.run(progress=False, checkpoint_path=path)
    train_s = time.perf_counter() - t0
    print(f"trained {steps} steps in {train_s:.0f} s, final loss {trainer.history['loss'][-500:].mean():.4f} -> {path}",
          flush=True)
    return trainer.denoiser(), train_s


def pixel_adherence(name: str = "prompt_adherence") -> dict:
    r"""The pixel prompt model's rows of ``NAME.json`` by (set, w), or {} when it is missing."""
    try:
        with open(os.path.join(RESULTS, f"{name}.json"), encoding="utf-8") as f:
            rows = json.load(f)["rows"]
    except (OSError, KeyError, ValueError):
        return {}
    return {(r["set"], r["w"]): r for r in rows if r["set"] in ("seen", "held out")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--autoencoder", default=str(OUT / "latent_wide" / "autoencoder.npz"))
    ap.add_argument("--pixel-model", default=str(OUT / "prompt_mlp_steps12000_seed0.npz"))
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--train-steps", type=int, default=12000)
    ap.add_argument("--name", default="latent_prompts", help="the results file's stem")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n", type=int, default=100, help="samples per prompt")
    ap.add_argument("--steps", type=int, default=50, help="DDIM steps")
    ap.add_argument("--frechet-samples", type=int, default=1000)
    ap.add_argument("--w", type=float, nargs="+", default=[0.0, 1.0, 2.0, 3.0, 5.0])
    args = ap.parse_args()
    if args.quick:
        args.train_steps, args.n, args.frechet_samples, args.w = 200, 10, 100, [0.0, 3.0]
    print(machine_facts(), flush=True)
    ae = checkpoint.load_autoencoder(args.autoencoder)
    d, s = ae.latent_dim, ae.config.scale_factor
    cfg = PromptMLPConfig(dim=d, width=args.width, depth=3, emb_dim=32, text_width=32, query_tokens=8)
    path = OUT / f"latent_prompt_mlp_w{args.width}_steps{args.train_steps}_seed{args.seed}{'_quick' if args.quick else ''}.npz"
    model, train_s = trained(ae, cfg, args.train_steps, args.seed, path)

    prompts = [p for p in SEEN + HELD for _ in range(args.n)]  # (N,) the prompt of each sample
    held = np.array([p in HELD for p in prompts])  # (N,)
    ids = P.tokenize(prompts, length=P.MAX_WORDS)  # (N, 4)
    rows, pixel, unclipped = [], pixel_adherence(), pixel_adherence("prompt_adherence_unclipped")
    for w in args.w:
        t0 = time.perf_counter()
        # the same starting noise at every w: DDIM (eta = 0) draws only x_T from the rng
        x = LatentDiffusion(ae, guided(model, ids, w)).sample(len(prompts), np.random.default_rng(args.seed + 7),
                                                              sampler="ddim", steps=args.steps).x  # (N, 64)
        for split, sel in (("seen", ~held), ("held out", held)):
            a = prompt_adherence(x[sel], [p for p, h in zip(prompts, sel) if h])
            px = pixel.get((split, w), {})
            rows.append({"set": split, "prompts": len(HELD if split == "held out" else SEEN), "w": w,
                         "class": a.class_share, "ink": a.ink_share, "slant": a.slant_share, "all": a.all_share,
                         "pixel_class": px.get("class"), "pixel_ink": px.get("ink"), "pixel_slant": px.get("slant"),
                         "pixel_all": px.get("all"), "pixel_unclipped_all": unclipped.get((split, w), {}).get("all"),
                         "samples": int(sel.sum())})
            print(rows[-1], f"({time.perf_counter() - t0:.0f} s)", flush=True)

    # quality of the unguided (empty-prompt) model, latent and pixels, by the same sampler
    t0 = time.perf_counter()
    ld = LatentDiffusion(ae, model)  # eps(x, t) with no y: the empty prompt
    res = ld.sample(args.frechet_samples, np.random.default_rng(args.seed + 3), sampler="ddim", steps=args.steps)
    sample_s = time.perf_counter() - t0
    frechet, floor = digit_frechet(res.x)
    pixel_frechet = {"static": None, "none": None}  # the pixel model with its benchmark's thresholding, and without
    if os.path.exists(args.pixel_model):
        pm = checkpoint.load(args.pixel_model, arch="prompt_mlp").model
        for th in pixel_frechet:
            xp = ddim_sample(pm, args.frechet_samples, np.random.default_rng(args.seed + 3), steps=args.steps, eta=0.0,
                             threshold=th).x
            pixel_frechet[th], _ = digit_frechet(np.clip(xp, -1.0, 1.0))
    latent_eval, pixel_eval = prompt_mlp_flops(cfg), prompt_mlp_flops(PIXEL_CONFIG)
    latent_flops = 2 * args.steps * latent_eval + ae.config.decoder_flops()
    pixel_flops = 2 * args.steps * pixel_eval
    print(f"empty prompt, {args.frechet_samples} samples: Fréchet {frechet:.3f} (floor {floor:.3f}; pixel prompt model "
          f"{pixel_frechet}); {sample_s:.1f} s. FLOPs per guided sample: latent {latent_flops:.3g}, pixels "
          f"{pixel_flops:.3g} ({pixel_flops / latent_flops:.2f}x)", flush=True)
    if args.quick:
        return
    write_results(args.name, rows, notes={
        "seen prompts": list(SEEN), "held-out prompts": list(HELD), "seed": args.seed,
        "autoencoder": f"width {ae.config.width} x {ae.config.depth}, d = {d}, beta {ae.config.beta:g}, scale {s:.4f}",
        "latent model": f"PromptMLP dim {d}, width {args.width}, depth 3, query tokens 8, text width 32; cosine, eps",
        "latent_params": cfg.n_params, "pixel_params": PIXEL_CONFIG.n_params, "train steps": args.train_steps,
        "pixel train steps": 12000, "train_s": train_s,
        "sampler": f"DDIM eta=0, {args.steps} steps on the latent, no thresholding; decoded to the most probable level",
        "pixel figures": "adherence from prompt_adherence.json (DDIM 50 steps, static thresholding) and "
                         "prompt_adherence_unclipped.json (the same without thresholding)",
        "frechet": frechet, "frechet_floor": floor, "frechet_samples": args.frechet_samples,
        "pixel_frechet_static_threshold": pixel_frechet["static"], "pixel_frechet_no_threshold": pixel_frechet["none"],
        "frechet_sampler": f"empty prompt, DDIM eta=0, {args.steps} steps; the pixel model with static thresholding "
                           "and without (its samples then clipped to [-1, 1])",
        "latent_eval_flops": latent_eval, "pixel_eval_flops": pixel_eval,
        "decoder_flops": ae.config.decoder_flops(), "latent_flops_per_guided_sample": latent_flops,
        "pixel_flops_per_guided_sample": pixel_flops, "pixel_flops_ratio": pixel_flops / latent_flops})
    cost = [{"model": f"latent: PromptMLP d = {d}, width {args.width}; wide autoencoder", "params": cfg.n_params,
             "train_steps": args.train_steps, "frechet": frechet, "floor": floor, "samples": args.frechet_samples,
             "eval_flops": latent_eval, "decoder_flops": ae.config.decoder_flops(), "flops_per_sample": latent_flops,
             "pixel_flops_ratio": pixel_flops / latent_flops},
            *({"model": f"pixels: PromptMLP D = 64, width 256; {label}", "params": PIXEL_CONFIG.n_params,
               "train_steps": 12000, "frechet": pixel_frechet[th], "floor": floor,
               "samples": args.frechet_samples if pixel_frechet[th] is not None else None, "eval_flops": pixel_eval,
               "decoder_flops": 0, "flops_per_sample": pixel_flops, "pixel_flops_ratio": 1.0}
              for th, label in (("static", "static thresholding"), ("none", "no thresholding")))]
    write_results(f"{args.name}_cost", cost, notes={
        "frechet_sampler": f"empty prompt, DDIM eta=0, {args.steps} steps; without thresholding the pixel samples "
                           "are clipped to [-1, 1] before the features",
        "flops": f"per guided sample: 2 x {args.steps} evaluations (prompt and empty prompt) + the decoder once"})


if __name__ == "__main__":
    main()
