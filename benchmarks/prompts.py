r"""Prompts on the digits: the attribute rule's distribution, and a short run of the prompt-conditioned MLP.

    python benchmarks/prompts.py attributes        # the terciles and the (ink, slant) cells of every class (seconds)
    python benchmarks/prompts.py train             # 3,000 steps of the prompt MLP on the digits (~3 min)

``attributes``: per class of the train split, the ink-mass and slant terciles (the thresholds stored in
:data:`npdiff.data.prompts.DIGIT_VOCABULARY`), the mean slant of each slant level and the mean ink mass of
each ink level (the rule is sensible if they increase), the nine (ink, slant) cell counts and the images
held out of training (:data:`npdiff.data.prompts.HELD_OUT`).

``train``: the prompt-conditioned MLP (:class:`npdiff.nn.prompt_mlp.PromptMLP`: width 256, 3 residual blocks,
8 query tokens, text width 32) trained by :class:`npdiff.train.Trainer` on the train split without the held-out
cells, with attribute dropout 0.3 and the empty prompt 0.1 (:func:`npdiff.data.prompts.drop_attributes`),
cosine schedule, batch 128, lr 2e-3 with cosine decay. Figures: the mean training loss of each tenth of the
run, and on the 360 test digits noised at t the EMA model's squared eps error with the true prompt, the empty
prompt and a prompt naming another digit (label + 3 mod 10, the same attributes): a model that reads the
prompt does best with the true one.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import sys  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from _common import machine_facts, write_results  # noqa: E402

from npdiff.data import prompts as P  # noqa: E402
from npdiff.data.images import digits  # noqa: E402
from npdiff.forward import q_sample  # noqa: E402
from npdiff.nn.prompt_mlp import PromptMLP, PromptMLPConfig  # noqa: E402
from npdiff.schedule import cosine  # noqa: E402
from npdiff.train import TrainConfig, Trainer  # noqa: E402


def cmd_attributes(args: argparse.Namespace) -> None:
    ds = digits()
    ink, slant = P.attribute_levels(ds.train, ds.train_labels)
    m, s = P.ink_and_slant(ds.train)
    keep = P.training_mask(ds.train_labels, ink, slant)
    V = P.DIGIT_VOCABULARY
    rows = []
    for k in range(10):
        sel = ds.train_labels == k
        cells = np.zeros((3, 3), dtype=int)
        np.add.at(cells, (ink[sel], slant[sel]), 1)
        row = {"class": k, "images": int(sel.sum()),
               "ink t1": V.ink_thresholds[k][0], "ink t2": V.ink_thresholds[k][1],
               "slant t1": V.slant_thresholds[k][0], "slant t2": V.slant_thresholds[k][1]}
        for lv, word in enumerate(P.SLANT_WORDS):
            row[f"mean slant {word}"] = float(s[sel & (slant == lv)].mean())
        for lv, word in enumerate(P.INK_WORDS):
            row[f"mean ink {word}"] = float(m[sel & (ink == lv)].mean())
        row["cells (ink x slant)"] = cells.ravel().tolist()
        row["held out"] = int(np.sum(sel & ~keep))
        rows.append(row)
        print(row)
    write_results("prompt_attributes", rows, notes={"held_out": [list(h) for h in P.HELD_OUT],
                                                     "slant": "s = -mu_rc / mu_rr of the ink's second moments"})


def cmd_train(args: argparse.Namespace) -> None:
    ds = digits()
    ink, slant = P.attribute_levels(ds.train, ds.train_labels)
    keep = P.training_mask(ds.train_labels, ink, slant)
    X, Y, I, S = ds.train[keep], ds.train_labels[keep], ink[keep], slant[keep]

    def sample(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        i = rng.integers(0, X.shape[0], n)
        return X[i], P.tokenize(P.drop_attributes(Y[i], I[i], S[i], 0.3, 0.1, rng), length=P.MAX_WORDS)

    cfg = PromptMLPConfig(dim=64, width=256, depth=3, emb_dim=32, text_width=32, query_tokens=8)
    trainer = Trainer(PromptMLP(cfg, cosine(), rng=args.seed), sample,
                      TrainConfig(steps=args.steps, batch_size=128, lr=2e-3, lr_schedule="cosine", ema_decay=0.995),
                      rng=args.seed + 1)
    loss = trainer.run(progress=False)["loss"]
    k = max(1, args.steps // 10)
    rows = [{"figure": f"mean training loss, steps {i + 1}-{min(i + k, args.steps)}", "value": float(loss[i:i + k].mean())}
            for i in range(0, args.steps, k)]
    model = trainer.denoiser()
    ti, ts = P.attribute_levels(ds.test, ds.test_labels)
    prompts = {"true prompt": P.tokenize(P.digit_prompts(ds.test, ds.test_labels), length=P.MAX_WORDS),
               "empty prompt": None,
               "another digit": P.tokenize([P.prompt_text((k + 3) % 10, i, s) for k, i, s in zip(ds.test_labels, ti, ts)],
                                           length=P.MAX_WORDS)}
    rng = np.random.default_rng(args.seed + 5)
    for t in (0.3, 0.6):
        eps = rng.standard_normal(ds.test.shape)  # (360, 64)
        xt = q_sample(ds.test, np.full(ds.test.shape[0], t), eps, model.schedule)
        for name, y in prompts.items():
            rows.append({"figure": f"test eps squared error at t = {t}, {name}",
                         "value": float(np.mean((model.eps(xt, t, y) - eps) ** 2))})
    for r in rows:
        print(f"{r['figure']:55s} {r['value']:.4f}")
    write_results("prompt_mlp_train", rows, notes={"steps": args.steps, "n_params": cfg.n_params, "seed": args.seed})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(required=True)
    p = sub.add_parser("attributes", help="the attribute rule's terciles and cells per class")
    p.set_defaults(func=cmd_attributes)
    p = sub.add_parser("train", help="a short run of the prompt-conditioned MLP")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_train)
    args = ap.parse_args()
    print(machine_facts(), flush=True)
    args.func(args)


if __name__ == "__main__":
    main()
