"""The dashboard's FastAPI app: three server-rendered pages (memory, releases, try it) and the
JSON endpoints behind them. `create_app(settings)`; served by `knnclip dashboard`.

Routes: GET / and /api/memory; GET /releases, /api/releases, /releases/diff?a=&b= and
/api/releases/diff?a=&b=; GET /try, POST /try (multipart `image`, `alias`) and POST /api/try;
GET /healthz. Pages render an empty state on an empty workspace; user mistakes answer 4xx
with the reason on the page.
"""
from __future__ import annotations

import logging
import re
from typing import Optional

from fastapi import FastAPI, File, Form, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse

from knnclip_core.config import Settings, load_settings
from knnclip_core.errors import InputError, KnnclipError
from knnclip_core.workspace import Workspace

from .data import memory_overview
from .html import notice, page
from .pages_memory import memory_page
from .pages_releases import diff_page, releases_page
from .pages_try import try_page
from .releases_data import open_context, release_diff, releases_overview
from .tryit import NoReleaseError, TryService, alias_choices

logger = logging.getLogger(__name__)

ALIAS_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def _held_aliases(settings: Settings) -> dict:
    """alias -> version of the registered model ({} without a registry or on error)."""
    try:
        ctx = open_context(settings)
        return ctx.aliases() if ctx is not None else {}
    except Exception:  # noqa: BLE001 - the page says there is no release
        logger.exception("registry unreadable")
        return {}


def _status(exc: KnnclipError) -> int:
    if isinstance(exc, NoReleaseError):
        return 404
    if isinstance(exc, InputError):
        return 413 if "larger than" in str(exc) or "more than the limit" in str(exc) else 400
    return 422


def create_app(settings: Optional[Settings] = None) -> FastAPI:
    """The dashboard app over the workspace of `settings` (default: load_settings())."""
    settings = settings or load_settings()
    ws = Workspace.from_settings(settings)
    tryer = TryService(settings)
    app = FastAPI(title="knnclip dashboard", version="1",
                  description="Memory composition, releases and a try-it page for knnclip.")
    app.state.settings = settings
    app.state.try_service = tryer

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception):
        logger.exception("dashboard error on %s", request.url.path)
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": f"{type(exc).__name__}: {exc}"}, status_code=500)
        return HTMLResponse(page("Something went wrong", "", notice(f"{type(exc).__name__}: {exc}", "error")),
                            status_code=500)

    @app.get("/healthz")
    def healthz() -> dict:
        """The process is alive."""
        return {"status": "ok"}

    @app.get("/api/memory")
    def api_memory() -> dict:
        """Memory tables (composition, curation runs), forget rules and the catalog summary."""
        return memory_overview(settings, ws)

    @app.get("/", response_class=HTMLResponse)
    def memory() -> HTMLResponse:
        """Memory composition page."""
        return HTMLResponse(memory_page(memory_overview(settings, ws)))

    @app.get("/api/releases")
    def api_releases() -> dict:
        """Registered versions, aliases and alias histories."""
        return releases_overview(settings, ws)

    @app.get("/releases", response_class=HTMLResponse)
    def releases() -> HTMLResponse:
        """Releases page."""
        return HTMLResponse(releases_page(releases_overview(settings, ws)))

    @app.get("/api/releases/diff")
    def api_diff(a: str = Query(..., description="version or alias"),
                 b: str = Query(..., description="version or alias")) -> JSONResponse:
        """What changed from release a to release b (404 when either does not exist)."""
        try:
            return JSONResponse(release_diff(settings, a, b, ws))
        except KnnclipError as exc:
            return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.get("/releases/diff", response_class=HTMLResponse)
    def diff(a: Optional[str] = None, b: Optional[str] = None) -> HTMLResponse:
        """Diff view of two releases (a form to pick them when not given)."""
        overview = releases_overview(settings, ws)
        result, error, status = None, overview.get("error"), 200
        if a and b:
            try:
                result = release_diff(settings, a, b, ws)
            except KnnclipError as exc:
                error, status = str(exc), 404
        return HTMLResponse(diff_page(overview["releases"], result, a, b, error), status_code=status)

    @app.get("/try", response_class=HTMLResponse)
    def try_form(alias: str = "production") -> HTMLResponse:
        """Upload form."""
        held = _held_aliases(settings)
        return HTMLResponse(try_page(alias_choices(held), alias, held))

    def run_try(data: bytes, alias: str) -> tuple[Optional[dict], Optional[str], int]:
        if not ALIAS_RE.match(alias or ""):
            return None, f"{alias!r} is not an alias name (letters, digits, '_', '-', '.').", 400
        try:
            return tryer.segment(data, alias), None, 200
        except KnnclipError as exc:
            return None, str(exc), _status(exc)

    @app.post("/try", response_class=HTMLResponse)
    def try_upload(image: Optional[UploadFile] = File(None, description="the image to segment"),
                   alias: str = Form("production")) -> HTMLResponse:
        """Segment the upload with the release of `alias`; the page shows the overlay and segments."""
        data = _read(image, settings)
        result, error, status = run_try(data, alias)
        held = _held_aliases(settings)
        body = try_page(alias_choices(held), alias, held, result, error, filename=image.filename if image else "")
        return HTMLResponse(body, status_code=status)

    @app.post("/api/try")
    def api_try(image: Optional[UploadFile] = File(None, description="the image to segment"),
                alias: str = Form("production")) -> JSONResponse:
        """JSON variant of POST /try."""
        result, error, status = run_try(_read(image, settings), alias)
        return JSONResponse(result if result is not None else {"detail": error}, status_code=status)

    return app


def _read(image: Optional[UploadFile], settings: Settings) -> bytes:
    """Bytes of the upload, at most one byte past the limit (so too large is detected, not read whole)."""
    if image is None:
        return b""
    limit = int(settings.worker.max_upload_mb * 1024 * 1024)
    return image.file.read(limit + 1)
