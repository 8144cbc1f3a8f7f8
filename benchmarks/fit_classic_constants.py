"""Fit the classic embedders' standardisation constants (per-feature mean and population
std of the raw statistics) from the ground-truth segments of a CamVid split, and compare
them with the committed ones (classic.MU/SD, classic_v2.MU2/SD2).

Segments: one per class present per image (class 11 `Unlabelled` is void and ignored),
embedded through the product's classic embedder with `raw=True`. Prints the constants as
Python literals and the largest deviation from the committed ones (in units of the
committed std); with --json, one JSON object as the last stdout line.

    .venv/bin/python benchmarks/fit_classic_constants.py --backbone classic --json [--root ../shared/data/camvid]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from classic_accuracy import DEFAULT_DATA, camvid_segments  # noqa: E402

TOLERANCE = 1e-3  # largest |fitted - committed| / committed sd counted as reproduced


def literal(values: np.ndarray, per_line: int = 11) -> str:
    """`values` as the indented, 5-decimal array literal the committed constants use."""
    items = [repr(round(float(v), 5)) for v in values]
    lines = [", ".join(items[i:i + per_line]) for i in range(0, len(items), per_line)]
    return "np.array([\n    " + ",\n    ".join(lines) + "], np.float32)"


def fit(root: Path, backbone: str, split: str = "train", limit: int | None = None) -> dict:
    """Fitted constants of `backbone` on `split` and their deviation from the committed ones."""
    from knnclip_core.embedders import get_spec
    from knnclip_core.embedders.classic_embedder import classic_version
    from knnclip_core.embedders.classic_fit import fit_constants, raw_statistics

    t0 = time.perf_counter()
    stats = raw_statistics(backbone, ((img, masks) for img, masks, _, _ in camvid_segments(root, split, limit)))
    mu, sd = fit_constants(stats)
    committed = classic_version(get_spec(backbone))
    dev = max(float(np.max(np.abs(mu - committed.mu) / committed.sd)),
              float(np.max(np.abs(sd - committed.sd) / committed.sd)))
    return {"backbone": backbone, "version": committed.name, "split": split, "segments": int(len(stats)),
            "mu": mu.tolist(), "sd": sd.tolist(), "max_deviation_in_sd": dev, "tolerance": TOLERANCE,
            "reproduces_committed": dev <= TOLERANCE, "seconds": round(time.perf_counter() - t0, 2),
            "data": str(root)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", type=Path, default=DEFAULT_DATA, help="CamVid folder (train/, trainannot/, ...)")
    p.add_argument("--backbone", default="classic", help="a classic backbone of configs/backbones.yaml")
    p.add_argument("--split", default="train")
    p.add_argument("--limit", type=int, help="use only N evenly spaced images")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if not (args.root / args.split).is_dir():
        print(f"CamVid split {args.split} not found at {args.root}", file=sys.stderr)
        return 2
    r = fit(args.root, args.backbone, args.split, args.limit)
    print(f"MU = {literal(np.asarray(r['mu']))}\nSD = {literal(np.asarray(r['sd']))}")
    print(f"{r['backbone']} ({r['version']}): {r['segments']} segments of CamVid {r['split']}; largest deviation "
          f"from the committed constants {r['max_deviation_in_sd']:.2e} sd "
          f"({'reproduced' if r['reproduces_committed'] else 'NOT reproduced'}, tolerance {TOLERANCE})")
    if args.json:
        print(json.dumps(r, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
