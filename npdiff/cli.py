r"""The ``npdiff`` command line (also ``python -m npdiff``).

Human-readable output goes to stderr or stdout as documented per command; a user
mistake is one clear line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from . import schedule as sch


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
        print(f"wrote {args.plot}", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="npdiff", description="Diffusion models from scratch in NumPy.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("schedules", help="print the noise schedules' alpha_bar table (and plot them)")
    p.add_argument("--T", type=int, default=1000, help="number of discrete steps (default 1000)")
    p.add_argument("--plot", metavar="FILE.png", help="also draw alpha_bar, log-SNR and beta curves")
    p.set_defaults(func=_cmd_schedules)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError, OSError) as exc:
        print(f"npdiff {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
