"""Embedding throughput: bare `model.encode_image` vs our pipeline, same images, model,
batch size and device, in one run.

The pipeline decodes each image file, resizes it and turns its masks (COCO RLE) into grid
weights (in DataLoader workers when there are cores to spare), runs one forward per batch
and pools every mask of an image with one matrix product. The bare figure times only
`model.encode_image` on already decoded, resized and normalised tensors. For context, the
"plain loop" is what embedding whole images costs without knnclip (Pillow decode, the
model's open_clip eval transform, `encode_image`). All three are measured in alternating
rounds; the medians are reported.
`ratio = pipeline images/s / bare images/s` (target >= 0.9). Real images and their
ground-truth segments when ../shared/data is present (CamVid val PNGs by default, ADE20K
validation JPEGs with `--source ade20k`), synthetic images otherwise.

    .venv/bin/python benchmarks/embed_throughput.py --json [--device auto] [--images 48] [--source camvid]
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
from benchmarks.forward_counter import ForwardCounter, cuda_sync  # noqa: E402

CAMVID = ROOT.parent / "shared" / "data" / "camvid"
ADE20K = ROOT.parent / "shared" / "data" / "ade20k" / "ADEChallengeData2016"


SOURCES = {  # name -> (images, annotations, image glob, label to leave out)
    "camvid": (CAMVID / "val", CAMVID / "valannot", "*.png", 11),
    "camvid-train": (CAMVID / "train", CAMVID / "trainannot", "*.png", 11),
    "ade20k": (ADE20K / "images" / "validation", ADE20K / "annotations" / "validation", "*.jpg", 0),
}


def work_items(n: int, tmp: Path, source: str = "camvid"):
    """(items, source): WorkItems with RLE masks, from real images and their ground-truth
    segments (CamVid val PNGs or ADE20K validation JPEGs), or synthetic PNGs when absent."""
    from PIL import Image
    from pycocotools import mask as mask_utils

    from knnclip_core.embedders.loader import WorkItem

    images, annotations, pattern, ignore = SOURCES[source]
    if images.is_dir():
        files = sorted(images.glob(pattern))[:n]
        labels = [np.asarray(Image.open(annotations / (f.stem + ".png"))) for f in files]
        source = f"{source} ({len(files)} images)"
    else:
        rng = np.random.default_rng(0)
        files, labels, ignore = [], [], -1
        for i in range(n):
            f = tmp / f"synthetic_{i}.png"
            Image.fromarray(rng.integers(0, 256, (360, 480, 3), dtype=np.uint8)).save(f)
            files.append(f)
            labels.append(np.repeat(np.repeat(rng.integers(0, 10, (9, 12)), 40, 0), 40, 1).astype(np.uint8))
        source = f"synthetic ({n} images)"
    items = []
    for f, lab in zip(files, labels):
        rles = [mask_utils.encode(np.asfortranarray((lab == c).astype(np.uint8)))["counts"].decode()
                for c in np.unique(lab) if c != ignore]
        items.append(WorkItem(key=f.name, path=str(f), height=lab.shape[0], width=lab.shape[1], masks_rle=rles))
    return items, source


def bare_images_per_s(emb, items, batch_size: int, repeats: int) -> float:
    """encode_image alone on prepared input tensors (decode and resize not timed)."""
    import torch

    from knnclip_core.embedders.image_io import read_rgb

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


def plain_loop_images_per_s(emb, items, batch_size: int, repeats: int) -> float | None:
    """What a user without knnclip would run to embed whole images: Pillow decode, the
    model's own open_clip eval transform, `encode_image` (no masks). None for non-open_clip."""
    if emb.family != "open_clip":
        return None
    import open_clip
    import torch
    from PIL import Image

    transform = open_clip.image_transform(emb.input_hw, is_train=False, mean=emb.mean, std=emb.std)
    paths = [it.path for it in items]

    def one_pass(chunk):
        for i in range(0, len(chunk), batch_size):
            x = torch.stack([transform(Image.open(p).convert("RGB")) for p in chunk[i:i + batch_size]])
            emb.model.encode_image(x.to(emb.device, non_blocking=True))

    with torch.inference_mode(), emb.autocast():
        one_pass(paths[:batch_size])  # warm-up
        _sync(emb)
        t0 = time.perf_counter()
        for _ in range(repeats):
            one_pass(paths)
        _sync(emb)
    return repeats * len(paths) / (time.perf_counter() - t0)


def pipeline_rates(emb, items, batch_size: int, num_workers, repeats: int) -> tuple[float, float, float, float]:
    """(images/s, segments/s, forwards per image, start-up seconds) of one iter_embeddings
    job over the images `repeats` times, from files to pooled vectors, as `knnclip embed`
    runs a job (worker start-up paid once). images/s excludes the start-up (the time to
    the first batch, also reported); forwards are counted by a hook on the dense forward."""
    from knnclip_core.embedders.loader import iter_embeddings

    for _ in iter_embeddings(emb, items[:batch_size], batch_size=batch_size, num_workers=0):
        pass  # warm-up
    job = list(items) * repeats
    n_img = n_seg = 0
    first = None  # when the first batch came out: start-up ends there
    with ForwardCounter(emb) as counter:
        t0 = time.perf_counter()
        for _item, vecs, err in iter_embeddings(emb, job, batch_size=batch_size, num_workers=num_workers):
            assert err is None, err
            if first is None:
                first = time.perf_counter()
            n_img += 1
            n_seg += len(vecs)
        _sync(emb)
        t1 = time.perf_counter()
    if n_img > batch_size:  # one size group: the first batch is full, the rate is taken after it
        rate = (n_img - batch_size) / max(t1 - first, 1e-9)
    else:  # the whole job is one batch: nothing comes after the first, so the start-up counts
        rate = n_img / max(t1 - t0, 1e-9)
    return rate, rate * n_seg / max(n_img, 1), counter.images / max(n_img, 1), first - t0


def _sync(emb) -> None:
    cuda_sync(emb.device)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backbone", default="vit-b-32-random", help="backbone (random init: no weights needed)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--images", type=int, default=48)
    p.add_argument("--source", default="camvid", choices=sorted(SOURCES),
                   help="real images to use: CamVid val (PNG) or ADE20K validation (JPEG)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--num-workers", type=int, default=None, help="DataLoader workers (default: auto, as `knnclip embed`)")
    p.add_argument("--repeats", type=int, default=1,
                   help="passes over the images per measurement (the pipeline runs them as one job)")
    p.add_argument("--rounds", type=int, default=3,
                   help="alternating bare/pipeline measurements; the medians are reported")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)

    import torch

    from knnclip_core.embedders import get_embedder
    from knnclip_core.embedders.loader import auto_workers

    emb = get_embedder(args.backbone, device=args.device)
    if emb.prep.features_on_host:  # classic: no model forward; against its own features and today's path
        return host_features_main(emb, args)
    with tempfile.TemporaryDirectory() as tmp:
        items, source = work_items(args.images, Path(tmp), args.source)
        bares, rates, plains = [], [], []
        for _ in range(max(1, args.rounds)):  # interleaved, so that drift in the machine hits all
            bares.append(bare_images_per_s(emb, items, args.batch_size, args.repeats))
            rates.append(pipeline_rates(emb, items, args.batch_size, args.num_workers, args.repeats))
            plains.append(plain_loop_images_per_s(emb, items, args.batch_size, args.repeats))
        bare = float(np.median(bares))
        plain = None if plains[0] is None else float(np.median(plains))
        ips, sps = float(np.median([r[0] for r in rates])), float(np.median([r[1] for r in rates]))
    seg_per_image = sum(len(it.masks_rle) for it in items) / len(items)
    device = emb.device if not emb.device.startswith("cuda") else f"cuda ({torch.cuda.get_device_name(0)})"
    result = {
        "ratio": round(ips / bare, 4), "bare_images_per_s": round(bare, 3), "images_per_s": round(ips, 3),
        "segments_per_s": round(sps, 3), "segments_per_image": round(seg_per_image, 3),
        "forwards_per_image": round(float(np.median([r[2] for r in rates])), 4),
        "pipeline_startup_s": round(float(np.median([r[3] for r in rates])), 3),
        "pipeline_startup_s_per_round": [round(r[3], 3) for r in rates],
        "device": device, "torch_threads": torch.get_num_threads(), "backbone": args.backbone,
        "embedder_id": emb.id, "batch_size": args.batch_size, "num_workers": auto_workers(emb.device) if args.num_workers is None else args.num_workers,
        "images": len(items), "repeats": args.repeats, "rounds": len(bares), "source": source,
        "ratio_per_round": [round(r[0] / b, 4) for r, b in zip(rates, bares)],
        "plain_loop_images_per_s": None if plain is None else round(plain, 3),
        "ratio_vs_plain_loop": None if plain is None else round(ips / plain, 4),
    }
    print(f"{args.backbone} on {device}: bare encode_image {bare:.1f} img/s; pipeline {ips:.1f} img/s, "
          f"{sps:.1f} seg/s ({seg_per_image:.1f} seg/img, {result['forwards_per_image']} forwards/img); "
          f"ratio {ips / bare:.3f}"
          + ("" if plain is None else f"; plain open_clip loop (whole images) {plain:.1f} img/s"))
    if args.json:
        print(json.dumps(result, sort_keys=True))
    return 0


def host_features_main(emb, args) -> int:
    """classic-v1/v2: benchmarks/classic_throughput.py's figures, printed as the others."""
    from benchmarks.classic_throughput import measure

    with tempfile.TemporaryDirectory() as tmp:
        items, source = work_items(args.images, Path(tmp), args.source)
        result = measure(emb, items, args.batch_size, args.num_workers, args.rounds)
    result.update({"device": emb.device, "backbone": args.backbone, "embedder_id": emb.id, "source": source,
                   "batch_size": args.batch_size, "images": len(items), "repeats": 1,
                   "plain_loop_images_per_s": None, "ratio_vs_plain_loop": None})
    print(f"{args.backbone}: features alone {result['bare_images_per_s']:.2f} img/s (today's {result['today_bare_images_per_s']:.2f}); pipeline "
          f"{result['segments_per_s']:.1f} seg/s ({result['job_segments_per_s']:.1f} with start-up "
          f"{result['pipeline_startup_s']:.1f} s, {result['num_workers']} workers) against today's path "
          f"{result['today_segments_per_s']:.1f} seg/s: x{result['speedup_vs_today']} (target 4); max abs "
          f"difference vs today {result['max_abs_diff_vs_today']:.2e}, vs float64 {result['max_abs_diff_vs_float64']:.2e} "
          f"(today vs float64 {result['today_max_abs_diff_vs_float64']:.2e}); load {result['load_average']}")
    if args.json:
        print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
