"""Issue 20's own check, through the product's command line: a CamVid drive the memory never saw.

The CamVid train frames of every drive but `--drive` (default 0006R0) are linked into a
semantic-png folder under a temporary root and go through `knnclip ingest -> embed -> curate
-> publish` in a fresh workspace (the default preset: classic-v2, the release-calibrated T);
the frames of `--drive` are then evaluated with `knnclip eval --masks-from gt` and
`--masks-from proposals` (the worker's default proposals) against that release. Nothing is
tuned here. Prints human lines, then (with --json) one JSON object as the last stdout line:
per mode mIoU, segment accuracy, pixel accuracy, unknown segments, seconds, plus the release's
T and where it came from, and the share of the gap between `--baseline-miou` (the issue's
measured mIoU with the old default proposals, 0.15) and the GT-mask mIoU that the proposals close.

    .venv/bin/python benchmarks/unseen_drive.py --json [--drive 0006R0] [--limit N] [--memory-limit N]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "camvid"
KNNCLIP = [str(Path(sys.executable).with_name("knnclip"))]  # the console script of this environment
ISSUE_BASELINE_MIOU = 0.15  # issue 20: mIoU on unseen CamVid drives with the default proposals when it was filed
VOID = "11"


def link_frames(src: Path, dst: Path, keep, limit: int | None = None) -> list[str]:
    """Hard-link (else copy) the CamVid train frames for which keep(stem) holds (at most `limit`,
    evenly spaced) and their label PNGs into dst/images and dst/masks; their stems."""
    (dst / "images").mkdir(parents=True)
    (dst / "masks").mkdir()
    frames = [p for p in sorted((src / "train").glob("*.png")) if keep(p.stem)]
    if limit and limit < len(frames):
        frames = [frames[round(i * (len(frames) - 1) / max(limit - 1, 1))] for i in range(limit)]
    for image in frames:
        for a, b in ((image, dst / "images" / image.name), (src / "trainannot" / image.name, dst / "masks" / image.name)):
            try:
                os.link(a, b)
            except OSError:
                shutil.copyfile(a, b)
    return [p.stem for p in frames]


def knnclip(env: dict, *args: str) -> dict:
    """Run one knnclip command with --json; its last stdout line as JSON (its stderr passed on)."""
    out = subprocess.run([*KNNCLIP, *args, "--json"], env=env, cwd=ROOT, check=True, stdout=subprocess.PIPE, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def drive_of(stem: str) -> str:
    return stem.split("_", 1)[0]


def run(data: Path, drive: str, limit: int | None, memory_limit: int | None, baseline: float) -> dict:
    with tempfile.TemporaryDirectory(prefix="knnclip-unseen-") as tmp:
        tmp = Path(tmp)
        memory_frames = link_frames(data, tmp / "memory", lambda stem: drive_of(stem) != drive, memory_limit)
        query_frames = link_frames(data, tmp / "queries", lambda stem: drive_of(stem) == drive, limit)
        if not memory_frames or not query_frames:
            raise SystemExit(f"{data}: no train frames of drive {drive} (or none of the others)")
        env = {**os.environ, "KNNCLIP_HOME": str(tmp / "home")}
        common = ["--format", "semantic-png", "--classes", str(data / "classes.txt"), "--ignore", VOID]
        t = time.perf_counter()
        knnclip(env, "ingest", str(tmp / "memory"), "--dataset", "camvid-memory", *common)
        knnclip(env, "embed")
        knnclip(env, "curate")
        published = knnclip(env, "publish")
        build_s = time.perf_counter() - t
        report = {"data": str(data), "held_out_drive": drive, "memory_frames": len(memory_frames),
                  "memory_drives": sorted({drive_of(f) for f in memory_frames}), "query_frames": len(query_frames),
                  "release_vectors": published["vectors"],
                  "embedder_id": published["embedder_id"], "build_seconds": round(build_s, 1), "modes": {}}
        for mode in ("gt", "proposals"):
            t = time.perf_counter()
            r = knnclip(env, "eval", str(tmp / "queries"), "--dataset", f"camvid-{drive}", *common,
                        "--release", str(published["version"]), "--masks-from", mode, "--no-record")
            report["threshold"] = r["confidence_threshold"]
            report["modes"][mode] = {"miou": round(r["miou"], 4), "pixel_accuracy": round(r["pixel_accuracy"], 4),
                                     "segment_accuracy": None if r["segment_accuracy"] is None else round(r["segment_accuracy"], 4),
                                     "segments": r["segments"], "unknown_segments": r["unknown_segments"],
                                     "seconds": round(time.perf_counter() - t, 1),
                                     "per_class_iou": {k: round(v, 4) for k, v in r["per_class_iou"].items()}}
    gt, props = report["modes"]["gt"]["miou"], report["modes"]["proposals"]["miou"]
    report["baseline_miou"] = baseline
    report["gap_closed"] = round((props - baseline) / (gt - baseline), 4) if gt > baseline else None
    return report


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=DATA, help="CamVid folder (train, trainannot, classes.txt)")
    p.add_argument("--drive", default="0006R0", help="the drive kept out of the memory and evaluated")
    p.add_argument("--limit", type=int, help="evaluate at most N frames of the drive (evenly spaced)")
    p.add_argument("--memory-limit", type=int, help="build the memory from at most N frames (evenly spaced)")
    p.add_argument("--baseline-miou", type=float, default=ISSUE_BASELINE_MIOU)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    r = run(args.data, args.drive, args.limit, args.memory_limit, args.baseline_miou)
    T = r["threshold"]
    print(f"memory: {r['memory_frames']} frames -> {r['release_vectors']} vectors ({r['build_seconds']} s); "
          f"T {T['value']} ({T['source']}); drive {r['held_out_drive']}: {r['query_frames']} frames")
    for mode, m in r["modes"].items():
        print(f"  {mode:9s} mIoU {m['miou']:.3f}  segment accuracy {m['segment_accuracy']}  pixel accuracy "
              f"{m['pixel_accuracy']:.3f}  unknown {m['unknown_segments']}  ({m['seconds']} s)")
    print(f"  proposals close {r['gap_closed']} of the gap from {r['baseline_miou']} to the GT-mask mIoU")
    if args.json:
        print(json.dumps(r, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
