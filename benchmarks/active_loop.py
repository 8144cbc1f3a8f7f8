"""The labelling loop played on CamVid: labels from the worker's doubts against labels at random.

Start: a memory of the first `--train` CamVid train images without the classes named by
`--drop` (Car and Bicyclist by default), published through the product (ingest -> embed ->
curate -> MLflow). Pool: the next `--limit` train images, held out. Each round:

- active: the release's worker path (Segmenter, ground-truth masks as proposals) runs over
  the pool images not yet labelled; the capture store records their doubtful segments
  (unknown, below the confidence T); the `--per-round` images with the most doubtful
  segments are exported as Label Studio tasks; an oracle annotator answers each proposed
  region from the ground truth (the majority class of its pixels, the region cut to that
  class; a class outside the labelling config through the `new_class` text, as a person
  would type it); `knnclip label import` -> embed -> curate -> publish;
- random: `--per-round` pool images drawn at random, every ground-truth segment labelled,
  through the same export/import path.

After each round both releases are evaluated on the first `--eval` CamVid val images
(ground-truth masks, CamVid's 11 classes): mIoU, unknown rate (share of segments
answered unknown), images and labels (regions) spent so far.

    python benchmarks/active_loop.py [--backbone NAME] [--rounds 3] [--limit 16] [--json]
"""
from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from knnclip_core.config import load_settings  # noqa: E402
from knnclip_core.readers.base import normalise_class_name  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "camvid"
VOID = 11


def camvid_classes() -> list[str]:
    return [normalise_class_name(n) for n in (DATA / "classes.txt").read_text().splitlines() if n.strip()][:VOID]


def load_sample(split: str, name: str) -> dict:
    """{'name', 'image' (H, W, 3), 'labels' (H, W) ints} of one CamVid image."""
    img = np.asarray(Image.open(DATA / split / name).convert("RGB"))
    return {"name": name, "image": img, "labels": np.asarray(Image.open(DATA / f"{split}annot" / name))}


def gt_segments(sample: dict, classes: list[str]) -> list[tuple[str, np.ndarray]]:
    return [(classes[v], sample["labels"] == v) for v in np.unique(sample["labels"]) if v < VOID]


def answer_region(mask: np.ndarray, labels: np.ndarray, classes: list[str]):
    """The oracle's answer for a proposed region: (class, mask cut to it), or None when the
    region is mostly void."""
    vals = labels[mask]
    if not vals.size:
        return None
    v = int(np.bincount(vals, minlength=VOID + 1).argmax())
    if v >= VOID:
        return None
    return classes[v], mask & (labels == v)


def answer_tasks(tasks_file: Path, out: Path, truth: dict, classes: list[str], vocabulary: set[str]) -> int:
    """Label Studio's export after the oracle answered every proposed region of every task;
    returns the regions labelled (labels spent)."""
    from knnclip_core.labelling.brush import decode_brush, encode_brush

    tasks = json.loads(tasks_file.read_text())
    spent = 0
    for t in tasks:
        labels = truth[t["data"]["capture_id"]]
        result = []
        for r in t["predictions"][0]["result"]:
            h, w = r["original_height"], r["original_width"]
            ans = answer_region(decode_brush(r["value"]["rle"], h, w), labels, classes)
            if ans is None or not ans[1].any():
                continue
            name, m = ans
            spent += 1
            known = name in vocabulary
            result.append({**r, "value": {"format": "rle", "rle": encode_brush(m), "brushlabels": [name] if known else []}})
            if not known:  # typed by the annotator: the class is not in the labelling config
                result.append({"id": r["id"], "from_name": "new_class", "to_name": "image", "type": "textarea",
                               "value": {"text": [name]}})
        t["annotations"] = [{"id": t["id"], "result": result, "was_cancelled": False,
                             "created_at": "2026-12-03T00:00:00Z"}]
    out.write_text(json.dumps(tasks))
    return spent


class Loop:
    """One workspace whose memory grows by labelled rounds."""

    def __init__(self, home: Path, backbone: str):
        from knnclip_core.workspace import Workspace
        from registry.store import open_registry

        self.settings = load_settings(home=home)
        self.settings.capture.dir = str(home / "captures")
        self.ws = Workspace.from_settings(self.settings).ensure()
        self.ctx = open_registry(self.settings, self.ws)
        self.backbone, self.home = backbone, home
        self.embedders = None
        self.images = self.labels = self.imported = self.quarantined = 0

    def build(self) -> None:
        """Embed, curate and publish what the catalog holds; the release becomes `production`."""
        from knnclip_core.embed_stage import run_embed
        from knnclip_core.memory.curate import curate
        from registry.publish import publish

        run_embed(self.settings, backbone=self.backbone, num_workers=0)
        curate(self.settings, self.ws, self.backbone)
        self.release = publish(self.settings, self.ws, backbone=self.backbone, alias="production")

    def segmenter(self):
        from knnclip_core.segment import SegmentParams
        from knnclip_core.segment.release import EmbedderCache, segmenter_for_snapshot
        from registry.load import load_release

        if self.embedders is None:
            self.embedders = EmbedderCache(device="cpu", settings=self.settings)
        snap = load_release(self.release["version"], ctx=self.ctx).snapshot
        return segmenter_for_snapshot(snap, SegmentParams.from_settings(self.settings), self.embedders), snap

    def label(self, tasks, truth: dict, classes: list[str], work: Path, accept: bool) -> int:
        """Export `tasks` for Label Studio, answer them (oracle, or accept the ground-truth
        pre-annotations), import, rebuild. Returns the labels spent."""
        from knnclip_core.labelling.importer import import_corrections
        from knnclip_core.labelling.label_studio import export_label_studio

        out = work / f"export-{time.time_ns()}"
        export_label_studio(tasks, out)
        vocab = set(json.loads((out / "export.json").read_text())["vocabulary"])
        if accept:
            data = json.loads((out / "tasks.json").read_text())
            for t in data:
                t["annotations"] = [{"id": t["id"], "result": t["predictions"][0]["result"]}]
            (out / "annotations.json").write_text(json.dumps(data))
            spent = sum(len(t.proposals) for t in tasks)
        else:
            spent = answer_tasks(out / "tasks.json", out / "annotations.json", truth, classes, vocab)
        rep = import_corrections(self.settings, out / "annotations.json", "label-studio")
        self.imported += rep["segments"]
        self.quarantined += rep["quarantined"]
        self.build()
        self.images += len(tasks)
        self.labels += spent
        return spent

    def evaluate(self, samples: list[dict], classes: list[str]) -> dict:
        from knnclip_core.evaluation.evaluate import Sample, evaluate

        seg, snap = self.segmenter()
        rep = evaluate(seg, [Sample(image=s["image"], segments=gt_segments(s, classes), name=s["name"])
                             for s in samples], classes, masks_from="gt")
        return {"miou": round(rep["miou"], 4), "unknown_rate": round(rep["unknown_segments"] / max(rep["segments"], 1), 4),
                "segment_accuracy": round(rep["segment_accuracy"] or 0.0, 4), "images_labelled": self.images,
                "labels_spent": self.labels, "vocabulary": len(seg.vocabulary), "release": self.release["version"],
                "segments_imported": self.imported, "quarantined": self.quarantined,
                "memory_vectors": snap.manifest["vectors"]}


def gt_tasks(samples: list[dict], classes: list[str], work: Path):
    """Tasks whose proposals are every ground-truth segment of `samples` (the random arm)."""
    from knnclip_core.labelling.capture import CaptureParams, CaptureStore
    from knnclip_core.labelling.tasks import tasks_from_store
    from knnclip_core.readers.regions import encode_mask

    store = CaptureStore(work / f"gt-{time.time_ns()}", CaptureParams(quota_mb=1e6))
    truth = {}
    for s in samples:
        segs = []
        for k, (name, m) in enumerate(gt_segments(s, classes)):
            counts, area, bbox = encode_mask(m)
            segs.append({"index": k, "reasons": ["random"], "mask_rle": counts, "area": area, "bbox": list(bbox),
                         "proposed_class": name, "confidence": 1.0, "neighbours": []})
        cid = store.add(s["image"], {"release": {"version": None}, "source": "random", "name": s["name"],
                                     "classes": [], "height": s["image"].shape[0], "width": s["image"].shape[1],
                                     "segments": segs})
        truth[cid] = s["labels"]
    return tasks_from_store(store), truth


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbone", default=None, help="memory backbone (default: the configured one)")
    ap.add_argument("--train", type=int, default=6, help="train images in the starting memory")
    ap.add_argument("--limit", type=int, default=16, help="held-out pool images")
    ap.add_argument("--eval", type=int, default=12, help="val images evaluated after each round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--per-round", type=int, default=3, help="images labelled per round (each arm)")
    ap.add_argument("--drop", default="car,bicyclist", help="classes left out of the starting memory")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if not DATA.is_dir():
        print(json.dumps({"skipped": f"{DATA} not found"}))
        return 0
    from knnclip_core.ingest import ingest_path
    from knnclip_core.labelling.capture import store_from_settings
    from knnclip_core.labelling.tasks import tasks_from_store

    t0 = time.perf_counter()
    backbone = args.backbone or load_settings().embed.backbone
    classes = camvid_classes()
    drop = {normalise_class_name(n) for n in args.drop.split(",") if n}
    names = sorted(p.name for p in (DATA / "train").glob("*.png"))
    train, pool_names = names[:args.train], names[args.train:args.train + args.limit]
    pool = [load_sample("train", n) for n in pool_names]
    evals = [load_sample("val", n) for n in sorted(p.name for p in (DATA / "val").glob("*.png"))[:args.eval]]
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        src = work / "camvid_start"
        for folder, split in (("images", "train"), ("masks", "trainannot")):
            (src / folder).mkdir(parents=True)
            for n in train:
                shutil.copy2(DATA / split / n, src / folder / n)
        shutil.copy2(DATA / "classes.txt", src / "classes.txt")
        ignore = [VOID] + [i for i, c in enumerate(classes) if c in drop]
        arms = {"active": Loop(work / "ws_active", backbone), "random": Loop(work / "ws_random", backbone)}
        for loop in arms.values():
            ingest_path(loop.settings, src, "semantic-png", ignore=ignore, dataset="camvid", progress=False, min_area=1)
            loop.build()
        rounds = {arm: [loop.evaluate(evals, classes)] for arm, loop in arms.items()}
        left = {arm: list(range(len(pool))) for arm in arms}
        for r in range(args.rounds):
            a = arms["active"]
            seg, snap = a.segmenter()
            store = store_from_settings(a.settings, force=True)
            store.remove(store.ids())
            by_capture = {}
            for i in left["active"]:
                s = pool[i]
                masks = [m for _, m in gt_segments(s, classes)]
                res = seg.segment(s["image"], masks=masks)
                cid = store.offer(s["image"], res, {"version": str(a.release["version"]), "alias": "production"},
                                  "benchmark", name=s["name"], segment_ids=getattr(seg.memory, "segment_ids", None))
                if cid:
                    by_capture[cid] = i
            tasks = sorted(tasks_from_store(store), key=lambda t: -len(t.proposals))[:args.per_round]
            if tasks:
                a.label(tasks, {t.capture_id: pool[by_capture[t.capture_id]]["labels"] for t in tasks}, classes, work,
                        accept=False)
                left["active"] = [i for i in left["active"] if i not in {by_capture[t.capture_id] for t in tasks}]
            rounds["active"].append(a.evaluate(evals, classes))
            b = arms["random"]
            picked = rng.sample(left["random"], min(args.per_round, len(left["random"])))
            left["random"] = [i for i in left["random"] if i not in picked]
            if picked:
                rtasks, truth = gt_tasks([pool[i] for i in picked], classes, work)
                b.label(rtasks, truth, classes, work, accept=True)
            rounds["random"].append(b.evaluate(evals, classes))
            print(f"round {r + 1}: active mIoU {rounds['active'][-1]['miou']} ({rounds['active'][-1]['labels_spent']} "
                  f"labels), random {rounds['random'][-1]['miou']} ({rounds['random'][-1]['labels_spent']} labels)",
                  file=sys.stderr)
    out = {"benchmark": "active_loop", "backbone": backbone, "dataset": "camvid", "train_images": args.train,
           "pool_images": len(pool), "eval_images": len(evals), "rounds": args.rounds, "per_round": args.per_round,
           "dropped_classes": sorted(drop), "seed": args.seed, "masks": "ground truth (worker path with masks proposals)",
           "active": rounds["active"], "random": rounds["random"],
           "final_miou_active": rounds["active"][-1]["miou"], "final_miou_random": rounds["random"][-1]["miou"],
           "labels_active": rounds["active"][-1]["labels_spent"], "labels_random": rounds["random"][-1]["labels_spent"],
           "seconds": round(time.perf_counter() - t0, 1)}
    print(json.dumps(out) if args.json else json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
