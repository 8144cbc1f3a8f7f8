"""Worker latency per image, split into proposals, forward, retrieval and fusion, next to one
bare `encode_image` forward of the same model on the same image, in one run.

    python benchmarks/worker_latency.py --json
    python benchmarks/worker_latency.py --backbone vit-b-32-random --memory 100000 --index HNSW32,Flat

The memory is `--memory` random unit vectors over `--classes` classes in a FAISS index built
with `--index` (default: what publishing picks for 100k vectors, HNSW32,Flat). The image is
the first CamVid val image when ../shared/data is present, else a synthetic one.
Target: overhead_ratio = (retrieval + fusion) / forward <= 0.5. Last stdout line with --json:
one JSON object.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from knnclip_core.embedders import get_embedder  # noqa: E402
from knnclip_core.segment.segmenter import Segmenter, SegmentParams  # noqa: E402

CAMVID_VAL = REPO.parent / "shared" / "data" / "camvid" / "val"


class IndexMemory:
    """A FAISS index of any factory over labelled rows (the benchmark's stand-in for a Snapshot)."""

    def __init__(self, xb: np.ndarray, class_ids: np.ndarray, vocabulary: list[str], factory: str, seed: int = 0):
        import faiss

        d = xb.shape[1]
        self.index = faiss.index_factory(d, factory, faiss.METRIC_INNER_PRODUCT)
        if not self.index.is_trained:
            rng = np.random.default_rng(seed)
            self.index.train(xb[rng.choice(len(xb), min(len(xb), 50_000), replace=False)])
        self.index.add(xb)
        if "HNSW" in factory:
            faiss.ParameterSpace().set_index_parameter(self.index, "efSearch", 64)
        self.class_ids = class_ids
        self.vocabulary = vocabulary
        self.segment_ids = [str(i) for i in range(len(xb))]

    def search(self, xq: np.ndarray, k: int):
        return self.index.search(np.ascontiguousarray(xq, dtype=np.float32), k)


def load_image(seed: int = 0) -> tuple[np.ndarray, str]:
    """First CamVid val image, else a synthetic 480x360 image of smooth colour blobs."""
    files = sorted(CAMVID_VAL.glob("*.png")) if CAMVID_VAL.is_dir() else []
    if files:
        from knnclip_core.embedders.image_io import read_rgb

        return read_rgb(str(files[0])), str(files[0])
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:360, 0:480]
    img = np.zeros((360, 480, 3))
    for _ in range(12):
        cy, cx, r = rng.uniform(0, 360), rng.uniform(0, 480), rng.uniform(30, 120)
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.uniform(0, 255, 3)
    return (img + rng.normal(0, 5, img.shape)).clip(0, 255).astype(np.uint8), "synthetic"


def bare_forward(emb, image: np.ndarray) -> float:
    """Seconds of one `model.encode_image` on the preprocessed image (no pooling, no retrieval)."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(emb.preprocess(image)))[None].to(emb.device)
    t0 = time.perf_counter()
    with torch.inference_mode():
        if hasattr(emb, "encode_image_pooled"):
            emb.encode_image_pooled(x)
        else:
            emb.forward(x)
    return time.perf_counter() - t0


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backbone", default="vit-b-32-random")
    ap.add_argument("--memory", type=int, default=100_000, help="vectors in the memory")
    ap.add_argument("--classes", type=int, default=64, help="classes (text encoding of these is a one-off setup cost)")
    ap.add_argument("--index", default="HNSW32,Flat", help="FAISS factory string of the memory index")
    ap.add_argument("--proposals", default="slic")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--runs", type=int, default=5, help="timed runs (after one warm-up)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    emb = get_embedder(args.backbone, device=args.device)
    log(f"embedder {emb.id} loaded in {time.perf_counter() - t0:.1f} s")
    rng = np.random.default_rng(0)
    xb = rng.standard_normal((args.memory, emb.dim)).astype(np.float32)
    xb /= np.linalg.norm(xb, axis=1, keepdims=True)
    t0 = time.perf_counter()
    memory = IndexMemory(xb, rng.integers(0, args.classes, args.memory), [f"class {i}" for i in range(args.classes)],
                         args.index)
    build_s = time.perf_counter() - t0
    del xb
    log(f"index {args.index} over {args.memory} vectors built in {build_s:.1f} s")
    seg = Segmenter(emb, memory, SegmentParams(k=args.k, proposals=args.proposals))
    t0 = time.perf_counter()
    seg.warm_up()
    text_s = time.perf_counter() - t0
    log(f"text embeddings of {args.classes} classes in {text_s:.1f} s (once per release)")
    image, source = load_image()
    seg.segment(image)
    bare_forward(emb, image)
    parts: dict[str, list[float]] = {k: [] for k in ("proposals", "forward", "retrieval", "fusion", "outputs")}
    bare, n_props = [], []
    for _ in range(args.runs):
        res = seg.segment(image)
        for k in parts:
            parts[k].append(res.timings[k])
        n_props.append(len(res.segments))
        bare.append(bare_forward(emb, image))
    med = {k: statistics.median(v) for k, v in parts.items()}
    bare_s = statistics.median(bare)
    result = {
        "backbone": args.backbone, "embedder_id": emb.id, "device": emb.device, "image": source,
        "image_hw": list(image.shape[:2]), "memory_vectors": args.memory, "memory_classes": args.classes,
        "index": args.index, "index_build_s": round(build_s, 2), "text_encode_s": round(text_s, 2), "k": args.k, "proposals": args.proposals,
        "proposals_per_image": statistics.median(n_props), "runs": args.runs,
        **{f"{k}_s": round(v, 5) for k, v in med.items()},
        "total_s": round(sum(med.values()), 5),
        "bare_encode_image_s": round(bare_s, 5),
        "overhead_ratio": round((med["retrieval"] + med["fusion"]) / med["forward"], 4),
        "overhead_ratio_vs_bare_forward": round((med["retrieval"] + med["fusion"]) / bare_s, 4),
        "target_overhead_ratio": 0.5,
    }
    result["meets_target"] = result["overhead_ratio"] <= 0.5
    if not args.json:
        for k, v in result.items():
            print(f"{k:32s} {v}")
    else:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
