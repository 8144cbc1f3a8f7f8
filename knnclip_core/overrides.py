"""Overrides from a command line or a flow's parameters, applied once at the edge.

A stage never re-applies "None means the config" per keyword: the CLI or the flow builds one
settings copy with what was asked (`with_overrides`) and every stage reads only that copy.
"""
from __future__ import annotations

from typing import Any, Optional

from .config import Settings


def with_overrides(settings: Settings, **sections: Optional[dict]) -> Settings:
    """A copy of `settings` whose nested sections take the non-None values of `sections`,
    e.g. `with_overrides(s, curate={"budget_mb": 50})`. Each changed section is validated
    again (its field types and bounds apply); `settings` itself is left as it was.
    Raises ValueError (pydantic's ValidationError) for a value its field refuses."""
    update: dict[str, Any] = {}
    for name, values in sections.items():
        values = {k: v for k, v in (values or {}).items() if v is not None}
        if not values:
            continue
        current = getattr(settings, name)
        update[name] = type(current).model_validate({**current.model_dump(), **values})
    return settings.model_copy(update=update) if update else settings


def budget_override(budget_vectors: Optional[int] = None, budget_mb: Optional[float] = None) -> dict:
    """The curate section's budget as asked: a budget given in one unit replaces the configured
    budget in both units (a flag --budget-mb is not combined with a configured budget_vectors).
    {} when neither was given (the configured budget stands)."""
    if budget_vectors is None and budget_mb is None:
        return {}
    return {"budget_vectors": budget_vectors, "budget_mb": budget_mb}


def apply_budget(settings: Settings, budget_vectors: Optional[int] = None,
                 budget_mb: Optional[float] = None) -> Settings:
    """`settings` with the curation budget asked for (see `budget_override`); unchanged when none."""
    asked = budget_override(budget_vectors, budget_mb)
    if not asked:
        return settings
    curate = settings.curate.model_copy(update=asked)
    return settings.model_copy(update={"curate": type(curate).model_validate(curate.model_dump())})


def settings_asked(settings: Settings, what: str, **sections: Optional[dict]) -> Settings:
    """`with_overrides` for an edge (a command or a flow): a value its field refuses is an
    InputError naming `what` was asked ('embed options refused: ...')."""
    from .errors import InputError

    try:
        return with_overrides(settings, **sections)
    except ValueError as exc:  # pydantic's ValidationError
        raise InputError(f"{what} options refused: {' '.join(str(exc).split())[:300]}") from None
