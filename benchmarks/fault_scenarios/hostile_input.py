"""Fault scenario: seeded hostile datasets across the four readers, ingested for real.

Each case is one hostile item (truncated/corrupt images and masks, wrong modes and sizes,
bad JSON fields and types, lying headers, non-UTF-8 and unicode names, traversal,
symlinks, FIFOs, sockets, devices, duplicate ids across validation chunks) placed among
valid siblings; whole unreadable annotation files are cases too. A case passes when
ingest quarantines it with an expected reason (or, for a whole file, refuses it with one
clear sentence) while every valid sibling is ingested with its segments and every stored
RLE covers its image. Batches run in a child process: a crash, a hang (no answer within
BATCH_TIMEOUT_S) or memory over MEMORY_MB fails every case of that batch.

    run(workdir, cases=2000, seed=0) -> {"cases", "lost_or_corrupted", "tracebacks", "crashes", "hangs", ...}
    python benchmarks/fault_scenarios/hostile_input.py --cases 2000 [--bulk 300000] --json
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import select
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
BATCH_TIMEOUT_S = 180
MEMORY_MB = 1500
BATCH_CASES = 125
MAX_PIXELS = 1_000_000
READER_NAMES = ("semantic-png", "ade20k", "coco-instances", "coco-panoptic")
WHOLE_FILES = {  # a COCO file that cannot be read at all: one clear sentence, nothing ingested
    "deep_nesting": b'{"images": ' + b"[" * 100_000 + b"]" * 100_000 + b', "annotations": []}',
    "not_utf8": b'{"images": [], "annotations": [], "info": "\xff\xfe"}',
    "truncated": b'{"images": [{"id": 1, "file_name": "a.png"',
    "top_level_list": b"[]",
    "images_not_a_list": b'{"images": {"id": 1}, "annotations": []}',
    "empty": b"",
}


def plan(cases: int, seed: int) -> tuple[list[tuple[str, str]], list[dict]]:
    """(whole-file cases [(reader, variant)], batches [{reader, cases, seed}]) adding up to `cases`."""
    files = [(r, v) for v in WHOLE_FILES for r in ("coco-instances", "coco-panoptic")]
    files = files[: max(0, min(len(files), cases // 10))]
    rest, batches = cases - len(files), []
    for i, reader in enumerate(READER_NAMES):
        n = rest // len(READER_NAMES) + (i < rest % len(READER_NAMES))
        parts = -(-n // BATCH_CASES)
        for p in range(parts):
            k = n // parts + (p < n % parts)
            batches.append({"reader": reader, "cases": k, "seed": seed * 1000 + len(batches)})
    return files, [b for b in batches if b["cases"]]


# -------------------------------------------------------------------- child side

def _settings(workdir: Path, chunk: int):
    os.environ["KNNCLIP_INGEST__CHUNK_IMAGES"] = str(chunk)
    os.environ["KNNCLIP_INGEST__MAX_PIXELS"] = str(MAX_PIXELS)
    from knnclip_core.config import load_settings
    return load_settings(home=workdir / "ws")


def whole_file_case(workdir: Path, reader: str, variant: str) -> list[str]:
    """Failures of one unreadable annotation file (empty when refused with one sentence)."""
    from knnclip_core.errors import InputError
    from knnclip_core.ingest import ingest_path
    folder = workdir / "files" / f"{reader}-{variant}"
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "masks").mkdir(exist_ok=True)
    path = folder / "bad_val.json"
    path.write_bytes(WHOLE_FILES[variant])
    try:
        ingest_path(_settings(workdir, 16), path, reader, images=folder / "images", masks=folder / "masks",
                    progress=False)
    except InputError as exc:
        text = str(exc)
        return [] if text and "\n" not in text and str(path) in text else [f"{reader} {variant}: unclear error {text!r}"]
    except Exception as exc:  # a traceback for the user
        return [f"{reader} {variant}: traceback {type(exc).__name__}: {exc}"]
    return [f"{reader} {variant}: accepted"]


def check_batch(settings, batch, report) -> list[str]:
    """Failures of one ingested batch: hostile cases not quarantined as expected, valid
    siblings lost or short of segments, stored RLEs that do not cover their image."""
    from sqlmodel import select

    from knnclip_core.catalog import Image, Quarantine, Segment, session_scope
    from knnclip_core.embedders.rle_weights import parse_counts
    from knnclip_core.workspace import Workspace
    with session_scope(Workspace.from_settings(settings).catalog_url) as s:
        rows = [(q.item, q.reason, q.message) for q in s.exec(select(Quarantine).where(Quarantine.batch_id == report.batch_id))]
        images = {i.sha256: (Path(i.path).stem, i.width, i.height) for i in s.exec(select(Image).where(Image.batch_id == report.batch_id))}
        segments = [(g.image_sha256, g.mask_rle, g.area) for g in s.exec(select(Segment).where(Segment.batch_id == report.batch_id))]
    failures = [f"{batch.reader}: quarantine row without a one-line message: {r}" for r in rows
                if not r[1] or not r[2] or "\n" in r[2]]
    for c in batch.cases:
        if not any(c.item in item and reason in c.reasons for item, reason, _ in rows):
            got = [(item, reason) for item, reason, _ in rows if c.token in item or c.item in item][:3]
            failures.append(f"{c.reader} {c.kind} {c.token}: expected {sorted(c.reasons)} on {c.item!r}, got {got}")
    by_stem = {stem: sha for sha, (stem, _, _) in images.items()}
    count = {sha: 0 for sha in images}
    for sha, rle, area in segments:
        count[sha] = count.get(sha, 0) + 1
        _, w, h = images.get(sha, ("", 0, 0))
        runs = parse_counts(rle)
        if runs.sum() != w * h or int(runs[1::2].sum()) != area:
            failures.append(f"{batch.reader}: a stored segment of image {sha[:12]} does not cover its {w}x{h} image")
    for token, n in batch.valid.items():
        sha = by_stem.get(token)
        if sha is None or count.get(sha) != n:
            failures.append(f"{batch.reader}: valid sibling {token} lost or changed "
                            f"({'not ingested' if sha is None else f'{count.get(sha)} of {n} segments'})")
    return failures


def child(workdir: Path, units: list[dict]) -> None:
    """Run each unit (a whole-file case or a batch); one JSON line per unit on stdout."""
    sys.path[:0] = [str(ROOT), str(HERE)]
    import logging
    logging.disable(logging.WARNING)
    from _hostile.readers import build_batch
    from knnclip_core.ingest import ingest_path
    for i, unit in enumerate(units):
        if "variant" in unit:
            _emit({"unit": "file", "cases": 1, "failures": whole_file_case(workdir, unit["reader"], unit["variant"])})
            continue
        start = time.perf_counter()
        reader = unit["reader"]
        chunk = 8 if reader in ("semantic-png", "ade20k") else 16
        settings = _settings(workdir, chunk)
        base = workdir / f"b{unit['seed']}-{reader}"
        (base / "outside").mkdir(parents=True, exist_ok=True)
        batch, path = build_batch(reader, base / "ds", base / "outside", unit["cases"], unit["seed"], chunk)
        report = ingest_path(settings, path, reader, dataset=f"hostile-{unit['seed']}", min_area=1, progress=False,
                             images=base / "ds/images" if reader.startswith("coco") else None,
                             masks=base / "ds/ann/panoptic_val" if reader == "coco-panoptic" else None)
        rss = peak_rss_mb()
        failures = check_batch(settings, batch, report)
        if rss > MEMORY_MB:
            failures.append(f"{reader}: peak memory {rss:.0f} MB over {MEMORY_MB} MB")
        _emit({"unit": "batch", "reader": reader, "cases": len(batch.cases), "failures": failures,
               "kinds": sorted({c.kind for c in batch.cases}), "seconds": round(time.perf_counter() - start, 2),
               "rss_mb": round(rss)})


def peak_rss_mb() -> float:
    """This process's peak resident memory since it was exec'd (VmHWM: ru_maxrss would carry
    over the forking parent's peak, e.g. a pytest process that has loaded torch and MLflow)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _emit(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


# -------------------------------------------------------------------- parent side

def _run_child(workdir: Path, units: list[dict]) -> tuple[list[dict], str]:
    """Run the child until it finishes, dies or stalls; (its result lines, how it ended)."""
    proc = subprocess.Popen([sys.executable, __file__, "--child", str(workdir)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])})
    proc.stdin.write(json.dumps(units))
    proc.stdin.close()
    lines = []
    while True:
        ready, _, _ = select.select([proc.stdout], [], [], BATCH_TIMEOUT_S)
        if not ready:
            proc.kill()
            proc.wait()
            return lines, "hang"
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith("{"):
            lines.append(json.loads(line))
    code = proc.wait()
    return lines, "ok" if code == 0 else f"exit {code}: {proc.stderr.read()[-1500:]}"


DEFAULT_CASES = 2000  # ~40 s on 2 cores


def run(workdir: Path, cases: int = DEFAULT_CASES, seed: int = 0) -> dict:
    """Generate and ingest `cases` hostile cases (seeded); returns the tally. A unit that
    crashes or hangs the child counts all its cases as lost; the child restarts after it."""
    workdir = Path(workdir)
    started = time.perf_counter()
    files, batches = plan(cases, seed)
    todo = [{"reader": r, "variant": v} for r, v in files] + batches
    results, crashes, hangs = [], 0, 0
    while todo:
        lines, end = _run_child(workdir / f"run{crashes + hangs}", todo)
        results += lines
        todo = todo[len(lines):]
        if end == "ok" or not todo:
            break
        hangs, crashes = hangs + (end == "hang"), crashes + (end != "hang")
        results.append({"unit": "lost", "cases": todo[0].get("cases", 1), "failures": [f"{end} during {todo[0]}"]})
        todo = todo[1:]
    failures = [f for r in results for f in r["failures"]]
    batch_rows = [r for r in results if r["unit"] == "batch"]
    lost = sum(r["cases"] if r["unit"] == "lost" else len(r["failures"]) for r in results)
    tracebacks = crashes + sum(f.split(": ", 1)[-1].startswith("traceback ") for f in failures)
    return {"cases": sum(r["cases"] for r in results), "lost_or_corrupted": lost, "tracebacks": tracebacks,
            "crashes": crashes, "hangs": hangs, "whole_files": len(files), "kinds": len({k for r in batch_rows for k in r["kinds"]}),
            "peak_rss_mb": max((r["rss_mb"] for r in batch_rows), default=0),
            "batches": [{k: r[k] for k in ("reader", "cases", "seconds", "rss_mb")} for r in batch_rows],
            "failures": failures[:30], "seconds": round(time.perf_counter() - started, 1), "seed": seed}


def bulk_refusal_rate(workdir: Path, annotations: int) -> dict:
    """Ingest a COCO instances file whose `annotations` all name unknown images (plus one
    valid image) and time it: how fast a flood of bad items is quarantined."""
    sys.path[:0] = [str(ROOT), str(HERE)]
    import numpy as np
    from _hostile.files import picture, save

    from knnclip_core.ingest import ingest_path
    (workdir / "bulk/images").mkdir(parents=True, exist_ok=True)
    save(workdir / "bulk/images/a.png", picture(np.random.default_rng(0)))
    anns = [{"id": i, "image_id": 10 + i, "category_id": 1, "segmentation": [[0, 0, 5, 0, 5, 5]]} for i in range(annotations)]
    path = workdir / "bulk/instances_val.json"
    path.write_text(json.dumps({"images": [{"id": 1, "file_name": "a.png", "height": 24, "width": 32}],
                                "annotations": anns, "categories": [{"id": 1, "name": "a"}]}))
    start = time.perf_counter()
    r = ingest_path(_settings(workdir, 64), path, "coco-instances", images=workdir / "bulk/images", progress=False)
    seconds = time.perf_counter() - start
    return {"annotations": annotations, "quarantined": r.quarantined, "seconds": round(seconds, 1),
            "items_per_s": round(r.quarantined / seconds)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--cases", type=int, default=DEFAULT_CASES)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", default=None, help="folder for the generated datasets (default: a temporary one)")
    ap.add_argument("--bulk", type=int, default=0, metavar="N",
                    help="also time the quarantine of N annotations of unknown images (key bulk_refusal)")
    ap.add_argument("--json", action="store_true", help="print only the result as one JSON line")
    args = ap.parse_args()
    if args.child:
        return child(Path(args.child), json.loads(sys.stdin.read()))
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        out = run(Path(args.workdir or tmp), args.cases, args.seed)
        if args.bulk:
            out["bulk_refusal"] = bulk_refusal_rate(Path(args.workdir or tmp), args.bulk)
    print(json.dumps(out) if args.json else json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
