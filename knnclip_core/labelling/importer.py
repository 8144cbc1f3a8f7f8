"""Corrected labels back in: an annotation file -> the COCO instances reader -> ingest.

Label Studio JSON and CVAT XML are converted to a COCO instances file kept in the
workspace (`corrections/<stamp>/`); a COCO file (ours, or CVAT's COCO 1.0) is read as it
is. Either way the existing COCO reader and the normal ingest validate it: bad entries are
quarantined with a reason naming the file, task and region, the valid ones go through, and
a class the memory has never seen simply becomes a new class. The batch is recorded with
`correction`: the tool, the task and capture ids, and the releases they corrected (from
the export's export.json, or `release`); its reader format is `correction-<tool>`, which
`knnclip releases diff` uses to tell rows from corrections.
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Iterator, Optional

import numpy as np
from pycocotools import mask as mask_utils

from ..config import Settings
from ..errors import InputError
from ..readers.base import ImageItem
from ..readers.coco_common import Problem, entry_item, guess_images_dir, load_coco_json
from ..readers.coco_instances import CocoInstancesReader
from .tasks import read_export

logger = logging.getLogger(__name__)

TOOLS = ("label-studio", "cvat", "coco")
CORRECTION_FORMAT_PREFIX = "correction-"
DEFAULT_DATASET = "corrections"


class CorrectionsReader(CocoInstancesReader):
    """The COCO instances reader over converted (or given) corrections, crowd masks kept,
    yielding first the problems the conversion found in the original file."""

    skip_crowd = False

    def __init__(self, coco_path: Path, images: Path, dataset_name: str, tool: str,
                 source: Path, problems: list[Problem] = ()):
        super().__init__(coco_path, images=images, dataset_name=dataset_name)
        self.format = CORRECTION_FORMAT_PREFIX + tool
        self.source, self._conversion_problems = Path(source), list(problems)

    def __len__(self) -> int:
        return super().__len__() + len(self._conversion_problems)

    def describe(self) -> dict:
        return {**super().describe(), "annotations": str(self.source)}

    def __iter__(self) -> Iterator[ImageItem]:
        for problem in self._conversion_problems:
            yield entry_item(self.source, problem)
        yield from super().__iter__()


def records_to_coco(records: list[dict]) -> dict:
    """COCO instances of converted records (see label_studio.read_label_studio). A segment
    without a class gets a category id no category has, so the reader quarantines it."""
    names = sorted({s["class"] for r in records for s in r["segments"] if s["class"]})
    cat = {n: i + 1 for i, n in enumerate(names)}
    images, anns = [], []
    for i, r in enumerate(records, start=1):
        images.append({"id": i, "file_name": r["image"], "width": r["width"], "height": r["height"],
                       "knnclip": {"capture_id": r.get("capture_id"), "task_id": r.get("task_id")}})
        for s in r["segments"]:
            rle = mask_utils.encode(np.asfortranarray(s["mask"].astype(np.uint8)))
            anns.append({"id": s["id"], "image_id": i, "category_id": cat.get(s["class"], 0) if s["class"] else 0,
                         "segmentation": {"size": [r["height"], r["width"]], "counts": rle["counts"].decode()},
                         "area": float(mask_utils.area(rle)), "bbox": [float(v) for v in mask_utils.toBbox(rle)],
                         "iscrowd": 0})
    return {"images": images, "annotations": anns, "categories": [{"id": i, "name": n} for n, i in cat.items()]}


def _convert(path: Path, tool: str) -> tuple[Optional[list[dict]], list[Problem]]:
    """(records, problems) of a Label Studio or CVAT XML file; (None, []) for a COCO file."""
    from .cvat import read_cvat_xml
    from .label_studio import read_label_studio

    if tool == "coco" or (tool == "cvat" and path.suffix.lower() == ".json"):
        return None, []
    try:
        return (read_label_studio if tool == "label-studio" else read_cvat_xml)(path)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"{path} is not a readable {tool} annotation file ({exc})") from None


def open_corrections(settings: Settings, path: str | Path, tool: str, images: str | Path | None = None,
                     dataset: Optional[str] = None) -> CorrectionsReader:
    """A reader over the corrections in `path` (a file, or an export folder holding one).
    Raises InputError when the file cannot be read at all."""
    from .cvat import COCO_FILE, XML_FILE
    from .label_studio import TASKS_FILE

    if tool not in TOOLS:
        raise InputError(f"unknown annotation tool {tool!r}; choose one of {', '.join(TOOLS)}")
    path = Path(path)
    if path.is_dir():
        names = {"label-studio": ("annotations.json", TASKS_FILE), "cvat": (XML_FILE, COCO_FILE),
                 "coco": (COCO_FILE,)}[tool]
        found = [path / n for n in names if (path / n).is_file()]
        if not found:
            raise InputError(f"{path} holds no {tool} annotation file ({' or '.join(names)})")
        path = found[0]
    if not path.is_file():
        raise InputError(f"annotation file {path} does not exist")
    folder = path.parent
    records, problems = _convert(path, tool)
    if records is None:
        coco_path = path
        data = load_coco_json(path)
        first = next((i.get("file_name") for i in data["images"] if isinstance(i, dict)), None)
        root = Path(images) if images else (folder if first is None or (folder / str(first)).exists()
                                            else guess_images_dir(path, None))
    else:
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + f"-{time.time_ns() % 1_000_000:06d}"
        out = Path(settings.home).expanduser().resolve() / "corrections" / stamp
        out.mkdir(parents=True, exist_ok=True)
        coco_path = out / f"{tool}-as-coco.json"
        coco_path.write_text(json.dumps(records_to_coco(records)))
        root = Path(images) if images else folder
    return CorrectionsReader(coco_path, root, dataset or DEFAULT_DATASET, tool, path, problems)


def correction_tags(reader: CorrectionsReader, release: Optional[str] = None) -> dict:
    """What the batch records: tool, file, task and capture ids, and the releases corrected."""
    export = read_export(reader.source.parent)
    origin = export.get("tasks") or {}
    captures, tasks = [], []
    for img in reader._images.values():
        k = img.get("knnclip") if isinstance(img.get("knnclip"), dict) else {}
        cid = k.get("capture_id") or Path(str(img.get("file_name"))).stem
        captures.append(str(cid))
        tid = k.get("task_id") if k.get("task_id") is not None else (origin.get(cid) or {}).get("task_id")
        if tid is not None:
            tasks.append(str(tid))
    releases = {str(release)} if release else {
        str((origin.get(c) or {}).get("release", {}).get("version")) for c in captures if c in origin}
    return {"correction": {"tool": reader.format[len(CORRECTION_FORMAT_PREFIX):], "file": str(reader.source),
                           "tasks": sorted(set(tasks)), "captures": sorted(set(captures)),
                           "releases": sorted(r for r in releases if r and r != "None")}}


def import_corrections(settings: Settings, path: str | Path, tool: str, images: str | Path | None = None,
                       dataset: Optional[str] = None, release: Optional[str] = None, progress=False) -> dict:
    """Ingest the corrections in `path` (see module docstring). Returns the ingest report's
    dict with the batch's `correction` tags. Raises InputError when nothing can be read."""
    from ..ingest import ingest_reader

    reader = open_corrections(settings, path, tool, images, dataset)
    tags = correction_tags(reader, release)
    report = ingest_reader(settings, reader, progress=progress, source=str(reader.source), extra_params=tags)
    return {**report.to_dict(), **tags}
