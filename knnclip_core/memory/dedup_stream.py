"""The IVF near-duplicate search over a vector source that need not fit in memory.

A source gives its vectors in batches (one pass each) and by sorted row indices. The
search trains spherical k-means on a sample of rows, computes every row's `nprobe` lists
in one pass, then compares lists in groups: the rows a group needs (the members of its
lists and the rows probing them) are read at once, at most `max_rows` of them, so peak
memory is set by `max_rows`, not by the memory size.

- `ArraySource`: an in-memory (n, D) array (`dedup.ivf_pairs` uses this).
- `FileSource`: a float32 file of (n, D) rows, read through short-lived memory maps of one
  window of the file at a time (so at most a window is resident besides the rows read);
  `spill_lance` writes one from a LanceDB table's vector column in batches.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterator

import faiss
import numpy as np

logger = logging.getLogger(__name__)


class ArraySource:
    """Vectors already in memory: (n, D) float32, L2-normalised."""

    def __init__(self, xb: np.ndarray):
        assert xb.ndim == 2 and xb.dtype == np.float32, (xb.shape, xb.dtype)
        self.xb, (self.n, self.d) = xb, xb.shape

    def batches(self, rows: int) -> Iterator[np.ndarray]:
        for i in range(0, self.n, rows):
            yield self.xb[i:i + rows]

    def take(self, idx: np.ndarray) -> np.ndarray:
        return self.xb if len(idx) == self.n else self.xb[idx]


class FileSource:
    """Vectors in a raw float32 file of `n` rows of `d` (L2-normalised)."""

    def __init__(self, path: str | Path, n: int, d: int, window_rows: int = 1 << 17):
        self.path, self.n, self.d, self.window_rows = Path(path), int(n), int(d), int(window_rows)
        assert self.path.stat().st_size == self.n * self.d * 4, (self.path, self.n, self.d)

    def batches(self, rows: int) -> Iterator[np.ndarray]:
        for i in range(0, self.n, rows):
            yield self.take(np.arange(i, min(i + rows, self.n)))

    def take(self, idx: np.ndarray) -> np.ndarray:
        """Rows `idx` (sorted), read through one mapped window of the file at a time, so that
        no more than `window_rows` rows of the file are mapped (and resident) at once."""
        window_rows = self.window_rows
        out = np.empty((len(idx), self.d), np.float32)
        bounds = np.searchsorted(idx, np.arange(0, self.n + window_rows, window_rows))
        for w, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
            if a == b:
                continue
            start = w * window_rows
            rows = min(window_rows, self.n - start)
            mm = np.memmap(self.path, np.float32, "r", offset=start * self.d * 4, shape=(rows, self.d))
            out[a:b] = mm[idx[a:b] - start]
            del mm
        return out


def spill_lance(table, path: str | Path, batch_rows: int = 65536, window_rows: int = 1 << 17) -> FileSource:
    """Stream a LanceDB table's `vector` column, L2-normalised, into a float32 file at
    `path`, in batches of `batch_rows` (table scan order); returns its FileSource."""
    n, d = 0, None
    with open(path, "wb") as f:
        for batch in table.search().select(["vector"]).limit(None).to_batches(batch_rows):
            col = batch.column("vector")
            d = col.type.list_size
            x = np.asarray(col.flatten().to_numpy(zero_copy_only=False), np.float32).reshape(-1, d)
            x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
            f.write(np.ascontiguousarray(x).tobytes())
            n += len(x)
    return FileSource(path, n, d or 0, window_rows)


def default_nlist(n: int) -> int:
    """~2 sqrt(n) lists, at most 4096, at least 8, and at least 16 rows a list."""
    return min(int(min(4096, max(8, 2 * np.sqrt(n)))), max(1, n // 16))


def canonical_pairs(ii: np.ndarray, jj: np.ndarray, ss: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Unique (i < j) pairs sorted by (i, j), with their similarities."""
    a, b = np.minimum(ii, jj).astype(np.int64), np.maximum(ii, jj).astype(np.int64)
    keep = a != b
    key = a[keep] * n + b[keep]
    key, first = np.unique(key, return_index=True)
    S = ss[keep][first].astype(np.float32)
    P = np.stack([key // n, key % n], axis=1) if len(key) else np.zeros((0, 2), np.int64)
    return S, P


def ivf_pairs_source(src, threshold: float, nlist: int | None = None, nprobe: int = 4, seed: int = 0,
                     max_rows: int = 1 << 20, block: int = 8192, batch_rows: int = 65536):
    """Pairs with inner product >= threshold among the source's rows, through an IVF
    partition (see module doc). Returns (S, P) as `dedup.exact_pairs`; None when the
    source has too few rows for lists (the caller searches exactly)."""
    n, d = src.n, src.d
    nlist = default_nlist(n) if nlist is None else min(nlist, max(1, n // 16))
    if nlist <= 1:
        return None
    nprobe = min(nprobe, nlist)
    import time

    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(n, size=min(n, 16 * nlist), replace=False))
    km = faiss.Kmeans(d, nlist, niter=5, seed=seed, spherical=True, max_points_per_centroid=16, verbose=False)
    km.train(np.ascontiguousarray(src.take(sample), np.float32))
    probes = np.empty((n, nprobe), np.int32)  # lists each row probes; column 0 = its own list
    start = 0
    for x in src.batches(batch_rows):
        probes[start:start + len(x)] = km.index.search(np.ascontiguousarray(x), nprobe)[1]
        start += len(x)
    t1 = time.perf_counter()
    own = probes[:, 0]
    members_order = np.argsort(own, kind="stable")
    member_lims = np.searchsorted(own[members_order], np.arange(nlist + 1))
    flat = probes.ravel()
    probe_order = np.argsort(flat, kind="stable")
    probe_lims = np.searchsorted(flat[probe_order], np.arange(nlist + 1))
    probe_rows = (probe_order // nprobe).astype(np.int64)
    del flat, probe_order
    need = np.diff(member_lims) + np.diff(probe_lims)  # rows read per list (an upper bound)
    ii, jj, ss = [], [], []
    lst = 0
    while lst < nlist:  # groups of consecutive lists whose rows fit in max_rows
        end = lst + max(1, int(np.searchsorted(np.cumsum(need[lst:]), max_rows, side="right")))
        rows = np.unique(np.concatenate([members_order[member_lims[lst]:member_lims[end]],
                                         probe_rows[probe_lims[lst]:probe_lims[end]]]))
        xg = src.take(rows)
        for g in range(lst, end):
            members = members_order[member_lims[g]:member_lims[g + 1]]
            queries = probe_rows[probe_lims[g]:probe_lims[g + 1]]
            if len(members) == 0 or len(queries) == 0:
                continue
            xm = xg[np.searchsorted(rows, members)]
            for q0 in range(0, len(queries), block):
                qi = queries[q0:q0 + block]
                S = xg[np.searchsorted(rows, qi)] @ xm.T
                r, c = np.nonzero(S >= threshold)
                qa, mb = qi[r], members[c]
                keep = qa != mb
                ii.append(qa[keep]), jj.append(mb[keep]), ss.append(S[r[keep], c[keep]])
        del xg
        lst = end
    logger.info("dedup ivf: %d rows, %d lists: k-means and probes %.1f s, comparisons %.1f s",
                n, nlist, t1 - t0, time.perf_counter() - t1)
    if not ii:
        return np.zeros(0, np.float32), np.zeros((0, 2), np.int64)
    return canonical_pairs(np.concatenate(ii), np.concatenate(jj), np.concatenate(ss), n)
