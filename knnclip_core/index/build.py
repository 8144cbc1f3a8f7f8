"""Build a FAISS index over L2-normalised vectors (inner product = cosine), tune its
search parameter (nprobe / efSearch) for a recall floor, and measure recall@10 against
an exact search on a sample of the memory's own rows."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Optional

import faiss
import numpy as np

from ..errors import KnnclipError
from .choice import IndexChoice

logger = logging.getLogger(__name__)

RECALL_K = 10
RECALL_SAMPLE = 1000
TRAIN_POINTS_PER_LIST = 40  # faiss warns below 39
NPROBE_STEPS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384)
EF_STEPS = (32, 64, 128, 256, 512, 1024)
ENCODER_TRAIN_MAX = 16_384  # points to train PQ/SQ codes (>= 39 x 256 for 8-bit PQ)
RECALL_MARGIN = 0.02  # aim a little above the floor, since recall is measured on a sample


class RecallFloorError(KnnclipError):
    """The built index does not reach the configured recall@10 floor."""


@dataclass
class BuiltIndex:
    """A trained, filled and tuned index, with the figures the manifest records."""

    index: faiss.Index
    factory: str
    search_params: dict
    recall_at_10: float
    recall_sample: int
    recall_curve: list = field(default_factory=list)
    train_size: int = 0
    build_seconds: float = 0.0


def check_vectors(xb: np.ndarray) -> np.ndarray:
    """Return xb as C-contiguous float32 (n, d); asserts rows are L2-normalised."""
    xb = np.ascontiguousarray(xb, dtype=np.float32)
    assert xb.ndim == 2 and xb.shape[0] > 0, f"expected a non-empty (n, d) array, got {xb.shape}"
    norms = np.linalg.norm(xb, axis=1)
    assert np.all(np.abs(norms - 1.0) < 1e-3), "vectors must be L2-normalised (cosine = inner product)"
    return xb


def search_param_name(index: faiss.Index) -> Optional[str]:
    """'nprobe' for IVF indexes, 'efSearch' for HNSW, None for indexes without a knob."""
    if faiss.try_extract_index_ivf(index) is not None:
        return "nprobe"
    inner = faiss.downcast_index(index.index) if isinstance(index, faiss.IndexPreTransform) else index
    if isinstance(inner, faiss.IndexHNSW):
        return "efSearch"
    return None


def apply_search_params(index: faiss.Index, params: dict) -> None:
    """Set search-time parameters (e.g. {'nprobe': 16}) on index."""
    ps = faiss.ParameterSpace()
    for name, value in params.items():
        ps.set_index_parameter(index, name, value)


def exact_knn(xq: np.ndarray, xb: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact inner-product k-NN of xq in xb: (D, I), both (nq, k)."""
    return faiss.knn(np.ascontiguousarray(xq, dtype=np.float32), xb, k, metric=faiss.METRIC_INNER_PRODUCT)


def recall_at_k(I_approx: np.ndarray, I_exact: np.ndarray, k: int = RECALL_K,
                self_ids: Optional[np.ndarray] = None) -> float:
    """Mean |approx top-k ∩ exact top-k| / k. With `self_ids`, each query's own row is
    dropped from both lists first (queries taken from the base), so lists need k+1 columns."""
    assert I_approx.shape[0] == I_exact.shape[0]
    hits = 0
    for q in range(I_exact.shape[0]):
        a, e = I_approx[q], I_exact[q]
        if self_ids is not None:
            a, e = a[a != self_ids[q]], e[e != self_ids[q]]
        a, e = a[:k], e[:k]
        hits += len(np.intersect1d(a[a >= 0], e))
    return hits / float(k * I_exact.shape[0])


def _train_sample(xb: np.ndarray, want: int, rng: np.random.Generator) -> np.ndarray:
    """`want` random rows of xb (all of them when xb is not larger)."""
    n = xb.shape[0]
    if want >= n:
        return xb
    return xb[np.sort(rng.choice(n, size=want, replace=False))]


def _coarse_points(nlist: Optional[int]) -> int:
    return max(20_000, (nlist or 2_500) * TRAIN_POINTS_PER_LIST)


def build_index(xb: np.ndarray, choice: IndexChoice, recall_floor: float = 0.95, seed: int = 0,
                sample: int = RECALL_SAMPLE, coarse_centroids: Optional[np.ndarray] = None,
                enforce_floor: bool = True) -> BuiltIndex:
    """Train and fill the index `choice.factory` over xb, tune nprobe/efSearch to the smallest
    value meeting the recall floor, and measure recall@10 against exact search on `sample`
    rows of xb (each query's own row excluded). `coarse_centroids` (nlist, d) reuses an IVF
    coarse quantizer trained earlier (benchmarks). Raises RecallFloorError when recall@10 stays
    below `recall_floor` at every setting tried (unless `enforce_floor` is False)."""
    xb = check_vectors(xb)
    n, d = xb.shape
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    try:
        index = faiss.index_factory(d, choice.factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as exc:
        raise KnnclipError(f"FAISS cannot build the index factory {choice.factory!r}: "
                           f"{str(exc).strip().splitlines()[-1]}") from None
    train_size = 0
    plain_ivf = isinstance(faiss.downcast_index(index), faiss.IndexIVF)  # no pre-transform in front
    if plain_ivf and index.quantizer.ntotal == 0:
        ivf = faiss.downcast_index(index)
        if coarse_centroids is None:  # train the coarse quantizer apart, on enough points
            xt = _train_sample(xb, _coarse_points(ivf.nlist), rng)
            train_size = xt.shape[0]
            km = faiss.Kmeans(d, ivf.nlist, niter=10, spherical=True, seed=seed)
            km.train(xt)
            coarse_centroids = km.centroids
        assert coarse_centroids.shape == (ivf.nlist, d), (coarse_centroids.shape, ivf.nlist, d)
        ivf.quantizer.add(np.ascontiguousarray(coarse_centroids, dtype=np.float32))  # train() skips it now
    if not index.is_trained:
        # encoders (PQ/SQ) need far fewer points than the coarse quantizer; PQ training is slow
        xt = _train_sample(xb, ENCODER_TRAIN_MAX if plain_ivf else _coarse_points(choice.nlist), rng)
        train_size = max(train_size, xt.shape[0])
        index.train(xt)
    index.add(xb)
    build_seconds = time.perf_counter() - t0

    rows = np.sort(rng.choice(n, size=min(sample, n), replace=False))
    xq = xb[rows]
    kk = min(RECALL_K + 1, n)
    _, I_exact = exact_knn(xq, xb, kk)
    k_eff = max(1, kk - 1)

    def measure() -> float:
        _, I = index.search(xq, kk)
        return recall_at_k(I, I_exact, k_eff, self_ids=rows) if n > 1 else 1.0

    knob = search_param_name(index)
    curve: list = []
    params: dict = {}
    if knob is None:
        recall = measure()
        curve.append({"recall_at_10": recall})
    else:
        steps = NPROBE_STEPS if knob == "nprobe" else EF_STEPS
        if knob == "nprobe":
            steps = [s for s in steps if s <= faiss.try_extract_index_ivf(index).nlist] or [1]
        target = min(1.0, recall_floor + RECALL_MARGIN)
        best = None
        for value in steps:
            apply_search_params(index, {knob: value})
            r = measure()
            curve.append({knob: value, "recall_at_10": r})
            if best is None or r > best[1] + 1e-9:
                best = (value, r)
            if r >= target:
                break
            if len(curve) >= 3 and curve[-1]["recall_at_10"] - curve[-3]["recall_at_10"] < 0.002:
                break  # saturated: compression, not search breadth, limits recall
        last = curve[-1]
        meeting = [c for c in curve if c["recall_at_10"] >= recall_floor]
        if last["recall_at_10"] >= target:
            value, recall = last[knob], last["recall_at_10"]
        elif meeting:
            value, recall = meeting[0][knob], meeting[0]["recall_at_10"]
        else:
            value, recall = best
        params = {knob: int(value)}
        apply_search_params(index, params)
    logger.info("built %s over %d x %d in %.1fs: recall@10 %.4f with %s", choice.factory, n, d,
                build_seconds, recall, params or "exact search")
    if recall < recall_floor and enforce_floor:
        raise RecallFloorError(
            f"index {choice.factory} reaches recall@10 {recall:.3f} below the floor {recall_floor:.3f} "
            f"(best over {params or 'its only setting'}, {len(rows)} sample queries); "
            f"choose a less compressed index (--index) or a larger byte budget")
    return BuiltIndex(index, choice.factory, params, float(recall), int(len(rows)), curve, train_size, build_seconds)
