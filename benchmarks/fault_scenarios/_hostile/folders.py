"""The hostile cases of the folder readers (semantic-png, ade20k): each writes one bad
item into a batch under construction and says which quarantine item and reasons must
come out of ingest.

A batch builder holds the dataset folder, a seeded generator, the cases and the valid
siblings (token -> expected segment count). Case functions take (builder, token).
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .files import (H, W, blocks, fifo, garbage, lying_png, picture, png_bytes, save, symlink, truncated,
                           unix_socket)

CLASSES = 4


@dataclass
class Case:
    token: str
    reader: str
    kind: str
    item: str               # a substring of the quarantine row's item
    reasons: set[str]       # any of these reasons will do


@dataclass
class Batch:
    reader: str
    root: Path
    rng: np.random.Generator
    cases: list[Case] = field(default_factory=list)
    valid: dict[str, int] = field(default_factory=dict)   # token -> expected segments
    outside: Path = Path()
    state: dict = field(default_factory=dict)

    def expect(self, token: str, kind: str, item: str, *reasons: str) -> None:
        self.cases.append(Case(token, self.reader, kind, item, set(reasons)))


# -------------------------------------------------------------------- folders (semantic-png, ade20k)

def folder_layout(b: Batch) -> tuple[Path, Path, list[int]]:
    """(images dir, masks dir, valid label values) of a folder batch; written on first use."""
    if "dirs" not in b.state:
        if b.reader == "ade20k":
            ade = b.root / "ADEChallengeData2016"
            img, msk = ade / "images/validation", ade / "annotations/validation"
            img.mkdir(parents=True), msk.mkdir(parents=True)
            with open(ade / "objectInfo150.csv", "w", newline="") as f:
                w = csv.writer(f)
                w.writerow(["Idx", "Ratio", "Train", "Val", "Stuff", "Name"])
                w.writerows([[i, 0.1, 1, 1, i % 2, f"class{i}"] for i in range(1, CLASSES + 1)])
            values = list(range(1, CLASSES + 1))  # 0 is ignored
        else:
            img, msk = b.root / "images", b.root / "masks"
            img.mkdir(parents=True), msk.mkdir(parents=True)
            (b.root / "classes.txt").write_text("".join(f"class{i}\n" for i in range(CLASSES)))
            values = list(range(CLASSES))
        b.state["dirs"] = (img, msk, values)
    return b.state["dirs"]


def folder_valid(b: Batch, token: str, name: str | None = None) -> None:
    img, msk, values = folder_layout(b)
    chosen = sorted(b.rng.choice(values, size=2, replace=False).tolist())
    save(img / f"{name or token}.png", picture(b.rng))
    save(msk / f"{name or token}.png", blocks(chosen))
    b.valid[token] = 2


def _folder_pair(b: Batch, token: str, image: bytes | None = None, mask: bytes | None = None) -> tuple[Path, Path]:
    img, msk, values = folder_layout(b)
    (img / f"{token}.png").write_bytes(png_bytes(picture(b.rng)) if image is None else image)
    (msk / f"{token}.png").write_bytes(png_bytes(blocks(values[:2])) if mask is None else mask)
    return img / f"{token}.png", msk / f"{token}.png"


def f_truncated_image(b, t):
    _folder_pair(b, t, image=truncated(png_bytes(picture(b.rng))))
    b.expect(t, "truncated_image", t, "truncated_image", "not_an_image")


def f_garbage_image(b, t):
    _folder_pair(b, t, image=garbage(b.rng))
    b.expect(t, "garbage_image", t, "not_an_image", "truncated_image")


def f_text_image(b, t):
    _folder_pair(b, t, image=b"this is not an image\n")
    b.expect(t, "text_image", t, "not_an_image")


def f_empty_image(b, t):
    _folder_pair(b, t, image=b"")
    b.expect(t, "empty_image", t, "not_an_image")


def f_huge_image(b, t):
    _folder_pair(b, t, image=lying_png(60000, 60000))
    b.expect(t, "huge_image_header", t, "too_many_pixels")


def f_size_mismatch(b, t):
    _folder_pair(b, t, image=png_bytes(picture(b.rng, H + 3, W)))
    b.expect(t, "image_mask_size_mismatch", t, "size_mismatch")


def f_truncated_mask(b, t):
    _folder_pair(b, t, mask=truncated(png_bytes(blocks(folder_layout(b)[2][:2]))))
    b.expect(t, "truncated_mask", t, "mask_unreadable")


def f_garbage_mask(b, t):
    _folder_pair(b, t, mask=garbage(b.rng))
    b.expect(t, "garbage_mask", t, "mask_unreadable")


def f_rgb_mask(b, t):
    _folder_pair(b, t, mask=png_bytes(picture(b.rng)))
    b.expect(t, "rgb_mask", t, "mask_unreadable")


def f_la_mask(b, t):
    _folder_pair(b, t, mask=png_bytes(np.zeros((H, W, 2), np.uint8)))
    b.expect(t, "two_channel_mask", t, "mask_unreadable")


def f_huge_mask(b, t):
    _folder_pair(b, t, mask=lying_png(50000, 50000))
    b.expect(t, "huge_mask_header", t, "mask_too_large")


def f_many_labels(b, t):
    labels = np.arange(1, 80 * 64 + 1, dtype=np.uint16).reshape(64, 80)  # 5120 distinct values
    _folder_pair(b, t, image=png_bytes(picture(b.rng, 64, 80)), mask=png_bytes(labels))
    b.expect(t, "too_many_labels", t, "too_many_labels")


def f_unknown_label(b, t):
    _, _, values = folder_layout(b)
    _folder_pair(b, t, mask=png_bytes(blocks([values[0], 200])))
    b.expect(t, "unknown_label", f"{t}.png :: ", "unknown_label")


def f_missing_mask(b, t):
    img, msk, _ = folder_layout(b)
    save(img / f"{t}.png", picture(b.rng))
    b.expect(t, "missing_mask", t, "missing_mask")


def f_missing_image(b, t):
    img, msk, values = folder_layout(b)
    save(msk / f"{t}.png", blocks(values[:2]))
    b.expect(t, "missing_image", t, "missing_image")


def f_non_utf8_name(b, t):
    img, msk, values = folder_layout(b)
    save(os.fsencode(img) + f"/bad\xff{t}.png".encode("latin-1"), picture(b.rng))
    save(os.fsencode(msk) + f"/bad\xff{t}.png".encode("latin-1"), blocks(values[:2]))
    b.expect(t, "non_utf8_file_name", t, "bad_name")


def _image_case(kind: str, make, *reasons: str):
    """A folder case whose image file is made by `make(batch, path)`; its mask is valid."""
    def case(b, t):
        img, msk, values = folder_layout(b)
        make(b, img / f"{t}.png")
        save(msk / f"{t}.png", blocks(values[:2]))
        b.expect(t, kind, t, *reasons)
    case.__name__ = f"f_{kind}"
    return case


def _mask_case(kind: str, make, *reasons: str):
    """A folder case whose mask file is made by `make(batch, path)`; its image is valid."""
    def case(b, t):
        img, msk, _ = folder_layout(b)
        save(img / f"{t}.png", picture(b.rng))
        make(b, msk / f"{t}.png")
        b.expect(t, kind, t, *reasons)
    case.__name__ = f"f_{kind}"
    return case


def _outside(b: Batch, path: Path, array: np.ndarray) -> Path:
    """Save `array` under the batch's outside folder, named like `path`; returns it."""
    save(b.outside / path.name, array)
    return b.outside / path.name


def _hidden_fifo(b: Batch, path: Path) -> Path:
    """A FIFO next to `path`, hidden (not listed itself)."""
    fifo(path.with_name(f".{path.name}.fifo"))
    return path.with_name(f".{path.name}.fifo")


f_image_symlink_outside = _image_case("image_symlink_outside", lambda b, p: symlink(p, _outside(b, p, picture(b.rng))),
                                      "path_outside_root")
f_fifo_image = _image_case("fifo_image", lambda b, p: fifo(p), "special_file")
f_socket_image = _image_case("socket_image", lambda b, p: unix_socket(p), "special_file")
f_dangling_image = _image_case("dangling_symlink_image", lambda b, p: symlink(p, p.with_suffix(".gone")), "missing_file")
f_mask_symlink_outside = _mask_case("mask_symlink_outside", lambda b, p: symlink(p, _outside(b, p, blocks([1, 2]))),
                                    "mask_outside_root")
f_mask_symlink_device = _mask_case("mask_symlink_to_device", lambda b, p: symlink(p, "/dev/zero"),
                                   "mask_outside_root", "special_file")
f_fifo_mask = _mask_case("fifo_mask", lambda b, p: fifo(p), "special_file")
f_mask_symlink_fifo = _mask_case("mask_symlink_to_fifo", lambda b, p: symlink(p, _hidden_fifo(b, p)), "special_file")


def f_duplicate_stem(b, t):
    """Two images of one id (t.jpg, t.png) with valid siblings sorting between them, so
    that they fall into different validation chunks."""
    img, msk, values = folder_layout(b)
    save(img / f"{t}.jpg", picture(b.rng), fmt="PNG")
    save(msk / f"{t}.png", blocks(values[:2]))
    b.valid[t] = 2
    for k in range(b.state.get("chunk", 16) + 1):
        folder_valid(b, f"{t}.jpg~{k:02d}")
    save(img / f"{t}.png", picture(b.rng))
    b.expect(t, "duplicate_id_across_chunks", f"{t}.png", "duplicate_id")


FOLDER_CASES = [f_truncated_image, f_garbage_image, f_text_image, f_empty_image, f_huge_image, f_size_mismatch,
                f_truncated_mask, f_garbage_mask, f_rgb_mask, f_la_mask, f_huge_mask, f_many_labels, f_unknown_label,
                f_missing_mask, f_missing_image, f_non_utf8_name, f_image_symlink_outside, f_mask_symlink_outside,
                f_mask_symlink_device, f_fifo_image, f_fifo_mask, f_mask_symlink_fifo, f_socket_image,
                f_dangling_image, f_duplicate_stem]


def folder_finish(b: Batch) -> Path:
    folder_layout(b)
    return b.root


def nested(depth: int):
    out = [1.0, 2.0]
    for _ in range(depth):
        out = [out]
    return out
