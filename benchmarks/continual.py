"""Continual vocabulary growth on real data: zero forgetting measured release after release,
against a classifier head retrained task after task.

Three vocabulary releases, each built through the product (ingest -> embed -> curate ->
publish to MLflow, then the release loaded as the worker loads it), each adding a task:
  1. CamVid train (11 classes), evaluated on CamVid val;
  2. + COCO panoptic train (coco128), evaluated on COCO panoptic val;
  3. + ADE20K: the 33 validation images sorted by file name, even positions (0, 2, ...) into
     the memory, odd positions kept for evaluation.
After each release every task seen so far is evaluated with its ground-truth masks, with its
own vocabulary (the request names the task's classes) and with the release's union
vocabulary (new classes compete); names are compared through configs/class_map.yaml.

Beside it, in the same run, the baselines a team would pick (benchmarks/continual_head.py), on
the same pooled features (the memory's rows): a linear softmax head trained task after task
without replay, the same with a few replay exemplars per class, a head retrained on all kept
rows at every release, nearest class mean; the same head trained on all tasks at once (the
joint upper bound retraining reaches, printed next to the headline); and the memory sequence again under a fixed
budget (`--budget-fraction` of the rows) for each curation strategy (these runs take the
first run's vectors instead of embedding the same segments again).

Writes benchmarks/out/continual.json and continual.png; `--json`: last stdout line is one JSON
object with `max_forgetting_own_vocab`, `max_forgetting_union_vocab` (mIoU points),
`baseline_max_forgetting`, `matrix`, ...

    python benchmarks/continual.py [--backbone NAME] [--limit N] [--json]
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.continual_head import HeadBaseline, forgetting  # noqa: E402
from knnclip_core.config import load_settings  # noqa: E402
from knnclip_core.evaluation.task_sets import ClassMap, EvalTask, LoadedTask, evaluate_tasks, load_task_samples  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
OUT = ROOT / "benchmarks" / "out"
PROTOCOLS = ("own", "union")


@dataclass
class Task:
    """A task: what its release ingests, and the data set it is evaluated on."""

    name: str
    ingest: dict
    eval: EvalTask


def _copy_subset(files: list[Path], dst: Path) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for f in files:
        shutil.copy2(f, dst / f.name)


def camvid_task(work: Path, limit: int | None) -> Task:
    cam = DATA / "camvid"
    if limit is not None:  # a smaller copy, laid out like the original
        for split in ("train", "val"):
            names = sorted(p.name for p in (cam / split).glob("*.png"))[:limit]
            for folder in (split, f"{split}annot"):
                _copy_subset([cam / folder / n for n in names], work / "camvid" / folder)
        shutil.copy2(cam / "classes.txt", work / "camvid" / "classes.txt")
        cam = work / "camvid"
    common = dict(classes=str(cam / "classes.txt"), ignore=(11,))
    return Task("camvid", dict(path=str(cam), fmt="semantic-png", images=str(cam / "train"),
                               masks=str(cam / "trainannot"), dataset="camvid", **common),
                EvalTask("camvid", str(cam), "semantic-png", images=str(cam / "val"), masks=str(cam / "valannot"),
                         **common))


def coco_task(work: Path, limit: int | None) -> Task:
    coco = DATA / "coco128"
    ann = coco / "panoptic_segmentation" / "annotations"
    files = {}
    for split in ("train", "val"):
        src = ann / f"panoptic_{split}2017.json"
        if limit is None:
            files[split] = src
            continue
        d = json.loads(src.read_text())
        keep = {a["image_id"] for a in d["annotations"][:limit]}
        d["annotations"] = [a for a in d["annotations"] if a["image_id"] in keep]
        d["images"] = [i for i in d["images"] if i["id"] in keep]
        files[split] = work / f"panoptic_{split}2017.json"
        files[split].write_text(json.dumps(d))
    masks = {s: str(ann / f"panoptic_{s}2017") for s in ("train", "val")}
    return Task("coco", dict(path=str(files["train"]), fmt="coco-panoptic", images=str(coco / "images" / "train2017"),
                             masks=masks["train"], dataset="coco"),
                EvalTask("coco", str(files["val"]), "coco-panoptic", images=str(coco / "images" / "val2017"),
                         masks=masks["val"]))


def ade_task(work: Path, limit: int | None) -> Task:
    """ADE20K validation split by the documented rule: sorted by name, even positions into the
    memory, odd positions into evaluation."""
    src = DATA / "ade20k" / "ADEChallengeData2016"
    stems = sorted(p.stem for p in (src / "images" / "validation").glob("*.jpg"))
    halves = {"memory": stems[0::2], "eval": stems[1::2]}
    roots = {}
    for half, names in halves.items():
        root = work / f"ade_{half}" / "ADEChallengeData2016"
        names = names[:limit] if limit else names
        _copy_subset([src / "images" / "validation" / f"{n}.jpg" for n in names], root / "images" / "validation")
        _copy_subset([src / "annotations" / "validation" / f"{n}.png" for n in names],
                     root / "annotations" / "validation")
        for info in src.glob("objectInfo150.*"):
            shutil.copy2(info, root / info.name)
        roots[half] = root
    return Task("ade20k", dict(path=str(roots["memory"]), fmt="ade20k", split="validation", dataset="ade20k"),
                EvalTask("ade20k", str(roots["eval"]), "ade20k"))


class MemorySequence:
    """One workspace growing release by release through the product's own stages."""

    def __init__(self, home: Path, backbone: str, budget: int | None = None, strategy: str | None = None):
        from knnclip_core.workspace import Workspace
        from registry.store import open_registry

        self.settings = load_settings(home=home)
        self.ws = Workspace.from_settings(self.settings).ensure()
        self.ctx = open_registry(self.settings, self.ws)
        self.backbone, self.budget, self.strategy = backbone, budget, strategy
        self.embedders = None

    def add_task(self, task: Task, vectors_from: "MemorySequence | None" = None) -> dict:
        """Ingest, embed, curate and publish the task; returns timings and the release.

        `vectors_from`: a sequence that already embedded this task with the same backbone;
        its rows are copied (pending curation) instead of embedding the same segments again."""
        from knnclip_core.embed_stage import run_embed
        from knnclip_core.ingest import ingest_path
        from knnclip_core.memory.curate import curate
        from registry.publish import publish

        t0 = time.perf_counter()
        spec = dict(task.ingest)
        ingest_path(self.settings, spec.pop("path"), spec.pop("fmt"), progress=False, min_area=1, **spec)
        if vectors_from is None:
            run_embed(self.settings, backbone=self.backbone, num_workers=0)
        else:
            self._copy_rows(vectors_from, task.name)
        curate(self.settings, self.ws, self.backbone, budget_vectors=self.budget, strategy=self.strategy)
        release = publish(self.settings, self.ws, backbone=self.backbone)
        return {"seconds": time.perf_counter() - t0, "release": release}

    def _copy_rows(self, other: "MemorySequence", dataset: str) -> None:
        """Rows of `dataset` from `other`'s memory table into ours, state reset to pending."""
        import pyarrow as pa
        import pyarrow.compute as pc

        from knnclip_core.embedders import embedder_id_for
        from knnclip_core.memory.table import PENDING, MemoryTable

        eid = embedder_id_for(self.backbone)
        src = MemoryTable.open(other.ws.memory_uri, eid, create=False)
        rows = src.table.to_arrow()
        rows = rows.filter(pc.equal(rows.column("dataset"), dataset))
        rows = rows.set_column(rows.schema.get_field_index("state"), "state", pa.array([PENDING] * rows.num_rows))
        rows = rows.set_column(rows.schema.get_field_index("state_reason"), "state_reason",
                               pa.array([""] * rows.num_rows))
        MemoryTable.open(self.ws.memory_uri, eid, src.dim, provenance=src.provenance()).insert_missing(rows)

    def segmenter(self, version: int):
        """The release's segmenter, loaded as the worker loads it."""
        from knnclip_core.segment import SegmentParams
        from knnclip_core.segment.release import EmbedderCache, segmenter_for_snapshot
        from registry.load import load_release

        if self.embedders is None:
            self.embedders = EmbedderCache(device="cpu", settings=self.settings)
        snapshot = load_release(version, ctx=self.ctx).snapshot
        return segmenter_for_snapshot(snapshot, SegmentParams.from_settings(self.settings), self.embedders), snapshot

    def kept(self):
        from knnclip_core.embedders import embedder_id_for
        from knnclip_core.memory.published import load_kept

        return load_kept(self.ws, embedder_id_for(self.backbone))


def run_sequence(seq: MemorySequence, tasks: list[Task], loaded: list[LoadedTask], cmap: ClassMap,
                 protocols=PROTOCOLS, on_release=None, vectors_from: MemorySequence | None = None) -> dict:
    """Releases task after task; after each, every seen task in each protocol.
    Returns {'matrix': {protocol: {metric: {task: [per release]}}}, 'releases': [...]}."""
    metrics = ("miou", "segment_accuracy")
    matrix = {p: {m: {t.name: [None] * len(tasks) for t in tasks} for m in metrics} for p in protocols}
    releases = []
    for r, task in enumerate(tasks):
        added = seq.add_task(task, vectors_from)
        seg, snapshot = seq.segmenter(added["release"]["version"])
        for p in protocols:
            for name, rep in evaluate_tasks(seg, loaded[:r + 1], p, cmap).items():
                for m in metrics:
                    matrix[p][m][name][r] = None if rep.get(m) is None else round(float(rep[m]), 6)
        kept = seq.kept()
        rows = {t.name: sum(1 for d in kept.datasets if d == t.name) for t in tasks[:r + 1]}
        releases.append({"task": task.name, "version": added["release"]["version"],
                         "add_task_seconds": round(added["seconds"], 2), "vectors": len(kept),
                         "rows_per_task": rows, "index_bytes": snapshot.manifest["bytes"]["index"],
                         "classes": snapshot.manifest["classes"]})
        if on_release:
            on_release(r, kept)
        print(f"release {r + 1} (+{task.name}): {len(kept)} rows, own mIoU "
              + ", ".join(f"{n} {matrix[protocols[0]]['miou'][n][r]}" for n in matrix[protocols[0]]['miou']
                          if matrix[protocols[0]]['miou'][n][r] is not None), file=sys.stderr)
    return {"matrix": matrix, "releases": releases}


def max_forgetting(matrix: dict, protocol: str) -> float:
    """Largest drop of any task's mIoU from its best, in mIoU points."""
    return max(forgetting(row) for row in matrix[protocol]["miou"].values())


def heat_map(path: Path, panels: list[tuple[str, dict]], tasks: list[str]) -> None:
    """One task x release mIoU heat map per (title, {task: [per release]}) panel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False)
    for ax, (title, rows) in zip(axes[0], panels):
        grid = np.array([[np.nan if v is None else 100 * v for v in rows[t]] for t in tasks])
        ax.imshow(grid, vmin=0, vmax=100, cmap="viridis")
        for (i, j), v in np.ndenumerate(grid):
            if not np.isnan(v):
                ax.text(j, i, f"{v:.1f}", ha="center", va="center", color="w" if v < 60 else "k", fontsize=9)
        ax.set_xticks(range(len(tasks)), [f"+{t}" for t in tasks], rotation=20)
        ax.set_yticks(range(len(tasks)), tasks)
        ax.set_title(title, fontsize=10)
    fig.suptitle("mIoU per task (rows) after each release (columns)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbone", default=None, help="memory backbone (default: the configured one)")
    ap.add_argument("--limit", type=int, default=None, help="images per split (quick runs)")
    ap.add_argument("--budget-fraction", type=float, default=0.5, help="fixed budget, as a share of the final rows")
    ap.add_argument("--strategies", default="balanced,diversity,random", help="curation strategies under the budget ('' skips)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    for need in ("camvid", "coco128", "ade20k"):
        if not (DATA / need).is_dir():
            print(json.dumps({"skipped": f"{DATA / need} not found"}))
            return 0
    backbone = args.backbone or load_settings().embed.backbone
    cmap = ClassMap.load()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        tasks = [camvid_task(work, args.limit), coco_task(work, args.limit), ade_task(work, args.limit)]
        loaded = load_task_samples([t.eval for t in tasks])
        seq = MemorySequence(work / "ws", backbone)
        head = HeadBaseline(seq, loaded, cmap, seed=args.seed)
        ours = run_sequence(seq, tasks, loaded, cmap, on_release=head.add_task)
        final_rows = ours["releases"][-1]["vectors"]
        budget = max(1, int(round(args.budget_fraction * final_rows)))
        budgeted = {}
        for strategy in filter(None, args.strategies.split(",")):
            bseq = MemorySequence(work / f"ws_{strategy}", backbone, budget=budget, strategy=strategy)
            res = run_sequence(bseq, tasks, loaded, cmap, protocols=("own",), vectors_from=seq)
            budgeted[strategy] = {**res, "max_forgetting_own_vocab": round(max_forgetting(res["matrix"], "own"), 3)}
    names = [t.name for t in tasks]
    out = {
        "backbone": backbone, "tasks": names, "limit": args.limit, "seed": args.seed,
        "ade20k_split_rule": "validation images sorted by file name: even positions -> memory, odd -> evaluation",
        "max_forgetting_own_vocab": round(max_forgetting(ours["matrix"], "own"), 3),
        "max_forgetting_union_vocab": round(max_forgetting(ours["matrix"], "union"), 3),
        "forgetting_per_task": {p: {t: round(forgetting(ours["matrix"][p]["miou"][t]), 3) for t in names}
                                for p in PROTOCOLS},
        "baseline_max_forgetting": round(max_forgetting(head.matrix, "own"), 3),
        "baseline_max_forgetting_union_vocab": round(max_forgetting(head.matrix, "union"), 3),
        "matrix": ours["matrix"], "releases": ours["releases"],
        "baseline": {**head.matrices, "joint_head": head.joint(), "costs": head.costs},
        "baseline_max_forgetting_per_baseline": {name: round(max_forgetting(m, "own"), 3)
                                                 for name, m in head.matrices.items()},
        "budget": {"vectors": budget, "fraction": args.budget_fraction, "strategies": budgeted},
    }
    last = len(names) - 1
    out["final_own_miou"] = {"knn_memory": {t: out["matrix"]["own"]["miou"][t][last] for t in names},
                             **{b: {t: m["own"]["miou"][t][last] for t in names} for b, m in head.matrices.items()}}
    out["joint_upper_bound_own_miou"] = {t: f["miou"] for t, f in out["baseline"]["joint_head"]["own"].items()}
    print(f"max forgetting (own vocabulary, mIoU points): kNN memory {out['max_forgetting_own_vocab']}; "
          + ", ".join(f"{b} {v}" for b, v in out["baseline_max_forgetting_per_baseline"].items())
          + "\nfinal own-vocabulary mIoU per task: " + "; ".join(
              f"{who}: " + ", ".join(f"{t} {100 * v:.1f}" for t, v in per.items() if v is not None)
              for who, per in out["final_own_miou"].items())
          + "; joint upper bound: " + ", ".join(f"{t} {100 * v:.1f}" for t, v in out["joint_upper_bound_own_miou"].items()),
          file=sys.stderr)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "continual.json").write_text(json.dumps(out, indent=1))
    heat_map(args.out / "continual.png", [("kNN memory, own vocabulary", out["matrix"]["own"]["miou"]),
                                          ("kNN memory, union vocabulary", out["matrix"]["union"]["miou"]),
                                          ("sequential head, own vocabulary", head.matrix["own"]["miou"])], names)
    out["plot"] = str(args.out / "continual.png")
    print(json.dumps(out) if args.json else json.dumps({k: v for k, v in out.items() if "forgetting" in k}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
