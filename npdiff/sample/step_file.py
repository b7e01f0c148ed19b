r"""The step file: a sampler's step times, with the schedule they belong to, in one small JSON file.

A fixed-step sampler walks a decreasing grid :math:`t_{\max} = t_0 > t_1 > \dots > t_K = t_{\min}`
(:mod:`npdiff.sample.grids`). Step times chosen for one model (``npdiff steps``, which optimizes them
by the exact KL) are kept in a file that ``npdiff sample --steps-file`` reads back, and that any other
user of a grid (a bound on a chain of these times) can read too. Layout::

    {"format": "npdiff-steps", "version": 1,
     "times":    [t_max, ..., t_min],       # K + 1 times, strictly decreasing
     "schedule": {"kind": "vp_linear", ...},  # Schedule.config(), as the checkpoint stores it
     "sampler":  "dpmpp2m" or null,         # the sampler the times were chosen for
     "nfe":      10 or null,                # its budget of denoiser evaluations (without the denoising step)
     "objective": "...", "data": "...", "model": "...",   # what the times were optimized for, or null
     "kl": 0.003 or null, "kl_se": 0.001 or null}         # the divergence reached, with its standard error

The times are tied to the schedule: the same t is another noise level under another schedule, so a
file is refused for a model of another schedule (:func:`check_steps_for`). ``sampler`` and ``nfe``
may be absent (a file of times and a schedule only); every other field but ``times`` and
``schedule`` is optional. Writing is atomic (a temporary file renamed over the target); every
problem of a file read back is a ``ValueError`` naming the file, the field, what was expected and
what was found.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from .._atomic import write_atomically
from .._validate import check_schedule
from ..schedule import Schedule, schedule_from_config
from .fast import FAST_SAMPLERS, MIN_NFE, grid_steps
from .grids import check_grid

__all__ = ["FORMAT", "VERSION", "StepFile", "check_steps_for", "load_steps", "nfe_for_steps", "save_steps"]

#: the ``format`` field that marks a step file
FORMAT = "npdiff-steps"
#: the layout's version; a reader refuses a newer one
VERSION = 1
#: the optional text fields (what the times were optimized for)
_TEXT_FIELDS = ("objective", "data", "model")
#: the ends of a grid read back from text must be the schedule's to this relative tolerance (JSON keeps 17 digits)
_END_RTOL = 1e-12


@dataclasses.dataclass(frozen=True)
class StepFile:
    r"""What :func:`load_steps` returns: a step file's contents, checked.

    Attributes
    ----------
    times : (K + 1,) float64 array
        The step times, strictly decreasing from ``schedule.t_max`` to ``t_min = times[-1]``.
    schedule : Schedule
        The schedule the times belong to.
    sampler : str or None
        The sampler the times were chosen for (one of :data:`~npdiff.sample.FAST_SAMPLERS`).
    nfe : int or None
        Its budget of denoiser evaluations on these times (the final denoising step not counted).
    objective : str or None
        What the times minimize, e.g. ``"exact KL(p_F || p_flow)"``.
    data : str or None
        The data set the model was trained on.
    model : str or None
        The model (or oracle) the times were optimized on.
    kl : float or None
        The divergence reached on fresh points.
    kl_se : float or None
        Its standard error.
    path : Path or None
        The file it was read from.
    """

    times: np.ndarray
    schedule: Schedule
    sampler: str | None = None
    nfe: int | None = None
    objective: str | None = None
    data: str | None = None
    model: str | None = None
    kl: float | None = None
    kl_se: float | None = None
    path: Path | None = None

    @property
    def steps(self) -> int:
        r"""K, the number of steps between the K + 1 times."""
        return int(self.times.size - 1)

    @property
    def t_min(self) -> float:
        r"""Where the times end."""
        return float(self.times[-1])


def _where(path: object) -> str:
    return f"step file {str(path)!r}" if path is not None else "step times"


def _times(times: object, schedule: Schedule, where: str) -> np.ndarray:
    r"""The times as a grid of ``schedule``: strictly decreasing, from its t_max (to 1e-12) to a t_min > 0."""
    try:
        t = check_grid(schedule, times, "times")
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: field 'times': {exc}") from None
    if not math.isclose(t[0], schedule.t_max, rel_tol=_END_RTOL):
        raise ValueError(f"{where}: field 'times' must start at the schedule's t_max = {schedule.t_max!r} "
                         f"(the flow starts there), got {t[0]!r}")
    t[0] = schedule.t_max
    return t


def _budget(sampler: object, nfe: object, steps: int, where: str) -> tuple[str | None, int | None]:
    r"""The sampler and its budget: a known sampler, at least its MIN_NFE, buying exactly ``steps`` steps."""
    if sampler is None:
        if nfe is not None:
            raise ValueError(f"{where}: field 'nfe' counts the evaluations of a sampler, but field 'sampler' is "
                             f"null (got nfe={nfe!r})")
        return None, None
    if not isinstance(sampler, str) or sampler not in FAST_SAMPLERS:
        raise ValueError(f"{where}: field 'sampler' must be one of {', '.join(FAST_SAMPLERS)}, got {sampler!r}")
    if nfe is None:
        return sampler, nfe_for_steps(sampler, steps, where)
    if isinstance(nfe, bool) or not isinstance(nfe, (int, np.integer)):
        raise ValueError(f"{where}: field 'nfe' must be an integer, got {nfe!r}")
    if nfe < MIN_NFE[sampler]:
        raise ValueError(f"{where}: field 'nfe' must be at least {MIN_NFE[sampler]} for {sampler} (the evaluations "
                         f"its order needs), got {nfe}")
    if grid_steps(sampler, int(nfe)) != steps:
        raise ValueError(f"{where}: field 'nfe' = {nfe} buys {grid_steps(sampler, int(nfe))} steps of {sampler}, "
                         f"but field 'times' holds {steps} steps ({steps + 1} times)")
    return sampler, int(nfe)


def _number(value: object, field: str, where: str, *, nonnegative: bool = False) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or (
            nonnegative and value < 0):
        kind = "a finite number >= 0" if nonnegative else "a finite number"
        raise ValueError(f"{where}: field {field!r} must be {kind} or null, got {value!r}")
    return float(value)


def _text(value: object, field: str, where: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{where}: field {field!r} must be a string or null, got {value!r}")
    return value


def nfe_for_steps(sampler: str, steps: int, where: str = "step times") -> int:
    r"""The budget of evaluations on which ``sampler`` walks a grid of exactly ``steps`` steps (the largest one).

    Parameters
    ----------
    sampler : str
        One of :data:`~npdiff.sample.FAST_SAMPLERS`.
    steps : int
        K, the steps of the grid.
    where : str
        What the grid came from, for the error message.

    Returns
    -------
    int
        The largest ``nfe`` with ``grid_steps(sampler, nfe) == steps`` (Heun's method: ``2 K``;
        a multistep method: ``K``).

    Examples
    --------
    >>> from npdiff.sample.step_file import nfe_for_steps
    >>> nfe_for_steps("dpmpp2m", 10), nfe_for_steps("edm", 10), nfe_for_steps("dpm3", 4)
    (10, 20, 11)
    """
    # every sampler spends between 1 and 3 evaluations a step
    fits = [n for n in range(max(MIN_NFE[sampler], steps), 3 * steps + 2) if grid_steps(sampler, n) == steps]
    if not fits:
        raise ValueError(f"{where}: {sampler} cannot walk a grid of {steps} steps on any budget of evaluations")
    if sampler == "heun":  # Heun spends an odd budget's last evaluation on nothing: the even budget is what it spends
        return min(fits)
    return max(fits)


def save_steps(
    path: str | os.PathLike,
    times: object,
    schedule: Schedule,
    *,
    sampler: str | None = None,
    nfe: int | None = None,
    objective: str | None = None,
    data: str | None = None,
    model: str | None = None,
    kl: float | None = None,
    kl_se: float | None = None,
) -> Path:
    r"""Write step times and what they belong to as a step file (module docstring), atomically.

    Parameters
    ----------
    path : str or path
        The file to write (its folder must exist).
    times : (K + 1,) array
        Strictly decreasing from ``schedule.t_max`` to ``t_min > 0``.
    schedule : Schedule
        The schedule of the model the times are for.
    sampler : str or None
        The sampler they were chosen for.
    nfe : int or None
        Its budget; None with a sampler: the budget that walks K steps (:func:`nfe_for_steps`).
    objective : str or None
        What the times minimize.
    data : str or None
        The data set of the model.
    model : str or None
        The model or oracle they were optimized on.
    kl : float or None
        The divergence reached.
    kl_se : float or None
        Its standard error.

    Returns
    -------
    Path
        The file written.

    Examples
    --------
    >>> import tempfile, os
    >>> from npdiff.sample.step_file import load_steps, save_steps
    >>> from npdiff.schedule import vp_linear
    >>> path = os.path.join(tempfile.mkdtemp(), "steps.json")
    >>> _ = save_steps(path, [1.0, 0.4, 0.1, 0.001], vp_linear(), sampler="dpmpp2m")
    >>> f = load_steps(path)
    >>> print(f.times, f.sampler, f.nfe)
    [1.    0.4   0.1   0.001] dpmpp2m 3
    """
    schedule = check_schedule(schedule)
    t = _times(times, schedule, "step times")
    sampler, nfe = _budget(sampler, nfe, t.size - 1, "step times")
    for field, value in zip(_TEXT_FIELDS, (objective, data, model)):
        _text(value, field, "step times")
    kl, kl_se = _number(kl, "kl", "step times"), _number(kl_se, "kl_se", "step times", nonnegative=True)
    record: dict[str, Any] = {"format": FORMAT, "version": VERSION, "times": [float(v) for v in t],
                              "schedule": schedule.config(), "sampler": sampler, "nfe": nfe,
                              "objective": objective, "data": data, "model": model, "kl": kl, "kl_se": kl_se}
    path = Path(path)
    text = json.dumps(record, indent=1) + "\n"
    return write_atomically(path, lambda f: f.write(text.encode()))


def load_steps(path: str | os.PathLike) -> StepFile:
    r"""Read a step file written by :func:`save_steps` (or by hand), checking every field.

    Parameters
    ----------
    path : str or path
        The step file.

    Returns
    -------
    StepFile
        Its times (float64), schedule, and the optional fields (None where absent).

    Raises
    ------
    ValueError
        Naming the file and the field: not JSON, not a step file, a newer version, times that do not
        decrease or do not start at the schedule's ``t_max``, an unknown schedule or sampler, a budget
        below the sampler's order or one that does not buy the file's steps.

    Examples
    --------
    >>> import tempfile, os, json
    >>> from npdiff.sample.step_file import load_steps
    >>> path = os.path.join(tempfile.mkdtemp(), "bad.json")
    >>> with open(path, "w") as f:
    ...     json.dump({"format": "npdiff-steps", "version": 1, "times": [1.0, 0.001, 0.5],
    ...                "schedule": {"kind": "vp_linear", "beta_min": 0.1, "beta_max": 20.0}}, f)
    >>> load_steps(path)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: step file '.../bad.json': field 'times': times must decrease strictly (from noise to data), ...
    """
    path = Path(path)
    where = _where(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ValueError(f"{where} cannot be read: {exc.strerror or exc}") from None
    try:
        record = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"{where} is not JSON ({exc}); expected a step file written by `npdiff steps`") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        found = record.get("format") if isinstance(record, dict) else type(record).__name__
        raise ValueError(f"{where}: field 'format' must be {FORMAT!r} (a step file written by `npdiff steps`), "
                         f"got {found!r}")
    version = record.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= VERSION:
        raise ValueError(f"{where}: field 'version' must be an integer in 1..{VERSION} (newer files need a newer "
                         f"npdiff), got {version!r}")
    for field in ("times", "schedule"):
        if field not in record:
            raise ValueError(f"{where}: field {field!r} is missing")
    try:
        schedule = schedule_from_config(record["schedule"])
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: field 'schedule' must be a schedule's config as a checkpoint stores it, got "
                         f"{record['schedule']!r} ({exc})") from None
    times = record["times"]
    if not isinstance(times, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in times):
        raise ValueError(f"{where}: field 'times' must be a list of numbers, got {times!r}")
    t = _times(times, schedule, where)
    sampler, nfe = _budget(record.get("sampler"), record.get("nfe"), t.size - 1, where)
    text_fields = {field: _text(record.get(field), field, where) for field in _TEXT_FIELDS}
    return StepFile(times=t, schedule=schedule, sampler=sampler, nfe=nfe, **text_fields,
                    kl=_number(record.get("kl"), "kl", where),
                    kl_se=_number(record.get("kl_se"), "kl_se", where, nonnegative=True), path=path)


def check_steps_for(step_file: StepFile, schedule: Schedule, sampler: str | None = None) -> StepFile:
    r"""The step file made ready for a model of ``schedule`` and a sampler: refused if it does not fit.

    Parameters
    ----------
    step_file : StepFile
        What :func:`load_steps` read.
    schedule : Schedule
        The model's schedule; the file's must be the same (the same times are other noise levels under
        another schedule).
    sampler : str or None
        The sampler to run the times with; None: the file's (which may be None for a file of times only).
        Another sampler than the file's is accepted when it can walk the file's K steps
        (:func:`nfe_for_steps`): the times were optimized for the file's sampler, so they may be less good
        for another.

    Returns
    -------
    StepFile
        The same file, its ``sampler`` and ``nfe`` those to run.

    Examples
    --------
    >>> import numpy as np
    >>> from npdiff.sample.step_file import StepFile, check_steps_for
    >>> from npdiff.schedule import cosine, vp_linear
    >>> f = StepFile(np.array([1.0, 0.3, 0.001]), vp_linear(), "dpmpp2m", 2)
    >>> check_steps_for(f, vp_linear(), "heun").nfe
    4
    >>> check_steps_for(f, cosine())  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: step times: made for the schedule VPLinear(beta_min=0.1, beta_max=20.0), ...
    """
    if not isinstance(step_file, StepFile):
        raise TypeError(f"step_file must be a StepFile (from load_steps), got {type(step_file).__name__}")
    schedule = check_schedule(schedule)
    where = _where(step_file.path)
    if step_file.schedule != schedule:
        raise ValueError(f"{where}: made for the schedule {step_file.schedule!r}, but the model's schedule is "
                         f"{schedule!r} (the same times are other noise levels there); make steps for this model")
    if sampler is None or sampler == step_file.sampler:
        return step_file
    sampler, nfe = _budget(sampler, None, step_file.steps, where)
    return dataclasses.replace(step_file, sampler=sampler, nfe=nfe)
