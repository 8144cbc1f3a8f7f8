"""`semantic-png`: images/ + masks/ (one label value a pixel) + classes file (line i names value i)."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator

from ..errors import InputError
from .base import (READERS, ClassInfo, ImageItem, Reader, list_files, mask_error, normalise_class_name, read_label_png,
                   split_label_map)
from .safe_files import confine, printable

MAX_CLASSES_FILE_BYTES = 4_000_000  # a classes file is one name per line; larger is not one


def read_classes_file(path: Path) -> list[ClassInfo]:
    """Class list of a classes file: line i names value i (blank lines keep their index);
    `a|b|c` gives a class its synonyms (shown as `a`, all three in the text ensemble).
    Raises InputError naming the file and line for a name given on two lines (their labels
    would merge silently) or a line of separators that names no class."""
    if not path.is_file():
        raise InputError(f"classes file {path} does not exist")
    with open(path, "rb") as f:
        raw = f.read(MAX_CLASSES_FILE_BYTES + 1)
    if len(raw) > MAX_CLASSES_FILE_BYTES:
        raise InputError(f"classes file {path} is larger than {MAX_CLASSES_FILE_BYTES:,} bytes; "
                         "it should hold one class name per line")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise InputError(f"classes file {path} line {line} is not UTF-8 text (byte {exc.start}); "
                         "save it as UTF-8") from None
    out, first_line = [], {}
    for number, line in enumerate(text.splitlines(), start=1):
        label = normalise_class_name(line)
        if not label and line.strip():
            raise InputError(f"classes file {path} line {number} ({printable(line.strip())[:40]!r}) names no class; "
                             "leave the line empty for an unused label value")
        for name in label.split("|") if label else ():
            if name in first_line:
                raise InputError(f"classes file {path} line {number} repeats the name {printable(name)[:60]!r} of "
                                 f"line {first_line[name]}: two label values would become one class; "
                                 "give each class its own names")
            first_line[name] = number
        out.append(ClassInfo(label))
    return out


class SemanticPngReader(Reader):
    """Masks are matched to images by file stem; one segment per class value present."""

    format = "semantic-png"

    def __init__(self, images: Path, masks: Path, classes: Path | list[ClassInfo], ignore: Iterable[int] = (),
                 dataset_name: str | None = None, root: Path | None = None):
        self.images_dir, self.masks_dir = Path(images), Path(masks)
        for d, flag in ((self.images_dir, "--images"), (self.masks_dir, "--masks")):
            if not d.is_dir():
                raise InputError(f"{flag} folder {d} does not exist")
        self.classes = classes if isinstance(classes, list) else read_classes_file(Path(classes))
        self.class_by_value = {i: c for i, c in enumerate(self.classes) if c.name}
        self.ignore = set(int(v) for v in ignore)
        self.root = Path(root) if root else self.images_dir
        self.dataset_name = dataset_name or self.images_dir.resolve().parent.name
        self._images = list_files(self.images_dir)
        self._masks: dict[str, Path] = {}
        self._ambiguous: dict[str, list[Path]] = {}  # stems with several masks (a.png, a.tif): none is guessed
        for p in list_files(self.masks_dir):
            if p.stem in self._masks:
                self._ambiguous.setdefault(p.stem, [self._masks[p.stem]]).append(p)
            self._masks[p.stem] = p

    def __len__(self) -> int:
        return len(self._images) + len(set(self._masks) - {p.stem for p in self._images})

    def __iter__(self) -> Iterator[ImageItem]:
        stems = set()
        for image in self._images:
            stems.add(image.stem)
            rel = str(image.relative_to(self.root)) if image.is_relative_to(self.root) else image.name
            item = ImageItem(image_path=image, rel_path=rel, source_id=image.stem)
            mask = self._masks.get(image.stem)
            if image.stem in self._ambiguous:
                names = ", ".join(printable(p.name) for p in self._ambiguous[image.stem])
                item.errors.append(("ambiguous_mask", f"{printable(str(image))}: several masks share its name "
                                                      f"({names}) in {printable(str(self.masks_dir))}"))
                yield item
                continue
            if mask is None:
                item.errors.append(("missing_mask", f"{image}: no mask named {image.stem}.* in {self.masks_dir}"))
                yield item
                continue
            item.mask_path = mask
            try:
                labels = read_label_png(confine(mask, self.masks_dir), self.max_pixels)
                item.mask_shape = labels.shape[:2]
                item.segments = split_label_map(labels, self.class_by_value, self.ignore, printable(mask.name),
                                                self.max_labels)
            except Exception as exc:  # outside the folder, special file, too large, unreadable, not labels
                item.errors.append(mask_error(exc, mask))
            yield item
        for stem in sorted(set(self._masks) - stems):
            mask = self._masks[stem]
            yield ImageItem(image_path=self.images_dir / stem, rel_path=stem, mask_path=mask, source_id=stem,
                            errors=[("missing_image", f"{mask}: no image named {stem}.* in {self.images_dir}")])


READERS.add("semantic-png", SemanticPngReader)
