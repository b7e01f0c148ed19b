r"""Editing with a diffusion model: inpainting on the denoiser protocol, and the exact 2D conditional it is measured by.

* :mod:`~npdiff.edit.mask`: masks of known coordinates and the merge every inpainter shares; the named masks of
  images (:func:`image_mask`: the left half, the bottom half, the centre square or half the pixels missing);
* :mod:`~npdiff.edit.replacement`: replacement / imputation with the forward process (Song et al. 2021, App. I.2),
  on the ancestral step or on DDIM's deterministic one;
* :mod:`~npdiff.edit.repaint`: RePaint, resampling with jumps (Lugmayr et al. 2022);
* :mod:`~npdiff.edit.guided`: diffusion posterior sampling (Chung et al. 2023) and reconstruction guidance
  (Ho et al., Video Diffusion Models, 2022), the gradient of the data fit through the denoiser's prediction of x_0 (``eps_vjp``);
* :mod:`~npdiff.edit.sdedit`: image to image (SDEdit, Meng et al. 2022), imported as a module: a re-exported
  function of the same name would hide it, so its function is ``npdiff.edit.sdedit.sdedit``;
* :mod:`~npdiff.edit.cascade`: a two-stage cascade, a base model's low-resolution samples up-sampled by a
  super-resolution model (Ho et al. 2022, CDM; Saharia et al. 2022), imported as a module;
* :mod:`~npdiff.edit.inpaint_model`: GLIDE's inpainting by a model conditioned on the known values and the mask
  (Nichol et al. 2022);
* :mod:`~npdiff.edit.coarse`: the coarse guides of image to image, rules that blur, block-average or redraw a
  digit as binary strokes (:func:`coarse_digits`);
* :mod:`~npdiff.edit.conditional`: the exact conditional :math:`p(x_2 \mid x_1 = a)` of a 2D density by
  quadrature, its CDF, exact draws and the Wasserstein-1 distance of samples to it.

Every inpainter takes the denoiser, the known values, the mask, the number of steps and an explicit
``np.random.Generator``, and returns a :class:`~npdiff.sample.SampleResult`.
"""

from . import cascade, sdedit
from .coarse import COARSE_KINDS, coarse_digits
from .conditional import ExactConditional, exact_conditional
from .guided import data_fit_gradient, dps_sample, reconstruction_guidance_sample
from .inpaint_model import inpaint_model_sample
from .mask import IMAGE_MASKS, as_image_mask, image_mask, keep_known
from .repaint import repaint_nfe, repaint_sample, repaint_times
from .replacement import replacement_sample

__all__ = [
    "COARSE_KINDS",
    "IMAGE_MASKS",
    "ExactConditional",
    "as_image_mask",
    "cascade",
    "coarse_digits",
    "data_fit_gradient",
    "dps_sample",
    "exact_conditional",
    "image_mask",
    "inpaint_model_sample",
    "keep_known",
    "reconstruction_guidance_sample",
    "repaint_nfe",
    "repaint_sample",
    "repaint_times",
    "replacement_sample",
    "sdedit",
]
