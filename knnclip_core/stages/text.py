"""Small text helpers of the stage lines (counts with their noun, sizes, the budget in words)."""
from __future__ import annotations

from typing import Optional


def count(n, word: str, plural: Optional[str] = None) -> str:
    """'1 conflict', '4 conflicts', '1,200 images'."""
    n = int(n or 0)
    return f"{n:,} {word if n == 1 else (plural or word + 's')}"


def reasons_text(reasons: dict) -> str:
    """'not_an_image: 2, truncated_image: 1', or 'none'."""
    return ", ".join(f"{k}: {v}" for k, v in sorted((reasons or {}).items())) or "none"


def size_text(n_bytes) -> str:
    """'1.23 MB' from 100 kB up, else '12.3 kB'."""
    n = float(n_bytes or 0)
    return f"{n / 1e6:,.2f} MB" if n >= 1e5 else f"{n / 1e3:,.1f} kB"


def number(v) -> str:
    """A float with 3 decimals, or the value as it is when it is not a number."""
    try:
        return f"{float(v):.3f}"
    except (TypeError, ValueError):
        return str(v)


def budget_text(budget: Optional[dict], params: Optional[dict] = None) -> str:
    """The curation budget in words, e.g. 'at most 2,000 vectors (1 MB requested; balanced,
    class floor 1, no class ceiling); kept 0.41 MB at 512 B/vector', or 'none (balanced, ...)'."""
    budget, params = budget or {}, params or {}
    if not budget:
        return "not recorded"
    vectors = budget.get("vectors")
    ceiling = budget.get("class_ceiling")
    rules = [str(budget.get("strategy") or "default strategy"), f"class floor {budget.get('class_floor', 0)}",
             "no class ceiling" if ceiling is None else f"class ceiling {ceiling}"]
    if params.get("budget_mb") is not None:
        rules[0] = f"{params['budget_mb']:g} MB requested; {rules[0]}"
    text = (f"at most {vectors:,} vectors" if vectors is not None else "none") + f" ({', '.join(rules)})"
    if budget.get("bytes_per_vector"):
        text += f"; kept {size_text(budget.get('kept_bytes'))} at {budget['bytes_per_vector']:,} B/vector"
    return text
