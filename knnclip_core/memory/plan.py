"""The curation decision as a pure function of (rows, forget rules, parameters).

`plan_curation` gives every row a state and a reason; it never looks at the rows' current
states, so running it again on the same inputs gives the same answer (idempotent).
The order of decisions, each applied to the rows the previous ones left:

1. FORGOTTEN: rows matching an active forget rule (`forget_rule:<id>(<kind>=<value>)`).
2. CONFLICT: both rows of every pair with cosine >= threshold and different classes
   (`conflict_with:<id>(<class>)`, naming the most similar such partner). Left out of the
   memory until resolved (relabel one, or forget one).
3. DUPLICATE: within a class, rows joined by pairs with cosine >= threshold form groups
   (connected components); each group keeps its earliest ingested row (smallest
   `ingested_at`, then smallest id) and the others become `duplicate_of:<kept id>`.
4. KEPT / OVER_BUDGET: the budget strategy picks among the remaining rows.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import pyarrow as pa

from ..index.choice import flat_bytes
from .budget import bytes_per_vector, select
from .dedup import duplicate_groups, near_duplicate_pairs
from .table import CONFLICT, DUPLICATE, FORGOTTEN, KEPT, OVER_BUDGET

logger = logging.getLogger(__name__)

RULE_TEXT = ("forget rules first; then cross-class pairs with cosine >= threshold are label conflicts "
             "(both rows left out); then within a class each near-duplicate group (connected components "
             "of pairs with cosine >= threshold) keeps its earliest ingested row (ingested_at, then id); "
             "then the budget strategy chooses among the rest")
RULE_COLUMNS = {"dataset": "dataset", "batch": "batch_id", "image_sha": "image_sha256"}
MAX_LISTED_CONFLICTS = 200


@dataclass(frozen=True)
class Rule:
    """An active forget rule: rows whose `kind` column equals `value` are forgotten."""

    id: int
    kind: str
    value: str


@dataclass(frozen=True)
class CurationParams:
    """What a curation run decides with (all of it is recorded with the run)."""

    dedup_threshold: float = 0.98
    strategy: str = "balanced"
    budget_vectors: Optional[int] = None  # resolved from --budget-vectors or --budget-mb
    class_floor: int = 1
    class_ceiling: Optional[int] = None
    seed: int = 0
    dedup_method: str = "auto"
    dedup_nprobe: int = 4


@dataclass
class Plan:
    states: np.ndarray  # (n,) object: state per row, in the order of the input rows
    reasons: list[str]
    report: dict = field(default_factory=dict)


def forget_mask(rows: pa.Table, rules: list[Rule]) -> tuple[np.ndarray, list[str]]:
    """(n,) bool of rows matched by a rule, and the reason of each (first rule by id)."""
    n = rows.num_rows
    hit = np.zeros(n, bool)
    reasons = [""] * n
    for rule in sorted(rules, key=lambda r: r.id):
        col = np.asarray(rows.column(RULE_COLUMNS[rule.kind]).to_pylist(), dtype=object)
        new = (col == rule.value) & ~hit
        for i in np.nonzero(new)[0]:
            reasons[i] = f"forget_rule:{rule.id}({rule.kind}={rule.value})"
        hit |= new
    return hit, reasons


def ingest_rank(rows: pa.Table) -> np.ndarray:
    """(n,) rank of each row by (ingested_at, id); missing times sort last."""
    ids = rows.column("id").to_pylist()
    ts = rows.column("ingested_at").cast(pa.int64()).to_pylist()
    big = np.iinfo(np.int64).max
    order = sorted(range(len(ids)), key=lambda i: (big if ts[i] is None else ts[i], ids[i]))
    rank = np.empty(len(ids), np.int64)
    rank[np.asarray(order, np.int64)] = np.arange(len(ids))
    return rank


def vectors_of(rows: pa.Table) -> np.ndarray:
    """(n, D) float32 L2-normalised vectors of the rows."""
    col = rows.column("vector").combine_chunks()
    dim = col.type.list_size
    xb = np.asarray(col.flatten().to_numpy(zero_copy_only=False), np.float32).reshape(-1, dim)
    norms = np.linalg.norm(xb, axis=1, keepdims=True)
    return np.ascontiguousarray(xb / np.maximum(norms, 1e-12), dtype=np.float32)


def plan_curation(rows: pa.Table, rules: list[Rule], params: CurationParams) -> Plan:
    """States and reasons for `rows` (columns id, vector, class_name, dataset, batch_id,
    image_sha256, ingested_at), and the report. Raises KeyError for an unknown strategy."""
    n = rows.num_rows
    ids = rows.column("id").to_pylist()
    classes = np.asarray(rows.column("class_name").to_pylist(), dtype=object)
    states = np.full(n, "", dtype=object)
    reasons = [""] * n
    forgotten, f_reasons = forget_mask(rows, rules)
    states[forgotten] = FORGOTTEN
    for i in np.nonzero(forgotten)[0]:
        reasons[i] = f_reasons[i]

    live = np.nonzero(~forgotten)[0]
    xb = vectors_of(rows.take(pa.array(live))) if len(live) else np.zeros((0, 1), np.float32)
    S, P = near_duplicate_pairs(xb, params.dedup_threshold, params.dedup_method, params.dedup_nprobe, params.seed)
    P = live[P] if len(P) else np.zeros((0, 2), np.int64)  # back to row indices
    cross = classes[P[:, 0]] != classes[P[:, 1]] if len(P) else np.zeros(0, bool)

    # 2. label conflicts: partner = most similar pair of another class (ties: smaller id)
    conflicts = []
    best: dict[int, tuple[float, str, int]] = {}
    for (a, b), s in zip(P[cross], S[cross]):
        conflicts.append((float(s), int(a), int(b)))
        for x, y in ((a, b), (b, a)):
            cand = (-float(s), ids[y], int(y))
            if int(x) not in best or cand < best[int(x)]:
                best[int(x)] = cand
    for x, (_, _, y) in best.items():
        states[x] = CONFLICT
        reasons[x] = f"conflict_with:{ids[y]}({classes[y]})"

    # 3. duplicate groups within a class, among rows not in conflict
    same = ~cross
    Ps = P[same]
    if len(Ps):
        Ps = Ps[(states[Ps[:, 0]] == "") & (states[Ps[:, 1]] == "")]
    keeper = duplicate_groups(n, Ps, ingest_rank(rows))
    dup = np.nonzero(keeper != np.arange(n))[0]
    states[dup] = DUPLICATE
    for i in dup:
        reasons[i] = f"duplicate_of:{ids[keeper[i]]}"

    # 4. budget
    eligible = np.nonzero(states == "")[0]
    xe = vectors_of(rows.take(pa.array(eligible))) if len(eligible) else np.zeros((0, 1), np.float32)
    keep = select(params.strategy, xe, classes[eligible], [ids[i] for i in eligible], params.budget_vectors,
                  floor=params.class_floor, ceiling=params.class_ceiling, seed=params.seed)
    kept = eligible[keep]
    states[eligible] = OVER_BUDGET
    for i in eligible:
        reasons[i] = f"over_budget:{params.strategy}"
    states[kept] = KEPT
    for i in kept:
        reasons[i] = ""

    dim = rows.schema.field("vector").type.list_size
    report = build_report(ids, classes, states, conflicts, int(same.sum()), len(set(keeper[dup].tolist())), params, dim)
    return Plan(states=states, reasons=reasons, report=report)


def build_report(ids, classes, states, conflicts, dup_pairs, dup_groups, params: CurationParams, dim: int) -> dict:
    """Counts per state and per class, what was dropped and why, listed conflicts."""
    per_class: dict[str, dict[str, int]] = {}
    for c, s in zip(classes.tolist(), states.tolist()):
        d = per_class.setdefault(str(c), {"rows": 0})
        d["rows"] += 1
        d[s] = d.get(s, 0) + 1
    dropped = {c: {s: v for s, v in d.items() if s not in ("rows", KEPT)} for c, d in per_class.items()}
    counts = {s: int((states == s).sum()) for s in (KEPT, DUPLICATE, CONFLICT, OVER_BUDGET, FORGOTTEN)}
    conflicts.sort(key=lambda t: (-t[0], ids[t[1]], ids[t[2]]))
    listed = [{"a": ids[a], "a_class": str(classes[a]), "b": ids[b], "b_class": str(classes[b]),
               "similarity": round(s, 5)} for s, a, b in conflicts[:MAX_LISTED_CONFLICTS]]
    bpv = bytes_per_vector(dim)
    return {
        "rule": RULE_TEXT, "rows": len(ids), "counts": counts, "per_class": dict(sorted(per_class.items())),
        "dropped": dict(sorted(dropped.items())), "duplicate_pairs": dup_pairs, "duplicate_groups": dup_groups,
        "conflict_pairs": len(conflicts), "conflicts": listed,
        "budget": {"vectors": params.budget_vectors, "strategy": params.strategy, "bytes_per_vector": bpv,
                   "kept_bytes": flat_bytes(counts[KEPT], dim), "class_floor": params.class_floor,
                   "class_ceiling": params.class_ceiling},
    }
