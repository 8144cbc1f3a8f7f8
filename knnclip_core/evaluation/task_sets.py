"""Evaluation tasks: the named ground-truth data sets a release is judged on, the class map
that says which names mean the same class across data sets, and the per-task evaluation in
two protocols.

- `own`: each task asks with its own class list (the request names the task's classes), so
  a later vocabulary can change the answer only through the search itself;
- `union`: each task asks with the release's whole vocabulary plus its own classes (new
  classes compete); predictions and ground truth are compared by canonical name.

A tasks file is YAML: `tasks: {name: {path, format, split, images, masks, classes, ignore,
limit}}`, paths relative to the file. `load_tasks(path)` reads it; `evaluate_tasks(...)`
scores a segmenter on each.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Optional, Sequence

from ..classnames import synonyms
from ..config import REPO_CONFIGS, read_yaml
from ..errors import InputError
from ..readers.base import normalise_class_name
from .evaluate import Sample, evaluate, samples_from_reader

logger = logging.getLogger(__name__)

CLASS_MAP_FILE = REPO_CONFIGS / "class_map.yaml"
PROTOCOLS = ("own", "union")


def class_synonyms(name: str) -> list[str]:
    """Normalised names of a class label, first name first (`coffee table|cocktail table`)."""
    return list(dict.fromkeys(n for n in (normalise_class_name(x) for x in synonyms(name)) if n))


class ClassMap:
    """Spelling -> canonical class name (configs/class_map.yaml). A name in no list is its own
    canonical name (its first synonym, normalised)."""

    def __init__(self, mapping: dict[str, Sequence[str]]):
        self._to: dict[str, str] = {}
        for canonical, spellings in mapping.items():
            canon = normalise_class_name(str(canonical))
            for s in [canonical, *spellings]:
                key = normalise_class_name(str(s))
                if self._to.get(key, canon) != canon:
                    raise ValueError(f"class map: {s!r} is listed under both {self._to[key]!r} and {canon!r}")
                self._to[key] = canon

    @classmethod
    def load(cls, path: str | Path | None = None) -> "ClassMap":
        """The class map of `path` (default configs/class_map.yaml); ValueError naming the file
        when it is not a mapping of names to lists of names."""
        path = Path(path) if path else CLASS_MAP_FILE
        data = read_yaml(path)
        bad = [k for k, v in data.items() if not isinstance(v, list)]
        if bad:
            raise ValueError(f"{path}: each entry must map a canonical name to a list of spellings ({bad[0]!r} does not)")
        return cls(data)

    def canonical(self, name: str) -> str:
        """Canonical name of `name` (tries each synonym in order)."""
        spellings = class_synonyms(name)
        for s in spellings:
            if s in self._to:
                return self._to[s]
        return spellings[0] if spellings else normalise_class_name(name)


@dataclass(frozen=True)
class EvalTask:
    """One evaluation data set, read with the ingest readers (same options as `knnclip ingest`)."""

    name: str
    path: str                       # data set path (folder or annotation file)
    format: str = "auto"            # reader format: auto | ade20k | coco-panoptic | coco-instances | semantic-png
    split: str = "validation"       # ADE20K split
    images: Optional[str] = None    # images folder (COCO, semantic-png)
    masks: Optional[str] = None     # masks folder (COCO panoptic PNGs, semantic-png labels)
    classes: Optional[str] = None   # class names file (semantic-png)
    ignore: tuple = field(default_factory=tuple)  # label values that are void (semantic-png)
    limit: Optional[int] = None     # evaluate at most this many images

    def samples(self, max_pixels: Optional[int] = None) -> tuple[list[Sample], list[str]]:
        """(ground-truth samples, class names) of the task, read into memory. Raises InputError."""
        from ..readers.detect import open_reader

        reader = open_reader(self.path, self.format, split=self.split, dataset=self.name, images=self.images,
                             masks=self.masks, classes=self.classes, ignore=self.ignore)
        samples = list(samples_from_reader(reader, max_pixels, limit=self.limit))
        if not samples:
            raise InputError(f"task {self.name!r}: no evaluable image in {self.path}")
        present = {normalise_class_name(n) for s in samples for n, _ in s.segments}
        return samples, [c.name for c in reader.classes if normalise_class_name(c.name) in present]


def load_tasks(path: str | Path) -> list[EvalTask]:
    """Tasks of a YAML tasks file; relative paths are taken from the file's folder.
    Raises InputError naming the file and the task for a missing path or an unknown key."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"tasks file {path} not found")
    data = read_yaml(path, "tasks file").get("tasks")
    if not isinstance(data, dict) or not data:
        raise InputError(f"{path}: expected `tasks:` mapping task names to data sets")
    known = {f.name for f in fields(EvalTask)} - {"name"}
    out = []
    for name, entry in data.items():
        if entry is not None and not isinstance(entry, dict):
            raise InputError(f"{path}: task {name!r} must be a mapping of {sorted(known)} "
                             f"(got the {type(entry).__name__} {str(entry)[:60]!r})")
        entry = dict(entry or {})
        unknown = sorted(set(entry) - known)
        if unknown or "path" not in entry:
            raise InputError(f"{path}: task {name!r} " + (f"has unknown keys {unknown}" if unknown else "needs `path`")
                             + f" (known: {sorted(known)})")
        for key in ("path", "format", "split", "images", "masks", "classes"):
            if entry.get(key) is not None and not isinstance(entry[key], str):
                raise InputError(f"{path}: task {name!r}: `{key}` must be a string (got {entry[key]!r:.60})")
        for key in ("path", "images", "masks", "classes"):
            if entry.get(key):
                p = Path(str(entry[key]))
                entry[key] = str(p if p.is_absolute() else (path.parent / p).resolve())
        entry["ignore"] = _ignore_values(path, name, entry.get("ignore"))
        limit = entry.get("limit")
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise InputError(f"{path}: task {name!r}: `limit` must be a whole number >= 1 (got {limit!r:.60})")
        out.append(EvalTask(name=str(name), **entry))
    return out


def _ignore_values(path: Path, name, value) -> tuple:
    """The `ignore` label values of a task: a list of whole numbers 0..65535 (InputError otherwise)."""
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 65535
                                              for v in value):
        raise InputError(f"{path}: task {name!r}: `ignore` must be a list of label values 0..65535, "
                         f"e.g. [0, 255] (got {value!r:.60})")
    return tuple(value)


@dataclass
class LoadedTask:
    """A task with its samples read once (a comparison evaluates several releases on them)."""

    task: EvalTask
    samples: list
    classes: list


def load_task_samples(tasks: Sequence[EvalTask], max_pixels: Optional[int] = None) -> list[LoadedTask]:
    """Read every task's samples once."""
    return [LoadedTask(t, *t.samples(max_pixels)) for t in tasks]


def evaluate_tasks(segmenter, tasks: Sequence[LoadedTask], protocol: str = "own",
                   class_map: Optional[ClassMap] = None) -> dict[str, dict]:
    """{task name: evaluation report} of `segmenter` on each task's ground-truth masks.

    protocol 'own': the request names the task's classes; 'union': the release vocabulary
    plus the task's classes. Names are compared through `class_map` (default: the shipped one)."""
    assert protocol in PROTOCOLS, protocol
    cmap = class_map or ClassMap.load()
    out = {}
    for lt in tasks:
        classes = list(lt.classes)
        if protocol == "union":
            classes = list(dict.fromkeys([*segmenter.vocabulary, *classes]))
        out[lt.task.name] = evaluate(segmenter, lt.samples, classes, masks_from="gt", canonical=cmap.canonical)
    return out
