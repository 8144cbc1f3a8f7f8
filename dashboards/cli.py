"""`knnclip dashboard`: serve the dashboard (memory, releases, try it) with uvicorn."""
from __future__ import annotations

import argparse
import logging

from knnclip_core.cli.common import settings_from_args

logger = logging.getLogger(__name__)


def cmd_dashboard(args: argparse.Namespace) -> int:
    """Serve the dashboard app until interrupted."""
    import uvicorn

    from .app import create_app

    settings = settings_from_args(args)
    app = create_app(settings)
    print(f"knnclip dashboard on http://{args.host}:{args.port}/ (workspace {settings.home})", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info" if getattr(args, "verbose", False) else "warning")
    return 0


def register(sub) -> None:
    """Add `dashboard` to the `knnclip` parser."""
    p = sub.add_parser("dashboard", help="web dashboard: memory composition, quarantine, releases (promote, rollback), try a release on an image")
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8501, help="port (default 8501)")
    p.set_defaults(func=cmd_dashboard)
