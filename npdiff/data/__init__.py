r"""Data sets with known densities: :mod:`npdiff.data.toy2d` (the eight FFJORD 2-D sets)."""

from . import labelled, toy2d

__all__ = ["labelled", "toy2d"]
