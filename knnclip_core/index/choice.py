"""Which FAISS index a snapshot uses: exact Flat when small, graph or IVF variants as
the memory grows or the byte budget tightens.

Index kinds are plug-ins (`INDEX_KINDS`, a `knnclip_core.plugins.Registry`): each kind
turns (n, d) into a factory string, estimates its serialised bytes and declares its place
in the budget walk (`budget_rank`, lower = more exact; None = never chosen for a budget).
`choose_index` walks the registered kinds by that rank and returns the first that fits.
"""
from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass, field
from typing import Callable, Optional

from ..plugins import Registry

logger = logging.getLogger(__name__)

FLAT_MAX_VECTORS = 100_000   # below this, no budget: exact search is cheap enough
HNSW_MAX_VECTORS = 300_000   # up to this, no budget: HNSW32 (fast queries, build still short)
IVF_ID_BYTES = 8             # IVF lists store one int64 id per vector
HNSW_M = 32


@dataclass(frozen=True)
class IndexKind:
    """A family of indexes: `factory(n, d)` gives the factory string, `bytes_per_vector(d)`
    the approximate serialised size per vector (coarse centroids are added separately),
    `budget_rank` its place in the budget walk (lower = more exact; None: not a budget choice)."""

    name: str
    factory: Callable[[int, int], str]
    bytes_per_vector: Callable[[int], float]
    ivf: bool = False
    budget_rank: Optional[float] = None


@dataclass
class IndexChoice:
    """The chosen factory string, with why, and its estimated serialised bytes."""

    factory: str
    kind: str
    estimated_bytes: int
    reason: str
    nlist: Optional[int] = None
    tried: list[dict] = field(default_factory=list)


INDEX_KINDS: Registry[IndexKind] = Registry("index kinds")


def nlist_for(n: int) -> int:
    """Number of IVF lists: a power of two near 4*sqrt(n), with >= 39 training points a list."""
    assert n > 0
    target = 4 * math.sqrt(n)
    nlist = 2 ** max(4, round(math.log2(max(target, 1))))
    while nlist > 16 and nlist * 39 > n:
        nlist //= 2
    return int(nlist)


def pq_m_for(d: int, bytes_per_vector: int) -> Optional[int]:
    """Largest PQ sub-quantizer count <= bytes_per_vector that divides d (8-bit codes)."""
    for m in range(min(bytes_per_vector, d), 0, -1):
        if d % m == 0:
            return m
    return None


def _ivf(code: str) -> Callable[[int, int], str]:
    return lambda n, d: f"IVF{nlist_for(n)},{code}"


def _add_default_kinds() -> None:
    INDEX_KINDS.add("flat", IndexKind("flat", lambda n, d: "Flat", lambda d: float(code_size(d, "Flat")), budget_rank=0))
    INDEX_KINDS.add("hnsw", IndexKind("hnsw", lambda n, d: f"HNSW{HNSW_M},Flat",
                                      lambda d: 4.0 * d + HNSW_M * 2 * 4 * 1.1))  # larger than flat: no budget use
    INDEX_KINDS.add("ivf_flat", IndexKind("ivf_flat", _ivf("Flat"), lambda d: 4.0 * d + IVF_ID_BYTES, ivf=True,
                                          budget_rank=10))
    for rank, (bits, per_dim) in enumerate(((8, 1.0), (6, 0.75), (4, 0.5))):
        INDEX_KINDS.add(f"ivf_sq{bits}", IndexKind(f"ivf_sq{bits}", _ivf(f"SQ{bits}"),
                                                   (lambda pd: lambda d: pd * d + IVF_ID_BYTES)(per_dim),
                                                   ivf=True, budget_rank=20 + rank))
    for rank, frac in enumerate((4, 8, 16)):  # PQ with d/4, d/8, d/16 bytes per vector
        INDEX_KINDS.add(f"ivf_pq_d{frac}", IndexKind(
            f"ivf_pq_d{frac}",
            (lambda fr: lambda n, d: f"IVF{nlist_for(n)},PQ{pq_m_for(d, max(1, d // fr))}")(frac),
            (lambda fr: lambda d: float(pq_m_for(d, max(1, d // fr)) or 1) + IVF_ID_BYTES)(frac),
            ivf=True, budget_rank=30 + rank))


_add_default_kinds()


def budget_order() -> list[str]:
    """Names of the registered kinds that take part in the budget walk, most exact first."""
    ranked = [(INDEX_KINDS.get(name).budget_rank, name) for name in INDEX_KINDS.names()]
    return [name for rank, name in sorted(r for r in ranked if r[0] is not None)]


@functools.lru_cache(maxsize=None)
def flat_header_bytes() -> int:
    """Bytes faiss writes for an empty IndexFlatIP (its header), measured once."""
    import faiss

    return len(faiss.serialize_index(faiss.IndexFlatIP(1)))


def code_size(d: int, factory: str = "Flat") -> int:
    """Bytes faiss stores per vector for `factory` at dimension d
    (`faiss.contrib.factory_tools.get_code_size`; graph links and ids not included)."""
    from faiss.contrib.factory_tools import get_code_size

    return int(get_code_size(int(d), factory))


def flat_bytes(n: int, d: int) -> int:
    """Serialised bytes of an exact IndexFlatIP over n vectors of dimension d: faiss's header
    plus its code size per vector. THE formula for a Flat index's size: the curation budget
    (knnclip_core.memory.budget) and the index choice both use it."""
    return flat_header_bytes() + int(n) * code_size(d, "Flat")


def flat_vectors_within(byte_budget: int, d: int) -> int:
    """The most vectors of dimension d whose Flat index fits `byte_budget` bytes (>= 0)."""
    return max(0, (int(byte_budget) - flat_header_bytes()) // code_size(d, "Flat"))


def estimate_bytes(kind: str, n: int, d: int, nlist: Optional[int] = None) -> int:
    """Approximate serialised bytes of index kind `kind` over n vectors of dimension d
    (IVF kinds with `nlist` lists, default `nlist_for(n)`)."""
    if kind == "flat":
        return flat_bytes(n, d)
    k = INDEX_KINDS.get(kind)
    total = k.bytes_per_vector(d) * n
    if k.ivf:
        total += (nlist or nlist_for(n)) * d * 4  # coarse centroids
    return int(total)


# An IVF kind that misses the budget by its coarse centroids alone is retried with fewer
# lists (recall is kept by probing more of them) before a less exact code is taken.
NLIST_SHRINK = (1, 2, 4)


def choose_index(n: int, d: int, byte_budget: Optional[int] = None, factory: Optional[str] = None,
                 exclude: tuple[str, ...] = ()) -> IndexChoice:
    """Pick the index for n vectors of dimension d.

    `factory` (a FAISS factory string) overrides the choice. Without a byte budget: Flat up
    to FLAT_MAX_VECTORS, HNSW32 up to HNSW_MAX_VECTORS, IVF-Flat above. With a budget: the
    most exact kind of `budget_order()` whose estimated bytes fit (kinds in `exclude` skipped).
    Raises ValueError when nothing fits the budget.
    """
    assert n > 0 and d > 0
    if factory:
        return IndexChoice(factory, "override", 0, f"factory {factory!r} given explicitly",
                           nlist=nlist_of(factory))
    if byte_budget is None:
        kind = "flat" if n <= FLAT_MAX_VECTORS else "hnsw" if n <= HNSW_MAX_VECTORS else "ivf_flat"
        f = INDEX_KINDS.get(kind).factory(n, d)
        return IndexChoice(f, kind, estimate_bytes(kind, n, d), f"no byte budget and {n} vectors",
                           nlist=nlist_of(f))
    tried = []
    for kind in budget_order():
        if kind in exclude:
            continue
        if INDEX_KINDS.get(kind).ivf and n < 39 * 16:
            continue  # too few vectors to train even the smallest IVF
        ivf = INDEX_KINDS.get(kind).ivf
        for shrink in NLIST_SHRINK if ivf else (1,):
            nlist = max(16, nlist_for(n) // shrink) if ivf else None
            est = estimate_bytes(kind, n, d, nlist)
            tried.append({"kind": kind, "nlist": nlist, "estimated_bytes": est})
            if est <= byte_budget:
                f = INDEX_KINDS.get(kind).factory(n, d)
                f = with_nlist(f, nlist) if ivf else f
                return IndexChoice(f, kind, est, f"most exact index under the byte budget of {byte_budget} bytes",
                                   nlist=nlist_of(f), tried=tried)
    raise ValueError(f"no index kind fits {n} vectors of dimension {d} into {byte_budget} bytes "
                     f"(the smallest needs {min(t['estimated_bytes'] for t in tried) if tried else 'n/a'})")


def with_nlist(factory: str, nlist: int) -> str:
    """`factory` with its IVF list count replaced ('IVF2048,SQ6' -> 'IVF1024,SQ6')."""
    head, _, rest = factory.partition(",")
    assert head.startswith("IVF"), factory
    return f"IVF{int(nlist)}" + ("," + rest if rest else "")


def nlist_of(factory: str) -> Optional[int]:
    """IVF list count of a factory string, None for non-IVF indexes."""
    head = factory.split(",")[0]
    if head.startswith("IVF"):
        digits = "".join(ch for ch in head[3:] if ch.isdigit())
        return int(digits) if digits else None
    return None
