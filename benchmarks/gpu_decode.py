"""JPEG decoding on the host (what a DataLoader worker does today) against batched nvJPEG
decoding on the GPU (`torchvision.io.decode_jpeg(device="cuda")`), on the same files, in
alternating rounds. Tells whether decoding on the device would feed the forward faster than
more host workers.

    python benchmarks/gpu_decode.py --json [--images 33] [--rounds 5]

Host figures are one core's: `open_rgb` with the DCT draft the embedder asks for (224 px) and
a full-size decode; the GPU figure decodes full size and resizes to 224 on the device (what the
pipeline would need), synchronised. `max_abs_pixel_diff`: full-size GPU pixels against Pillow's
(IDCTs differ by a few levels). Last stdout line with --json: one JSON object.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

ADE20K = REPO.parent / "shared" / "data" / "ade20k" / "ADEChallengeData2016" / "images" / "validation"


def jpeg_files(n: int, tmp: Path) -> tuple[list[Path], str]:
    """ADE20K validation JPEGs when present, else seeded synthetic 480x640 JPEGs."""
    if ADE20K.is_dir():
        files = sorted(ADE20K.glob("*.jpg"))[:n]
        return files, f"ade20k ({len(files)} images)"
    from PIL import Image

    rng = np.random.default_rng(0)
    files = []
    for i in range(n):
        f = tmp / f"synthetic_{i}.jpg"
        Image.fromarray(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)).save(f, quality=90)
        files.append(f)
    return files, f"synthetic ({n} images)"


def host_rate(paths: list[Path], draft: bool) -> float:
    """Images/s decoding each file on this core, as a DataLoader worker does."""
    from knnclip_core.embedders.image_io import open_rgb

    t0 = time.perf_counter()
    for p in paths:
        with open_rgb(str(p), draft_hw=(224, 224) if draft else None) as im:
            np.asarray(im)
    return len(paths) / (time.perf_counter() - t0)


def gpu_rate(datas: list, side: int = 224) -> float:
    """Images/s of one batched nvJPEG decode of every file plus a resize to `side` on the GPU."""
    import torch
    import torch.nn.functional as F
    from torchvision.io import ImageReadMode, decode_jpeg

    torch.cuda.synchronize()
    t0 = time.perf_counter()
    images = decode_jpeg(datas, mode=ImageReadMode.RGB, device="cuda")
    for im in images:
        F.interpolate(im[None].float(), size=(side, side), mode="bilinear", antialias=True, align_corners=False)
    torch.cuda.synchronize()
    return len(datas) / (time.perf_counter() - t0)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=33)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)

    import torch
    from PIL import Image
    from torchvision.io import ImageReadMode, decode_jpeg, read_file

    if not torch.cuda.is_available():
        print("gpu_decode.py needs a CUDA device: torch.cuda.is_available() is False.", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        paths, source = jpeg_files(args.images, Path(tmp))
        datas = [read_file(str(p)) for p in paths]
        gpu_rate(datas)  # warm-up: nvJPEG handles, kernels
        draft, full, gpu = [], [], []
        for _ in range(max(1, args.rounds)):
            draft.append(host_rate(paths, draft=True))
            full.append(host_rate(paths, draft=False))
            gpu.append(gpu_rate(datas))
        diffs = []
        for p, d in zip(paths, datas):
            ours = decode_jpeg(d, mode=ImageReadMode.RGB, device="cuda").permute(1, 2, 0).cpu().numpy()
            theirs = np.asarray(Image.open(p).convert("RGB"))
            diffs.append(int(np.abs(ours.astype(np.int16) - theirs.astype(np.int16)).max()))
    result = {
        "source": source, "images": len(paths), "rounds": len(gpu), "device": torch.cuda.get_device_name(0),
        "host_draft_images_per_s": round(statistics.median(draft), 1),
        "host_full_images_per_s": round(statistics.median(full), 1),
        "gpu_images_per_s": round(statistics.median(gpu), 1),
        "host_cores_to_match_gpu": round(statistics.median(gpu) / statistics.median(draft), 1),
        "max_abs_pixel_diff": max(diffs),
    }
    print(f"JPEG decode, {source}: one host core {result['host_draft_images_per_s']} img/s with the 224 px draft "
          f"({result['host_full_images_per_s']} full size); nvJPEG batched + resize on {result['device']} "
          f"{result['gpu_images_per_s']} img/s = {result['host_cores_to_match_gpu']} host cores; "
          f"max pixel difference {result['max_abs_pixel_diff']}")
    if args.json:
        print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
