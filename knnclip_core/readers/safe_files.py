"""Opening files named by a dataset without trusting the names.

Names may leave the dataset ('..', symlinks), point at FIFOs or devices (opening a FIFO
blocks), claim huge sizes in their headers, or not be UTF-8. Every mask and image is
opened through these helpers.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO


class RefusedFile(ValueError):
    """A file the dataset names that is not read; `reason` is a quarantine reason code."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def printable(text: str) -> str:
    """`text` as valid UTF-8: undecodable bytes of a file name shown as '\\xff', lone
    surrogates as '\\udc80'. Equal to `text` when it already was valid."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def is_utf8(text: str) -> bool:
    """True when `text` can be stored as UTF-8 (no surrogates from undecodable names)."""
    return printable(text) == text


def confine(path: Path, root: Path, what: str = "mask") -> Path:
    """`path` resolved (symlinks followed); RefusedFile('<what>_outside_root') when it
    lands outside `root` (also resolved)."""
    try:
        resolved = Path(path).resolve()
        inside = resolved.is_relative_to(Path(root).resolve())
    except (OSError, RuntimeError) as exc:  # symlink loops
        raise RefusedFile(f"{what}_outside_root", f"{printable(str(path))}: cannot resolve the {what} path ({exc})") from None
    if not inside:
        raise RefusedFile(f"{what}_outside_root", f"{printable(str(path))}: the {what} path leaves {printable(str(root))}")
    return resolved


def open_regular(path: Path) -> BinaryIO:
    """Open `path` for reading only if it is a regular file; a FIFO, socket or device is
    never opened for blocking reads (O_NONBLOCK) and gives RefusedFile('special_file').
    FileNotFoundError / OSError pass through."""
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        if stat.S_ISDIR(st.st_mode):
            raise RefusedFile("special_file", f"{printable(str(path))} is a folder, not a file")
        raise RefusedFile("special_file", f"{printable(str(path))} is not a regular file (FIFO, socket or device)")
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    if not stat.S_ISREG(os.fstat(fd).st_mode):  # swapped after the stat
        os.close(fd)
        raise RefusedFile("special_file", f"{printable(str(path))} is not a regular file")
    return os.fdopen(fd, "rb")


def open_image_header(f: BinaryIO, path: Path, max_pixels: int, what: str = "mask"):
    """`PIL.Image.open(f)` (header only) whose size is within `max_pixels` (see check_pixels).
    An image past Pillow's own decompression-bomb limit (2 x PIL.Image.MAX_IMAGE_PIXELS, left
    at its default so that the rest of the process keeps its guard) is refused the same way."""
    from PIL import Image

    try:
        im = Image.open(f)
    except Image.DecompressionBombError as exc:
        raise RefusedFile(f"{what}_too_large", f"{printable(str(path))}: the {what} is over Pillow's "
                          f"decompression-bomb limit ({exc})") from None
    try:
        check_pixels(im.size, max_pixels, path, what)
    except RefusedFile:
        im.close()
        raise
    return im


def check_pixels(size: tuple[int, int], max_pixels: int, path: Path, what: str = "mask") -> None:
    """RefusedFile('<what>_too_large') when a (w, h) header size is over `max_pixels`."""
    w, h = size
    if w * h > max_pixels:
        raise RefusedFile(f"{what}_too_large", f"{printable(str(path))}: the {what} is {w}x{h} = {w * h} pixels, "
                          f"over the limit of {max_pixels}")
