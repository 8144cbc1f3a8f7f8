"""Near-duplicate search at scale: our IVF-blocked search vs exact brute force, side by side.

Synthetic data (seeded): `clusters` random unit centres in d=512, each given one of
`classes` labels; points = centre + Gaussian noise (per-cluster spread: intra-cluster
cosine 0.4-0.8, far below the threshold); a fraction `dup_rate` of points gets a planted
near-duplicate (cosine ~0.98-0.999 to its source; some chains of 3), and a fraction
`conflict_rate` of those duplicates carries another class (a label conflict).

At 100k (`--n`): both searches find all pairs with cosine >= threshold over the whole set
(across classes too: conflicts need the global search); `agreement` = recall of the exact
pairs, `speedup` = exact seconds / ours. At 1M: wall time and peak RSS of our search
(plus grouping). `--stream 1000000,2000000,4000000`: for each size, synthetic vectors
(in chunks of 250k, each with its own clusters and planted duplicates) are written to a
LanceDB table, and a fresh process streams them back out to disk and searches them in
groups of lists (knnclip_core.memory.dedup_stream): seconds per phase, pairs found, and
that process's peak RSS (the growth over the sizes is what extrapolates to 10M).
`--json`: the last stdout line is one JSON object.

    python benchmarks/dedup_scale.py --json --skip-1m
    python benchmarks/dedup_scale.py --json --stream 1000000,2000000
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from knnclip_core.memory.dedup import duplicate_groups, exact_pairs, ivf_pairs  # noqa: E402


def synthetic(n: int, d: int = 512, clusters: int = 1000, classes: int = 50, dup_rate: float = 0.05,
              conflict_rate: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(xb (n, d) float32 L2-normalised, labels (n,) int64) with planted near-duplicates."""
    rng = np.random.default_rng(seed)
    n_dup = int(n * dup_rate)
    n_base = n - n_dup
    centres = rng.standard_normal((clusters, d), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    cluster_class = rng.integers(0, classes, clusters)
    spread = rng.uniform(0.5, 1.2, clusters).astype(np.float32)
    cl = rng.integers(0, clusters, n_base)
    xb = np.empty((n, d), np.float32)
    for i0 in range(0, n_base, 65536):  # in chunks: bounded temporary memory
        c = cl[i0:i0 + 65536]
        x = centres[c] + spread[c, None] * rng.standard_normal((len(c), d), dtype=np.float32) / np.sqrt(d)
        xb[i0:i0 + len(c)] = x / np.linalg.norm(x, axis=1, keepdims=True)
    labels = np.empty(n, np.int64)
    labels[:n_base] = cluster_class[cl]
    src = rng.integers(0, n_base, n_dup)
    chain = rng.random(n_dup) < 0.2  # some duplicates of duplicates (groups of 3+)
    src[1:][chain[1:]] = n_base + np.arange(n_dup - 1)[chain[1:]]
    eps = rng.uniform(0.03, 0.2, n_dup).astype(np.float32)
    # In generations: a chained duplicate needs its source first.
    done = np.zeros(n_dup, bool)
    while not done.all():
        ready = ~done & ((src < n_base) | done[np.clip(src - n_base, 0, n_dup - 1)])
        idx = np.nonzero(ready)[0]
        noise = rng.standard_normal((len(idx), d), dtype=np.float32) / np.sqrt(d)
        x = xb[src[idx]] + eps[idx, None] * noise
        xb[n_base + idx] = x / np.linalg.norm(x, axis=1, keepdims=True)
        labels[n_base + idx] = labels[src[idx]]
        done[idx] = True
    conflict = rng.random(n_dup) < conflict_rate
    labels[n_base:][conflict] = (labels[n_base:][conflict] + 1 + rng.integers(0, classes - 1, conflict.sum())) % classes
    return xb, labels


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM: reset at exec, unlike ru_maxrss, which a
    child started by subprocess inherits from its parent)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def summarize(P: np.ndarray, labels: np.ndarray) -> dict:
    same = labels[P[:, 0]] == labels[P[:, 1]] if len(P) else np.zeros(0, bool)
    n = len(labels)
    keeper = duplicate_groups(n, P[same], np.arange(n))
    return {"pairs": int(len(P)), "same_class_pairs": int(same.sum()), "conflict_pairs": int((~same).sum()),
            "duplicates_dropped": int((keeper != np.arange(n)).sum())}


def run(n: int, threshold: float, nprobe: int, exact: bool, seed: int, classes: int, clusters: int) -> dict:
    t = time.perf_counter()
    xb, labels = synthetic(n, classes=classes, clusters=clusters, seed=seed)
    gen_s = time.perf_counter() - t
    t = time.perf_counter()
    S, P = ivf_pairs(xb, threshold, nprobe=nprobe, seed=seed)
    ours_s = time.perf_counter() - t
    t = time.perf_counter()
    ours_summary = summarize(P, labels)
    group_s = time.perf_counter() - t
    out = {"n": n, "d": xb.shape[1], "classes": classes, "clusters": clusters, "threshold": threshold,
           "nprobe": nprobe, "generate_seconds": round(gen_s, 2), "ours_seconds": round(ours_s, 2),
           "group_seconds": round(group_s, 3), "ours": ours_summary}
    if exact:
        t = time.perf_counter()
        S_e, P_e = exact_pairs(xb, threshold)
        exact_s = time.perf_counter() - t
        key = lambda p: p[:, 0] * n + p[:, 1]  # noqa: E731
        found = np.isin(key(P_e), key(P))
        out.update({"exact_seconds": round(exact_s, 2), "exact": summarize(P_e, labels),
                    "agreement": float(found.mean()) if len(P_e) else 1.0,
                    "false_pairs": int((~np.isin(key(P), key(P_e))).sum()),
                    "speedup": round(exact_s / ours_s, 1)})
    out["peak_rss_mb"] = round(peak_rss_mb(), 1)
    return out


CHUNK = 250_000


def write_lance(db_dir: Path, n: int, d: int, seed: int, classes: int, clusters: int) -> int:
    """n synthetic rows (vector, label) into table `vectors` of a LanceDB at db_dir, chunk by
    chunk (bounded memory); returns the planted-duplicate count (5% of each chunk)."""
    import lancedb
    import pyarrow as pa

    db = lancedb.connect(str(db_dir))
    table, planted = None, 0
    for k, i0 in enumerate(range(0, n, CHUNK)):
        m = min(CHUNK, n - i0)
        xb, labels = synthetic(m, d=d, classes=classes, clusters=max(1, clusters * m // 1_000_000), seed=seed + k)
        planted += int(m * 0.05)
        vec = pa.FixedSizeListArray.from_arrays(pa.array(xb.ravel(), pa.float32()), d)
        batch = pa.table({"vector": vec, "label": pa.array(labels)})
        table = db.create_table("vectors", batch) if table is None else table
        if k:
            table.add(batch)
        del xb, vec, batch
    return planted


def stream_child(db_dir: str, threshold: float, nprobe: int, seed: int) -> int:
    """In a fresh process: spill the table to disk, search it; print one JSON line."""
    import lancedb

    from knnclip_core.memory.dedup_stream import ivf_pairs_source, spill_lance

    table = lancedb.connect(db_dir).open_table("vectors")
    t = time.perf_counter()
    src = spill_lance(table, Path(db_dir) / "vectors.f32")
    spill_s = time.perf_counter() - t
    t = time.perf_counter()
    S, P = ivf_pairs_source(src, threshold, nprobe=nprobe, seed=seed)
    search_s = time.perf_counter() - t
    print(json.dumps({"n": src.n, "d": src.d, "spill_seconds": round(spill_s, 2), "search_seconds": round(search_s, 2),
                      "seconds": round(spill_s + search_s, 2), "pairs": int(len(P)), "peak_rss_mb": round(peak_rss_mb(), 1)}))
    return 0


def run_streamed(n: int, args) -> dict:
    import os
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory(prefix="dedup_stream_") as tmp:
        t = time.perf_counter()
        planted = write_lance(Path(tmp), n, args.d, args.seed, args.classes, args.clusters)
        write_s = time.perf_counter() - t
        load = os.getloadavg()
        proc = subprocess.run([sys.executable, __file__, "--stream-child", tmp, "--threshold", str(args.threshold),
                               "--nprobe", str(args.nprobe), "--seed", str(args.seed)],
                              capture_output=True, text=True, check=True)
        out = json.loads(proc.stdout.strip().splitlines()[-1])
    out.update({"write_table_seconds": round(write_s, 1), "planted_duplicates": planted,
                "load_average": [round(x, 2) for x in load + os.getloadavg()]})
    print(f"streamed n={n}: {out['seconds']} s (spill {out['spill_seconds']}, search {out['search_seconds']}), "
          f"{out['pairs']} pairs ({planted} planted), peak RSS {out['peak_rss_mb']} MB", file=sys.stderr)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000, help="vectors for the side-by-side comparison")
    ap.add_argument("--n-large", type=int, default=1_000_000, help="vectors for the scale run")
    ap.add_argument("--threshold", type=float, default=0.98)
    ap.add_argument("--nprobe", type=int, default=4)
    ap.add_argument("--classes", type=int, default=50)
    ap.add_argument("--clusters", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-1m", action="store_true", help="skip the scale run")
    ap.add_argument("--d", type=int, default=512, help="dimension of the streamed runs' vectors")
    ap.add_argument("--stream", default="", help="comma-separated sizes for streamed runs from LanceDB")
    ap.add_argument("--skip-small", action="store_true", help="skip the side-by-side run against exact search")
    ap.add_argument("--stream-child", help=argparse.SUPPRESS)
    ap.add_argument("--json", action="store_true", help="last stdout line: one JSON object")
    args = ap.parse_args()
    if args.stream_child:
        return stream_child(args.stream_child, args.threshold, args.nprobe, args.seed)
    result = {"speedup": None, "agreement": None, "seconds_1m": None, "peak_rss_mb_1m": None}
    if not args.skip_small:
        result.update(side_by_side(args))
    if not args.skip_1m:
        large = run(args.n_large, args.threshold, args.nprobe, False, args.seed, args.classes, args.clusters)
        result.update({"large": large, "seconds_1m": round(large["ours_seconds"] + large["group_seconds"], 2),
                       "peak_rss_mb_1m": large["peak_rss_mb"]})
        print(f"n={args.n_large}: {result['seconds_1m']} s, peak RSS {large['peak_rss_mb']} MB", file=sys.stderr)
    if args.stream:
        result["streamed"] = [run_streamed(int(n), args) for n in args.stream.split(",")]
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))
    return 0


def side_by_side(args) -> dict:
    """Ours against exact search at args.n, side by side."""
    small = run(args.n, args.threshold, args.nprobe, True, args.seed, args.classes, args.clusters)
    print(f"n={args.n}: ours {small['ours_seconds']} s, exact {small['exact_seconds']} s, "
          f"speedup {small['speedup']}x, agreement {small['agreement']:.4f}", file=sys.stderr)
    return {"speedup": small["speedup"], "agreement": small["agreement"], "small": small}


if __name__ == "__main__":
    sys.exit(main())
