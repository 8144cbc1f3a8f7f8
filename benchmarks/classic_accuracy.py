"""k-NN segment classification with the weights-free classic embedders on CamVid, through
the product's own vote (`knnclip_core.segment.retrieval.retrieve`).

Memory = ground-truth segments of CamVid train (one per class present per image, class 11
`Unlabelled` is void and ignored); queries = val segments; vectors from the product's
embedder with its committed constants. CamVid val shares its drive (0016E5) with part of
train, so the script also leaves each sequence out in turn: its segments are queried
against a memory of the other sequences only, with the standardisation constants refitted
on that memory alone (benchmarks/fit_classic_constants.py; the left-out drive is never
seen). The vote is retrieve's exp(similarity / 0.1)-weighted vote over the k nearest.
Prints human lines, then (with --json) one JSON object as the last stdout line: accuracy
(k=10), accuracy_k1, accuracy_k10, cross_sequence, cross_sequence_min, ...

    .venv/bin/python benchmarks/classic_accuracy.py --json [--backbone classic-v2] [--root ../shared/data/camvid]
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
sys.path.insert(0, str(ROOT / "benchmarks"))
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "camvid"
VOID = 11
TEMPERATURE = 0.1


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


def camvid_segments(root: Path, split: str, limit: int | None = None):
    """Yield (image, masks, class ids, sequence) per image: one mask per non-void class present."""
    for image, label, seq in read_split(root, split, limit):
        classes = [int(c) for c in np.unique(label) if c != VOID]
        yield image, [label == c for c in classes], classes, seq


def split_statistics(backbone: str, root: Path, split: str, limit: int | None = None):
    """(raw statistics (n, D), class ids (n,), sequences (n,), image numbers (n,)) of a split's segments."""
    from knnclip_core.embedders.classic_fit import raw_statistics

    ys, seqs, images = [], [], []

    def items():
        for i, (image, masks, classes, seq) in enumerate(camvid_segments(root, split, limit)):
            ys.extend(classes)
            seqs.extend([seq] * len(classes))
            images.extend([i] * len(classes))
            yield image, masks

    stats = raw_statistics(backbone, items())
    return stats, np.asarray(ys), np.asarray(seqs), np.asarray(images)


def accuracy(xb, yb, xq, yq, k: int) -> float:
    """Share of queries whose top class under the product's retrieve vote is their own
    (budget_curve.knn_accuracy, with CamVid class ids as the class names)."""
    from budget_curve import knn_accuracy

    vocabulary = sorted(set(yb.tolist()) | set(yq.tolist()))
    index = {c: i for i, c in enumerate(vocabulary)}
    return knn_accuracy(xb, np.array([index[c] for c in yb.tolist()]), xq, np.array([index[c] for c in yq.tolist()]),
                        [str(c) for c in vocabulary], k=k, temperature=TEMPERATURE)


def dedup_sweep(xb, yb, images, xq, yq, thresholds, k: int = 10) -> dict:
    """Per dedup threshold: the product's curation plan (no budget) over the train memory, the
    share of rows it drops, its cross-class (conflict) rows, and val accuracy of the kept rows."""
    import datetime as dt

    from knnclip_core.memory.plan import CurationParams, plan_curation
    from knnclip_core.memory.table import KEPT, make_rows

    epoch = dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc)
    meta = [{"id": f"s{i:06d}", "class_id": int(c), "class_name": str(c), "dataset": "camvid", "batch_id": "train",
             "image_sha256": f"img{int(im)}", "area": 1, "ingested_at": epoch + dt.timedelta(seconds=i)}
            for i, (c, im) in enumerate(zip(yb, images))]
    rows = make_rows("benchmark", xb, meta)
    out = {}
    for t in thresholds:
        plan = plan_curation(rows, [], CurationParams(dedup_threshold=t, budget_vectors=None))
        kept = plan.states == KEPT
        out[str(t)] = {"dropped_share": round(float(1 - kept.mean()), 4), "conflict_rows": int((plan.states == "conflict").sum()),
                       "accuracy": accuracy(xb[kept], yb[kept], xq, yq, k)}
    return out


def leave_one_sequence_out(version, stats, y, seqs, k: int = 10) -> dict:
    """Accuracy on each sequence's segments with a memory of the other sequences only, the
    constants fitted on that memory (images the memory has never seen, shot on another drive)."""
    from knnclip_core.embedders.classic_fit import embed_from_statistics, fit_constants, with_constants

    out = {}
    for seq in sorted(set(seqs)):
        q = seqs == seq
        fold = with_constants(version, *fit_constants(stats[~q]))
        acc = accuracy(embed_from_statistics(fold, stats[~q]), y[~q], embed_from_statistics(fold, stats[q]), y[q], k)
        out[seq] = {"accuracy": acc, "queries": int(q.sum()), "memory": int((~q).sum())}
    return out


def evaluate(root: Path, train_limit: int | None = None, val_limit: int | None = None,
             backbone: str = "classic-v2", dedup_thresholds: tuple[float, ...] = ()) -> dict:
    """Accuracy figures of classic backbone `backbone` on CamVid train -> val."""
    from knnclip_core.embedders import embedder_id_for, get_spec
    from knnclip_core.embedders.classic_embedder import classic_version
    from knnclip_core.embedders.classic_fit import embed_from_statistics

    version = classic_version(get_spec(backbone))
    t0 = time.perf_counter()
    sb, yb, qb, ib = split_statistics(backbone, root, "train", train_limit)
    sq, yq, qq, _ = split_statistics(backbone, root, "val", val_limit)
    seconds = time.perf_counter() - t0
    xb, xq = embed_from_statistics(version, sb), embed_from_statistics(version, sq)
    acc = {k: accuracy(xb, yb, xq, yq, k) for k in (1, 5, 10)}
    majority = float((yq == np.bincount(yb).argmax()).mean())
    by_seq = leave_one_sequence_out(version, np.concatenate([sb, sq]), np.concatenate([yb, yq]),
                                    np.concatenate([qb, qq]))
    dedup = dedup_sweep(xb, yb, ib, xq, yq, dedup_thresholds) if dedup_thresholds else {}
    return {"accuracy": acc[10], "dedup": dedup, "accuracy_k1": acc[1], "accuracy_k5": acc[5], "accuracy_k10": acc[10], "k": 10,
            "cross_sequence": by_seq, "cross_sequence_min": min(v["accuracy"] for v in by_seq.values()),
            "cross_sequence_constants": "fitted on each fold's memory", "vote": "knnclip_core.segment.retrieval.retrieve",
            "temperature": TEMPERATURE, "memory_segments": int(len(xb)), "query_segments": int(len(xq)),
            "majority_class_accuracy": majority, "embed_seconds": round(seconds, 2),
            "embedder_id": embedder_id_for(backbone), "backbone": backbone, "data": str(root)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", type=Path, default=DEFAULT_DATA, help="CamVid folder (train/, trainannot/, val/, valannot/)")
    p.add_argument("--backbone", default="classic-v2", help="a classic backbone of configs/backbones.yaml")
    p.add_argument("--train-limit", type=int, help="use only N evenly spaced train images")
    p.add_argument("--val-limit", type=int, help="use only N evenly spaced val images")
    p.add_argument("--dedup", default="", help="comma-separated dedup thresholds to sweep (e.g. 0.97,0.98,0.99)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if not (args.root / "train").is_dir():
        print(f"CamVid not found at {args.root}", file=sys.stderr)
        return 2
    r = evaluate(args.root, args.train_limit, args.val_limit, args.backbone,
                 tuple(float(t) for t in args.dedup.split(",") if t))
    n_images = sum(min(len(list((args.root / sp).glob("*.png"))), lim or 10**9)
                   for sp, lim in (("train", args.train_limit), ("val", args.val_limit)))
    r["images_per_s"] = round(n_images / max(r["embed_seconds"], 1e-9), 2)
    print(f"{args.backbone}: CamVid train ({r['memory_segments']} segments) -> val ({r['query_segments']}): "
          f"accuracy k=1 {r['accuracy_k1']:.4f}, k=10 {r['accuracy_k10']:.4f} "
          f"(majority class {r['majority_class_accuracy']:.3f}); {r['images_per_s']} images/s")
    print("leave one sequence out (memory: the other sequences, train and val; constants fitted on it): " + ", ".join(
        f"{seq} {v['accuracy']:.4f} ({v['queries']} queries)" for seq, v in r["cross_sequence"].items()))
    for t, d in r["dedup"].items():
        print(f"dedup at {t}: drops {d['dropped_share']:.1%} of train rows ({d['conflict_rows']} conflict rows), "
              f"val accuracy of the rest {d['accuracy']:.4f}")
    if args.json:
        print(json.dumps(r, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
