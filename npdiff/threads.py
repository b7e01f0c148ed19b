r"""How many BLAS threads npdiff's work runs on: one, unless the user says otherwise.

npdiff's matrix products are small (a batch of 512 points through 128 hidden units). OpenBLAS
splits each one over its threads and waits for all of them at the end of every product, so
when another process holds a core, every product waits for it: on a busy 2-core machine
``npdiff train --data moons --steps 1000`` took 17-136 s on OpenBLAS's default two threads and
5.5 s on one, with identical losses. So the work that runs the network many times (the
trainer's loop, the samplers, the likelihoods) runs on :data:`BLAS_THREADS` (one) BLAS thread,
set through threadpoolctl when that work starts and restored when it ends, never at import. The
exact trace takes its parallelism from worker threads over blocks of points instead, each with
its own core and no waiting inside a product (``NPDIFF_THREADS``, :mod:`npdiff.nn.fast.workers`).

An explicit choice wins: when the environment sets any of :data:`BLAS_ENV` (e.g.
``OPENBLAS_NUM_THREADS=2``), or :data:`BLAS_THREADS` is None, npdiff leaves BLAS as it is.
Busy against idle, measured: ``benchmarks/threads_busy.py``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["BLAS_ENV", "BLAS_THREADS", "blas_threads", "user_blas_setting"]

#: environment variables through which a user sets the BLAS thread count (OpenBLAS, OpenMP, MKL, BLIS, Accelerate)
BLAS_ENV = ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
            "VECLIB_MAXIMUM_THREADS")

#: BLAS threads of npdiff's work when the environment does not set one; None leaves BLAS as it is
BLAS_THREADS: int | None = 1


def user_blas_setting() -> str | None:
    r"""The first of :data:`BLAS_ENV` set (non-empty) in the environment, as ``"NAME=value"``; None if none is."""
    for name in BLAS_ENV:
        value = os.environ.get(name, "").strip()
        if value:
            return f"{name}={value}"
    return None


@contextmanager
def blas_threads() -> Iterator[int | None]:
    r"""Run a block (or, as ``@blas_threads()``, a function) on :data:`BLAS_THREADS` BLAS threads.

    Yields the count set, or None where the user's choice (module docstring) is left in place.
    The previous counts are restored on exit, also after an exception.
    """
    n = BLAS_THREADS
    if n is None or user_blas_setting() is not None:
        yield None
        return
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"npdiff.threads.BLAS_THREADS must be a positive int or None, got {n!r}")
    from threadpoolctl import threadpool_limits  # here: nothing changes (or loads) at import

    with threadpool_limits(limits=n, user_api="blas"):
        yield n
