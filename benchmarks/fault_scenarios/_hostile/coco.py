"""The hostile cases of the COCO readers (instances and panoptic): broken entries,
segmentations, image files and panoptic PNGs, each next to valid siblings."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from .folders import CLASSES, Batch, nested
from .files import H, W, blocks, fifo, garbage, lying_png, picture, png_bytes, save, symlink, truncated, unix_socket


def coco_state(b: Batch) -> dict:
    """The JSON under construction: images, annotations, categories and the next ids."""
    if "json" not in b.state:
        (b.root / "images").mkdir(parents=True)
        cats = [{"id": i, "name": f"class{i}", "isthing": i % 2} for i in range(1, CLASSES + 1)]
        b.state["json"] = {"images": [], "annotations": [], "categories": cats}
        b.state["next_id"], b.state["tail"] = 1, []
        if b.reader == "coco-panoptic":
            (b.root / "ann/panoptic_val").mkdir(parents=True)
    return b.state["json"]


def coco_image(b: Batch, token: str, data: bytes | None = None, h: int = H, w: int = W, **entry) -> int:
    """Add an image file (valid unless `data`) and its `images` entry; returns its id."""
    js = coco_state(b)
    image_id = b.state["next_id"]
    b.state["next_id"] += 1
    (b.root / "images" / f"{token}.png").write_bytes(png_bytes(picture(b.rng, h, w)) if data is None else data)
    js["images"].append({"id": image_id, "file_name": f"{token}.png", "height": h, "width": w} | entry)
    return image_id


def poly(x: int, y: int, s: int = 6) -> list[float]:
    return [x, y, x + s, y, x + s, y + s, x, y + s]


def instances_ann(b: Batch, image_id: int, segmentation, category_id=1) -> None:
    js = coco_state(b)
    js["annotations"].append({"id": 10_000 + len(js["annotations"]), "image_id": image_id, "category_id": category_id,
                              "iscrowd": 0, "segmentation": segmentation})


def instances_valid(b: Batch, token: str) -> None:
    image_id = coco_image(b, token)
    instances_ann(b, image_id, [poly(1, 1)], 1)
    instances_ann(b, image_id, [poly(12, 8)], 2)
    b.valid[token] = 2


def _bad_segmentation(kind: str, segmentation, reason: str = "bad_segmentation", category_id=2):
    def case(b, t):
        image_id = coco_image(b, t)
        instances_ann(b, image_id, [poly(1, 1)], 1)   # a valid sibling segment of the same image
        instances_ann(b, image_id, segmentation, category_id)
        b.expect(t, kind, f"{t}.png :: ", reason)
    case.__name__ = f"i_{kind}"
    return case


def _rle(h: int, w: int) -> dict:
    from pycocotools import mask as mask_utils
    m = np.zeros((h, w), np.uint8)
    m[2:6, 3:9] = 1
    rle = mask_utils.encode(np.asfortranarray(m))
    return {"size": [h, w], "counts": rle["counts"].decode()}


def _bad_entry(kind: str, where: str, mutate, reason: str = "bad_annotation"):
    """A case whose `images`/`annotations`/`categories` entry is broken by `mutate`."""
    def case(b, t):
        js = coco_state(b)
        if where == "images":
            coco_image(b, t)
            js["images"][-1] = mutate(js["images"][-1], b)
        elif where == "categories":
            js["categories"].append(mutate({"id": 100 + len(js["categories"]), "name": f"cat {t}"}, b))
        else:
            ann = ({"id": len(js["annotations"]), "image_id": 1, "file_name": f"{t}.png", "segments_info": []}
                   if b.reader == "coco-panoptic" else
                   {"id": len(js["annotations"]), "image_id": 1, "category_id": 1, "segmentation": [poly(0, 0)]})
            js["annotations"].append(mutate(ann, b))
        index = len(js[where]) - 1
        b.expect(t, f"{where}_{kind}", f" {where}[{index}]", reason)
    case.__name__ = f"e_{where}_{kind}"
    return case


def _set(key, value):
    return lambda entry, b: entry | {key: value}


def _drop(key):
    return lambda entry, b: {k: v for k, v in entry.items() if k != key}


ENTRY_CASES = [
    _bad_entry("not_an_object", "images", lambda e, b: f"{e['file_name']}"),
    _bad_entry("string_id", "images", lambda e, b: e | {"id": str(e["id"])}),
    _bad_entry("list_id", "images", _set("id", [1, 2])),
    _bad_entry("float_id", "images", lambda e, b: e | {"id": e["id"] + 0.5}),
    _bad_entry("bool_id", "images", _set("id", True)),
    _bad_entry("string_height", "images", lambda e, b: e | {"height": str(e["height"])}),
    _bad_entry("zero_width", "images", _set("width", 0)),
    _bad_entry("negative_height", "images", _set("height", -24)),
    _bad_entry("no_height", "images", _drop("height")),
    _bad_entry("no_file_name", "images", _drop("file_name")),
    _bad_entry("int_file_name", "images", _set("file_name", 12)),
    _bad_entry("nested_file_name", "images", _set("file_name", nested(30))),
    _bad_entry("not_an_object", "annotations", lambda e, b: [e]),
    _bad_entry("list_image_id", "annotations", _set("image_id", [1])),
    _bad_entry("string_image_id", "annotations", _set("image_id", "1")),
    _bad_entry("null_image_id", "annotations", _set("image_id", None)),
    _bad_entry("no_id", "categories", _drop("id")),
    _bad_entry("string_id", "categories", lambda e, b: e | {"id": str(e["id"])}),
    _bad_entry("not_an_object", "categories", lambda e, b: e["name"]),
    _bad_entry("int_name", "categories", _set("name", 5)),
    _bad_entry("surrogate_name", "categories", lambda e, b: e | {"name": "bad\udcff" + e["name"]}),
]


def c_duplicate_image_entry(b, t):
    js = coco_state(b)
    coco_image(b, t)
    js["images"][-1]["id"] = js["images"][0]["id"]  # repeats the first (valid) image's id
    b.expect(t, "images_duplicate_id", f" images[{len(js['images']) - 1}]", "duplicate_id")


def c_surrogate_file_name(b, t):
    js = coco_state(b)
    image_id = coco_image(b, t)
    js["images"][-1]["file_name"] = f"bad\udcff{t}.png"
    os.rename(b.root / "images" / f"{t}.png", os.fsencode(b.root / "images") + f"/bad\xff{t}.png".encode("latin-1"))
    _segments_for(b, image_id)
    b.expect(t, "surrogate_file_name", t, "bad_name")


def c_traversal_file_name(b, t):
    js = coco_state(b)
    image_id = coco_image(b, t)
    (b.outside / f"{t}.png").write_bytes((b.root / "images" / f"{t}.png").read_bytes())
    js["images"][-1]["file_name"] = f"../../{b.outside.name}/{t}.png"
    _segments_for(b, image_id)
    b.expect(t, "traversal_file_name", t, "path_outside_root")


def c_absolute_file_name(b, t):
    js = coco_state(b)
    image_id = coco_image(b, t)
    js["images"][-1]["file_name"] = str(b.root / "images" / f"{t}.png")
    _segments_for(b, image_id)
    b.expect(t, "absolute_file_name", t, "path_outside_root")


def c_huge_declared_size(b, t):
    image_id = coco_image(b, t)
    coco_state(b)["images"][-1].update(height=100_000, width=100_000)
    _segments_for(b, image_id)
    b.expect(t, "huge_declared_size", t, "too_many_pixels")


def c_declared_size_mismatch(b, t):
    image_id = coco_image(b, t)
    coco_state(b)["images"][-1]["height"] = H + 5
    _segments_for(b, image_id)
    b.expect(t, "declared_size_mismatch", t, "size_mismatch")


def _image_file_case(kind: str, write, *reasons: str):
    def case(b, t):
        image_id = coco_image(b, t, data=b"")
        path = b.root / "images" / f"{t}.png"
        path.unlink()
        write(b, path)
        _segments_for(b, image_id)
        b.expect(t, kind, t, *reasons)
    case.__name__ = f"c_{kind}"
    return case


IMAGE_FILE_CASES = [
    _image_file_case("truncated_image", lambda b, p: p.write_bytes(truncated(png_bytes(picture(b.rng)))),
                     "truncated_image", "not_an_image"),
    _image_file_case("garbage_image", lambda b, p: p.write_bytes(garbage(b.rng)), "not_an_image", "truncated_image"),
    _image_file_case("huge_image_header", lambda b, p: p.write_bytes(lying_png(70000, 70000)), "too_many_pixels"),
    _image_file_case("missing_image", lambda b, p: None, "missing_file"),
    _image_file_case("fifo_image", lambda b, p: fifo(p), "special_file"),
    _image_file_case("socket_image", lambda b, p: unix_socket(p), "special_file"),
    _image_file_case("image_symlink_outside", lambda b, p: (save(b.outside / p.name, picture(b.rng)),
                                                            symlink(p, b.outside / p.name)), "path_outside_root"),
    _image_file_case("image_symlink_device", lambda b, p: symlink(p, "/dev/zero"), "path_outside_root", "special_file"),
]


def _segments_for(b: Batch, image_id: int) -> None:
    """Valid segments for an image whose own entry or file is the hostile part."""
    if b.reader == "coco-panoptic":
        panoptic_png(b, image_id, [1000 + image_id])
    else:
        instances_ann(b, image_id, [poly(1, 1)], 1)


INSTANCES_CASES = [
    _bad_segmentation("polygon_1e9", [[0, 0, 1e9, 0, 1e9, 1e9]]),
    _bad_segmentation("polygon_nan", [[0, 0, float("nan"), 0, 5, 5]]),
    _bad_segmentation("polygon_inf", [[0, 0, float("inf"), 0, 5, 5]]),
    _bad_segmentation("polygon_odd_length", [[0, 0, 5, 0, 5, 5, 1]]),
    _bad_segmentation("polygon_strings", [["0", "0", "5", "0", "5", "5"]]),
    _bad_segmentation("polygon_nested", [nested(40)]),
    _bad_segmentation("polygon_long_outline", [[0, 0, W, H] * 4000]),
    _bad_segmentation("polygon_not_a_list", [{"x": 1}]),
    _bad_segmentation("rle_other_size", _rle(H // 2, W // 2), "mask_size_mismatch"),
    _bad_segmentation("rle_short_runs", {"size": [H, W], "counts": [5, 5]}),
    _bad_segmentation("rle_long_runs", {"size": [H, W], "counts": [5, H * W]}),
    _bad_segmentation("rle_negative_runs", {"size": [H, W], "counts": [H * W + 5, -5]}),
    _bad_segmentation("rle_float_runs", {"size": [H, W], "counts": [float(H * W)]}),
    _bad_segmentation("rle_garbage_string", {"size": [H, W], "counts": "\x01\x02\x03"}),
    _bad_segmentation("rle_overlong_count", {"size": [H, W], "counts": "ooooooooooooo0"}),
    _bad_segmentation("rle_huge_size", {"size": [100_000, 100_000], "counts": [10_000_000_000]}),
    _bad_segmentation("rle_string_size", {"size": ["24", "32"], "counts": [H * W]}),
    _bad_segmentation("rle_no_counts", {"size": [H, W]}),
    _bad_segmentation("segmentation_int", 42),
    _bad_segmentation("segmentation_null", None),
    _bad_segmentation("segmentation_string", "polygon"),
    _bad_segmentation("category_string", [poly(10, 10)], "unknown_label", "2"),
    _bad_segmentation("category_unknown", [poly(10, 10)], "unknown_label", 999),
]


def c_unknown_image(b, t):
    js = coco_state(b)
    image_id = 900_000 + len(js["annotations"])
    if b.reader == "coco-panoptic":
        panoptic_png(b, image_id, [5], name=t)
        item = f"{t}.jpg"
    else:
        instances_ann(b, image_id, [poly(1, 1)])
        item = f"image_id={image_id}"
    b.expect(t, "unknown_image", item, "unknown_image")


def instances_finish(b: Batch) -> Path:
    js = coco_state(b)
    path = b.root / "instances_val.json"
    path.write_text(json.dumps(js))
    return path


# -------------------------------------------------------------------- COCO panoptic

def panoptic_png(b: Batch, image_id: int, ids: list[int], name: str | None = None, data: bytes | None = None,
                 segments: list | None = None, file_name=None) -> dict:
    """Write the id PNG of `image_id` (bands of `ids`) and its annotation entry."""
    js = coco_state(b)
    name = name or f"{image_id:06d}"
    labels = blocks(ids, dtype=np.uint32)
    rgb = np.stack([labels % 256, labels // 256 % 256, labels // 65536], -1).astype(np.uint8)
    (b.root / "ann/panoptic_val" / f"{name}.png").write_bytes(png_bytes(rgb) if data is None else data)
    segs = segments if segments is not None else [{"id": i, "category_id": 1 + i % CLASSES, "iscrowd": 0} for i in ids]
    ann = {"image_id": image_id, "file_name": f"{name}.png" if file_name is None else file_name, "segments_info": segs}
    js["annotations"].append(ann)
    return ann


def panoptic_valid(b: Batch, token: str) -> None:
    image_id = coco_image(b, token)
    panoptic_png(b, image_id, [1000 + image_id, 2000 + image_id])
    b.valid[token] = 2


def _png_case(kind: str, *reasons: str):
    def case(b, t):
        image_id = coco_image(b, t)
        ann = panoptic_png(b, image_id, [1000 + image_id])
        png = b.root / "ann/panoptic_val" / ann["file_name"]
        PNG_WRITERS[kind](b, t, ann, png)
        b.expect(t, kind, t, *reasons)
    case.__name__ = f"p_{kind}"
    return case


def _outside_png(b, t, ann, png):
    secret = b.outside / f"{t}.png"
    secret.write_bytes(png.read_bytes())
    return secret


PNG_WRITERS = {
    "png_traversal": lambda b, t, ann, png: (_outside_png(b, t, ann, png),
                                             ann.update(file_name=f"../../../{b.outside.name}/{t}.png")),
    "png_absolute": lambda b, t, ann, png: ann.update(file_name=str(_outside_png(b, t, ann, png))),
    "png_symlink_outside": lambda b, t, ann, png: (lambda secret: (png.unlink(), symlink(png, secret)))(
        _outside_png(b, t, ann, png)),
    "png_fifo": lambda b, t, ann, png: (png.unlink(), fifo(png)),
    "png_missing": lambda b, t, ann, png: png.unlink(),
    "png_truncated": lambda b, t, ann, png: png.write_bytes(truncated(png.read_bytes())),
    "png_garbage": lambda b, t, ann, png: png.write_bytes(garbage(b.rng)),
    "png_huge_header": lambda b, t, ann, png: png.write_bytes(lying_png(80000, 80000)),
    "png_16bit": lambda b, t, ann, png: png.write_bytes(png_bytes(blocks([3, 4], dtype=np.uint16))),
    "png_size_mismatch": lambda b, t, ann, png: png.write_bytes(png_bytes(picture(b.rng, H, W + 4))),
    "segments_info_not_list": lambda b, t, ann, png: ann.update(segments_info={"id": 1}),
}

PANOPTIC_CASES = [
    _png_case("png_traversal", "mask_outside_root"), _png_case("png_absolute", "mask_outside_root"),
    _png_case("png_symlink_outside", "mask_outside_root"), _png_case("png_fifo", "special_file"),
    _png_case("png_missing", "mask_unreadable"), _png_case("png_truncated", "mask_unreadable"),
    _png_case("png_garbage", "mask_unreadable"), _png_case("png_huge_header", "mask_too_large"),
    _png_case("png_16bit", "mask_unreadable"), _png_case("png_size_mismatch", "size_mismatch"),
    _png_case("segments_info_not_list", "bad_annotation"),
]


def _panoptic_png_name_int(b, t):
    js = coco_state(b)
    image_id = coco_image(b, t)
    panoptic_png(b, image_id, [1000 + image_id], file_name=7)
    b.expect(t, "png_name_int", f" annotations[{len(js['annotations']) - 1}]", "bad_annotation")


def _segment_case(kind: str, make_segment, reason: str):
    def case(b, t):
        image_id = coco_image(b, t)
        good = {"id": 1000 + image_id, "category_id": 1, "iscrowd": 0}
        panoptic_png(b, image_id, [1000 + image_id, 2000 + image_id], segments=[good, make_segment(image_id)])
        b.expect(t, kind, f"{t}.png :: ", reason)
    case.__name__ = f"s_{kind}"
    return case


PANOPTIC_CASES += [
    _panoptic_png_name_int,
    _segment_case("segment_not_object", lambda i: [2000 + i], "bad_annotation"),
    _segment_case("segment_string_id", lambda i: {"id": str(2000 + i), "category_id": 2}, "bad_annotation"),
    _segment_case("segment_list_id", lambda i: {"id": [2000 + i], "category_id": 2}, "bad_annotation"),
    _segment_case("segment_absent_id", lambda i: {"id": 7_000_000 + i, "category_id": 2}, "empty_mask"),
    _segment_case("segment_unknown_category", lambda i: {"id": 2000 + i, "category_id": 999}, "unknown_label"),
    _segment_case("segment_string_category", lambda i: {"id": 2000 + i, "category_id": "2"}, "unknown_label"),
]


def p_duplicate_image_id(b, t):
    """An annotation for an already annotated image id, added at the very end of the file:
    it falls into another validation chunk than the first."""
    b.state["tail"].append(t)
    b.expect(t, "duplicate_image_id_across_chunks", f"{t}.png", "duplicate_id")


def panoptic_finish(b: Batch) -> Path:
    js = coco_state(b)
    for t in b.state["tail"]:  # duplicates of the first images, last in the file
        image_id = coco_image(b, t)
        js["images"].pop()  # the annotation names a known id; its image file is its own
        ann = panoptic_png(b, image_id, [1000 + image_id], name=t)
        ann["image_id"] = js["images"][0]["id"]
        first = js["images"][0]
        (b.root / "images" / f"{t}.png").replace(b.root / "images" / f"{t}-unused.png")
        b.cases[[c.token for c in b.cases].index(t)].item = first["file_name"]
        ann["segments_info"] = [{"id": 1000 + first["id"], "category_id": 1, "iscrowd": 0}]
        png = b.root / "ann/panoptic_val" / f"{t}.png"
        png.write_bytes((b.root / "ann/panoptic_val" / f"{first['id']:06d}.png").read_bytes())
    path = b.root / "ann/panoptic_val.json"
    path.write_text(json.dumps(js))
    return path


