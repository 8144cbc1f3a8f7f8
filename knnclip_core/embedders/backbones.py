"""Backbones are data: configs/backbones.yaml maps a name to family, architecture,
weights, input size and pooling. `list_backbones()` reads it; `get_spec(name)` returns one."""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

from ..config import REPO_CONFIGS, read_yaml
from ..errors import KnnclipError

logger = logging.getLogger(__name__)

BACKBONES_FILE = REPO_CONFIGS / "backbones.yaml"
RANDOM = "random"  # weights value that asks for random initialisation (tests, speed benchmarks)
POOLINGS = ("mask_mean",)  # the mask poolings embedders implement (area-weighted mean)


class UnknownBackboneError(KnnclipError):
    """The backbone name is not in configs/backbones.yaml."""


@dataclass(frozen=True)
class BackboneSpec:
    """One backbone entry of configs/backbones.yaml."""

    name: str
    family: str  # open_clip | dinov2 | classic
    architecture: str  # open_clip model name, timm model name, or classic version
    weights: str = "none"  # pretrained tag, local checkpoint path, `random`, or `none`
    input_size: Optional[int] = None  # square input side (open_clip, dinov2)
    pooling: str = "mask_mean"
    max_side: Optional[int] = None  # classic: long side cap of the working image
    description: str = ""
    dedup_threshold: Optional[float] = None  # cosine of near-duplicates for this feature space
    # open_clip: QuickGELU activations, as OpenAI-trained weights need. None: what the pretrained
    # tag's config says (false for a local path or `random`); set it for a local checkpoint.
    quick_gelu: Optional[bool] = None
    kwargs: dict = field(default_factory=dict)  # extra model constructor arguments

    def __post_init__(self):
        if self.pooling not in POOLINGS:
            raise ValueError(f"backbone {self.name!r}: unknown pooling {self.pooling!r} "
                             f"(allowed: {', '.join(POOLINGS)})")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def list_backbones(path: str | Path | None = None) -> list[BackboneSpec]:
    """All backbones of configs/backbones.yaml (or `path`), in file order.

    Raises ValueError naming the entry when an entry lacks family or architecture.
    """
    import yaml

    try:
        data = read_yaml(Path(path) if path else BACKBONES_FILE)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ValueError(f"{path or BACKBONES_FILE} is not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    specs = []
    for name, entry in data.items():
        entry = dict(entry or {})
        if "family" not in entry or "architecture" not in entry:
            raise ValueError(f"backbone {name!r} in {path or BACKBONES_FILE} needs `family` and `architecture`")
        entry["weights"] = str(entry.get("weights", "none"))
        entry["kwargs"] = dict(entry.get("kwargs") or {})
        known = set(BackboneSpec.__dataclass_fields__) - {"name"}
        unknown = sorted(set(entry) - known)
        if unknown:
            raise ValueError(f"backbone {name!r}: unknown keys {unknown} (known: {sorted(known)})")
        specs.append(BackboneSpec(name=str(name), **entry))
    return specs


def get_spec(name: str, path: str | Path | None = None) -> BackboneSpec:
    """The backbone named `name`; raises UnknownBackboneError listing the known names."""
    specs = {s.name: s for s in list_backbones(path)}
    if name not in specs:
        raise UnknownBackboneError(
            f"unknown backbone {name!r}; known: {', '.join(specs)} (add it to {path or BACKBONES_FILE})")
    return specs[name]
