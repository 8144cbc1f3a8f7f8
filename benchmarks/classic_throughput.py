"""Throughput of a host-feature embedder (classic-v1/v2): the pipeline against the
embedder's own feature computation and against today's path, on the same images, in
alternating rounds of one run (embed_throughput.py --backbone classic-v2 calls this).

- `bare`: `prep.read` alone (decode + resize + dense channels), one image after another,
  no masks: what the features themselves cost on one core.
- `pipeline`: `iter_embeddings` as `knnclip embed` runs it (default workers), files to
  final vectors; the rate counts from the first batch out, the start-up is reported
  beside it, and `job` includes it.
- `today`: the path this replaced, kept here as the oracle: a prefetch thread decoding,
  the channels as they were computed (benchmarks/classic_today.py: skimage's `rgb2lab` and
  `local_binary_pattern`, every indicator channel written as a plane), per-mask area weights
  from the RLE runs (one product per mask), one dense masks x cells float32 product per image
  with the BLAS threads left at their default.
- The pipeline pools where the channels are made (bins and codes counted, never written)
  in worker processes that import no torch (knnclip_core/embedders/host_workers.py).

The vectors of the pipeline are compared with today's (max abs difference) and both with
a float64 oracle (the same dense channels and weights, products in float64).
"""
from __future__ import annotations

import os
import time

import numpy as np


def today_preparer(emb):
    """The preparer of the replaced path: the version's channels as `classic_today` computes them."""
    from benchmarks.classic_today import today_dense_channels, today_dense_channels_v2
    from knnclip_core.embedders.classic_embedder import ClassicPreparer

    dense = today_dense_channels_v2 if emb.version.name == "classic-v2" else today_dense_channels
    return ClassicPreparer(emb.prep.max_side, dense)


def today_path(emb, items) -> list[np.ndarray]:
    """Vectors by the path before the label-free pooling rework (see module doc)."""
    from knnclip_core.embedders.prefetch import prefetch
    from knnclip_core.embedders.pooling import pool
    from knnclip_core.embedders.rle_weights import rle_area_weights_by_runs

    prep = today_preparer(emb)

    def pooled():
        for it in items:
            x = prep.read(it.path, it.height, it.width)
            w = rle_area_weights_by_runs(it.masks_rle, it.height, it.width, emb.prep.grid_hw(it.height, it.width))
            yield pool(w, x.reshape(x.shape[0], -1).T, normalize=False)

    return [emb.finalize(m) for m in prefetch(pooled())]


def float64_oracle(emb, items) -> list[np.ndarray]:
    """Vectors with the pooling product in float64 (same channels and weights)."""
    from knnclip_core.embedders.rle_weights import rle_area_weights

    out = []
    for it in items:
        x = emb.prep.read(it.path, it.height, it.width).astype(np.float64)
        w = rle_area_weights(it.masks_rle, it.height, it.width, emb.prep.grid_hw(it.height, it.width)).astype(np.float64)
        pooled = (w @ x.reshape(x.shape[0], -1).T) / np.maximum(w.sum(axis=1, keepdims=True), 1e-12)
        out.append(emb.finalize(pooled))
    return out


def pipeline_path(emb, items, batch_size: int, num_workers) -> tuple[list[np.ndarray], float, float]:
    """(vectors in item order, seconds to the first batch, seconds in all)."""
    from knnclip_core.embedders.loader import iter_embeddings

    by_key, first, t0 = {}, None, time.perf_counter()
    for item, vecs, err in iter_embeddings(emb, items, batch_size=batch_size, num_workers=num_workers):
        assert err is None, err
        first = first if first is not None else time.perf_counter() - t0
        by_key[item.key] = vecs
    return [by_key[it.key] for it in items], first or 0.0, time.perf_counter() - t0


def bare_seconds(emb, items, prep=None) -> float:
    prep = prep or emb.prep
    t0 = time.perf_counter()
    for it in items:
        prep.read(it.path, it.height, it.width)
    return time.perf_counter() - t0


def _max_diff(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    return float(max(np.abs(x - y).max() for x, y in zip(a, b) if len(x)))


def measure(emb, items, batch_size: int, num_workers, rounds: int) -> dict:
    """The figures of one run (see module doc); medians over `rounds` alternating rounds."""
    from knnclip_core.embedders.loader import auto_workers

    load_before = os.getloadavg()
    n_img, n_seg = len(items), sum(len(it.masks_rle) for it in items)
    bare, today_bare, today, pipe = [], [], [], []
    for _ in range(max(1, rounds)):
        bare.append(bare_seconds(emb, items))
        today_bare.append(bare_seconds(emb, items, today_preparer(emb)))
        t0 = time.perf_counter()
        old = today_path(emb, items)
        today.append(time.perf_counter() - t0)
        new, first, total = pipeline_path(emb, items, batch_size, num_workers)
        pipe.append((first, total))
    exact = float64_oracle(emb, items)
    med = lambda xs: float(np.median(xs))  # noqa: E731
    first_batch = min(batch_size, n_img)
    steady = [max(n_img - first_batch, 1) / max(t - f, 1e-9) for f, t in pipe]
    job_sps = [n_seg / t for _, t in pipe]
    today_sps = [n_seg / t for t in today]
    return {
        "bare_images_per_s": round(n_img / med(bare), 3),
        "today_bare_images_per_s": round(n_img / med(today_bare), 3),
        "images_per_s": round(med(steady), 3),
        "segments_per_s": round(med(steady) * n_seg / n_img, 3),
        "job_segments_per_s": round(med(job_sps), 3),
        "pipeline_startup_s": round(med([f for f, _ in pipe]), 3),
        "today_segments_per_s": round(med(today_sps), 3),
        "speedup_vs_today": round(med(job_sps) / med(today_sps), 3),
        "speedup_vs_today_per_round": [round(j / t, 3) for j, t in zip(job_sps, today_sps)],
        "ratio": round(med(steady) / (n_img / med(bare)), 4),
        "ratio_per_round": [round((max(n_img - first_batch, 1) / max(t - f, 1e-9)) / (n_img / b), 4)
                            for (f, t), b in zip(pipe, bare)],
        "max_abs_diff_vs_today": round(_max_diff(new, old), 9),
        "max_abs_diff_vs_float64": round(_max_diff(new, exact), 9),
        "today_max_abs_diff_vs_float64": round(_max_diff(old, exact), 9),
        "segments_per_image": round(n_seg / n_img, 3),
        "num_workers": auto_workers(emb.device, True) if num_workers is None else num_workers,
        "load_average": [round(x, 2) for x in load_before + os.getloadavg()],
        "cores": os.cpu_count(),
        "rounds": len(pipe),
    }
