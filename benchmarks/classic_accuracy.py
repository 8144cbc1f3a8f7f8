"""k-NN segment classification with the weights-free `classic` embedder on CamVid.

Memory = ground-truth segments of CamVid train (one per class present per image, class 11
`Unlabelled` is void and ignored); queries = val segments. CamVid val shares its drive
(0016E5) with part of train, so the script also leaves each sequence out in turn: its
segments are queried against a memory of the other sequences only. Vote weighted by
exp(similarity / 0.1) over the k nearest (cosine). Prints human lines, then (with --json)
one JSON object as the last stdout line: accuracy (k=10), accuracy_k1, accuracy_k10, ...

    .venv/bin/python benchmarks/classic_accuracy.py --json [--root ../shared/data/camvid]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "camvid"
VOID = 11


def read_split(root: Path, split: str, limit: int | None = None):
    """Yield (image HxWx3 uint8, label HxW uint8, sequence) of a CamVid split, in file order
    (the sequence is the file name's prefix, e.g. 0016E5)."""
    from PIL import Image

    from knnclip_core.embedders.image_io import read_rgb

    files = sorted((root / split).glob("*.png"))
    if limit and limit < len(files):  # evenly spaced, so that every sequence is represented
        files = [files[i] for i in np.linspace(0, len(files) - 1, limit).round().astype(int)]
    for f in files:
        image = read_rgb(str(f))
        label = np.asarray(Image.open(root / f"{split}annot" / f.name))
        yield image, label, f.name.split("_")[0]


def embed_split(embedder, root: Path, split: str, limit: int | None = None):
    """(xb (n, D) float32, labels (n,) int, sequences (n,) str) for all non-void class
    segments of a split."""
    xs, ys, seqs = [], [], []
    for image, label, seq in read_split(root, split, limit):
        classes = [int(c) for c in np.unique(label) if c != VOID]
        xs.append(embedder.embed_masks(image, [label == c for c in classes]))
        ys += classes
        seqs += [seq] * len(classes)
    return np.concatenate(xs), np.asarray(ys), np.asarray(seqs)


def leave_one_sequence_out(x, y, seqs, k: int = 10) -> dict:
    """Accuracy on each sequence's segments with a memory of the other sequences only
    (images the memory has never seen, shot on another drive)."""
    out = {}
    for seq in sorted(set(seqs)):
        q = seqs == seq
        out[seq] = {"accuracy": float((knn_vote(x[q], x[~q], y[~q], k, n_classes=int(y.max()) + 1) == y[q]).mean()),
                    "queries": int(q.sum()), "memory": int((~q).sum())}
    return out


def knn_vote(xq, xb, yb, k, temperature=0.1, n_classes=None):
    """Predicted labels of xq: exp(sim / T)-weighted vote of the k nearest rows of xb."""
    assert xq.shape[1] == xb.shape[1] and k >= 1
    S = xq @ xb.T
    I = np.argsort(-S, axis=1)[:, :k]
    D = np.take_along_axis(S, I, axis=1)
    n_classes = n_classes or int(yb.max()) + 1
    votes = np.zeros((len(xq), n_classes))
    rows = np.repeat(np.arange(len(xq)), k)
    np.add.at(votes, (rows, yb[I].ravel()), np.exp((D - 1.0) / temperature).ravel())
    return votes.argmax(1)


def evaluate(root: Path, train_limit: int | None = None, val_limit: int | None = None, backbone: str = "classic") -> dict:
    """Accuracy figures of `backbone` on CamVid train -> val."""
    from knnclip_core.embedders import get_embedder

    emb = get_embedder(backbone, device="cpu")
    t0 = time.perf_counter()
    xb, yb, sb = embed_split(emb, root, "train", train_limit)
    xq, yq, sq = embed_split(emb, root, "val", val_limit)
    seconds = time.perf_counter() - t0
    acc = {k: float((knn_vote(xq, xb, yb, k) == yq).mean()) for k in (1, 5, 10)}
    majority = float((yq == np.bincount(yb).argmax()).mean())
    by_seq = leave_one_sequence_out(np.concatenate([xb, xq]), np.concatenate([yb, yq]), np.concatenate([sb, sq]))
    return {"accuracy": acc[10], "accuracy_k1": acc[1], "accuracy_k5": acc[5], "accuracy_k10": acc[10], "k": 10,
            "cross_sequence": by_seq, "cross_sequence_min": min(v["accuracy"] for v in by_seq.values()),
            "temperature": 0.1, "memory_segments": int(len(xb)), "query_segments": int(len(xq)),
            "majority_class_accuracy": majority, "embed_seconds": round(seconds, 2),
            "embedder_id": emb.id, "data": str(root)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", type=Path, default=DEFAULT_DATA, help="CamVid folder (train/, trainannot/, val/, valannot/)")
    p.add_argument("--backbone", default="classic")
    p.add_argument("--train-limit", type=int, help="use only N evenly spaced train images")
    p.add_argument("--val-limit", type=int, help="use only N evenly spaced val images")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if not (args.root / "train").is_dir():
        print(f"CamVid not found at {args.root}", file=sys.stderr)
        return 2
    r = evaluate(args.root, args.train_limit, args.val_limit, args.backbone)
    n_images = sum(min(len(list((args.root / sp).glob("*.png"))), lim or 10**9)
                   for sp, lim in (("train", args.train_limit), ("val", args.val_limit)))
    r["images_per_s"] = round(n_images / max(r["embed_seconds"], 1e-9), 2)
    print(f"{args.backbone}: CamVid train ({r['memory_segments']} segments) -> val ({r['query_segments']}): "
          f"accuracy k=1 {r['accuracy_k1']:.4f}, k=10 {r['accuracy_k10']:.4f} "
          f"(majority class {r['majority_class_accuracy']:.3f}); {r['images_per_s']} images/s")
    print("leave one sequence out (memory: the other sequences, train and val): " + ", ".join(
        f"{seq} {v['accuracy']:.4f} ({v['queries']} queries)" for seq, v in r["cross_sequence"].items()))
    if args.json:
        print(json.dumps(r, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
