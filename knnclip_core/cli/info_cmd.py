"""`knnclip info` (workspace, versions, device) and `knnclip sample-data`."""
from __future__ import annotations

import argparse
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from ..redact import redact_url
from .common import add_json_flag, emit, workspace_from_args

KEY_PACKAGES = ["knnclip", "torch", "torchvision", "open_clip_torch", "faiss-cpu", "lancedb", "mlflow", "prefect",
                "great_expectations", "sqlmodel", "sqlalchemy", "fastapi", "numpy"]


def package_versions() -> dict[str, str]:
    out = {}
    for name in KEY_PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def device_description() -> dict:
    """What `--device auto` would pick, without initialising CUDA needlessly."""
    import torch

    if torch.cuda.is_available():
        return {"device": "cuda", "name": torch.cuda.get_device_name(0), "count": torch.cuda.device_count()}
    return {"device": "cpu", "threads": torch.get_num_threads()}


def cmd_info(args: argparse.Namespace) -> int:
    settings, ws = workspace_from_args(args)
    info = {
        "home": str(ws.home), "catalog": redact_url(ws.catalog_url), "memory": redact_url(ws.memory_uri),
        "mlflow": str(ws.mlflow_dir),
        "reports": str(ws.reports_dir), "cache": str(ws.cache_dir), "versions": package_versions(),
        "device": device_description(), "backbone": settings.embed.backbone,
    }
    lines = [f"workspace  {info['home']}", f"  catalog  {info['catalog']}", f"  memory   {info['memory']}",
             f"  mlflow   {info['mlflow']}", f"  reports  {info['reports']}",
             "device     " + ", ".join(f"{k}={v}" for k, v in info["device"].items()),
             "versions   " + ", ".join(f"{k} {v}" for k, v in info["versions"].items())]
    emit(args, info, "\n".join(lines))
    return 0


def cmd_sample_data(args: argparse.Namespace) -> int:
    from ..sample_data import write_sample_dataset

    out = write_sample_dataset(Path(args.out), images=args.images, classes=args.classes, seed=args.seed)
    result = {"path": str(out), "images": args.images, "classes": args.classes}
    emit(args, result, f"wrote {args.images} images with {args.classes} classes to {out}\n"
                       f"ingest it with: knnclip ingest {out}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("info", help="workspace paths, package versions and the device")
    add_json_flag(p)
    p.set_defaults(func=cmd_info)
    p = sub.add_parser("sample-data", help="write a small synthetic dataset (semantic-png layout)")
    p.add_argument("out", help="output folder")
    p.add_argument("--images", type=int, default=24)
    p.add_argument("--classes", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    add_json_flag(p)
    p.set_defaults(func=cmd_sample_data)
