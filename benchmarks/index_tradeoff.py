"""Index trade-off on seeded clustered vectors: bytes, build time, batched queries/s and
recall@10 against exact Flat for each candidate index, plus the automatic choice for a byte
budget of 1/5 of Flat's, in one run.

Data (issue 5): n vectors, d=512, 1,000 cluster centres; each member = centre + a spread in
a random 64-d subspace of its cluster + isotropic noise (total norm --noise), L2-normalised.
Queries are perturbed members. IVF candidates share one coarse quantizer trained once
(its time is reported as `coarse_train_seconds` and not in each candidate's build time).

    python benchmarks/index_tradeoff.py --n 50000 --json
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import faiss
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from knnclip_core.index import build_index, choose_index, exact_knn, flat_bytes, recall_at_k  # noqa: E402
from knnclip_core.index.choice import HNSW_M, nlist_for, nlist_of, pq_m_for  # noqa: E402


def make_data(n: int, d: int, centres: int, sub: int, spread: float, noise: float, nq: int, seed: int):
    """(xb, xq): seeded clustered unit vectors and perturbed members as queries."""
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centres, d)).astype(np.float32)
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    labels = rng.integers(0, centres, n)
    xb = np.empty((n, d), dtype=np.float32)
    bases = {}
    for j in range(centres):
        rows = np.nonzero(labels == j)[0]
        B = rng.standard_normal((sub, d)).astype(np.float32) / np.sqrt(d)
        bases[j] = B
        z = rng.standard_normal((len(rows), sub)).astype(np.float32) * (spread / np.sqrt(sub))
        xb[rows] = c[j] + z @ (B * np.sqrt(d / sub))
    xb += rng.standard_normal(xb.shape).astype(np.float32) * (noise / np.sqrt(d))
    xb /= np.linalg.norm(xb, axis=1, keepdims=True)
    members = rng.choice(n, size=nq, replace=False)
    xq = xb[members].copy()
    for q, i in enumerate(members):
        B = bases[labels[i]] * np.sqrt(d / sub)
        xq[q] += (rng.standard_normal(sub).astype(np.float32) * (0.3 * spread / np.sqrt(sub))) @ B
    xq += rng.standard_normal(xq.shape).astype(np.float32) * (noise / np.sqrt(d))
    xq /= np.linalg.norm(xq, axis=1, keepdims=True)
    return xb, xq


def index_bytes(index) -> int:
    with tempfile.NamedTemporaryFile(suffix=".faiss") as f:
        faiss.write_index(index, f.name)
        return os.path.getsize(f.name)


def candidates(n: int, d: int, hnsw_max: int) -> list[str]:
    nl = nlist_for(n)
    out = ["Flat"] + ([f"HNSW{HNSW_M},Flat"] if n <= hnsw_max else [])
    out += [f"IVF{nl},{code}" for code in ("Flat", "SQ8", "SQ6", "SQ4")]
    out += [f"IVF{nl},PQ{pq_m_for(d, d // frac)}" for frac in (4, 8, 16)]
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--d", type=int, default=512)
    ap.add_argument("--centres", type=int, default=1000)
    ap.add_argument("--subspace", type=int, default=64)
    ap.add_argument("--spread", type=float, default=0.5, help="norm of the within-cluster offset")
    ap.add_argument("--noise", type=float, default=0.05, help="norm of the isotropic noise")
    ap.add_argument("--nq", type=int, default=1000)
    ap.add_argument("--budget-fraction", type=float, default=0.2, help="byte budget of the automatic choice / Flat's")
    ap.add_argument("--recall-floor", type=float, default=0.95)
    ap.add_argument("--hnsw-max", type=int, default=300_000, help="skip HNSW above this n (slow to build)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    n, d, k = args.n, args.d, 10

    t0 = time.perf_counter()
    xb, xq = make_data(n, d, args.centres, args.subspace, args.spread, args.noise, args.nq, args.seed)
    data_s = time.perf_counter() - t0
    _, I_gt = exact_knn(xq, xb, k)
    fbytes = flat_bytes(n, d)

    budget = int(fbytes * args.budget_fraction)
    auto = choose_index(n, d, byte_budget=budget)
    names = candidates(n, d, args.hnsw_max)
    if auto.factory not in names:
        names.append(auto.factory)

    nl = nlist_for(n)
    t0 = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    xt = xb[rng.choice(n, size=min(n, max(nl * 40, 20_000)), replace=False)]
    km = faiss.Kmeans(d, nl, niter=10, spherical=True, seed=args.seed)
    km.train(xt)
    coarse = km.centroids
    coarse_s = time.perf_counter() - t0

    rows = []
    for factory in names:
        built = build_index(xb, choose_index(n, d, factory=factory), recall_floor=args.recall_floor,
                            seed=args.seed, coarse_centroids=coarse if nlist_of(factory) == nl else None,
                            enforce_floor=False)
        t0 = time.perf_counter()
        _, I = built.index.search(xq, k)
        search_s = time.perf_counter() - t0
        b = index_bytes(built.index)
        row = {"factory": factory, "bytes": b, "bytes_ratio": round(b / fbytes, 4),
               "build_seconds": round(built.build_seconds, 2), "qps": round(len(xq) / search_s, 1),
               "recall_at_10": round(recall_at_k(I, I_gt, k), 4), "search_params": built.search_params,
               "self_recall_at_10": round(built.recall_at_10, 4)}
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
        del built

    by_name = {r["factory"]: r for r in rows}
    auto_row = by_name[auto.factory]
    frontier = {}
    for frac in (1 / 2, 1 / 4, 1 / 5, 1 / 8, 1 / 16):
        fits = [r for r in rows if r["bytes_ratio"] <= frac]
        best = max(fits, key=lambda r: r["recall_at_10"]) if fits else None
        frontier[f"1/{round(1 / frac)}"] = ({"factory": best["factory"], "recall_at_10": best["recall_at_10"],
                                             "bytes_ratio": best["bytes_ratio"]} if best else None)
    result = {"n": n, "d": d, "nq": len(xq), "centres": args.centres, "noise": args.noise, "spread": args.spread,
              "flat_bytes": fbytes, "budget_fraction": args.budget_fraction, "auto_factory": auto.factory,
              "auto_recall_at_10": auto_row["recall_at_10"], "auto_bytes_ratio": auto_row["bytes_ratio"],
              "auto_search_params": auto_row["search_params"],
              "auto_meets_target": auto_row["recall_at_10"] >= 0.95 and auto_row["bytes_ratio"] <= args.budget_fraction,
              "coarse_train_seconds": round(coarse_s, 2), "data_seconds": round(data_s, 2),
              "frontier": frontier, "candidates": rows, "threads": faiss.omp_get_max_threads()}
    if not args.json:
        for r in rows:
            print(f"{r['factory']:<18} {r['bytes_ratio']:>7.3f} of Flat  build {r['build_seconds']:>7.2f}s  "
                  f"{r['qps']:>9.1f} q/s  recall@10 {r['recall_at_10']:.4f}  {r['search_params']}")
        print(f"auto ({args.budget_fraction:.2f} of Flat): {auto.factory} recall@10 {auto_row['recall_at_10']} "
              f"at {auto_row['bytes_ratio']} of Flat's bytes")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
