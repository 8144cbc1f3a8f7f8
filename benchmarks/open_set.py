"""Open-set retrieval on CamVid: does the retrieval confidence tell a class the memory lacks?

Leaves one CamVid class out of the memory at a time. The memory is built through the
product: the semantic-png reader over CamVid train (class 11 `Unlabelled` ignored), the
`classic` embedder's `embed_masks` (`--backbone` picks another memory backbone), a FAISS snapshot (`index.build_snapshot` /
`load_snapshot`), and `segment.retrieval.retrieve` + `segment.fusion.fuse` with no base
model (the offline pairing: below T a segment is `unknown`). Queries are the ground-truth
segments of CamVid val. For each confidence formula (`similarity`, `vote_share`):

- AUROC of the confidence separating segments of known classes (positives) from those of
  the left-out class (negatives), per left-out class, and their mean;
- at the threshold T (default: the worker settings'), the known-class segment accuracy
  (`unknown` counts as wrong) and the share of left-out segments marked `unknown`;
- the T that maximises the mean of those two, the highest T keeping known-class accuracy
  >= 0.90 (how the default T was set), and a sweep of T.

The features are embedded once per run and shared by every fold. Prints human lines, then
(with --json) one JSON object as the last stdout line.

    .venv/bin/python benchmarks/open_set.py --json [--root ../shared/data/camvid] [--limit N]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "camvid"
VOID = 11
SWEEP = np.round(np.arange(0.0, 1.0001, 0.01), 2)
KNOWN_FLOOR = 0.9  # the default T is the highest that keeps known-class accuracy at least this


def embed_split(embedder, root: Path, split: str, limit: int | None = None):
    """(x (n, D) float32, names (n,) class names) of the ground-truth segments of a CamVid
    split, read by the product's semantic-png reader and embedded with `embed_masks`."""
    from knnclip_core.readers.semantic_png import SemanticPngReader
    from knnclip_core.segment.evaluate import samples_from_reader

    reader = SemanticPngReader(root / split, root / f"{split}annot", root / "classes.txt", ignore=[VOID])
    xs, names = [], []
    for sample in samples_from_reader(reader, limit=limit):
        xs.append(embedder.embed_masks(sample.image, [m for _, m in sample.segments]))
        names += [n for n, _ in sample.segments]
    return np.concatenate(xs), np.asarray(names)


def auroc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(a positive scores above a negative), ties counting half (Mann-Whitney U / n+ n-)."""
    if not len(pos) or not len(neg):
        return float("nan")
    from scipy.stats import rankdata

    ranks = rankdata(np.concatenate([pos, neg]))
    u = ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2
    return float(u / (len(pos) * len(neg)))


def run_fold(xb, yb, xq, yq, left_out: str, embedder_id: str, backbone: str, params, workdir: Path) -> dict:
    """One left-out class: snapshot of the other classes' train segments, val queried.
    Returns {kind: {'P', 'confidence', 'known' (bool per query), 'right' (the class index
    each query should get, -1 for the left-out class)}}."""
    from knnclip_core.index import build_snapshot, load_snapshot
    from knnclip_core.segment.retrieval import CONFIDENCES, retrieve

    keep = yb != left_out
    snap_dir = workdir / f"memory-without-{left_out.replace(' ', '_')}"
    build_snapshot(snap_dir, xb[keep], [f"train-{i}" for i in np.nonzero(keep)[0]], list(yb[keep]),
                   embedder_id, lineage={"backbone": backbone, "left_out": left_out}, factory="Flat")
    snap = load_snapshot(snap_dir, expected_embedder_id=embedder_id)
    index = {name: i for i, name in enumerate(snap.vocabulary)}
    right = np.array([index.get(name, -1) for name in yq])
    out = {}
    for kind in CONFIDENCES:
        r = retrieve(snap, xq, params.k, params.temperature, snap.vocabulary, confidence_kind=kind)
        out[kind] = {"P": r.P, "confidence": r.confidence, "known": right >= 0, "right": right}
    return out


def at_threshold(folds: list[dict], kind: str, T: float) -> tuple[float, float]:
    """(known-class accuracy, share of left-out segments unknown) over all folds at T, with
    the worker's fusion and no base model (below T a segment is unknown)."""
    from knnclip_core.segment.fusion import UNKNOWN, fuse

    right = known = unknown_out = out = 0
    for f in folds:
        r = f[kind]
        _, labels, _ = fuse(r["P"], r["confidence"], None, 1.0, T)
        right += int(((labels == r["right"]) & r["known"]).sum())
        known += int(r["known"].sum())
        unknown_out += int(((labels == UNKNOWN) & ~r["known"]).sum())
        out += int((~r["known"]).sum())
    return right / max(known, 1), unknown_out / max(out, 1)


def evaluate(root: Path, limit: int | None, threshold: float | None, confidence: str | None,
             backbone: str = "classic") -> dict:
    """All figures (see the module docstring) as a JSON-ready dict."""
    from knnclip_core.config import load_settings
    from knnclip_core.embedders import get_embedder
    from knnclip_core.segment.retrieval import CONFIDENCES
    from knnclip_core.segment.segmenter import SegmentParams

    settings = load_settings()
    params = SegmentParams.from_settings(settings)
    T = params.confidence_threshold if threshold is None else threshold
    chosen = confidence or params.confidence
    emb = get_embedder(backbone, device="cpu")
    t0 = time.perf_counter()
    xb, yb = embed_split(emb, root, "train", limit)
    xq, yq = embed_split(emb, root, "val", limit)
    embed_s = time.perf_counter() - t0
    classes = sorted(set(yb) & set(yq))
    folds, per_class = [], {}
    with tempfile.TemporaryDirectory(prefix="open-set-") as tmp:
        for c in classes:
            fold = run_fold(xb, yb, xq, yq, c, emb.id, backbone, params, Path(tmp))
            folds.append(fold)
            per_class[c] = {kind: round(auroc(fold[kind]["confidence"][fold[kind]["known"]],
                                              fold[kind]["confidence"][~fold[kind]["known"]]), 4)
                            for kind in CONFIDENCES}
    report = {"data": str(root), "backbone": backbone, "embedder_id": emb.id, "memory_segments": int(len(xb)),
              "query_segments": int(len(yq)), "classes": classes, "k": params.k,
              "temperature": params.temperature, "threshold": T, "confidence": chosen,
              "auroc_per_left_out_class": per_class, "embed_seconds": round(embed_s, 1)}
    for kind in CONFIDENCES:
        report[f"auroc_{kind}"] = round(float(np.mean([per_class[c][kind] for c in classes])), 4)
        acc, unk = at_threshold(folds, kind, T)
        sweep = [(T_, *at_threshold(folds, kind, T_)) for T_ in SWEEP]
        best = max(sweep, key=lambda s: (s[1] + s[2]) / 2)
        report[f"known_accuracy_{kind}"] = round(acc, 4)
        report[f"unknown_rate_left_out_{kind}"] = round(unk, 4)
        report[f"best_threshold_{kind}"] = {"threshold": float(best[0]), "known_accuracy": round(best[1], 4),
                                            "unknown_rate_left_out": round(best[2], 4)}
        report[f"sweep_{kind}"] = [[float(T_), round(a, 4), round(u, 4)] for T_, a, u in sweep[::5]]
        floor = [s for s in sweep if s[1] >= KNOWN_FLOOR]
        report[f"highest_threshold_known_{KNOWN_FLOOR}_{kind}"] = float(floor[-1][0]) if floor else None
    report["known_accuracy"] = report[f"known_accuracy_{chosen}"]
    report["unknown_rate_left_out"] = report[f"unknown_rate_left_out_{chosen}"]
    report["known_accuracy_no_threshold"] = round(at_threshold(folds, chosen, 0.0)[0], 4)
    report["higher_auroc"] = max(CONFIDENCES, key=lambda kind: report[f"auroc_{kind}"])
    return report


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", type=Path, default=DEFAULT_DATA, help="CamVid folder (train/, trainannot/, val/, valannot/)")
    p.add_argument("--backbone", default="classic", help="memory backbone (configs/backbones.yaml; default classic)")
    p.add_argument("--limit", type=int, help="use only the first N images of each split (a quick run)")
    p.add_argument("--threshold", type=float, help="T (default: worker.confidence_threshold of the settings)")
    p.add_argument("--confidence", choices=("similarity", "vote_share"),
                   help="formula of known_accuracy / unknown_rate_left_out (default: worker.confidence)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if not (args.root / "train").is_dir():
        print(f"CamVid not found at {args.root}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    r = evaluate(args.root, args.limit, args.threshold, args.confidence, args.backbone)
    r["seconds"] = round(time.perf_counter() - t0, 1)
    print(f"CamVid, {r['backbone']}, one class left out of the memory at a time ({r['memory_segments']} train segments, "
          f"{r['query_segments']} val queries, k={r['k']}); {r['seconds']} s")
    for kind in ("similarity", "vote_share"):
        b = r[f"best_threshold_{kind}"]
        print(f"  {kind:10s} AUROC {r[f'auroc_{kind}']:.4f}; at T={r['threshold']}: known accuracy "
              f"{r[f'known_accuracy_{kind}']:.4f}, left-out unknown {r[f'unknown_rate_left_out_{kind}']:.4f}; "
              f"best T {b['threshold']}: {b['known_accuracy']:.4f} / {b['unknown_rate_left_out']:.4f}")
    print("  AUROC per left-out class: " + ", ".join(
        f"{c} {v['similarity']:.3f}/{v['vote_share']:.3f}" for c, v in r["auroc_per_left_out_class"].items()))
    if args.json:
        print(json.dumps(r, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
