r"""Progress on stderr for anything long, off by default in the library.

Every function that runs long takes one keyword, ``progress`` (bool): the trainer, the samplers
and the likelihoods. Loops of known length show a tqdm bar (:func:`progress`); the adaptive
solvers, whose number of steps is not known in advance, show the share of their time interval
covered so far (:class:`TimeBar`).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def progress(iterable: Iterable[T], *, total: int | None = None, desc: str = "", enabled: bool = False) -> Iterator[T]:
    r"""Wrap ``iterable`` in a tqdm bar written to stderr when ``enabled``; else return it unchanged."""
    if not enabled:
        yield from iterable
        return
    from tqdm.auto import tqdm

    yield from tqdm(iterable, total=total, desc=desc, leave=False, dynamic_ncols=True, file=sys.stderr)


class TimeBar:
    r"""A bar for an adaptive ODE solver: the share of [t_start, t_end] reached, and the evaluations so far.

    Call it with each time at which the solver evaluates its field; trial steps that are
    rejected may go back, so the bar shows the furthest time reached. A no-op unless ``enabled``.
    Use it as a context manager, so that the bar is closed even when the solve fails.
    """

    STEPS = 1000  # resolution of the bar: one thousandth of the interval

    def __init__(self, t_start: float, t_end: float, *, desc: str = "", enabled: bool = False) -> None:
        self.t_start, self.span, self.desc = float(t_start), float(t_end) - float(t_start), desc
        self.done, self.nfe, self.bar = 0, 0, None
        if enabled and self.span != 0.0:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=self.STEPS, desc=desc, leave=False, dynamic_ncols=True, file=sys.stderr,
                            bar_format="{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}]")

    def __call__(self, t: float) -> None:
        self.nfe += 1
        if self.bar is None:
            return
        done = min(self.STEPS, int(self.STEPS * (float(t) - self.t_start) / self.span))
        self.bar.set_description_str(f"{self.desc} (t = {float(t):.4f}, {self.nfe} evaluations)", refresh=False)
        if done > self.done:
            self.bar.update(done - self.done)  # tqdm redraws at most ten times a second
            self.done = done

    def __enter__(self) -> TimeBar:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()

