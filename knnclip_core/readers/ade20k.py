"""`ade20k`: an ADEChallengeData2016 root (images/<split>, annotations/<split>, objectInfo150.txt
with the class names, objectInfo150.csv with the stuff/thing flags)."""
from __future__ import annotations

import csv
import logging
from pathlib import Path

from ..classnames import join_synonyms
from ..errors import InputError
from .base import READERS, ClassInfo, normalise_class_name
from .semantic_png import SemanticPngReader

logger = logging.getLogger(__name__)

SPLITS = ("training", "validation")
N_CLASSES = 150


def find_ade_root(path: Path) -> Path | None:
    """The ADEChallengeData2016 folder at or directly under `path`, if any."""
    for cand in (path, path / "ADEChallengeData2016"):
        if (cand / "objectInfo150.csv").is_file() or (cand / "objectInfo150.txt").is_file():
            return cand
    return None


def _index(path: Path, row_no: int, value: str) -> int | None:
    """The class index of a row, or None (logged with file and row) when it is not 1..150."""
    try:
        idx = int(value)
    except ValueError:
        idx = -1
    if not 1 <= idx <= N_CLASSES:
        logger.warning("%s row %d: Idx %r is not a class index 1..%d; row skipped", path, row_no, value, N_CLASSES)
        return None
    return idx


def _names_from_txt(path: Path) -> dict[int, str]:
    """Idx -> label from objectInfo150.txt (tab-separated, 'coffee table, cocktail table')."""
    out = {}
    lines = path.read_text(encoding="utf-8").splitlines()
    for row_no, line in enumerate(lines[1:], start=2):
        cols = line.split("\t")
        if not line.strip():
            continue
        idx = _index(path, row_no, cols[0].strip())
        name = normalise_class_name(join_synonyms(cols[-1].split(","))) if len(cols) >= 2 else ""
        if idx is not None and not name:
            logger.warning("%s row %d: no class name; row skipped", path, row_no)
        elif idx is not None:
            out[idx] = name
    return out


def _rows_from_csv(path: Path) -> dict[int, dict]:
    """Idx -> row of objectInfo150.csv (Idx, Ratio, Train, Val, Stuff, Name)."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    out = {}
    for row_no, row in enumerate(rows, start=2):
        idx = _index(path, row_no, str(row.get("Idx", "")).strip())
        if idx is not None:
            out[idx] = row
    return out


def read_object_info(root: Path) -> list[ClassInfo]:
    """Classes of an ADE20K root: index 0 is 'other' (ignored), 1..150 the classes.

    Names come from objectInfo150.txt with all their synonyms ('coffee table|cocktail table');
    objectInfo150.csv gives the thing/stuff flag. The csv alone cannot name a class
    (';' separates both words and synonyms there): without the txt each ';' part is read as a
    synonym, with a warning. An index without a readable row has no class (its pixels are
    reported as an unknown label). Raises InputError when neither file exists."""
    txt, csv_path = root / "objectInfo150.txt", root / "objectInfo150.csv"
    if not txt.is_file() and not csv_path.is_file():
        raise InputError(f"{root} holds neither objectInfo150.txt nor objectInfo150.csv; "
                         f"is it an ADEChallengeData2016 folder?")
    rows = _rows_from_csv(csv_path) if csv_path.is_file() else {}
    if txt.is_file():
        names = _names_from_txt(txt)
    else:
        logger.warning("%s is missing: class names read from %s, where ';' separates both words and synonyms "
                       "('coffee;table' becomes 'coffee|table'); put objectInfo150.txt beside it", txt, csv_path)
        names = {i: normalise_class_name(join_synonyms(str(r.get("Name", "")).split(";"))) for i, r in rows.items()}
    classes = [ClassInfo("")]  # value 0: other / ignore
    for idx in range(1, N_CLASSES + 1):
        stuff = rows.get(idx, {}).get("Stuff")
        classes.append(ClassInfo(names.get(idx, ""), is_thing=None if stuff is None else str(stuff).strip() == "0"))
    return classes


class Ade20kReader(SemanticPngReader):
    format = "ade20k"

    def __init__(self, path: Path, split: str = "validation", dataset_name: str | None = None):
        root = find_ade_root(Path(path))
        if root is None:
            raise InputError(f"{path} is not an ADEChallengeData2016 folder (no objectInfo150.txt or .csv)")
        if split not in SPLITS:
            raise InputError(f"--split must be one of {', '.join(SPLITS)} for ade20k, not {split!r}")
        super().__init__(root / "images" / split, root / "annotations" / split, read_object_info(root), ignore=[0],
                         dataset_name=dataset_name or "ade20k", root=root)
        self.split = split

    def describe(self) -> dict:
        return {**super().describe(), "split": self.split}


READERS.add("ade20k", Ade20kReader)
