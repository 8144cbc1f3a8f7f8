"""Worker latency per image, split into proposals, forward, retrieval and fusion, next to one
bare AMP `encode_image` forward of the same model on the same image, in one run.

    python benchmarks/worker_latency.py --json [--device cuda]
    python benchmarks/worker_latency.py --backbone vit-b-32-random --memory 100000 --index HNSW32,Flat

The memory is `--memory` unit vectors over `--classes` classes (`--memory-kind clustered`, the
default: around 1,000 seeded centres as `dedup_scale.py` draws them, intra-cluster cosine 0.4-0.8,
which is how segment embeddings sit; `uniform`: uniform on the sphere, the worst case of any
inverted-file index, which then has to probe every list to pass the recall gate), published as a real
snapshot (`index.build_snapshot`: the index publishing picks for that many vectors, unless
`--index` names a FAISS factory, with its tuned search parameters) and loaded the way the
worker loads a release (`LocalSnapshotSource`: verified manifest, `load_snapshot`, the
segmenter the worker builds, with `--base-model` giving P_base). The image is the first CamVid val image when ../shared/data is
present, else a synthetic one. Forwards are counted by a hook on the embedder
(`forwards_per_image`: above 1 when regrouping rounds embed joined proposals again,
`--merge-rounds 0` for one); CUDA timings are synchronised. Target: overhead_ratio =
(retrieval + fusion) / forward <= 0.5. Last stdout line with --json: one JSON object.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.forward_counter import ForwardCounter, cuda_sync  # noqa: E402
from knnclip_core.index import build_snapshot  # noqa: E402
from knnclip_core.segment.base_models import BaseModelSpec  # noqa: E402
from knnclip_core.segment.release import EmbedderCache, LocalSnapshotSource  # noqa: E402
from knnclip_core.segment.segmenter import SegmentParams  # noqa: E402

CAMVID_VAL = REPO.parent / "shared" / "data" / "camvid" / "val"


def memory_vectors(n: int, d: int, classes: int, kind: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(xb (n, d) unit float32, class ids (n,)): clustered (no planted duplicates) or uniform."""
    if kind == "clustered":
        from benchmarks.dedup_scale import synthetic

        return synthetic(n, d=d, clusters=min(1000, max(1, n // 50)), classes=classes, dup_rate=0.0, seed=seed)
    rng = np.random.default_rng(seed)
    xb = rng.standard_normal((n, d)).astype(np.float32)
    xb /= np.linalg.norm(xb, axis=1, keepdims=True)
    return xb, rng.integers(0, classes, n)


def publish_random_memory(out: Path, embedder, n: int, classes: int, factory: str | None, seed: int = 0,
                          byte_budget: int | None = None, kind: str = "clustered") -> dict:
    """Write a snapshot of n seeded unit vectors over `classes` classes (`memory_vectors`), as
    publishing does. Returns its manifest."""
    xb, ids = memory_vectors(n, embedder.dim, classes, kind, seed)
    labels = [f"class {i}" for i in ids]
    return build_snapshot(out, xb, [f"row-{i}" for i in range(n)], labels, embedder.id,
                          lineage={"backbone": embedder.name}, factory=factory, seed=seed, byte_budget=byte_budget)


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
    """Seconds of one AMP `model.encode_image` on the preprocessed image (no pooling, no
    retrieval), synchronised on CUDA."""
    import torch

    x = emb.model_input(emb.prep.pixels(image)[None])
    cuda_sync(emb.device)
    t0 = time.perf_counter()
    with torch.inference_mode(), emb.autocast():
        if hasattr(emb, "encode_image_pooled"):
            emb.encode_image_pooled(x)
        else:
            emb.forward(x)
    cuda_sync(emb.device)
    return time.perf_counter() - t0


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backbone", default="vit-b-32-random")
    ap.add_argument("--memory", type=int, default=100_000, help="vectors in the memory")
    ap.add_argument("--memory-kind", default="clustered", choices=["clustered", "uniform"],
                    help="how the memory's vectors are drawn (module doc)")
    ap.add_argument("--classes", type=int, default=64, help="classes (text encoding of these is a one-off setup cost)")
    ap.add_argument("--index", default=None,
                    help="FAISS factory string of the memory index (default: what publishing picks)")
    ap.add_argument("--budget-mb", type=float, default=None,
                    help="byte budget of the published index in MB, as `curate.budget_mb` (default: none)")
    ap.add_argument("--proposals", default="slic")
    ap.add_argument("--base-model", default="clip", help="base model kind (clip: P_base from the same CLIP; none)")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--merge-rounds", type=int, default=None,
                    help="regrouping rounds (default: the worker's, each may embed the joined proposals again)")
    ap.add_argument("--runs", type=int, default=5, help="timed runs (after one warm-up)")
    ap.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    embedders = EmbedderCache(device=args.device)
    t0 = time.perf_counter()
    emb = embedders.get(args.backbone)
    log(f"embedder {emb.id} on {emb.device} loaded in {time.perf_counter() - t0:.1f} s")
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        budget = int(args.budget_mb * 1_000_000) if args.budget_mb else None
        manifest = publish_random_memory(Path(tmp) / "release", emb, args.memory, args.classes, args.index,
                                         byte_budget=budget, kind=args.memory_kind)
        build_s = time.perf_counter() - t0
        log(f"snapshot {manifest['factory']} over {args.memory} vectors built in {build_s:.1f} s "
            f"(recall@10 {manifest['recall_at_10']}, search params {manifest['search_params']})")
        t0 = time.perf_counter()
        params = SegmentParams(k=args.k, proposals=args.proposals, base_model=BaseModelSpec(kind=args.base_model))
        if args.merge_rounds is not None:
            params.merge_rounds = args.merge_rounds
        release = LocalSnapshotSource(Path(tmp) / "release", params, embedders, backbone=args.backbone)(None)
        load_s = time.perf_counter() - t0  # verify + load + text embeddings of the vocabulary
        load_parts = load_breakdown(Path(tmp) / "release", params, embedders, args.backbone)
        log(f"release loaded and warmed up in {load_s:.1f} s ({load_parts})")
        seg = release.segmenter
        image, source = load_image()
        seg.segment(image)  # warm-up
        bare_forward(emb, image)
        parts: dict[str, list[float]] = {k: [] for k in ("proposals", "forward", "retrieval", "base_model", "fusion",
                                                         "outputs")}
        bare, n_props = [], []
        with ForwardCounter(emb) as counter:
            for _ in range(args.runs):
                res = seg.segment(image)
                for k in parts:
                    parts[k].append(res.timings[k])
                n_props.append(len(res.segments))
        for _ in range(args.runs):
            bare.append(bare_forward(emb, image))
    med = {k: statistics.median(v) for k, v in parts.items()}
    bare_s = statistics.median(bare)
    result = {
        "backbone": args.backbone, "embedder_id": emb.id, "base_model_id": release.segmenter.base_model.id, "device": device_name(emb.device), "image": source,
        "image_hw": list(image.shape[:2]), "memory_vectors": args.memory, "memory_classes": args.classes,
        "memory_kind": args.memory_kind,
        "index": manifest["factory"], "index_chosen_by": manifest["build"]["chosen_by"],
        "search_params": manifest["search_params"], "recall_at_10": manifest["recall_at_10"],
        "index_build_s": round(build_s, 2), "release_load_s": round(load_s, 2), "release_load_parts_s": load_parts,
        "byte_budget": manifest["build"]["byte_budget"], "index_bytes": manifest["bytes"]["index"], "k": args.k,
        "proposals": args.proposals, "merge_rounds": params.merge_rounds, "proposals_per_image": statistics.median(n_props), "runs": args.runs,
        "forwards_per_image": counter.images / args.runs, "forward_calls_per_image": counter.calls / args.runs,
        **{f"{k}_s": round(v, 5) for k, v in med.items()},
        "total_s": round(sum(med.values()), 5),
        "bare_encode_image_s": round(bare_s, 5),
        "overhead_ratio": round((med["retrieval"] + med["fusion"]) / med["forward"], 4),
        "overhead_ratio_vs_bare_forward": round((med["retrieval"] + med["fusion"]) / bare_s, 4),
        "pipeline_forward_vs_bare": round(med["forward"] / bare_s, 4),
        "target_overhead_ratio": 0.5,
    }
    result["meets_target"] = result["overhead_ratio"] <= 0.5
    if not args.json:
        for k, v in result.items():
            print(f"{k:32s} {v}")
    else:
        print(json.dumps(result))
    return 0


def load_breakdown(path: Path, params, embedders, backbone: str) -> dict:
    """Seconds of the parts of a release load, each timed again on its own: checksums of
    every file alone, `load_snapshot` (checksums + faiss read + labels), and building the
    segmenter (text embeddings of the vocabulary, warm-up)."""
    from knnclip_core.index import load_snapshot, verify_snapshot
    from knnclip_core.segment.release import segmenter_for_snapshot

    t0 = time.perf_counter()
    verify_snapshot(path)
    t1 = time.perf_counter()
    snap = load_snapshot(path)
    t2 = time.perf_counter()
    segmenter_for_snapshot(snap, params, embedders, backbone)
    t3 = time.perf_counter()
    return {"verify": round(t1 - t0, 3), "load_snapshot": round(t2 - t1, 3), "segmenter": round(t3 - t2, 3)}


def device_name(device: str) -> str:
    """`cpu`, or `cuda (<card name>)`."""
    if not device.startswith("cuda"):
        return device
    import torch

    return f"cuda ({torch.cuda.get_device_name(0)})"


if __name__ == "__main__":
    sys.exit(main())
