r"""Analytic oracles: data whose noised marginals, scores, optimal denoisers and score
divergences are all closed-form.

Every oracle follows the denoiser protocol of :mod:`npdiff.denoiser` (``eps``,
``eps_and_divergence``, ``schedule``) and adds ``log_prob``, ``score``, ``x0_mean``,
``sample`` and ``dim``. Plugged into a sampler or a likelihood estimator, an oracle gives a
result whose true value is known, which is how every sampler and estimator is tested
before any network is trained.

* :class:`GaussianData`: :math:`\mathcal N(\mu, C)`;
* :class:`GaussianMixture`: :math:`\sum_k w_k \mathcal N(\mu_k, C_k)`;
* :class:`EmpiricalData`: the uniform mixture of Dirac masses at N training points;
* :class:`BoxMixture`: uniform densities on axis-aligned boxes, optionally blurred by
  isotropic Gaussian noise (the checkerboard and 2spirals toy sets);
* :class:`RingMixture`: uniform densities on circles blurred by isotropic Gaussian noise
  (the rings and circles toy sets; 2-D).

The three mixtures take a label per component and are then conditional denoisers with the
exact posterior classifier :math:`q_t(y \mid x)` (:mod:`npdiff.analytic._base`, "Labels");
:class:`TiltedTarget` is the density classifier-free guidance is said to sample, by quadrature.

Times are continuous, t in [0, 1], a float or one per point. Where sigma(t) = 0 (t = 0 for
``vp_linear`` and ``cosine``) the marginal is the clean data: quantities defined there are
returned (Gaussian data, mixtures, rings), the others raise ``ValueError``.
"""

from ._base import AnalyticOracle
from .boxes import BoxMixture
from .empirical import EmpiricalData
from .gaussian_data import GaussianData
from .mixture import GaussianMixture
from .rings import RingMixture
from .tilted import TiltedTarget

__all__ = ["AnalyticOracle", "BoxMixture", "EmpiricalData", "GaussianData", "GaussianMixture", "RingMixture",
           "TiltedTarget"]
