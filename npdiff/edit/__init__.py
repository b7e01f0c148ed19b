r"""Editing with a diffusion model: image to image (SDEdit, :mod:`npdiff.edit.sdedit`)."""

from .sdedit import sdedit, sdedit_time

__all__ = ["sdedit", "sdedit_time"]
