r"""``npdiff upsample``: super-resolve the 4x4 block sums of a test digit with a trained SR model; writes ``FILE.npy``.

The model is a super-resolution checkpoint, a :class:`~npdiff.nn.context_mlp.ContextMLP` whose context is the
nearest up-sampled 4x4 image and its augmentation level (:mod:`npdiff.data.lowres`); ``benchmarks/cascade.py``
trains one (``benchmarks/out/cascade/sr_aug.npz``), or the library does (:class:`~npdiff.data.lowres.SRData`
with :class:`~npdiff.train.Trainer`). Test image ``--image-index`` of the digits' documented split is reduced
to its 4x4 block sums and up-sampled ``--n`` times (:func:`npdiff.edit.cascade.upsample`); ``--figure`` draws
the samples beside the true 8x8 digit and the 4x4 it was given.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from ..data.lowres import downsample, nearest_upsample
from ..edit.cascade import upsample
from ..plot import plot_image_grid
from ._common import UserError, check_out_file, emit, load_data, load_model, say

__all__ = ["run"]


def run(args: argparse.Namespace) -> int:
    r"""Run ``npdiff upsample`` (module docstring)."""
    check_out_file(args.out, "--out")
    check_out_file(args.figure, "--figure")
    _, model = load_model(args.model)
    if not isinstance(getattr(model, "context_dim", None), int) or model.dim != 64 or model.context_dim != 65:
        raise UserError(f"model {args.model!r} is not a super-resolution model of the 8x8 digits (a context_mlp with "
                        "dim 64 and a context of 65: the up-sampled 4x4 and its level); benchmarks/cascade.py trains one")
    data = load_data("digits")
    if args.image_index >= data.test.shape[0]:
        raise UserError(f"--image-index must be in 0..{data.test.shape[0] - 1} (the test split), got {args.image_index}")
    true = data.test[args.image_index][None]  # (1, 64)
    low = downsample(true)  # (1, 16) the block sums on their 65 levels
    t0 = time.perf_counter()
    x = upsample(model, np.repeat(low, args.n, axis=0), np.random.default_rng(args.seed), aug_level=args.aug_level,
                 steps=args.steps, progress=not args.json)  # (n, 64)
    seconds = time.perf_counter() - t0
    np.save(args.out, x)
    say(f"wrote {args.out}: {args.n} up-samplings of test digit {args.image_index} (label "
        f"{int(data.test_labels[args.image_index])}) in {seconds:.1f} s")
    if args.figure:
        plot_image_grid(x, np.concatenate([true, nearest_upsample(low)]), args.figure,
                        title=f"test digit {args.image_index}: samples; real: the 8x8 and its 4x4")
        say(f"wrote {args.figure}")
    emit(args, {"out": args.out, "n": args.n, "image_index": args.image_index, "aug_level": args.aug_level,
                "steps": args.steps, "seconds": seconds, "figure": args.figure})
    return 0
