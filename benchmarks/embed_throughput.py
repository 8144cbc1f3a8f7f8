"""Embedding throughput: bare `model.encode_image` vs our pipeline, same images, model,
batch size and device, in one run.

The pipeline decodes each image file and its masks (COCO RLE) in DataLoader workers,
resizes, runs one forward per batch and pools every mask of an image with one matrix
product. The bare figure times only `model.encode_image` on already prepared tensors.
`ratio = pipeline images/s / bare images/s` (target >= 0.9). Real CamVid images and their
ground-truth segments when ../shared/data is present, synthetic images otherwise.

    .venv/bin/python benchmarks/embed_throughput.py --json [--device auto] [--images 48]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CAMVID = ROOT.parent / "shared" / "data" / "camvid"


def work_items(n: int, tmp: Path):
    """(items, source): WorkItems with RLE masks, from CamVid val or synthetic files."""
    from PIL import Image
    from pycocotools import mask as mask_utils

    from knnclip_core.embedders.loader import WorkItem

    if (CAMVID / "val").is_dir():
        files = sorted((CAMVID / "val").glob("*.png"))[:n]
        labels = [np.asarray(Image.open(CAMVID / "valannot" / f.name)) for f in files]
        source = f"camvid val ({len(files)} images)"
    else:
        rng = np.random.default_rng(0)
        files, labels = [], []
        for i in range(n):
            f = tmp / f"synthetic_{i}.png"
            Image.fromarray(rng.integers(0, 256, (360, 480, 3), dtype=np.uint8)).save(f)
            files.append(f)
            labels.append(np.repeat(np.repeat(rng.integers(0, 10, (9, 12)), 40, 0), 40, 1).astype(np.uint8))
        source = f"synthetic ({n} images)"
    items = []
    for f, lab in zip(files, labels):
        rles = [mask_utils.encode(np.asfortranarray((lab == c).astype(np.uint8)))["counts"].decode()
                for c in np.unique(lab) if c != 11]
        items.append(WorkItem(key=f.name, path=str(f), height=lab.shape[0], width=lab.shape[1], masks_rle=rles))
    return items, source


def bare_images_per_s(emb, items, batch_size: int, repeats: int) -> float:
    """encode_image alone on prepared input tensors (decode and resize not timed)."""
    import torch

    from knnclip_core.embedders.loader import read_rgb

    xs = torch.from_numpy(np.stack([emb.preprocess(read_rgb(it.path)) for it in items]))
    batches = [xs[i:i + batch_size] for i in range(0, len(xs), batch_size)]
    with torch.inference_mode(), emb.autocast():
        emb.model.encode_image(batches[0].to(emb.device))  # warm-up
        _sync(emb)
        t0 = time.perf_counter()
        for _ in range(repeats):
            for b in batches:
                emb.model.encode_image(b.to(emb.device, non_blocking=True))
        _sync(emb)
    return repeats * len(xs) / (time.perf_counter() - t0)


def pipeline_rates(emb, items, batch_size: int, num_workers, repeats: int) -> tuple[float, float]:
    """(images/s, segments/s) of iter_embeddings from files to pooled vectors."""
    from knnclip_core.embedders.loader import iter_embeddings

    for _ in iter_embeddings(emb, items[:batch_size], batch_size=batch_size, num_workers=0):
        pass  # warm-up
    n_img = n_seg = 0
    t0 = time.perf_counter()
    for _ in range(repeats):
        for _item, vecs, err in iter_embeddings(emb, items, batch_size=batch_size, num_workers=num_workers):
            assert err is None, err
            n_img += 1
            n_seg += len(vecs)
    _sync(emb)
    dt = time.perf_counter() - t0
    return n_img / dt, n_seg / dt


def _sync(emb) -> None:
    import torch

    if emb.device.startswith("cuda"):
        torch.cuda.synchronize()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backbone", default="vit-b-32-random", help="backbone (random init: no weights needed)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--images", type=int, default=48)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--num-workers", type=int, default=None, help="DataLoader workers (default: auto, as `knnclip embed`)")
    p.add_argument("--repeats", type=int, default=1, help="passes over the images per measurement")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)

    import torch

    from knnclip_core.embedders import get_embedder
    from knnclip_core.embedders.loader import auto_workers

    emb = get_embedder(args.backbone, device=args.device)
    with tempfile.TemporaryDirectory() as tmp:
        items, source = work_items(args.images, Path(tmp))
        bare = bare_images_per_s(emb, items, args.batch_size, args.repeats)
        ips, sps = pipeline_rates(emb, items, args.batch_size, args.num_workers, args.repeats)
    seg_per_image = sum(len(it.masks_rle) for it in items) / len(items)
    device = emb.device if not emb.device.startswith("cuda") else f"cuda ({torch.cuda.get_device_name(0)})"
    result = {
        "ratio": round(ips / bare, 4), "bare_images_per_s": round(bare, 3), "images_per_s": round(ips, 3),
        "segments_per_s": round(sps, 3), "segments_per_image": round(seg_per_image, 3),
        "one_forward_serves_all_masks": bool(sps >= 0.999 * seg_per_image * ips),
        "device": device, "torch_threads": torch.get_num_threads(), "backbone": args.backbone,
        "embedder_id": emb.id, "batch_size": args.batch_size, "num_workers": auto_workers(emb.device) if args.num_workers is None else args.num_workers,
        "images": len(items), "repeats": args.repeats, "source": source,
    }
    print(f"{args.backbone} on {device}: bare encode_image {bare:.1f} img/s; pipeline {ips:.1f} img/s, "
          f"{sps:.1f} seg/s ({seg_per_image:.1f} seg/img); ratio {ips / bare:.3f}")
    if args.json:
        print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
