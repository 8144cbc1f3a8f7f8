"""CamVid ground-truth segments embedded once per backbone, cached as .npz (benchmarks only).

`camvid_vectors(root, split, backbone, limit, cache_dir)` returns (x (n, D) float32, names (n,)
class names, images (n,) image file stems): the segments of a CamVid split read by the
product's semantic-png reader (class 11 `Unlabelled` ignored) and embedded with the
backbone's `embed_masks`. With `cache_dir` the result is stored as
`<cache_dir>/camvid-<split>-<backbone>-<limit>.npz` together with the embedder id, and read
back when the embedder id matches (embedding CamVid with classic-v2 takes minutes on 2 cores).
A CamVid file stem starts with its drive (sequence): `0016E5_07959` -> `0016E5`.

    .venv/bin/python benchmarks/camvid_vectors.py --cache /tmp/camvid-cache [--backbone classic-v2]
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Optional

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "camvid"
VOID = 11

logger = logging.getLogger(__name__)


def sequence_of(stem: str) -> str:
    """The CamVid drive of an image file stem (`0016E5_07959` -> `0016E5`)."""
    return str(stem).split("_", 1)[0]


def _embed(embedder, root: Path, split: str, limit: Optional[int]):
    from knnclip_core.readers.semantic_png import SemanticPngReader
    from knnclip_core.evaluation.evaluate import samples_from_reader

    reader = SemanticPngReader(root / split, root / f"{split}annot", root / "classes.txt", ignore=[VOID])
    xs, names, images = [], [], []
    for sample in samples_from_reader(reader, limit=limit):
        xs.append(embedder.embed_masks(sample.image, [m for _, m in sample.segments]))
        names += [n for n, _ in sample.segments]
        images += [Path(str(sample.name)).stem] * len(sample.segments)
    return np.concatenate(xs).astype(np.float32), np.asarray(names), np.asarray(images)


def camvid_vectors(root: Path, split: str, backbone: str, limit: Optional[int] = None,
                   cache_dir: Optional[Path] = None, embedder=None):
    """(x, names, images) of the ground-truth segments of CamVid `split` (module docstring)."""
    if embedder is None:
        from knnclip_core.embedders import get_embedder

        embedder = get_embedder(backbone, device="cpu")
    path = Path(cache_dir) / f"camvid-{split}-{backbone}-{limit or 'all'}.npz" if cache_dir else None
    if path is not None and path.is_file():
        z = np.load(path, allow_pickle=False)
        if str(z["embedder_id"]) == embedder.id:
            return z["x"], z["names"], z["images"]
    t0 = time.perf_counter()
    x, names, images = _embed(embedder, root, split, limit)
    logger.info("embedded %d segments of CamVid %s in %.0f s", len(x), split, time.perf_counter() - t0)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, x=x, names=names, images=images, embedder_id=np.asarray(embedder.id))
    return x, names, images


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", type=Path, default=DEFAULT_DATA)
    p.add_argument("--backbone", default="classic-v2")
    p.add_argument("--limit", type=int)
    p.add_argument("--cache", type=Path, required=True, help="folder of the .npz files")
    args = p.parse_args(argv)
    for split in ("val", "train"):
        t0 = time.perf_counter()
        x, _, images = camvid_vectors(args.root, split, args.backbone, args.limit, args.cache)
        print(f"{split}: {len(x)} segments of {len(set(images))} images, {time.perf_counter() - t0:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
