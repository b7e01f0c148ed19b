r"""Editing with a diffusion model: image to image (SDEdit, :mod:`npdiff.edit.sdedit`).

The module is imported under its own name, so ``npdiff.edit.sdedit`` is the module and
``npdiff.edit.sdedit.sdedit`` its function (a re-exported function of the same name would hide the module).
"""

from . import sdedit

__all__ = ["sdedit"]
