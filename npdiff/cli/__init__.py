r"""The ``npdiff`` command line (also ``python -m npdiff``).

Commands: ``demo`` (the main job: train, sample, exact NLL, figures), ``train``, ``sample``,
``steps``, ``nll``, ``inpaint``, ``img2img``, ``upsample`` (a super-resolution model on a test digit's 4x4),
``datasets`` and ``schedules``; bare ``npdiff`` prints the help.
Human-readable output and progress bars go to stderr; with ``--json`` stdout holds exactly one line, a JSON object.
``--out`` names what a command writes: a folder for ``train`` and ``demo`` (several files), a
file for ``sample``, ``steps`` and ``nll``. A user mistake (unknown data set or flag, missing or corrupt
model file, a model for other data, bad numbers) is one clear line on stderr, with the closest
name where there is one, and exit status 2, never a traceback.

Image data (``--data digits``) trains on the train split (the ``"images"`` recipe) and
``nll`` reports bits/dim of the test split (``--split train`` for the other) by the exact
ODE likelihood of dequantized images and by the VLB with the discretized decoder
(``--method both``); a solve that diverges is reported as such, never as a number.

Labels: ``train --conditional`` trains a class-conditional model on a labelled data set (the
toy sets' own labels, the digits' classes) with label dropout; ``sample --label Y --guidance W``
draws classifier-free guided samples of class Y; ``nll --label Y`` scores points of class Y by
the conditional model's :math:`\log p(x \mid y)`.

Step times: ``steps`` optimizes a few-step sampler's times for a 2-D model by the exact KL to the
model's converged flow and writes them as a step file (:mod:`npdiff.sample.step_file`);
``sample --steps-file`` walks them. ``--steps`` counts denoiser evaluations in both.

Editing (a digits model): ``inpaint --image-index I --mask left --method repaint`` hides part of test digit I
and fills it in (replacement, RePaint, DPS); ``img2img --image-index I --coarse blur --strength 0.5`` makes it
coarse by a rule and edits it back by SDEdit (:mod:`~npdiff.cli.edit`).

The package: :mod:`~npdiff.cli.parser` (every command's flags), :mod:`~npdiff.cli.validators`
(the flags' value types), one module a command group (:mod:`~npdiff.cli.demo`,
:mod:`~npdiff.cli.train`, :mod:`~npdiff.cli.sample`, :mod:`~npdiff.cli.steps`, :mod:`~npdiff.cli.nll`,
:mod:`~npdiff.cli.edit`, :mod:`~npdiff.cli.info`, :mod:`~npdiff.cli.upsample`). The work is the library's; a command
reads its flags, calls the library, and prints what came out.
"""

from __future__ import annotations

import sys

from ._common import FAST, IMAGE_SETS, SAMPLERS, SCHEDULES, UserError
from .demo import DEMO_STEPS
from .parser import build_parser
from .validators import MAX_BATCH, MAX_CLASSES, MAX_DEPTH, MAX_POINTS, MAX_STEPS, MAX_T, MAX_WIDTH

__all__ = ["DEMO_STEPS", "FAST", "IMAGE_SETS", "MAX_BATCH", "MAX_CLASSES", "MAX_DEPTH", "MAX_POINTS", "MAX_STEPS",
           "MAX_T", "MAX_WIDTH", "SAMPLERS", "SCHEDULES", "UserError", "build_parser", "main"]


def main(argv: list[str] | None = None) -> int:
    r"""Run ``npdiff`` with the arguments ``argv`` (default: the process's); returns the exit status.

    Bare ``npdiff`` prints the help on stderr and returns 2, argparse's status for a call without
    its required argument (``npdiff --help`` prints it on stdout and exits 0).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return args.func(args)
    except (ValueError, TypeError, OSError, FloatingPointError, ImportError) as exc:
        print(f"npdiff {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"npdiff {args.command}: interrupted", file=sys.stderr)
        return 130
