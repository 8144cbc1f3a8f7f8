"""Resolve model weights offline: an open_clip pretrained tag from the Hugging Face hub
cache (or open_clip's URL cache), a local checkpoint path, or `random` when named.
Nothing is ever downloaded; missing weights raise WeightsNotFoundError."""
from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Optional

from ..errors import WeightsNotFoundError
from .backbones import BACKBONES_FILE, RANDOM, BackboneSpec

logger = logging.getLogger(__name__)

CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt")


@dataclass(frozen=True)
class ResolvedWeights:
    """Where the weights are (None for random init) and their provenance label."""

    path: Optional[str]
    label: str  # e.g. `openai+sha256:0123abcd4567` or `random-init`


def looks_like_path(weights: str) -> bool:
    """True when `weights` names a file rather than a pretrained tag."""
    return (os.sep in weights or weights.startswith(("~", ".")) or weights.endswith(CHECKPOINT_SUFFIXES))


@lru_cache(maxsize=32)
def file_sha256(path: str, size: int, mtime: float) -> str:
    """sha256 hex digest of a file (cached by path, size and mtime)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def _label(name: str, path: str) -> str:
    st = os.stat(path)
    return f"{name}+sha256:{file_sha256(path, st.st_size, st.st_mtime)[:12]}"


def _missing(spec: BackboneSpec, what: str) -> WeightsNotFoundError:
    return WeightsNotFoundError(
        f"weights for backbone {spec.name!r} ({spec.architecture}) are not available offline: {what}; "
        f"put the checkpoint file on this machine and set `weights: /path/to/checkpoint` for it in "
        f"{BACKBONES_FILE} (or add a backbone entry with a local path and pass `--backbone` with its name)")


def resolve_local(spec: BackboneSpec) -> ResolvedWeights:
    """A local checkpoint path; raises WeightsNotFoundError when it is not a file."""
    path = Path(spec.weights).expanduser()
    if not path.is_file():
        raise _missing(spec, f"no checkpoint file at {path}")
    return ResolvedWeights(str(path.resolve()), _label(path.name, str(path)))


def _hf_cached(repo_id: str, filenames: list[str]) -> Optional[str]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover
        return None
    for filename in filenames:
        hit = try_to_load_from_cache(repo_id, filename)
        if isinstance(hit, str) and os.path.isfile(hit):
            return hit
    return None


def resolve_open_clip(spec: BackboneSpec) -> ResolvedWeights:
    """Weights of an open_clip backbone: `random`, a local path, or a pretrained tag found
    in the hub cache. Raises WeightsNotFoundError otherwise (never downloads)."""
    if spec.weights == RANDOM:
        return ResolvedWeights(None, "random-init")
    if looks_like_path(spec.weights):
        return resolve_local(spec)
    import open_clip

    cfg = open_clip.get_pretrained_cfg(spec.architecture, spec.weights)
    if not cfg:
        tags = open_clip.list_pretrained_tags_by_model(spec.architecture)
        raise _missing(spec, f"{spec.weights!r} is neither a local file nor an open_clip tag of "
                             f"{spec.architecture} (tags: {', '.join(tags) or 'none'})")
    hit = None
    if cfg.get("hf_hub"):
        repo_id, filename = os.path.split(cfg["hf_hub"])  # 'org/name/file' or 'org/name/' (default file)
        names = [filename] if filename else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
        if filename.endswith((".bin", ".pth")):
            names.insert(0, filename[:-4] + ".safetensors")
        hit = _hf_cached(repo_id, names)
        where = f"open_clip tag {spec.weights!r} (hub repo {repo_id}) is not in the Hugging Face hub cache"
    if hit is None and cfg.get("url"):
        candidate = Path("~/.cache/clip").expanduser() / os.path.basename(cfg["url"])
        hit = str(candidate) if candidate.is_file() else None
        where = f"open_clip tag {spec.weights!r} is not in the hub cache nor at {candidate}"
    if hit is None:
        raise _missing(spec, where)
    return ResolvedWeights(hit, _label(spec.weights, hit))


def resolve_timm(spec: BackboneSpec) -> ResolvedWeights:
    """Weights of a timm backbone: `random`, a local path, or a timm pretrained tag
    (`<architecture>.<tag>`) found in the hub cache; raises WeightsNotFoundError otherwise."""
    if spec.weights == RANDOM:
        return ResolvedWeights(None, "random-init")
    if looks_like_path(spec.weights):
        return resolve_local(spec)
    repo_id = f"timm/{spec.architecture}.{spec.weights}"
    hit = _hf_cached(repo_id, ["model.safetensors", "pytorch_model.bin"])
    if hit is None:
        raise _missing(spec, f"timm tag {spec.weights!r} (hub repo {repo_id}) is not in the Hugging Face hub cache")
    return ResolvedWeights(hit, _label(spec.weights, hit))
