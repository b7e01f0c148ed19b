r"""The embedding every residual block reads: the time through a small MLP, plus a label's row.

.. math::
    u = \mathrm{SiLU}\big(\mathrm{emb}(t)\,W_0 + b_0\big)\,W_1 + b_1\ \ (+\,E_y),\qquad e = \mathrm{SiLU}(u)\quad (B, T)

with emb the sinusoidal features of ``time_scale * t`` (:func:`npdiff.nn.embedding.embed`; Ho et al.
2020, Appendix B), and E the label table (C + 1, T) of a conditional network, row C "no label" (ADM adds
the class embedding to the time embedding, Dhariwal & Nichol 2021). The blocks read :math:`e`, the SiLU
that opens ADM's per-block ``emb_layers``, computed once for all of them; their gradients
:math:`\bar e` add up before this module's backward. Nothing here depends on x: the embedding has no
tangent, and the Jacobian of the network with respect to x sees it only as constants.
"""

from __future__ import annotations

from ..embedding import embed
from ..mlp import dense, dense_backward, label_rows, label_rows_backward
from .norm_act import silu_like

__all__ = ["time_embedding", "time_embedding_backward"]


def time_embedding(t, p, emb_dim, time_scale, rows=None):
    r"""e = SiLU(u) (B, T) for times t (B,); p holds ``time.0.W`` (emb_dim, T), ``time.0.b``, ``time.1.W`` (T, T),
    ``time.1.b`` and, if conditional, ``labels`` (C + 1, T) read at ``rows`` (B,). Returns e and the cache."""
    feats = embed(t[:, None], t, emb_dim=emb_dim, time_scale=time_scale, coord_scale=1.0, raw=False, coord=False)
    feats = feats.astype(p["time.0.W"].dtype, copy=False)  # (B, emb_dim), in the weights' dtype
    a, da = silu_like(dense(feats, p["time.0.W"], p["time.0.b"]))  # (B, T)
    u = dense(a, p["time.1.W"], p["time.1.b"])
    if rows is not None:
        u = u + label_rows(rows, p["labels"])
    e, de = silu_like(u)
    return e, {"feats": feats, "a": a, "da": da, "de": de, "rows": rows}


def time_embedding_backward(de_bar, cache, p):
    r"""Given dL/de (B, T), summed over the blocks, the gradients of p (a dict with its keys)."""
    g = {}
    du = de_bar * cache["de"]  # (B, T)
    if cache["rows"] is not None:
        g["labels"] = label_rows_backward(du, cache["rows"], p["labels"]).astype(du.dtype, copy=False)
    g["time.1.W"], g["time.1.b"], da = dense_backward(du, cache["a"], p["time.1.W"])
    g["time.0.W"], g["time.0.b"], _ = dense_backward(da * cache["da"], cache["feats"], p["time.0.W"])
    return g
