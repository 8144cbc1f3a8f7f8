"""Label Studio: a labelling config and tasks with pre-annotations out, its JSON export in.

Out: `label_config.xml` (an Image named `image`, a BrushLabels or PolygonLabels control
named `label` whose Labels are the vocabulary, and a per-region TextArea `new_class` where
an annotator may name a class not in the list) and `tasks.json` (one task per capture:
`data.image` for Label Studio, the capture id and release beside it; `predictions` hold
the proposals with from_name `label` and to_name `image`).

In: Label Studio's JSON export (a list of tasks with `annotations`). The newest annotation
not cancelled of each task gives its segments; a region's `new_class` text, when given,
names its class. Converted to COCO instances (see importer.py); what cannot be read is
returned as problems, each naming the task and region.
"""
from __future__ import annotations

import json
import logging
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Sequence

import numpy as np
from pycocotools import mask as mask_utils

from ..readers.base import normalise_class_name
from ..readers.coco_common import Problem, short
from .brush import decode_brush, encode_brush
from .tasks import Task, start_export

logger = logging.getLogger(__name__)

CONFIG_FILE, TASKS_FILE = "label_config.xml", "tasks.json"
FROM_NAME, TO_NAME, NEW_CLASS = "label", "image", "new_class"
SHAPES = {"brush": ("BrushLabels", "brushlabels"), "polygon": ("PolygonLabels", "polygonlabels")}


def label_config(vocabulary: Sequence[str], shape: str = "brush") -> str:
    """The Label Studio labelling config (XML) matching the exported tasks."""
    tag, _ = SHAPES[shape]
    view = ET.Element("View")
    ET.SubElement(view, "Image", name=TO_NAME, value="$image", zoom="true")
    labels = ET.SubElement(view, tag, name=FROM_NAME, toName=TO_NAME)
    for name in vocabulary:
        ET.SubElement(labels, "Label", value=name)
    ET.SubElement(view, "TextArea", name=NEW_CLASS, toName=TO_NAME, perRegion="true", editable="true",
                  maxSubmissions="1", placeholder="class not in the list (optional)")
    ET.indent(view)
    return ET.tostring(view, encoding="unicode")


def mask_polygons(mask: np.ndarray) -> list[list[tuple[float, float]]]:
    """Outer outlines of a bool mask as polygons of pixel coordinates (x, y); holes are lost
    (a Label Studio polygon has none). Outlines turning the other way than the largest are holes."""
    from skimage import measure

    padded = np.pad(mask.astype(np.uint8), 1)
    polys = []
    for contour in measure.find_contours(padded, 0.5):
        poly = measure.approximate_polygon(contour, tolerance=0.5)[:-1]
        if len(poly) < 3:
            continue
        x, y = poly[:, 1] - 0.5, poly[:, 0] - 0.5  # pixel centres at integer + 0.5 in COCO coordinates
        signed = 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))
        if signed:
            polys.append((signed, list(zip(x.tolist(), y.tolist()))))
    if not polys:
        return []
    outer = np.sign(max(polys, key=lambda sp: abs(sp[0]))[0])
    return [pts for signed, pts in polys if np.sign(signed) == outer]


def prediction_results(t: Task, shape: str) -> list[dict]:
    """The pre-annotation results of one task."""
    _, kind = SHAPES[shape]
    results = []
    for p in t.proposals:
        m = p.mask(t.height, t.width)
        base = {"from_name": FROM_NAME, "to_name": TO_NAME, "type": kind, "original_width": t.width,
                "original_height": t.height, "image_rotation": 0, "score": round(float(p.confidence), 6)}
        labels = [p.label] if p.label else []
        if shape == "brush":
            results.append({**base, "id": f"s{p.index}",
                            "value": {"format": "rle", "rle": encode_brush(m), kind: labels}})
        else:
            for j, poly in enumerate(mask_polygons(m)):
                pts = [[100.0 * x / t.width, 100.0 * y / t.height] for x, y in poly]
                results.append({**base, "id": f"s{p.index}p{j}", "value": {"points": pts, "closed": True, kind: labels}})
    return results


def export_label_studio(tasks: Sequence[Task], out: Path, shape: str = "brush",
                        image_url: str = "/data/local-files/?d=") -> dict:
    """Write the Label Studio task set into `out`; returns a summary. `image_url` is put
    before each image's path in `data.image` (Label Studio's local-files serving by default)."""
    vocab = start_export(tasks, out, "label-studio", {"shape": shape})
    (out / CONFIG_FILE).write_text(label_config(vocab, shape))
    items = []
    for t in tasks:
        version = t.release.get("version")
        items.append({"id": t.task_id,
                      "data": {"image": f"{image_url}{t.image_name}", "knnclip_image": t.image_name,
                               "capture_id": t.capture_id, "release": str(version), "source": t.source,
                               "reasons": ",".join(t.origin()["reasons"])},
                      "predictions": [{"model_version": f"knnclip release {version}",
                                       "score": round(float(np.mean([p.confidence for p in t.proposals])), 6),
                                       "result": prediction_results(t, shape)}]})
    (out / TASKS_FILE).write_text(json.dumps(items))
    return {"tool": "label-studio", "out": str(out), "tasks": len(items), "proposals": sum(len(t.proposals) for t in tasks),
            "vocabulary": len(vocab), "files": [CONFIG_FILE, TASKS_FILE, "images/"]}


def _newest_annotation(task: dict):
    anns = [a for a in task.get("annotations") or [] if isinstance(a, dict)
            and not (a.get("was_cancelled") or a.get("skipped"))]
    if not anns:
        return None
    return sorted(enumerate(anns), key=lambda ia: (str(ia[1].get("created_at") or ""), ia[0]))[-1][1]


def _region_mask(r: dict, kind: str, h: int, w: int) -> np.ndarray:
    v = r["value"]
    if kind == "brushlabels":
        if v.get("format", "rle") != "rle" or "rle" not in v:
            raise ValueError(f"brush value of format {short(v.get('format'))} without an rle")
        return decode_brush(v["rle"], h, w)
    pts = np.asarray(v["points"], np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) < 3 or not np.isfinite(pts).all():
        raise ValueError("the polygon's points are not a list of 3 or more [x, y] pairs")
    poly = (pts * np.array([w, h]) / 100.0).ravel().tolist()
    return mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects([poly], h, w))).astype(bool)


def read_label_studio(path: Path) -> tuple[list[dict], list[Problem]]:
    """Label Studio's JSON export -> (COCO-like image records with their segments, problems).
    Each record: {capture_id, task_id, image (path as in the task), width, height,
    segments: [{id, class, mask (bool)}]}. Raises ValueError when the file is not a task list."""
    data = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise ValueError("not a list of Label Studio tasks")
    records, problems = [], []
    for n, task in enumerate(data):
        where = f"task {short(task.get('id')) if isinstance(task, dict) else n}"
        if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
            problems.append(("bad_annotation", f"tasks[{n}]", "is not a task object with 'data'"))
            continue
        ann = _newest_annotation(task)
        if ann is None:
            continue  # not answered yet
        d = task["data"]
        image = d.get("knnclip_image") or str(d.get("image") or "").split("?d=")[-1]
        regions: dict[str, dict] = {}
        texts: dict[str, str] = {}
        size = None
        for k, r in enumerate(ann.get("result") or []):
            if not isinstance(r, dict):
                problems.append(("bad_annotation", f"{where} result[{k}]", "is not an object"))
                continue
            kind = str(r.get("type", "")).lower()
            rid = str(r.get("id", k))
            if kind == "textarea" and r.get("from_name") == NEW_CLASS:
                text = (r.get("value") or {}).get("text") or []
                if text and str(text[0]).strip():
                    texts[rid] = str(text[0]).strip()
                continue
            if kind not in ("brushlabels", "polygonlabels"):
                continue
            try:
                h, w = int(r["original_height"]), int(r["original_width"])
                assert h > 0 and w > 0
            except (KeyError, TypeError, ValueError, AssertionError):
                problems.append(("bad_annotation", f"{where} region {short(rid)}",
                                 "has no positive original_width and original_height"))
                continue
            size = size or (h, w)
            try:
                mask = _region_mask(r, kind, h, w)
            except (KeyError, TypeError, ValueError) as exc:
                problems.append(("bad_segmentation", f"{where} region {short(rid)}", f"cannot be decoded ({exc})"))
                continue
            labels = (r.get("value") or {}).get(kind) or []
            regions[rid] = {"id": f"ls-task-{task.get('id')}/{rid}", "class": labels[0] if labels else None,
                            "mask": mask if rid not in regions else regions[rid]["mask"] | mask}
        for rid, text in texts.items():
            if rid in regions:
                regions[rid]["class"] = normalise_class_name(text)
        if size is None:
            continue
        records.append({"capture_id": d.get("capture_id"), "task_id": task.get("id"), "image": image,
                        "height": size[0], "width": size[1], "segments": list(regions.values())})
    return records, problems
