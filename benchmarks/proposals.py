"""Proposal generators on real data: how far are the product's own proposals from ground truth?

Per dataset and generator, through the product's Segmenter and `evaluation.evaluate` (memory
backbone `--backbone`, default the embed settings'; no base model, the offline pairing; T the
worker settings' unless --threshold):

- `miou`: mIoU with the generator's proposals classified by retrieval (unknown counts wrong);
- `miou_gt`: mIoU with the ground-truth masks classified the same way (the ceiling of the
  classifier), and `gap` = miou_gt - miou;
- `achievable_miou`: each final proposal given its majority ground-truth label (the ceiling of
  the generator, whatever the classifier);
- `seconds_per_image` (the whole `segment` call) and `proposal_seconds_per_image`;
- on COCO panoptic, PQ (with things as instances) too.

Memories are ground-truth segments embedded with `embed_masks` (what `knnclip embed` stores):

- `camvid-val` (the split defaults are tuned on): memory CamVid train of drives 0016E5 and
  0001TP, queries CamVid val (0016E5, other frames);
- `camvid-unseen` (reported, never tuned on): memory every frame of drives 0016E5 and 0001TP
  (train + val), queries drive 0006R0, which neither the memory nor the tuning ever saw;
- `ade20k`: even-numbered validation images as memory, odd-numbered as queries;
- `coco`: coco128 panoptic train as memory, val as queries.

Generators: `before` (today's slic and panoptic composition: largest first, no merge), `default`
(the settings' worker section as shipped), `grid` (4 x 4), `default+regions` (the default, its
first proposals asked against a second memory of proposal-like regions of the same memory images:
SLIC regions named by their majority class, regroup.proposal_like_regions; not yet built by
`publish`), and any `--variant NAME=JSON` of
SegmentParams fields (e.g. '{"proposal_options": {"n_segments": 400}, "merge_rounds": 2}').
Prints human lines, then (with --json) one JSON object as the last stdout line.

    .venv/bin/python benchmarks/proposals.py --json --datasets camvid-val --limit 10 --memory-limit 60
"""
from __future__ import annotations

import argparse
import copy
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data"
DATASETS = ("camvid-val", "camvid-unseen", "ade20k", "coco")
BEFORE = {"proposals": "slic", "proposal_options": {}, "merge_rounds": 0,
          "panoptic": {"paint": "area", "overlap_threshold": 0.0, "score_threshold": 0.0, "merge_things": False}}
UNSEEN_DRIVE = "0006R0"
REGIONS = {"method": "slic", "n_segments": 400, "max_regions": 200, "merge_threshold": 4, "max_side": 512}
GRID = {"proposals": "grid", "proposal_options": {"rows": 4, "cols": 4}, "merge_rounds": 0}


def _spaced(items: list, limit: int | None) -> list:
    """`limit` items evenly spaced over `items` (all when limit is None or larger)."""
    if not limit or limit >= len(items):
        return list(items)
    return [items[int(i)] for i in np.linspace(0, len(items) - 1, limit).round().astype(int)]


def _camvid(split: str):
    from knnclip_core.readers.semantic_png import SemanticPngReader
    from knnclip_core.evaluation.evaluate import samples_from_reader

    root = DATA / "camvid"
    reader = SemanticPngReader(root / split, root / f"{split}annot", root / "classes.txt", ignore=[11])
    return list(samples_from_reader(reader)), [c.name for c in reader.classes], []


def load(name: str, limit: int | None, memory_limit: int | None):
    """(memory samples, query samples, class names, thing class names) of a dataset split."""
    from knnclip_core.evaluation.evaluate import samples_from_reader

    if name.startswith("camvid"):
        train, classes, things = _camvid("train")
        val, _, _ = _camvid("val")
        drive = lambda s: Path(s.name).name.split("_")[0]  # noqa: E731
        if name == "camvid-val":
            mem, queries = [s for s in train if drive(s) != UNSEEN_DRIVE], val
        else:
            mem = [s for s in train + val if drive(s) != UNSEEN_DRIVE]
            queries = [s for s in train if drive(s) == UNSEEN_DRIVE]
    elif name == "ade20k":
        from knnclip_core.readers.ade20k import Ade20kReader

        reader = Ade20kReader(DATA / "ade20k" / "ADEChallengeData2016")
        samples = list(samples_from_reader(reader))
        mem, queries, classes, things = samples[0::2], samples[1::2], [c.name for c in reader.classes], []
    elif name == "coco":
        from knnclip_core.readers.coco_panoptic import CocoPanopticReader

        ann = DATA / "coco128" / "panoptic_segmentation" / "annotations"
        readers = [CocoPanopticReader(ann / f"panoptic_{s}2017.json", images=DATA / "coco128" / "images" / f"{s}2017")
                   for s in ("train", "val")]
        mem, queries = (list(samples_from_reader(r)) for r in readers)
        classes = [c.name for c in readers[0].classes]
        things = [c.name for c in readers[0].classes if c.is_thing]
    else:
        raise SystemExit(f"unknown dataset {name!r} (one of {', '.join(DATASETS)})")
    return _spaced(mem, memory_limit), _spaced(queries, limit), classes, things


def build_memory(embedder, samples, cache: Path | None, key: str, regions: dict | None = None, whole: bool = True):
    """FlatMemory of the ground-truth segments of `samples` (vectors cached under `cache`), plus
    with `regions` ({method, options...}) their proposal-like regions (regroup.proposal_like_regions);
    `whole=False`: those regions alone."""
    from knnclip_core.segment import FlatMemory
    from knnclip_core.segment.regroup import proposal_like_regions

    rows = [list(s.segments) if whole else [] for s in samples]
    if regions:
        rows = [r + proposal_like_regions(s.image, s.segments, **regions) for r, s in zip(rows, samples)]
    names = [n for r in rows for n, _ in r]
    tag = key + embedder.id + json.dumps(regions, sort_keys=True) + ("" if whole else "regions-only") + "".join(s.name for s in samples)
    path = cache / f"{hashlib.sha256(tag.encode()).hexdigest()[:16]}.npy" if cache else None
    if path is not None and path.is_file():
        xb = np.load(path)
    else:
        xb = np.concatenate([embedder.embed_masks(s.image, [m for _, m in r]) for r, s in zip(rows, samples)])
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, xb)
    vocab = sorted(set(names))
    mem = FlatMemory(xb, [vocab.index(n) for n in names], vocab)
    mem.embedder_id = embedder.id
    return mem


class Recorder:
    """A Segmenter that keeps each result's final masks and timings (the evaluation is the product's)."""

    def __init__(self, segmenter):
        self.inner, self.masks, self.seconds, self.proposal_seconds = segmenter, [], [], []
        self.embedder, self.base_model = segmenter.embedder, segmenter.base_model

    def segment(self, image, **kw):
        t = time.perf_counter()
        res = self.inner.segment(image, **kw)
        self.seconds.append(time.perf_counter() - t)
        self.proposal_seconds.append(res.timings.get("proposals", 0.0))
        self.masks.append([s.mask for s in res.segments])
        return res


def achievable(samples, masks_per_image, classes) -> float:
    """mIoU when every proposal takes the majority ground-truth label of its pixels."""
    from knnclip_core.evaluation.evaluate import Confusion, gt_label_map

    index = {c: i for i, c in enumerate(classes)}
    conf = Confusion(len(classes))
    for s, masks in zip(samples, masks_per_image):
        gt = gt_label_map(s.image.shape[:2], [(index[n], m) for n, m in s.segments if n in index])
        pred = np.full(gt.shape, -1, np.int32)
        for m in masks:
            v = gt[m]
            v = v[v >= 0]
            if len(v):
                pred[m] = np.bincount(v).argmax()
        conf.add(pred, gt)
    return conf.scores(classes)["miou"]


def params_for(base, overrides: dict):
    """SegmentParams: `base` with `overrides` applied (nested 'panoptic' fields one by one)."""
    from knnclip_core.segment.panoptic import PanopticParams

    p = copy.deepcopy(base)
    for k, v in overrides.items():
        if k == "panoptic":
            p.panoptic = PanopticParams(**{**vars(base.panoptic), **v})
        else:
            setattr(p, k, copy.deepcopy(v))
    return p


def run_dataset(name: str, embedder, generators: dict, base, limit, memory_limit, cache, regions=None, two_memory=None) -> dict:
    from knnclip_core.segment import Segmenter
    from knnclip_core.evaluation.evaluate import evaluate

    mem_samples, queries, classes, things = load(name, limit, memory_limit)
    queries = [q for q in queries if any(n in classes for n, _ in q.segments)]
    t = time.perf_counter()
    memory = build_memory(embedder, mem_samples, cache, name, regions)
    out = {"memory_images": len(mem_samples), "memory_segments": len(memory.class_ids),
           "memory_seconds": round(time.perf_counter() - t, 2), "images": len(queries), "generators": {}}
    panoptic = bool(things)
    gt = Recorder(Segmenter(embedder, memory, base, thing_classes=things))
    r = evaluate(gt, queries, classes, masks_from="gt", panoptic=panoptic)
    out["miou_gt"], out["segment_accuracy_gt"] = round(r["miou"], 4), round(r["segment_accuracy"], 4)
    if panoptic:
        out["pq_gt"] = round(r["pq"], 4)
    for gname, overrides in generators.items():
        overrides = dict(overrides)
        regions = overrides.pop("region_memory", two_memory)
        region_memory = build_memory(embedder, mem_samples, cache, name, regions) if regions else None
        rec = Recorder(Segmenter(embedder, memory, params_for(base, overrides), thing_classes=things,
                                 region_memory=region_memory))
        r = evaluate(rec, queries, classes, masks_from="proposals", panoptic=panoptic)
        g = {"params": overrides, "region_memory": regions, "miou": round(r["miou"], 4), "gap": round(out["miou_gt"] - r["miou"], 4),
             "achievable_miou": round(achievable(queries, rec.masks, classes), 4),
             "pixel_accuracy": round(r["pixel_accuracy"], 4),
             "proposals_per_image": round(float(np.mean([len(m) for m in rec.masks])), 1),
             "seconds_per_image": round(float(np.mean(rec.seconds)), 3),
             "proposal_seconds_per_image": round(float(np.mean(rec.proposal_seconds)), 3)}
        if panoptic:
            g.update({"pq": round(r["pq"], 4), "sq": round(r["sq"], 4), "rq": round(r["rq"], 4)})
        out["generators"][gname] = g
        print(f"{name} {gname}: mIoU {g['miou']:.4f} (GT masks {out['miou_gt']:.4f}), achievable "
              f"{g['achievable_miou']:.4f}, {g['proposals_per_image']} proposals, {g['seconds_per_image']} s/img"
              + (f", PQ {g['pq']:.4f} (GT masks {out['pq_gt']:.4f})" if panoptic else ""), flush=True)
    if "before" in out["generators"] and "default" in out["generators"]:
        b, d = out["generators"]["before"], out["generators"]["default"]
        out["gap_closed"] = round((d["miou"] - b["miou"]) / b["gap"], 4) if b["gap"] > 0 else None
    return out


def main(argv=None) -> int:
    from knnclip_core.config import Settings
    from knnclip_core.embedders import get_embedder
    from knnclip_core.segment.segmenter import SegmentParams

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", default=",".join(DATASETS), help=f"comma-separated, of {', '.join(DATASETS)}")
    p.add_argument("--generators", default="before,default,grid,default+regions",
                   help="comma-separated: before, default, grid, default+regions")
    p.add_argument("--variant", action="append", default=[], metavar="NAME=JSON",
                   help="another generator: SegmentParams fields over the defaults (repeatable)")
    p.add_argument("--backbone", help="memory backbone (default: embed.backbone of the settings)")
    p.add_argument("--threshold", type=float, help="T (default: worker.confidence_threshold of the settings)")
    p.add_argument("--limit", type=int, default=12, help="query images per dataset (evenly spaced)")
    p.add_argument("--memory-limit", type=int, default=60, help="memory images per dataset (evenly spaced)")
    p.add_argument("--memory-regions", type=json.loads, metavar="JSON",
                   help='also proposal-like regions in the memory, e.g. {"method": "slic", "n_segments": 400}')
    p.add_argument("--region-memory", dest="two_memory", type=json.loads, metavar="JSON",
                   help='a second memory of proposal-like regions the first proposals are asked against, '
                        'e.g. {"method": "slic", "n_segments": 400, "max_regions": 200, "merge_threshold": 4}')
    p.add_argument("--cache", type=Path, help="folder caching the memory vectors between runs")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    settings = Settings()
    backbone = args.backbone or settings.embed.backbone
    embedder = get_embedder(backbone, device="cpu")
    base = SegmentParams.from_settings(settings)
    if args.threshold is not None:
        base.confidence_threshold = args.threshold
    known = {"before": BEFORE, "default": {}, "grid": GRID, "default+regions": {"region_memory": REGIONS}}
    gens = {g: known[g] for g in args.generators.split(",") if g}
    for v in args.variant:
        n, _, js = v.partition("=")
        gens[n] = json.loads(js)
    result = {"backbone": backbone, "embedder_id": embedder.id, "threshold": base.confidence_threshold,
              "limit": args.limit, "memory_limit": args.memory_limit,
              "default_params": {"proposals": base.proposals, "proposal_options": base.proposal_options,
                                 "merge_rounds": getattr(base, "merge_rounds", 0), "panoptic": vars(base.panoptic)},
              "memory_regions": args.memory_regions, "tuned_on": "camvid-val", "datasets": {}}
    for name in args.datasets.split(","):
        result["datasets"][name] = run_dataset(name, embedder, gens, base, args.limit, args.memory_limit, args.cache,
                                              args.memory_regions, args.two_memory)
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
