"""Open-set retrieval on CamVid, held out honestly: T chosen on one split, reported on another.

Does the retrieval confidence tell a class the memory lacks, on a drive the memory has never
seen? The memory is the CamVid train frames of every drive but one (`--drive`, default 0006R0),
embedded with the default memory backbone (`--backbone`, default classic-v2) through the
product's semantic-png reader and `embed_masks` (vectors cached with `--cache`), searched by
`segment.retrieval.retrieve` with the worker's k and temperature and decided by
`segment.fusion.fuse` with no base model (the offline pairing: below T a segment is `unknown`).
The held-out drive's frames, sorted by name, are cut in two contiguous halves: the
**calibration** split (first half) and the **report** split (second half). One class is left
out of the memory at a time (every class present in the memory and in both splits).

For every confidence formula of `retrieval.CONFIDENCES` (the product's `similarity`,
`vote_share`, `top1` = cosine of the nearest neighbour, `mean_cosine` = mean cosine of the k):

- AUROC separating known-class segments (positives) from left-out ones, mean over folds, per split;
- T chosen **on the calibration split** as the one maximising the balanced score (mean of the
  known-class accuracy, `unknown` counting wrong, and the share of left-out segments marked
  `unknown`), then **reported on the report split** at that T;
- the winner is the formula with the best balanced score on the report split; `ships` says
  whether it is the product's default (`worker.confidence`), else the default keeps its place
  only if nothing beats it on the report split.

Then the release calibration (knnclip_core/segment/calibrate.py, what `publish` does): for each
candidate target, T measured on a held-out split of the memory's own rows *by image* (no query
row involved), then known-class accuracy with every class in the memory (the acceptance
figure: segment accuracy with ground-truth masks) and the left-out unknown rate on both query
splits. The default target (`publish.calibration`) is chosen on the calibration split: the
candidate that marks the most left-out segments `unknown` while losing at most ACCURACY_COST
(0.03) of segment accuracy against no threshold (T is there to catch new classes, but the
product's first job is to label the known ones); its report-split figures are the ones to quote.

Prints human lines, then (with --json) one JSON object as the last stdout line.

    .venv/bin/python benchmarks/open_set.py --json [--cache /tmp/camvid-cache] [--limit N]
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
from camvid_vectors import DEFAULT_DATA, camvid_vectors, sequence_of  # noqa: E402

SWEEP = np.round(np.arange(0.0, 1.0001, 0.01), 2)
ACCURACY_COST = 0.03  # release target: the most left-out segments caught for at most this segment accuracy lost
TARGETS = (("known_accuracy", 0.9), ("known_accuracy", 0.95), ("unknown_rate", 0.005), ("unknown_rate", 0.01),
           ("unknown_rate", 0.02), ("unknown_rate", 0.05), ("unknown_rate", 0.1))  # release calibration candidates


def auroc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(a positive scores above a negative), ties counting half (Mann-Whitney U / n+ n-)."""
    if not len(pos) or not len(neg):
        return float("nan")
    from scipy.stats import rankdata

    ranks = rankdata(np.concatenate([pos, neg]))
    u = ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2
    return float(u / (len(pos) * len(neg)))


def split_drive(images: np.ndarray, drive: str) -> tuple[np.ndarray, np.ndarray]:
    """(calibration, report) row indices of the frames of `drive`: first and second half of its
    images sorted by name (contiguous, so the two splits share no frame and few neighbours)."""
    frames = sorted({str(i) for i in images if sequence_of(i) == drive})
    assert len(frames) >= 2, f"drive {drive} has {len(frames)} frames"
    first = set(frames[: len(frames) // 2])
    rows = np.nonzero([sequence_of(i) == drive for i in images])[0]
    cal = np.array([r for r in rows if str(images[r]) in first])
    rep = np.array([r for r in rows if str(images[r]) not in first])
    assert not set(images[cal]) & set(images[rep])
    return cal, rep


def retrieve_all(xb, yb, xq, yq, params, kinds) -> dict:
    """{kind: (confidence, correct, known)} of queries xq against the memory (xb, yb); `known`
    is False for queries whose class the memory lacks."""
    from knnclip_core.segment.retrieval import FlatMemory, retrieve

    vocabulary = sorted(set(yb))
    where = {n: i for i, n in enumerate(vocabulary)}
    memory = FlatMemory(xb, np.array([where[n] for n in yb]), vocabulary)
    truth = np.array([where.get(n, -1) for n in yq])
    out = {}
    for kind in kinds:
        r = retrieve(memory, xq, params.k, params.temperature, vocabulary, confidence_kind=kind)
        out[kind] = (r.confidence, (r.P.argmax(axis=1) == truth) & (r.P.sum(axis=1) > 0), truth >= 0)
    return out


def figures(folds: list[dict], kind: str, T: float) -> tuple[float, float]:
    """(known-class accuracy, left-out unknown rate) over folds at T (below T: unknown)."""
    right = known = unknown_out = out = 0
    for f in folds:
        conf, correct, is_known = f[kind]
        accepted = conf >= T - 1e-9
        right += int((correct & accepted & is_known).sum())
        known += int(is_known.sum())
        unknown_out += int((~accepted & ~is_known).sum())
        out += int((~is_known).sum())
    return right / max(known, 1), unknown_out / max(out, 1)


def balanced(acc: float, unk: float) -> float:
    return (acc + unk) / 2


def evaluate(root: Path, backbone: str, drive: str, limit, cache) -> dict:
    """All figures (module docstring) as a JSON-ready dict."""
    from knnclip_core.config import load_settings
    from knnclip_core.segment.calibrate import calibrate
    from knnclip_core.segment.retrieval import CONFIDENCES
    from knnclip_core.segment.segmenter import SegmentParams

    settings = load_settings()
    params = SegmentParams.from_settings(settings)
    t0 = time.perf_counter()
    x, y, images = camvid_vectors(root, "train", backbone, limit, cache)
    embed_s = time.perf_counter() - t0
    mem = np.nonzero([sequence_of(i) != drive for i in images])[0]
    cal, rep = split_drive(images, drive)
    classes = sorted(set(y[mem]) & set(y[cal]) & set(y[rep]))
    splits = {"calibration": cal, "report": rep}
    folds = {name: [] for name in splits}
    for c in classes:
        keep = mem[y[mem] != c]
        for name, q in splits.items():
            folds[name].append(retrieve_all(x[keep], y[keep], x[q], y[q], params, CONFIDENCES))
    report: dict = {"data": str(root), "backbone": backbone, "held_out_drive": drive, "k": params.k,
                    "temperature": params.temperature, "product_confidence": params.confidence,
                    "memory_segments": int(len(mem)), "memory_images": int(len(set(images[mem]))),
                    "calibration_segments": int(len(cal)), "report_segments": int(len(rep)),
                    "calibration_images": int(len(set(images[cal]))), "report_images": int(len(set(images[rep]))),
                    "classes": classes, "embed_seconds": round(embed_s, 1), "confidences": {}}
    for kind in CONFIDENCES:
        row: dict = {}
        for name in splits:
            row[f"auroc_{name}"] = round(float(np.mean([auroc(f[kind][0][f[kind][2]], f[kind][0][~f[kind][2]])
                                                        for f in folds[name]])), 4)
        sweep = [(T, *figures(folds["calibration"], kind, T)) for T in SWEEP]
        T = float(max(sweep, key=lambda s: (balanced(s[1], s[2]), -s[0]))[0])
        for name in splits:
            acc, unk = figures(folds[name], kind, T)
            row[name] = {"known_accuracy": round(acc, 4), "unknown_rate_left_out": round(unk, 4),
                         "balanced": round(balanced(acc, unk), 4)}
        row["threshold"] = T
        report["confidences"][kind] = row
    ranked = sorted(CONFIDENCES, key=lambda k: -report["confidences"][k]["report"]["balanced"])
    report["winner_report_split"] = ranked[0]
    report["winner_calibration_split"] = max(CONFIDENCES,
                                             key=lambda k: report["confidences"][k]["calibration"]["balanced"])
    report["default_confidence"] = (ranked[0] if ranked[0] == report["winner_calibration_split"]
                                    else params.confidence)  # ships only when it wins on both splits

    # the release calibration, as publish measures it (held-out images of the memory's own rows)
    full = {name: retrieve_all(x[mem], y[mem], x[q], y[q], params, [params.confidence]) for name, q in splits.items()}
    cands = {}
    for target, value in TARGETS:
        cal_rec = calibrate(x[mem], y[mem], images[mem], params.k, params.temperature, params.confidence, target,
                            value, settings.publish.calibration.fraction, settings.publish.calibration.seed)
        T = cal_rec["threshold"]
        entry = {"threshold": T, "held_out": cal_rec["held_out"], "split": cal_rec["split"]}
        for name in splits:
            conf, correct, _ = full[name][params.confidence]
            acc, unk = figures(folds[name], params.confidence, T)
            entry[name] = {"segment_accuracy_all_classes": round(float((correct & (conf >= T - 1e-9)).mean()), 4),
                           "known_accuracy_left_out_folds": round(acc, 4), "unknown_rate_left_out": round(unk, 4),
                           "balanced": round(balanced(acc, unk), 4)}
        cands[f"{target}={value}"] = entry
    report["release_calibration"] = cands
    conf, correct, _ = full["calibration"][params.confidence]
    floor = float(correct.mean()) - ACCURACY_COST
    affordable = [c for c in cands if cands[c]["calibration"]["segment_accuracy_all_classes"] >= floor]
    chosen = max(affordable or cands, key=lambda c: (cands[c]["calibration"]["unknown_rate_left_out"], c))
    report["release_accuracy_cost"] = ACCURACY_COST
    report["release_target_chosen_on_calibration"] = chosen
    configured = f"{settings.publish.calibration.target}={settings.publish.calibration.value}"
    report["release_target_configured"] = configured
    conf, correct, _ = full["report"][params.confidence]
    report["segment_accuracy_no_threshold_report"] = round(float(correct.mean()), 4)
    if configured in cands:
        report["release_threshold"] = cands[configured]["threshold"]
        report["segment_accuracy_release_T_report"] = cands[configured]["report"]["segment_accuracy_all_classes"]
    return report


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", type=Path, default=DEFAULT_DATA, help="CamVid folder (train/, trainannot/, ...)")
    p.add_argument("--backbone", default="classic-v2", help="memory backbone (configs/backbones.yaml)")
    p.add_argument("--drive", default="0006R0", help="CamVid drive kept out of the memory (the query splits)")
    p.add_argument("--limit", type=int, help="use only the first N train images (a quick run)")
    p.add_argument("--cache", type=Path, help="folder caching the embedded vectors (benchmarks/camvid_vectors.py)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if not (args.root / "train").is_dir():
        print(f"CamVid not found at {args.root}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    r = evaluate(args.root, args.backbone, args.drive, args.limit, args.cache)
    r["seconds"] = round(time.perf_counter() - t0, 1)
    print(f"CamVid, {r['backbone']}, memory = train frames of the other drives ({r['memory_segments']} segments), "
          f"drive {r['held_out_drive']} held out: calibration {r['calibration_segments']}, report "
          f"{r['report_segments']} segments; one class left out at a time; k={r['k']}; {r['seconds']} s")
    for kind, row in r["confidences"].items():
        c, rp = row["calibration"], row["report"]
        print(f"  {kind:11s} AUROC cal {row['auroc_calibration']:.4f} / report {row['auroc_report']:.4f}; T "
              f"{row['threshold']:.2f} (chosen on cal): report known accuracy {rp['known_accuracy']:.4f}, left-out "
              f"unknown {rp['unknown_rate_left_out']:.4f}, balanced {rp['balanced']:.4f} (cal {c['balanced']:.4f})")
    print(f"  best on the report split: {r['winner_report_split']}; on the calibration split: "
          f"{r['winner_calibration_split']}; default confidence: {r['default_confidence']}")
    for name, e in r["release_calibration"].items():
        rp = e["report"]
        print(f"  release T for {name:20s} = {e['threshold']:.2f}: report segment accuracy (all classes known) "
              f"{rp['segment_accuracy_all_classes']:.4f}, left-out unknown {rp['unknown_rate_left_out']:.4f}, "
              f"balanced {rp['balanced']:.4f} (cal {e['calibration']['balanced']:.4f})")
    print(f"  release target chosen on the calibration split: {r['release_target_chosen_on_calibration']} "
          f"(configured: {r['release_target_configured']}); report segment accuracy with no T "
          f"{r['segment_accuracy_no_threshold_report']:.4f}")
    if args.json:
        print(json.dumps(r, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
