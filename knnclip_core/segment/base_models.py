"""Base models: the second of the two roles in kNN-CLIP inference.

The *memory backbone* (any embedder: dinov2, classic, a CLIP image tower) makes the
memory's vectors and the query vectors; a release records it. The *base model* proposes
masks and gives P_base, class scores over any class names, which retrieval is fused with
(fusion.fuse). The worker settings name both (`worker.memory_backbone`,
`worker.base_model`); they are configured apart, so a DINOv2 memory can sit beside a CLIP
ConvNeXt base model (the paper's pairing) or a `classic` memory beside no base model at all
(the offline pairing).

Plug-in point: `BASE_MODELS`, a registry (duplicate names refused) of factories

    factory(spec: BaseModelSpec, memory_embedder, get_embedder) -> BaseModel

where `get_embedder(name)` gives a loaded embedder of configs/backbones.yaml (shared with
the memory side when the names agree). A base model implements:

    id: str                 provenance ("none", "clip|<embedder id>", ...): /release, eval
                            reports and the promotion gate record it
    open_vocabulary: bool   True when `scores` answers (then extra class names are allowed)
    propose(image, method, masks=None, **options) -> list of bool (H, W) masks
                            (default: the proposal generator `method` of proposals.py;
                            a model with its own mask head, e.g. FC-CLIP, returns its own
                            unless method == 'masks')
    scores(image, masks, classes, shared=None) -> (n, C) float32 rows summing to 1, or None
                            (`shared` = (embedder id, (n, D) vectors) the memory backbone
                            pooled for these masks; a model using that embedder may reuse them)
    warm_up(classes) -> None

Built in: `none` (retrieval only) and `clip` (an open_clip model: dense features pooled in
each mask through the embedder's `embed_masks`, against prompt-ensembled text embeddings
from its `encode_text`). Register FC-CLIP or SAM+CLIP with `BASE_MODELS.add("fc-clip",
factory)`; the worker does not change.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import numpy as np

from ..errors import KnnclipError
from ..plugins import Registry
from .fusion import clip_scores
from .proposals import propose

logger = logging.getLogger(__name__)

TEXT_CACHE_LIMIT = 20_000  # cached text embeddings per base model (warm-up vocabulary always kept)


@dataclass
class BaseModelSpec:
    """Which base model to build (the `worker.base_model` settings)."""

    kind: str = "none"              # a BASE_MODELS name
    backbone: Optional[str] = None  # its backbone in configs/backbones.yaml (None: the memory backbone)
    options: dict = field(default_factory=dict)  # extra factory keyword options


class BaseModel:
    """No base model: proposals from the generators, no P_base (retrieval decides alone)."""

    open_vocabulary = False

    def __init__(self):
        self.id = "none"

    def propose(self, image: np.ndarray, method: str, masks: Optional[Sequence[np.ndarray]] = None,
                **options) -> list[np.ndarray]:
        """Bool (H, W) masks of `image` from the proposal generator `method` (proposals.py).
        Raises KnnclipError for an unknown generator, InputError for bad masks."""
        return propose(method, image, masks=masks, **options)

    def scores(self, image: np.ndarray, masks: Sequence[np.ndarray], classes: Sequence[str],
               shared: Optional[tuple[str, np.ndarray]] = None) -> Optional[np.ndarray]:
        """P_base (n, C) over `classes` for the masks, or None (this model gives none)."""
        return None

    def warm_up(self, classes: Sequence[str]) -> None:
        """Prepare for requests over `classes` (e.g. encode their text once)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.id!r})"


class ClipBaseModel(BaseModel):
    """An open_clip model as base model: dense features pooled in each mask
    (`embedder.embed_masks`), softmax of logit_scale x cosine against the prompt-ensembled
    text embeddings of the class names (`embedder.encode_text`)."""

    open_vocabulary = True

    def __init__(self, embedder):
        super().__init__()
        if not getattr(embedder, "has_text", False):
            raise KnnclipError(f"the clip base model needs a backbone with a text tower; {embedder.id!r} has none.")
        self.embedder = embedder
        self.id = f"clip|{embedder.id}"
        self._text: dict[str, np.ndarray] = {}
        self._keep: set[str] = set()

    def text_embeddings(self, classes: Sequence[str]) -> np.ndarray:
        """(C, d) text embeddings of `classes`, cached by name (thread-safe: a request works
        on the dict it read, even when another request starts the cache over)."""
        if not classes:
            return np.zeros((0, self.embedder.dim), np.float32)
        cache = self._text
        missing = [c for c in dict.fromkeys(classes) if c not in cache]
        if missing:
            fresh = {c: np.asarray(v, dtype=np.float32)
                     for c, v in zip(missing, self.embedder.encode_text(list(missing)))}
            if len(cache) + len(fresh) > TEXT_CACHE_LIMIT:  # requests' extra names: start over
                cache = {c: v for c, v in cache.items() if c in self._keep}
                self._text = cache
            cache.update(fresh)
        return np.stack([cache[c] for c in classes])

    def scores(self, image, masks, classes, shared=None) -> np.ndarray:
        if not len(masks):
            return np.zeros((0, len(classes)), np.float32)
        if shared is not None and shared[0] == self.embedder.id:
            x = shared[1]  # the memory backbone is this very model: one forward serves both roles
        else:
            x = self.embedder.embed_masks(image, list(masks))
        return clip_scores(x, self.text_embeddings(classes), self.embedder.logit_scale)

    def warm_up(self, classes) -> None:
        self._keep |= set(classes)
        self.text_embeddings(list(classes))


BaseModelFactory = Callable[..., BaseModel]
BASE_MODELS: Registry[BaseModelFactory] = Registry("base model")


@BASE_MODELS.register("none")
def _no_base_model(spec: BaseModelSpec, memory_embedder, get_embedder) -> BaseModel:
    return BaseModel()


@BASE_MODELS.register("clip")
def _clip_base_model(spec: BaseModelSpec, memory_embedder, get_embedder) -> BaseModel:
    if spec.options:
        raise KnnclipError(f"the clip base model takes no options (got {sorted(spec.options)}).")
    return ClipBaseModel(get_embedder(spec.backbone) if spec.backbone else memory_embedder)


def build_base_model(spec: Optional[BaseModelSpec], memory_embedder,
                     get_embedder: Optional[Callable[[str], object]] = None) -> BaseModel:
    """The base model `spec` names (None: no base model).

    `get_embedder(name)` loads a backbone (default: knnclip_core.embedders.get_embedder on the
    memory embedder's device). Raises KnnclipError for an unknown kind or a backbone that
    cannot serve it."""
    spec = spec or BaseModelSpec()
    if get_embedder is None:
        from ..embedders import get_embedder as load

        def get_embedder(name):
            return load(name, device=getattr(memory_embedder, "device", "cpu"))
    try:
        factory = BASE_MODELS.get(spec.kind)
    except KeyError as exc:
        raise KnnclipError(str(exc.args[0]) + " (worker.base_model.kind).") from None
    model = factory(spec, memory_embedder, get_embedder)
    logger.info("base model %s", model.id)
    return model
