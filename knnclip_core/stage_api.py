"""The library's stages in the one shape `stage(settings, ws, **asked) -> Result`: ingest,
embed, curate. `settings` carries the overrides already (knnclip_core.overrides, applied by
the CLI or the flow); `asked` is only what is not a setting."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable, Optional

from .config import Settings
from .progress import ProgressArg
from .workspace import Workspace
from .stages.results import CurateResult, EmbedResult, IngestReport

logger = logging.getLogger(__name__)


def ingest(settings: Settings, ws: Workspace, *, path: str | Path, format: str = "auto",
           split: str = "validation", dataset: Optional[str] = None, images: Optional[str | Path] = None,
           masks: Optional[str | Path] = None, classes: Optional[str | Path] = None, ignore: Iterable[int] = (),
           progress: ProgressArg = True, extra_params: Optional[dict] = None) -> IngestReport:
    """Ingest the dataset at `path` (read as `format` with the reader options) into the catalog
    of `ws`; the minimum segment area is `settings.ingest.min_area`. Raises InputError when
    nothing can be read."""
    from .ingest import ingest_path

    ws.ensure()  # the settings' workspace (Workspace.from_settings), as the CLI and flows build it
    return ingest_path(settings, path, format, split=split, dataset=dataset, images=images, masks=masks,
                       classes=classes, ignore=ignore, progress=progress, extra_params=extra_params)


def embed(settings: Settings, ws: Workspace, *, shard: tuple[int, int] = (0, 1), progress: ProgressArg = False,
          embedder=None) -> EmbedResult:
    """Embed the catalog segments of `ws` missing from the memory, as `settings.embed` says
    (backbone, device, batch size, workers); `shard=(i, n)`: only shard i of n of the images."""
    from .embed_stage import run_embed

    ws.ensure()
    return EmbedResult.from_json(run_embed(settings, shard=tuple(shard), progress=progress, embedder=embedder))


def curate(settings: Settings, ws: Workspace, *, backbone: Optional[str] = None, dedup_method: Optional[str] = None,
           dedup_nprobe: Optional[int] = None) -> CurateResult:
    """Curate the memory of `backbone` (a name, an embedder id, or None for the only memory) as
    `settings.curate` says (see knnclip_core.memory.curate)."""
    from .memory.curate import curate as curate_memory

    return CurateResult.from_json(curate_memory(settings, ws, backbone, dedup_method=dedup_method,
                                                dedup_nprobe=dedup_nprobe))
