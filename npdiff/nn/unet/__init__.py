r"""The U-Net denoiser for images, written and differentiated by hand.

Read in this order: the layers, each forward beside its backward (reverse mode) and its tangent
(forward mode): :mod:`~npdiff.nn.unet.conv` (3x3 and 1x1 convolutions as matrix multiplies),
:mod:`~npdiff.nn.unet.norm` (GroupNorm), :mod:`~npdiff.nn.unet.resample` (down- and up-sampling,
skip concatenation), :mod:`~npdiff.nn.unet.resblock` (the residual block with the embedding as scale
and shift) and :mod:`~npdiff.nn.unet.attention` (self-attention over pixels).
"""

from . import attention, conv, norm, resample, resblock

__all__ = ["attention", "conv", "norm", "resample", "resblock"]
