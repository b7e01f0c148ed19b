r"""Default training recipes: one place that says how npdiff trains a model by default.

``npdiff train``, ``npdiff demo`` and the quality benchmark all read these, so a change of
default is made once. Each recipe is a pair of keyword dictionaries, one for
:class:`~npdiff.nn.mlp.MLPConfig` and one for :class:`~npdiff.train.TrainConfig`, plus the
schedule; a flag on the command line overrides any field.

``"2d"`` (toy data, issue 8; every figure a paired gap in nats, 2,000 test points, seed 0, exact
ODE NLL at rtol = atol = 1e-5; single runs differ by ~0.007 from seed noise alone):

- coordinates: raw x plus a sinusoidal embedding of each coordinate at scale 8 (``raw_coords``,
  ``coord_embedding``, ``coord_scale=8``). Raw coordinates alone suit smooth densities and starve
  sharp ones; tiny-diffusion's scale 25 without raw x hurts smooth ones. At 10k steps raw-only
  gave 8gaussians / checkerboard / 2spirals / moons 0.043 / 0.344 / 0.364 / 0.037; raw + scale 8
  gave 0.029 / 0.151 / 0.146 / 0.024 (scale 1: 0.064 / 0.259 / 0.450; scale 3: 0.037 / 0.173 /
  0.274; scale 16: 0.035 / 0.165 / 0.136).
- time embedding at ``time_scale=100`` instead of DDPM's 1000: the same gaps (0.031 / 0.157 /
  0.143 at 10k) but the likelihood ODE needs ~190 function evaluations instead of ~500, since
  the learned field no longer oscillates as fast in t.
- width 128 and many steps rather than width 256: in the same ~90 s, width 256 for 10k steps
  reached 0.026 / 0.133 / 0.117, width 128 for 30k steps 0.010 / 0.086 / 0.040.
- many steps (40,000 at batch 256 until the batch-512 line below, ~300 steps/s): from 10k to 30k
  steps the gaps fell from 0.029 / 0.151 / 0.146 to 0.010 / 0.086 / 0.040.
- v-prediction, AdamW at lr 1e-3 with cosine decay to zero, clipping at 1.0, EMA 0.999,
  batch 256, t ~ U(1e-5, 1), vp_linear. At 30k steps, EMA 0.9995 changed nothing (0.0115 /
  0.0781 against 0.0115 / 0.0786: the decayed learning rate already stills the weights) and
  lr 2e-3 did no better (0.0094 / 0.0904) with more evaluations (~235).
- time sampling and loss space (``log_snr_fraction=0.5``, ``loss="eps"``): half of each batch
  has t drawn with uniform log-SNR, density beta/sigma^2 (the importance sampling of the
  likelihood weighting, Song, Durkan, Murray & Ermon 2021; Kingma et al. 2021), half uniform in
  t, and the squared error is measured in eps space (a v-network weighted by
  SNR / (1 + SNR)); on the log-SNR half that is the ELBO's own weighting. Sharp densities
  (rings, checkerboard) are decided at small t, which uniform t rarely visits (t < 0.021, i.e.
  log-SNR > 5, is 2% of uniform draws and 37% of log-SNR draws). At 15k steps, rings /
  checkerboard / 8gaussians: uniform t 0.287 / 0.116 / 0.022; log-SNR share 0.25, 0.5, 1 with
  the v-loss 0.260 / 0.112 / 0.024, 0.209 / 0.133 / 0.025, 0.168 / 0.150 / 0.025; share 1 with
  the eps-loss (the ELBO exactly) 0.164 / 0.103 / 0.035 (278 evaluations on rings); share 0.5
  with the eps-loss 0.155 / 0.104 / 0.028. At 40,000 steps on 5,000 points that last one took
  rings from 0.119 to 0.069 and checkerboard from 0.072 to 0.052 (242 and 236 evaluations);
  8gaussians seeds 0 / 1 / 2 stayed where they were (0.009 / 0.015 / 0.015 before, 0.012 / 0.012 /
  0.015 after: the same mean, 0.013). The full table (benchmarks/quality_2d.py, 5,000 points)
  before -> after: 8gaussians 0.009 -> 0.012, checkerboard 0.072 -> 0.052, rings 0.119 -> 0.069,
  circles 0.014 -> 0.022, moons 0.009 -> 0.011, swissroll 0.009 -> 0.013, pinwheel 0.019 ->
  0.024, 2spirals 0.037 -> 0.028, 194-242 evaluations: the smooth sets give back a few
  thousandths (fewer draws at mid t), the sharp ones gain several hundredths.
- batch 512 for 26,000 steps instead of 256 for 40,000 (the same ~2.5-3 minutes on one core,
  ~155 steps/s, 30% more points seen, half the gradient noise per step). With the lines above, at
  28,000 steps (174-181 s, so 26,000 keeps under 3 minutes), 5,000 points: 8gaussians seeds
  0 / 1 / 2 0.0117 / 0.0122 / 0.0152 -> 0.0086 / 0.0088 / 0.0087 (182-188 evaluations), rings
  0.069 -> 0.038 (254), checkerboard 0.052 -> 0.045 (230). The full table at 26,000 steps
  (seed 0, 5,000 points, 148-169 s of training): 8gaussians 0.009, checkerboard 0.046, rings
  0.041, circles 0.009, moons 0.003, swissroll 0.009, pinwheel 0.021, 2spirals 0.030, in 182-230
  evaluations: every set at or below both earlier tables; 8gaussians seeds 1 / 2 at 26,000
  steps: 0.0088 / 0.0098.
- tried and not kept (lead, 15k steps, with the two lines above; rings / checkerboard): the time
  embedding reading log t (``time_input="log_t"``) at scale 1 / 3 / 0.3: 0.197 / 0.129, 0.166 /
  0.129, 0.272 / 0.154 against 0.164 / 0.103; coord_scale 16: 0.162 / 0.112 with more
  evaluations; depth 4: 0.172 (rings); width 192: 0.139 / 0.095 for 1.55x the time.
"""

from __future__ import annotations

from typing import Any

from .schedule import Schedule, vp_linear

__all__ = ["RECIPES", "recipe"]

RECIPES: dict[str, dict[str, Any]] = {
    "2d": {
        "model": {"width": 128, "depth": 3, "emb_dim": 128, "activation": "gelu", "parameterization": "v",
                  "time_scale": 100.0, "coord_embedding": True, "coord_scale": 8.0, "raw_coords": True},
        "train": {"steps": 26_000, "batch_size": 512, "lr": 1e-3, "lr_schedule": "cosine", "clip_norm": 1.0,
                  "ema_decay": 0.999, "t_min": 1e-5, "log_snr_fraction": 0.5, "loss": "eps"},
    },
    "images": {
        "model": {"width": 256, "depth": 3, "emb_dim": 128, "activation": "gelu", "parameterization": "v",
                  "coord_embedding": False},
        "train": {"steps": 48_000, "batch_size": 128, "lr": 1e-3, "lr_schedule": "cosine", "clip_norm": 1.0,
                  "weight_decay": 0.1, "ema_decay": 0.999, "t_min": 1e-5},
        "data": {"dequantize": True},
        "eval": {"vlb_T": 50, "vlb_variance": "large"},
    },
}


def recipe(name: str = "2d") -> tuple[dict[str, Any], dict[str, Any], Schedule]:
    r"""Copies of the model and training keyword arguments of recipe ``name``, and its schedule."""
    if not isinstance(name, str) or name not in RECIPES:
        raise ValueError(f"recipe must be one of {sorted(RECIPES)}, got {name!r}")
    r = RECIPES[name]
    return dict(r["model"]), dict(r["train"]), vp_linear()
