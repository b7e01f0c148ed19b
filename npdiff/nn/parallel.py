r"""The data-parallel gradient: a training batch split into row shares, one a worker thread.

The loss of :meth:`~npdiff.nn.mlp.MLP.loss_and_grad` is a mean over the batch, so with shares
:math:`S_1, \dots, S_W` of :math:`B_i` rows each (every share a mean over its own rows),

.. math:: L = \sum_i \frac{B_i}{B} L_i,\qquad \nabla L = \sum_i \frac{B_i}{B} \nabla L_i

(the gradient is linear in the per-example terms). Each worker runs the ordinary forward and
hand-written backward of :mod:`npdiff.nn.mlp` on its rows, with its own buffers and its own
gradient vector; the main thread then sums. The result equals the one-thread gradient up to
float rounding (the sums are taken in another order), and for a given worker count it is
reproducible to the bit. It pays with large batches: training the 2D recipe's model on the
idle 2-core machine (``OPENBLAS_NUM_THREADS=1``), one worker against two gave 318 / 347
steps per second at batch 256 (1.09x), 80.6 / 118.8 at 1024 (1.47x) and 18.3 / 33.2 at 4096
(1.81x). At batch 256 a share is ~1.5 ms of work in ~25 calls, too little to hide the
handoffs between threads and the serial rest of a step (data, times, AdamW).
"""

from __future__ import annotations

import itertools

import numpy as np

from .mlp import MLP, _Work
from .threads import run_parallel

__all__ = ["ParallelGrad"]


class ParallelGrad:
    r"""Loss and gradient of a batch of ``B`` rows on ``workers`` threads (module docstring).

    Parameters
    ----------
    mlp : the :class:`~npdiff.nn.mlp.MLP`.
    B : rows of every batch it will see (the shares are fixed once: B // workers rows, the
        first B % workers shares one more).
    workers : threads, 1 <= workers <= B.
    dtype : the compute dtype of the weights (float32 for training).
    """

    def __init__(self, mlp: MLP, B: int, workers: int, dtype: type = np.float32) -> None:
        if not isinstance(mlp, MLP):
            raise TypeError(f"mlp must be an MLP, got {type(mlp).__name__}")
        for name, value in (("B", B), ("workers", workers)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if workers > B:
            raise ValueError(f"workers must be at most the batch size B = {B}, got {workers}")
        self.mlp, self.B, self.workers, self.dtype = mlp, int(B), int(workers), np.dtype(dtype)
        sizes = [B // workers + (i < B % workers) for i in range(workers)]
        edges = np.concatenate([[0], np.cumsum(sizes)])
        self.shares = [slice(int(a), int(b)) for a, b in itertools.pairwise(edges)]
        self._work = [_Work(n, mlp.config, self.dtype) for n in sizes]
        self._grad = [np.zeros(mlp.n_params, self.dtype) for _ in sizes]  # (n_params,) one per worker
        self._grads = [mlp.layers(g) for g in self._grad]
        self.fractions = np.array(sizes, dtype=np.float64) / B  # B_i / B

    def __call__(self, layers: list, grad: np.ndarray, x: np.ndarray, t: np.ndarray, target: np.ndarray,
                 weight: np.ndarray, keep: np.ndarray | None = None) -> float:
        r"""Loss (float) of the batch; ``grad`` (n_params,) is overwritten with its gradient.

        ``layers``: the weights' (W, b) views; x, target (B, D), t, weight (B,) and the dropout
        masks ``keep`` (L + 1, B, H) or None, as :meth:`~npdiff.nn.mlp.MLP._forward` takes them.
        Inputs are not checked (the training loop's hot path).
        """
        mlp = self.mlp

        def share(i: int) -> float:
            rows, w = self.shares[i], self._work[i]
            mlp._forward(layers, x[rows], t[rows], w, keep=None if keep is None else keep[:, rows])
            return mlp._loss_and_grad(layers, self._grads[i], w, target[rows], weight[rows])

        losses = run_parallel(share, list(range(self.workers)))
        c = self.fractions.astype(self.dtype)
        np.multiply(self._grad[0], c[0], out=grad)
        for i in range(1, self.workers):
            grad += c[i] * self._grad[i]
        return float(np.dot(self.fractions, losses))
