"""`ade20k`: an ADEChallengeData2016 root (images/<split>, annotations/<split>, objectInfo150.csv)."""
from __future__ import annotations

import csv
from pathlib import Path

from ..errors import InputError
from .base import READERS, ClassInfo, normalise_class_name
from .semantic_png import SemanticPngReader

SPLITS = ("training", "validation")


def find_ade_root(path: Path) -> Path | None:
    """The ADEChallengeData2016 folder at or directly under `path`, if any."""
    for cand in (path, path / "ADEChallengeData2016"):
        if (cand / "objectInfo150.csv").is_file() or (cand / "objectInfo150.txt").is_file():
            return cand
    return None


def read_object_info(root: Path) -> list[ClassInfo]:
    """Classes of objectInfo150.csv: index 0 is 'other' (ignored), 1..150 the classes.

    The first synonym names the class ('building;edifice' -> 'building'), unless two
    classes would share it, then the full name is kept."""
    path = root / "objectInfo150.csv"
    if not path.is_file():
        raise InputError(f"{path} does not exist; is {root} an ADEChallengeData2016 folder?")
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    firsts = [normalise_class_name(r["Name"].split(";")[0]) for r in rows]
    classes = [ClassInfo("")]  # value 0: other / ignore
    for row, first in zip(rows, firsts):
        name = first if firsts.count(first) == 1 else normalise_class_name(row["Name"].replace(";", " "))
        classes.append(ClassInfo(name, is_thing=row.get("Stuff", "0").strip() == "0"))
    return classes


class Ade20kReader(SemanticPngReader):
    format = "ade20k"

    def __init__(self, path: Path, split: str = "validation", dataset_name: str | None = None):
        root = find_ade_root(Path(path))
        if root is None:
            raise InputError(f"{path} is not an ADEChallengeData2016 folder (no objectInfo150.csv)")
        if split not in SPLITS:
            raise InputError(f"--split must be one of {', '.join(SPLITS)} for ade20k, not {split!r}")
        super().__init__(root / "images" / split, root / "annotations" / split, read_object_info(root), ignore=[0],
                         dataset_name=dataset_name or "ade20k", root=root)
        self.split = split

    def describe(self) -> dict:
        return {**super().describe(), "split": self.split}


READERS.add("ade20k", Ade20kReader)
