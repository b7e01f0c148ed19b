r"""Prompt adherence of the prompt MLP against the guidance weight, on seen prompts and on held-out combinations.

    python benchmarks/prompt_adherence.py            # trains (or reuses) the model, then samples and scores (~8 min)
    python benchmarks/prompt_adherence.py --train-steps 3000 --name prompt_adherence_3000steps

The model is the one of ``benchmarks/prompts.py train`` and of ``npdiff train --arch prompt_mlp``
(:class:`npdiff.nn.prompt_mlp.PromptMLP`, width 256, 3 residual blocks, 8 query tokens, text width 32; cosine schedule;
12,000 steps (``--train-steps``; ``benchmarks/prompts.py`` runs 3,000) of batch 128, lr 2e-3 with cosine decay, EMA 0.995;
attribute dropout 0.3 and the empty prompt 0.1; the held-out cells left out: :func:`npdiff.data.prompts.training_sampler`),
trained once and kept in ``benchmarks/out/`` (a checkpoint there is reused).

For every guidance weight w of ``--w`` it draws ``--n`` samples for each of ten seen full prompts (one per digit, the
(ink, slant) cell turning with the digit) and for each of the three :data:`npdiff.data.prompts.HELD_OUT` prompts,
from the classifier-free guided model (:func:`npdiff.guidance.guided`, the empty prompt as the unconditional
model) with deterministic DDIM (eta = 0) on ``--steps`` steps with static thresholding (the predicted x0 clipped to
[-1, 1] at every step, Saharia et al. 2022; ``--threshold none`` leaves it out), the same starting noise at every w.
Each sample is read back from its pixels (:func:`npdiff.adherence.prompt_adherence`): the share whose class (the fixed digit
classifier), ink level and slant level (the rule's stored thresholds, of the class asked for) match its prompt,
and the share matching all three, for the seen and the held-out prompts apart.
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

from npdiff import checkpoint  # noqa: E402
from npdiff.adherence import prompt_adherence  # noqa: E402
from npdiff.data import prompts as P  # noqa: E402
from npdiff.data.images import digits  # noqa: E402
from npdiff.guidance import guided  # noqa: E402
from npdiff.nn.prompt_mlp import PromptMLP, PromptMLPConfig  # noqa: E402
from npdiff.sample import ddim_sample  # noqa: E402
from npdiff.schedule import cosine  # noqa: E402
from npdiff.train import TrainConfig, Trainer  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"
#: the model of benchmarks/prompts.py train
CONFIG = PromptMLPConfig(dim=64, width=256, depth=3, emb_dim=32, text_width=32, query_tokens=8)
#: one seen full prompt per digit, its (ink, slant) cell turning with the digit; none is held out
SEEN = tuple(P.prompt_text(k, k % 3, (k + 2) % 3) for k in range(10))
HELD = tuple(f"{ink} {P.DIGIT_WORDS[k]} {slant}" for k, ink, slant in P.HELD_OUT)


def trained(steps: int, seed: int) -> PromptMLP:
    r"""The EMA model of the recipe (module docstring), from ``benchmarks/out/`` when it is there."""
    path = OUT / f"prompt_mlp_steps{steps}_seed{seed}.npz"
    if path.exists():
        return checkpoint.load(path, arch="prompt_mlp").model
    ds = digits()
    trainer = Trainer(PromptMLP(CONFIG, cosine(), rng=seed), P.training_sampler(ds.train, ds.train_labels, 0.3, 0.1),
                      TrainConfig(steps=steps, batch_size=128, lr=2e-3, lr_schedule="cosine", ema_decay=0.995),
                      rng=seed + 1)
    t0 = time.perf_counter()
    trainer.run(progress=False, checkpoint_path=path)
    print(f"trained {steps} steps in {time.perf_counter() - t0:.0f} s -> {path}", flush=True)
    return trainer.denoiser()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--train-steps", type=int, default=12000)
    ap.add_argument("--name", default="prompt_adherence", help="the results file's stem")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n", type=int, default=100, help="samples per prompt")
    ap.add_argument("--steps", type=int, default=50, help="DDIM steps")
    ap.add_argument("--threshold", choices=("static", "none"), default="static",
                    help="DDIM's predicted x0 clipped to [-1, 1] at every step (static) or not")
    ap.add_argument("--w", type=float, nargs="+", default=[0.0, 1.0, 2.0, 3.0, 5.0])
    args = ap.parse_args()
    print(machine_facts(), flush=True)
    assert not set(SEEN) & set(HELD)
    model = trained(args.train_steps, args.seed)
    prompts = [p for p in SEEN + HELD for _ in range(args.n)]  # (N,) prompt of each sample
    held = np.array([p in HELD for p in prompts])  # (N,)
    ids = P.tokenize(prompts, length=P.MAX_WORDS)  # (N, 4)
    x_T = np.random.default_rng(args.seed + 7).standard_normal((len(prompts), 64))  # the same noise at every w
    rows, drawn = [], {}
    for w in args.w:
        t0 = time.perf_counter()
        x = ddim_sample(guided(model, ids, w), None, np.random.default_rng(0), steps=args.steps, eta=0.0, x_T=x_T,
                        threshold=args.threshold).x
        drawn[f"w={w:g}"] = x.astype(np.float32)
        for split, sel in (("seen", ~held), ("held out", held)):
            a = prompt_adherence(x[sel], [p for p, s in zip(prompts, sel) if s])
            rows.append({"set": split, "prompt": f"all {len(HELD if split == 'held out' else SEEN)}", "w": w,
                         "class": a.class_share, "ink": a.ink_share, "slant": a.slant_share, "all": a.all_share,
                         "samples": int(sel.sum())})
            print(rows[-1], f"({time.perf_counter() - t0:.0f} s)", flush=True)
        for p in HELD:  # each held-out combination apart
            sel = np.array([q == p for q in prompts])
            a = prompt_adherence(x[sel], p)
            rows.append({"set": "one held-out prompt", "prompt": p, "w": w, "class": a.class_share, "ink": a.ink_share,
                         "slant": a.slant_share, "all": a.all_share, "samples": int(sel.sum())})
    np.savez(OUT / f"prompt_adherence_samples_steps{args.train_steps}_seed{args.seed}.npz", prompts=np.array(prompts),
             **drawn)  # the samples, for the chapter's figures and a second look
    write_results(args.name, rows,
                  notes={"seen prompts": list(SEEN), "held-out prompts": list(HELD), "train steps": args.train_steps,
                         "seed": args.seed, "sampler": f"DDIM eta=0, {args.steps} steps, threshold {args.threshold}",
                         "n_params": CONFIG.n_params,
                         "goal": "class >= 0.95 and ink, slant >= 0.80 at some w on seen prompts; held out within "
                                 "0.15 of seen"})


if __name__ == "__main__":
    main()
