"""Class labels that carry synonyms: `coffee table|cocktail table` is one class whose first
full name is shown to people and whose every name takes part in the text ensemble.

A label without `|` is a plain one-name class (labels written before synonyms existed).
The label string travels unchanged through the catalog, the memory, snapshots and releases.
"""
from __future__ import annotations

from typing import Iterable

SYNONYM_SEP = "|"


def synonyms(label: str) -> list[str]:
    """The names of a class label, in order, stripped, empties dropped ('a| b|' -> ['a', 'b'])."""
    names = [n.strip() for n in str(label).split(SYNONYM_SEP)]
    return [n for n in names if n] or [str(label).strip()]


def display_name(label: str) -> str:
    """The first full name of a label: what releases, diffs and dashboards show."""
    return synonyms(label)[0]


def join_synonyms(names: Iterable[str]) -> str:
    """One label from a class's names (first = display name), duplicates and empties dropped."""
    out = list(dict.fromkeys(n.strip() for n in names if n and n.strip()))
    return SYNONYM_SEP.join(out)
