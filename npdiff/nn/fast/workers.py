r"""Worker threads that share the blocks of the exact trace: how many, and one pool of them per count.

The exact trace (:mod:`npdiff.nn.fast.trace`) splits its points into blocks; its workers call
BLAS and the GIL-free Numba kernels, so they run on separate cores. The count is
:data:`THREADS` if set, else the environment variable ``NPDIFF_THREADS``, else 1: one worker
by default, because OpenBLAS threads the matmuls by itself. To give each core its own blocks
instead, set ``OPENBLAS_NUM_THREADS=1 NPDIFF_THREADS=2`` (docs/measurements/speed.md explains when it pays).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

__all__ = ["THREADS", "run_parallel", "threads"]

#: worker threads; None: the environment variable ``NPDIFF_THREADS``, else 1
THREADS: int | None = None
_POOLS: dict[int, ThreadPoolExecutor] = {}


def threads() -> int:
    r"""The worker count: :data:`THREADS`, else ``NPDIFF_THREADS``, else 1 (module docstring)."""
    if THREADS is not None:
        n = THREADS
    else:
        text = os.environ.get("NPDIFF_THREADS", "1").strip()
        if not text.isdigit() or int(text) < 1:
            raise ValueError(f"NPDIFF_THREADS must be a positive integer, got {text!r}")
        n = int(text)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"npdiff.nn.fast.workers.THREADS must be a positive int or None, got {n!r}")
    return n


def run_parallel(fn: Callable[[Any], Any], parts: Sequence[Any]) -> list[Any]:
    r"""``[fn(p) for p in parts]``, one part a worker thread, in NumPy's error state of the caller.

    NumPy's floating-point error state is per thread, so each worker enters the caller's
    (an overflow the caller asked to raise then raises, and reaches the caller).
    """
    if len(parts) <= 1:
        return [fn(p) for p in parts]
    err = np.geterr()

    def call(part: Any) -> Any:
        with np.errstate(**err):
            return fn(part)

    pool = _POOLS.get(len(parts))
    if pool is None:
        pool = _POOLS[len(parts)] = ThreadPoolExecutor(len(parts), thread_name_prefix="npdiff")
    return list(pool.map(call, parts))
