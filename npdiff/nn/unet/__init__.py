r"""The U-Net denoiser for images, written and differentiated by hand.

Read in this order: the layers, each forward beside its backward (reverse mode) and its tangent
(forward mode): :mod:`~npdiff.nn.unet.conv` (3x3 and 1x1 convolutions as matrix multiplies),
:mod:`~npdiff.nn.unet.norm` (GroupNorm), :mod:`~npdiff.nn.unet.resample` (down- and up-sampling,
skip concatenation), :mod:`~npdiff.nn.unet.resblock` (the residual block with the embedding as scale
and shift), :mod:`~npdiff.nn.unet.attention` (self-attention over pixels) and
:mod:`~npdiff.nn.unet.time_embedding`; then :mod:`~npdiff.nn.unet.config` (the architecture, its plan
and the flat parameter vector) , :mod:`~npdiff.nn.unet.network` (the whole network: forward,
backward, JVP, VJP, exact divergence) and :mod:`~npdiff.nn.unet.model` (:class:`DiffusionUNet`, the
denoiser behind the protocol of :mod:`npdiff.denoiser`).
"""

from . import attention, conv, network, norm, resample, resblock, time_embedding
from .config import UNetConfig
from .model import DiffusionUNet

__all__ = ["DiffusionUNet", "UNetConfig", "attention", "conv", "network", "norm", "resample", "resblock", "time_embedding"]
