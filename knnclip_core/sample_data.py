"""A small synthetic labelled dataset in the semantic-png layout, for the quick start and tests.

Each class has its own colour and texture; scenes are a background class with a few
shapes of other classes. Class names are stable, so `classes=K+1` is a superset of `K`.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from .errors import InputError

# (name, base RGB, texture) - a class keeps its name, colour and texture forever.
CLASS_STYLES = [
    ("sky", (110, 160, 230), "gradient"), ("grass", (60, 150, 50), "noise"), ("water", (30, 80, 160), "waves"),
    ("brick", (170, 70, 50), "bricks"), ("sand", (220, 200, 140), "dots"), ("road", (90, 90, 95), "noise"),
    ("foliage", (30, 100, 40), "dots"), ("snow", (240, 240, 245), "plain"), ("wood", (140, 95, 50), "stripes"),
    ("metal", (160, 165, 175), "stripes"), ("fabric", (150, 40, 120), "checker"), ("rock", (120, 110, 100), "noise"),
    ("lava", (230, 90, 20), "waves"), ("ice", (180, 220, 240), "checker"), ("moss", (90, 120, 40), "checker"),
    ("tile", (200, 200, 170), "bricks"),
]


def class_names(k: int) -> list[str]:
    """The first `k` sample class names (stable; beyond the styled ones: 'class_<i>')."""
    return [CLASS_STYLES[i][0] if i < len(CLASS_STYLES) else f"class_{i}" for i in range(k)]


def _style(i: int) -> tuple[tuple[int, int, int], str]:
    if i < len(CLASS_STYLES):
        return CLASS_STYLES[i][1], CLASS_STYLES[i][2]
    rng = np.random.default_rng(1000 + i)
    return tuple(int(v) for v in rng.integers(20, 235, 3)), ["noise", "stripes", "checker", "dots", "waves"][i % 5]


def _texture(kind: str, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    if kind == "gradient":
        t = (y / max(h - 1, 1) - 0.5) * 40
    elif kind == "stripes":
        t = np.sign(np.sin(x / 2.0)) * 25
    elif kind == "checker":
        t = (((x // 6) + (y // 6)) % 2 * 2 - 1) * 30
    elif kind == "dots":
        t = (np.sin(x / 1.5) * np.sin(y / 1.5) > 0.6) * 50 - 10
    elif kind == "waves":
        t = np.sin(x / 4.0 + np.sin(y / 5.0) * 2) * 30
    elif kind == "bricks":
        t = ((y % 8 < 1) | ((x + (y // 8 % 2) * 8) % 16 < 1)) * -60 + 10
    else:  # noise / plain
        t = np.zeros((h, w), np.float32)
    noise = rng.normal(0, 12 if kind == "noise" else 4, (h, w))
    return (t + noise)[..., None]


def _scene(k: int, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    labels = np.full((h, w), rng.integers(k), np.uint8)
    y, x = np.mgrid[0:h, 0:w]
    for _ in range(rng.integers(2, 5)):
        cls = rng.integers(k)
        cy, cx = rng.integers(0, h), rng.integers(0, w)
        ry, rx = rng.integers(h // 8, h // 2), rng.integers(w // 8, w // 2)
        if rng.random() < 0.5:
            inside = ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 <= 1
        else:
            inside = (abs(y - cy) <= ry) & (abs(x - cx) <= rx)
        labels[inside] = cls
    return labels


def render(labels: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """RGB image of a label map, each class with its colour and texture."""
    h, w = labels.shape
    img = np.zeros((h, w, 3), np.float32)
    for c in np.unique(labels):
        colour, kind = _style(int(c))
        layer = np.asarray(colour, np.float32)[None, None, :] + _texture(kind, h, w, rng)
        img[labels == c] = layer[labels == c]
    return np.clip(img, 0, 255).astype(np.uint8)


def write_sample_dataset(out: str | Path, images: int = 24, classes: int = 5, seed: int = 0,
                         size: tuple[int, int] = (96, 128)) -> Path:
    """Write OUT/images/*.png, OUT/masks/*.png and OUT/classes.txt; returns OUT.
    Raises InputError for a class count outside 1..255 (8-bit masks) or fewer than one image."""
    if not 1 <= classes <= 255:
        raise InputError(f"--classes must be 1 to 255 (the masks are 8-bit PNGs), not {classes}")
    if images < 1:
        raise InputError(f"--images must be 1 or more, not {images}")
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    (out / "classes.txt").write_text("\n".join(class_names(classes)) + "\n")
    rng = np.random.default_rng(seed)
    h, w = size
    for i in range(images):
        labels = _scene(classes, h, w, rng)
        Image.fromarray(render(labels, classes, rng)).save(out / "images" / f"scene_{seed}_{i:04d}.png")
        Image.fromarray(labels, mode="L").save(out / "masks" / f"scene_{seed}_{i:04d}.png")
    return out
