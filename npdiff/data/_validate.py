r"""Checks of the prompts' arguments, kept out of :mod:`npdiff.data.prompts` so that the rule reads as the rule."""

from __future__ import annotations

__all__ = ["as_prompt_list"]


def as_prompt_list(prompts: object, n: int | None = None, name: str = "prompts") -> list[str]:
    r"""One prompt string or a list of them, as a list; with ``n``, one prompt (for all) or exactly n."""
    if isinstance(prompts, str):
        prompts = [prompts]
    if not isinstance(prompts, (list, tuple)) or not all(isinstance(p, str) for p in prompts):
        raise TypeError(f"{name} must be a string or a list of strings, got {type(prompts).__name__}")
    if n is not None and len(prompts) not in (1, n):
        raise ValueError(f"{name} must be one prompt or one per sample ({n}), got {len(prompts)}")
    return list(prompts)
