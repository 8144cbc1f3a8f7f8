"""CamVid segment accuracy of the curated memory vs its budget, for each strategy.

Memory = one ground-truth segment per class per CamVid train image, embedded with the
`classic` embedder (weights-free); queries = the same for val images. For each strategy
and budget (a fraction of the train rows) a real `curate` run (dedup at the default
threshold, then the budget) picks the KEPT rows; each val segment is classified by a
k-NN vote over them weighted by exp(cosine / temperature), through the product's
`segment.retrieval.retrieve`. Writes
benchmarks/out/budget_curve.json and .png; `--json`: the last stdout line is one JSON object.

    python benchmarks/budget_curve.py --json
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from knnclip_core.config import load_settings  # noqa: E402
from knnclip_core.memory.curate import curate, default_dedup_threshold  # noqa: E402
from knnclip_core.memory.published import load_kept  # noqa: E402
from knnclip_core.memory.table import MemoryTable, make_rows  # noqa: E402
from knnclip_core.segment.retrieval import FlatMemory, retrieve  # noqa: E402
from knnclip_core.workspace import Workspace  # noqa: E402

CAMVID = ROOT.parent / "shared" / "data" / "camvid"
OUT = ROOT / "benchmarks" / "out"
VOID = 11


def camvid_segments(split: str, min_area: int = 16, limit: int | None = None):
    """Yield (image_name, image RGB, [(class value, bool mask)]) for one CamVid split."""
    from PIL import Image

    from knnclip_core.embedders.image_io import read_rgb

    names = sorted(p.name for p in (CAMVID / split).glob("*.png"))[:limit]
    for name in names:
        img = read_rgb(str(CAMVID / split / name))
        lab = np.asarray(Image.open(CAMVID / f"{split}annot" / name))
        segs = [(int(v), lab == v) for v in np.unique(lab) if v != VOID and (lab == v).sum() >= min_area]
        yield name, img, segs


def embed_split(embedder, split: str, limit: int | None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(xb (n, D) float32, labels (n,), image names) of a split, cached under benchmarks/out."""
    safe = embedder.id.replace("|", "_").replace("/", "_").replace("=", "")[:120]
    cache = OUT / f"camvid_{split}_{safe}_{limit}.npz"
    if cache.is_file():
        z = np.load(cache)
        return z["xb"], z["labels"], list(z["images"])
    xs, ys, imgs = [], [], []
    for name, img, segs in camvid_segments(split, limit=limit):
        if not segs:
            continue
        xs.append(embedder.embed_masks(img, [m for _, m in segs]))
        ys += [v for v, _ in segs]
        imgs += [name] * len(segs)
    xb, labels = np.concatenate(xs).astype(np.float32), np.asarray(ys, np.int64)
    OUT.mkdir(parents=True, exist_ok=True)
    np.savez(cache, xb=xb, labels=labels, images=np.asarray(imgs))
    return xb, labels, imgs


def knn_accuracy(xb, yb, xq, yq, names: list[str], k: int = 10, temperature: float = 0.1) -> float:
    """Segment accuracy of the product's vote (`segment.retrieval.retrieve` over a flat FAISS
    memory of xb labelled yb, indexes into `names`) on queries xq labelled yq."""
    memory = FlatMemory(xb, yb, names)
    ret = retrieve(memory, xq, k=min(k, len(xb)), temperature=temperature, classes=names)
    return float((ret.P.argmax(axis=1) == np.asarray(yq)).mean())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fractions", default="0.05,0.1,0.25,0.5,1.0")
    ap.add_argument("--strategies", default="balanced,diversity,random")
    ap.add_argument("--limit", type=int, default=None, help="images per split (quick runs)")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--dedup-threshold", type=float, default=None, help="default: settings.curate, else the backbone's")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if not CAMVID.is_dir():
        print(json.dumps({"skipped": f"CamVid not found at {CAMVID}"}))
        return 0
    from knnclip_core.embedders import get_embedder

    emb = get_embedder("classic", device="cpu")
    t = time.perf_counter()
    xtr, ytr, itr = embed_split(emb, "train", args.limit)
    xva, yva, _ = embed_split(emb, "val", args.limit)
    embed_s = time.perf_counter() - t
    names = (CAMVID / "classes.txt").read_text().split()
    with tempfile.TemporaryDirectory() as home:
        settings = load_settings(home=home)
        ws = Workspace.from_settings(settings).ensure()
        t0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
        meta = [{"id": f"camvid-train-{i:05d}", "class_id": int(y), "class_name": names[y], "dataset": "camvid",
                 "batch_id": "train", "image_sha256": itr[i], "area": 0, "ingested_at": t0 + timedelta(seconds=i)}
                for i, y in enumerate(ytr)]
        MemoryTable.open(ws.memory_uri, emb.id, emb.dim).insert_missing(make_rows(emb.id, xtr, meta))
        results = {}
        for strategy in args.strategies.split(","):
            curve = []
            for frac in map(float, args.fractions.split(",")):
                budget = int(round(frac * len(ytr)))
                rep = curate(settings, ws, emb.id, budget_vectors=budget, strategy=strategy, lock_timeout_s=0,
                             dedup_threshold=args.dedup_threshold if args.dedup_threshold is not None
                             else default_dedup_threshold(settings, "classic"))
                kept = load_kept(ws, emb.id)
                yk = np.asarray([names.index(c) for c in kept.class_names])
                acc = knn_accuracy(kept.vectors, yk, xva, yva, names, k=args.k)
                curve.append({"fraction": frac, "budget": budget, "kept": len(kept), "accuracy": round(acc, 4),
                              "classes_kept": len(set(kept.class_names)), "duplicates": rep["counts"]["duplicate"],
                              "conflicts": rep["counts"]["conflict"]})
                print(f"{strategy} {frac:.2f}: kept {len(kept)} acc {acc:.4f}", file=sys.stderr)
            results[strategy] = curve
    out = {"embedder_id": emb.id, "train_segments": int(len(ytr)), "val_segments": int(len(yva)), "k": args.k,
           "dedup_threshold": rep["params"]["dedup_threshold"], "embed_seconds": round(embed_s, 1),
           "uncurated_accuracy": round(knn_accuracy(xtr, ytr, xva, yva, names, k=args.k), 4), "curves": results}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "budget_curve.json").write_text(json.dumps(out, indent=1))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for strategy, curve in results.items():
        ax.plot([c["fraction"] * 100 for c in curve], [c["accuracy"] for c in curve], marker="o", label=strategy)
    ax.set_xscale("log")
    ax.set_xlabel("budget (% of train segments)")
    ax.set_ylabel(f"CamVid val segment accuracy ({args.k}-NN)")
    ax.set_title("memory budget vs accuracy (classic embedder)")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(OUT / "budget_curve.png", dpi=120)
    out["plot"] = str(OUT / "budget_curve.png")
    print(json.dumps(out) if args.json else json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
