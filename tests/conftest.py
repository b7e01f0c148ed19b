"""Shared test settings: a bounded hypothesis profile so the suite's wall time is predictable."""

import os

from hypothesis import HealthCheck, settings

# deadline=None: the first example of a test may trigger a Numba compile.
settings.register_profile(
    "npdiff",
    max_examples=int(os.environ.get("NPDIFF_HYPOTHESIS_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)
settings.load_profile("npdiff")
