"""CVAT: 'CVAT for images 1.1' XML and COCO 1.0 out, both back in.

The XML follows CVAT's documented schema (docs.cvat.ai, XML annotation format 1.1):
`<annotations><version>1.1</version><meta><task>` with `<labels><label><name>`, then one
`<image id name width height>` per task holding one `<mask label source occluded rle left
top width height z_order>` per proposal (the RLE counts 0s and 1s alternately, 0s first,
over the box row by row, as CVAT writes it) with its origin as `<attribute>`s. COCO 1.0 is
the instances JSON of tasks.coco_dict (CVAT imports and exports it; pycocotools reads it).
"""
from __future__ import annotations

import json
import logging
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Sequence

from ..readers.coco_common import Problem, short
from .brush import decode_cvat, encode_cvat
from .tasks import Task, coco_dict, start_export

logger = logging.getLogger(__name__)

XML_FILE, COCO_FILE = "annotations.xml", "annotations.json"
MAX_XML_BYTES = 512 * 1024 * 1024


def cvat_xml(tasks: Sequence[Task], vocab: Sequence[str]) -> str:
    """CVAT for images 1.1 XML of the tasks' proposals."""
    root = ET.Element("annotations")
    ET.SubElement(root, "version").text = "1.1"
    meta = ET.SubElement(root, "meta")
    task = ET.SubElement(meta, "task")
    for key, value in (("id", "0"), ("name", "knnclip captures"), ("size", str(len(tasks))), ("mode", "annotation"),
                       ("overlap", "0"), ("bugtracker", ""), ("flipped", "False"),
                       ("created", time.strftime("%Y-%m-%d %H:%M:%S+00:00", time.gmtime()))):
        ET.SubElement(task, key).text = value
    labels = ET.SubElement(task, "labels")
    for name in vocab:
        label = ET.SubElement(labels, "label")
        ET.SubElement(label, "name").text = name
        ET.SubElement(label, "type").text = "mask"
        ET.SubElement(label, "attributes")
    ET.SubElement(meta, "dumped").text = time.strftime("%Y-%m-%d %H:%M:%S+00:00", time.gmtime())
    for i, t in enumerate(tasks):
        img = ET.SubElement(root, "image", id=str(i), name=t.image_name, width=str(t.width), height=str(t.height))
        for p in t.proposals:
            counts, (left, top, w, h) = encode_cvat(p.mask(t.height, t.width))
            m = ET.SubElement(img, "mask", label=p.label or (vocab[0] if vocab else "unknown"), source="auto",
                              occluded="0", rle=", ".join(map(str, counts)), left=str(left), top=str(top),
                              width=str(w), height=str(h), z_order="0")
            for name, value in (("reasons", ",".join(p.reasons)), ("confidence", f"{p.confidence:.4f}"),
                                ("capture_id", t.capture_id), ("release", str(t.release.get("version")))):
                ET.SubElement(m, "attribute", name=name).text = value
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode")


def export_cvat(tasks: Sequence[Task], out: Path) -> dict:
    """Write CVAT for images XML into `out` (with images/); returns a summary."""
    vocab = start_export(tasks, out, "cvat")
    (out / XML_FILE).write_text(cvat_xml(tasks, vocab), encoding="utf-8")
    return {"tool": "cvat", "out": str(out), "tasks": len(tasks), "proposals": sum(len(t.proposals) for t in tasks),
            "vocabulary": len(vocab), "files": [XML_FILE, "images/"]}


def export_coco(tasks: Sequence[Task], out: Path) -> dict:
    """Write COCO 1.0 instances (as CVAT imports them) into `out` (with images/)."""
    vocab = start_export(tasks, out, "coco")
    (out / COCO_FILE).write_text(json.dumps(coco_dict(tasks, vocab)))
    return {"tool": "coco", "out": str(out), "tasks": len(tasks), "proposals": sum(len(t.proposals) for t in tasks),
            "vocabulary": len(vocab), "files": [COCO_FILE, "images/"]}


def read_cvat_xml(path: Path) -> tuple[list[dict], list[Problem]]:
    """CVAT for images XML -> (image records with segments, problems), as
    label_studio.read_label_studio. Masks and polygons are read; other shapes are skipped.
    Raises ValueError when the file is not CVAT XML."""
    if path.stat().st_size > MAX_XML_BYTES:
        raise ValueError(f"over {MAX_XML_BYTES} bytes")
    try:
        root = ET.parse(path).getroot()  # the standard parser expands no external entities
    except ET.ParseError as exc:
        raise ValueError(f"not well-formed XML ({exc})") from None
    if root.tag != "annotations":
        raise ValueError(f"the root element is <{root.tag}>, not <annotations>")
    records, problems = [], []
    for n, img in enumerate(root.iter("image")):
        where = f"image {short(img.get('name'))}"
        try:
            h, w = int(img.get("height")), int(img.get("width"))
            assert h > 0 and w > 0 and img.get("name")
        except (TypeError, ValueError, AssertionError):
            problems.append(("bad_annotation", f"<image> {n}", "has no name or no positive width and height"))
            continue
        segments = []
        for k, shape in enumerate(img):
            sid = f"cvat-{img.get('name')}/{shape.tag}{k}"
            try:
                if shape.tag == "mask":
                    counts = [int(c) for c in shape.get("rle", "").split(",") if c.strip()]
                    box = tuple(int(float(shape.get(a))) for a in ("left", "top", "width", "height"))
                    mask = decode_cvat(counts, box, h, w)
                elif shape.tag == "polygon":
                    from pycocotools import mask as mask_utils

                    pts = [float(v) for pair in shape.get("points", "").split(";") for v in pair.split(",")]
                    if len(pts) < 6 or len(pts) % 2:
                        raise ValueError("fewer than 3 points")
                    mask = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects([pts], h, w))).astype(bool)
                else:
                    continue
            except (TypeError, ValueError) as exc:
                problems.append(("bad_segmentation", f"{where} <{shape.tag}> {k}", f"cannot be decoded ({exc})"))
                continue
            segments.append({"id": sid, "class": shape.get("label"), "mask": mask})
        name = img.get("name")
        records.append({"capture_id": Path(name).stem, "task_id": img.get("id"), "image": name,
                        "height": h, "width": w, "segments": segments})
    return records, problems
