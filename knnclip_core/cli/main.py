"""Entry point of the `knnclip` command. Library commands live beside this file;
commands that need MLflow or Prefect come from the `knnclip.commands` entry points
(registry/, flows/), so that knnclip_core never imports them."""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from importlib.metadata import entry_points

from ..errors import KnnclipError
from ..redact import install_log_redaction, redact_text
from ..sentence_log import LOG_FORMAT, SentenceFormatter
from ..store_errors import explain

CORE_COMMAND_MODULES = [
    "knnclip_core.cli.info_cmd",
    "knnclip_core.cli.ingest_cmd",
    "knnclip_core.cli.embed_cmd",
    "knnclip_core.cli.memory_cmd",
    "knnclip_core.cli.quarantine_cmd",
    "knnclip_core.cli.label_cmd",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="knnclip", description="Keep a kNN-CLIP retrieval memory alive.")
    parser.add_argument("--config", help="YAML file layered over configs/default.yaml")
    parser.add_argument("--home", help="workspace folder (default: $KNNCLIP_HOME or ./.knnclip)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in CORE_COMMAND_MODULES:
        importlib.import_module(module).register(sub)
    for ep in sorted(entry_points(group="knnclip.commands"), key=lambda e: e.name):
        ep.load()(sub)
    return parser


def _redacting_excepthook(kind, value, tb) -> None:
    """An unexpected traceback, printed without any credential."""
    import traceback

    sys.stderr.write(redact_text("".join(traceback.format_exception(kind, value, tb))))


def main(argv: list[str] | None = None) -> int:
    install_log_redaction()
    sys.excepthook = _redacting_excepthook
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format=LOG_FORMAT)
    for handler in logging.getLogger().handlers:
        handler.setFormatter(SentenceFormatter())
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except Exception as exc:  # noqa: BLE001 - a damaged store or a full disk is one sentence too
        err = explain(exc, home=os.environ.get("KNNCLIP_HOME"))
        if err is None and not isinstance(exc, KnnclipError):
            raise
        print(redact_text(f"knnclip {args.command}: {err or exc}"), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
