"""Shared CLI helpers: settings from flags, human/JSON output."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from ..config import Settings, load_settings
from ..workspace import Workspace


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Settings layered with --config and --home from the command line. Both also go into
    this process's environment, so that everything the command starts sees them."""
    if getattr(args, "config", None):
        os.environ["KNNCLIP_CONFIG"] = str(Path(args.config).resolve())
    if getattr(args, "home", None):
        os.environ["KNNCLIP_HOME"] = str(Path(args.home).resolve())
    return load_settings()


def workspace_from_args(args: argparse.Namespace) -> tuple[Settings, Workspace]:
    settings = settings_from_args(args)
    return settings, Workspace.from_settings(settings).ensure()


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON value as the last line of stdout")


def emit(args: argparse.Namespace, result: Any, human: str | None = None) -> None:
    """Print `human` text, or with --json the result as one JSON line (always last)."""
    if getattr(args, "json", False):
        sys.stdout.write(json.dumps(result, default=str, sort_keys=True) + "\n")
    elif human is not None:
        sys.stdout.write(human.rstrip("\n") + "\n")
    sys.stdout.flush()
