"""Writers of hostile files for the hostile-input scenario: valid pictures and masks, and
broken ones (truncated, garbage, lying headers, wrong modes, special files, bad names)."""
from __future__ import annotations

import os
import socket
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

H, W = 24, 32  # every valid image of the scenario


def picture(rng: np.random.Generator, h: int = H, w: int = W) -> np.ndarray:
    """Random RGB pixels: every valid image has its own content (its own sha256)."""
    return rng.integers(0, 255, (h, w, 3), dtype=np.uint8)


def blocks(values: list[int], h: int = H, w: int = W, dtype=np.uint8) -> np.ndarray:
    """A label image of vertical bands, one per value."""
    labels = np.zeros((h, w), dtype)
    for i, v in enumerate(values):
        labels[:, i * w // len(values):(i + 1) * w // len(values)] = v
    return labels


def save(path: Path | bytes, array: np.ndarray, mode: str | None = None, fmt: str = "PNG") -> None:
    """Save an array with Pillow; `path` may be bytes (names that are not UTF-8)."""
    with open(path, "wb") as f:
        Image.fromarray(array, mode).save(f, format=fmt) if mode else Image.fromarray(array).save(f, format=fmt)


def png_bytes(array: np.ndarray) -> bytes:
    import io
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def lying_png(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height (a decompression bomb's header)."""
    data = bytearray(png_bytes(np.zeros((1, 1), np.uint8)))
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def truncated(data: bytes) -> bytes:
    return data[: max(len(data) // 2, 40)]


def garbage(rng: np.random.Generator) -> bytes:
    """PNG magic followed by random bytes."""
    return b"\x89PNG\r\n\x1a\n" + rng.integers(0, 255, 200, dtype=np.uint8).tobytes()


def fifo(path: Path) -> None:
    os.mkfifo(path)


def unix_socket(path: Path) -> None:
    """A bound UNIX socket file at `path` (closed again; the file stays). Bound by its
    relative name from its folder: socket addresses are limited to ~108 bytes."""
    s, cwd = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM), os.getcwd()
    try:
        os.chdir(Path(path).parent)
        s.bind(Path(path).name)
    finally:
        os.chdir(cwd)
        s.close()


def symlink(path: Path, target: Path | str) -> None:
    os.symlink(target, path)
