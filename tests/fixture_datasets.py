"""Tiny labelled datasets written on the fly, in each supported layout."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils


def rgb(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)


def write_ade(root: Path, n: int = 3, txt: bool = True) -> Path:
    """ADEChallengeData2016 with 3 classes; value 0 (other) in every mask. Names in
    objectInfo150.txt (unless `txt` is false) and, ';'-joined, in objectInfo150.csv."""
    ade = root / "ADEChallengeData2016"
    for sub in ("images/validation", "annotations/validation"):
        (ade / sub).mkdir(parents=True)
    with open(ade / "objectInfo150.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["Idx", "Ratio", "Train", "Val", "Stuff", "Name"])
        w.writerows([[1, 0.1, 1, 1, 1, "wall"], [2, 0.1, 1, 1, 1, "building;edifice"], [3, 0.1, 1, 1, 0, "car;auto"]])
    if txt:
        (ade / "objectInfo150.txt").write_text(
            "Idx\tRatio\tTrain\tVal\tName\n1\t0.1\t1\t1\twall\n2\t0.1\t1\t1\tbuilding, edifice\n"
            "3\t0.1\t1\t1\tcar, auto\n")
    for i in range(n):
        labels = np.zeros((32, 40), np.uint8)
        labels[:16, :] = 1
        labels[16:, :20] = 2 if i % 2 else 3
        Image.fromarray(rgb(32, 40, i)).save(ade / f"images/validation/ADE_val_{i:08d}.jpg")
        Image.fromarray(labels).save(ade / f"annotations/validation/ADE_val_{i:08d}.png")
    return ade


def write_panoptic(root: Path) -> Path:
    """Two images; image 0 has a thing (person x2) and a stuff segment; ids as RGB."""
    (root / "images").mkdir(parents=True)
    (root / "ann/panoptic_val2017").mkdir(parents=True)
    cats = [{"id": 1, "name": "person", "isthing": 1}, {"id": 184, "name": "tree-merged", "isthing": 0}]
    images, anns = [], []
    for i in range(2):
        ids = np.zeros((30, 30), np.uint32)
        ids[:10, :10] = 1000 + i
        ids[10:20, :10] = 2000 + i
        ids[20:, :] = 3000 + i
        segs = [{"id": 1000 + i, "category_id": 1, "iscrowd": 0}, {"id": 2000 + i, "category_id": 1, "iscrowd": 0},
                {"id": 3000 + i, "category_id": 184, "iscrowd": 0}]
        png = np.stack([ids % 256, ids // 256 % 256, ids // 65536], -1).astype(np.uint8)
        Image.fromarray(png).save(root / f"ann/panoptic_val2017/{i:012d}.png")
        Image.fromarray(rgb(30, 30, i)).save(root / f"images/{i:012d}.jpg")
        images.append({"id": i, "file_name": f"{i:012d}.jpg", "height": 30, "width": 30})
        anns.append({"image_id": i, "file_name": f"{i:012d}.png", "segments_info": segs})
    path = root / "ann/panoptic_val2017.json"
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return path


def write_instances(root: Path, extra_images: list[dict] | None = None, extra_anns: list[dict] | None = None) -> Path:
    """One 40x50 image with a polygon, a compressed RLE, an uncompressed RLE and a crowd annotation."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb(40, 50)).save(root / "images/a.jpg")
    m = np.zeros((40, 50), np.uint8)
    m[5:15, 20:30] = 1
    rle = mask_utils.encode(np.asfortranarray(m))
    flat = m.flatten(order="F")
    runs, last, count = [], 0, 0
    for v in flat:
        if v != last:
            runs.append(count)
            count, last = 0, v
        count += 1
    runs.append(count)
    anns = [
        {"id": 1, "image_id": 7, "category_id": 1, "iscrowd": 0, "segmentation": [[0, 0, 10, 0, 10, 10, 0, 10]]},
        {"id": 2, "image_id": 7, "category_id": 2, "iscrowd": 0, "segmentation": {"size": [40, 50], "counts": rle["counts"].decode()}},
        {"id": 3, "image_id": 7, "category_id": 1, "iscrowd": 0, "segmentation": {"size": [40, 50], "counts": runs}},
        {"id": 4, "image_id": 7, "category_id": 1, "iscrowd": 1, "segmentation": {"size": [40, 50], "counts": runs}},
    ] + (extra_anns or [])
    data = {"images": [{"id": 7, "file_name": "a.jpg", "height": 40, "width": 50}] + (extra_images or []),
            "annotations": anns, "categories": [{"id": 1, "name": "dog"}, {"id": 2, "name": "cat"}]}
    path = root / "instances_val2017.json"
    path.write_text(json.dumps(data))
    return path
