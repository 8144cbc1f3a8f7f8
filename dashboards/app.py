"""The dashboard's FastAPI app: three server-rendered pages (memory, releases, try it) and the
JSON endpoints behind them. `create_app(settings)`; served by `knnclip dashboard`.

Routes: GET / (?q= filter, ?page=) and /api/memory; GET /quarantine (?batch=, ?reason=, ?page=),
/api/quarantine and /api/quarantine/{id}; GET /releases, /api/releases, /releases/diff?a=&b= and
/api/releases/diff?a=&b=; POST /releases/promote (version, alias) and /releases/rollback (alias)
with the worker token (bearer header or `token` form field), JSON variants under /api/releases/;
GET /try, POST /try (multipart `image`, `alias`: an alias or a version) and POST /api/try; GET /healthz. Pages render an empty state on an empty workspace; user mistakes answer 4xx
with the reason on the page.
"""
from __future__ import annotations

import logging
import re
from typing import Optional

from fastapi import FastAPI, File, Form, Header, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse

from knnclip_core.api_docs import serve_offline_docs
from knnclip_core.config import Settings, load_settings
from knnclip_core.errors import InputError, KnnclipError
from knnclip_core.redact import install_log_redaction, redact_text
from knnclip_core.serving.upload_guard import MULTIPART_SLACK, GuardLimits, UploadGuard, UploadTooLarge
from knnclip_core.workspace import Workspace

from knnclip_core.catalog.queries import quarantine_item

from .auth import token_refusal
from .data import catalog_summary, memory_overview
from .html import error_page
from .memory_data import inspect_memory
from .pages_memory import memory_page
from .pages_quarantine import quarantine_data, quarantine_page
from .pages_releases import diff_page, releases_page
from .pages_try import try_page
from .releases_data import move_alias, open_context, release_diff, releases_overview
from .tryit import NoReleaseError, TryService, alias_choices, release_versions

logger = logging.getLogger(__name__)

ALIAS_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
UPLOAD_PATHS = frozenset({"/try", "/api/try"})  # guarded as the worker's /segment is


def upload_limit(settings: Settings) -> int:
    """Largest accepted upload in bytes (worker.max_upload_mb, as the worker)."""
    return int(settings.worker.max_upload_mb * 1024 * 1024)


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
    if isinstance(exc, UploadTooLarge):
        return 413
    if isinstance(exc, InputError):
        return 400
    return 422


def create_app(settings: Optional[Settings] = None) -> FastAPI:
    """The dashboard app over the workspace of `settings` (default: load_settings())."""
    install_log_redaction()  # no credential of a URL setting in the dashboard's log
    settings = settings or load_settings()
    ws = Workspace.from_settings(settings)
    tryer = TryService(settings)
    app = FastAPI(title="knnclip dashboard", version="1", docs_url=None, redoc_url=None,
                  description="Memory composition, releases and a try-it page for knnclip.")
    serve_offline_docs(app)  # /docs without a CDN
    app.state.settings = settings
    app.state.try_service = tryer
    # the worker's guard on the upload paths: a declared length over the limit is 413 at once and a
    # streamed (chunked) body is cut off there, before anything is parsed or spooled to disk
    wcfg = settings.worker
    app.add_middleware(UploadGuard, limits=GuardLimits(None, upload_limit(settings) + MULTIPART_SLACK,
                                                       wcfg.body_timeout_s, guarded_paths=UPLOAD_PATHS))

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception):
        logger.exception("dashboard error on %s", request.url.path)
        said = redact_text(f"{type(exc).__name__}: {exc}")
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": said}, status_code=500)
        return HTMLResponse(error_page(said), status_code=500)

    @app.get("/healthz")
    def healthz() -> dict:
        """The process is alive."""
        return {"status": "ok"}

    @app.get("/api/memory")
    def api_memory() -> dict:
        """Memory tables (composition, curation runs), forget rules and the catalog summary."""
        return memory_overview(settings, ws)

    @app.get("/", response_class=HTMLResponse)
    def memory(q: str = Query("", max_length=200), page_no: int = Query(1, alias="page", ge=1)) -> HTMLResponse:
        """Memory composition page: the class table filtered by `q`, one page of it."""
        data = memory_overview(settings, ws)
        inspections = {m["embedder_id"]: inspect_memory(ws, m["embedder_id"], settings.ingest.max_pixels)
                       for m in data["memories"] if not m.get("error")}
        return HTMLResponse(memory_page(data, {"q": q, "page": page_no}, inspections))

    def _quarantine(batch, reason, page_no, thumbs):
        return quarantine_data(ws.catalog_url, settings.ingest.max_pixels, batch or None, reason or None, page_no,
                               thumbs=thumbs)

    @app.get("/api/quarantine")
    def api_quarantine(batch: str = "", reason: str = "", page_no: int = Query(1, alias="page", ge=1)) -> dict:
        """One page of quarantined items (no thumbnails) and the counts by reason."""
        return _quarantine(batch, reason, page_no, False)

    @app.get("/api/quarantine/{item_id}")
    def api_quarantine_item(item_id: int) -> JSONResponse:
        """One quarantined item (404 when there is no such id)."""
        item = quarantine_item(ws.catalog_url, item_id)
        if item is None:
            return JSONResponse({"detail": f"there is no quarantined item with id {item_id}."}, status_code=404)
        return JSONResponse(item)

    @app.get("/quarantine", response_class=HTMLResponse)
    def quarantine(batch: str = "", reason: str = "", page_no: int = Query(1, alias="page", ge=1)) -> HTMLResponse:
        """Quarantine page: items with reasons, messages and thumbnails."""
        batches = catalog_summary(ws)["batches"]
        return HTMLResponse(quarantine_page(_quarantine(batch, reason, page_no, True), batches, batch, reason))

    @app.get("/api/releases")
    def api_releases() -> dict:
        """Registered versions, aliases and alias histories."""
        return releases_overview(settings, ws)

    @app.get("/releases", response_class=HTMLResponse)
    def releases() -> HTMLResponse:
        """Releases page."""
        return HTMLResponse(releases_page(releases_overview(settings, ws)))

    def _move(action: str, alias: str, version: Optional[str], authorization: Optional[str],
              token: Optional[str]) -> tuple[int, str, Optional[dict]]:
        refused = token_refusal(settings, authorization, token)
        if refused:
            return refused[0], refused[1], None
        from registry.store import check_alias  # the registry's own rule for alias names

        if action == "promote" and not (version or "").isdigit():
            return 400, f"give an alias name and, to promote, a version number (got {alias!r}, {version!r}).", None
        try:
            check_alias(alias or None)
        except KnnclipError as exc:
            return 400, str(exc), None
        if not alias:
            return 400, "give an alias name.", None
        try:
            res = move_alias(settings, action, alias, version, ws)
        except KnnclipError as exc:
            return 409, redact_text(exc), None
        if action == "rollback":
            return 200, f"alias {alias} rolled back to version {res['version']} (was {res['previous']}).", res
        if not res.get("changed", True):
            return 200, f"alias {alias} already points at version {res['version']}.", res
        gate = res.get("gate") or {}
        return 200, (f"alias {alias} now points at version {res['version']} (was {res['previous']}); gate "
                     f"{gate.get('status')}" + (f": {gate['reason']}" if gate.get("reason") else "") + "."), res

    def _action_page(action: str, alias: str, version: Optional[str], authorization, token) -> HTMLResponse:
        status, text, _ = _move(action, alias, version, authorization, token)
        body = releases_page(releases_overview(settings, ws), (text, "ok" if status == 200 else "error"))
        return HTMLResponse(body, status_code=status)

    @app.post("/releases/promote", response_class=HTMLResponse)
    def promote_form(version: str = Form(""), alias: str = Form("production"), token: str = Form(""),
                     authorization: Optional[str] = Header(None)) -> HTMLResponse:
        """Promote a version through the quality gate (worker token required)."""
        return _action_page("promote", alias, version, authorization, token)

    @app.post("/releases/rollback", response_class=HTMLResponse)
    def rollback_form(alias: str = Form("production"), token: str = Form(""),
                      authorization: Optional[str] = Header(None)) -> HTMLResponse:
        """Give an alias back to the version before (worker token required)."""
        return _action_page("rollback", alias, None, authorization, token)

    @app.post("/api/releases/promote")
    def api_promote(version: str = Form(""), alias: str = Form("production"), token: str = Form(""),
                    authorization: Optional[str] = Header(None)) -> JSONResponse:
        """JSON variant of POST /releases/promote."""
        status, text, res = _move("promote", alias, version, authorization, token)
        return JSONResponse({**(res or {}), "detail": text}, status_code=status)

    @app.post("/api/releases/rollback")
    def api_rollback(alias: str = Form("production"), token: str = Form(""),
                     authorization: Optional[str] = Header(None)) -> JSONResponse:
        """JSON variant of POST /releases/rollback."""
        status, text, res = _move("rollback", alias, None, authorization, token)
        return JSONResponse({**(res or {}), "detail": text}, status_code=status)

    @app.get("/api/releases/diff")
    def api_diff(a: str = Query(..., description="version or alias"),
                 b: str = Query(..., description="version or alias")) -> JSONResponse:
        """What changed from release a to release b (404 when either does not exist)."""
        try:
            return JSONResponse(release_diff(settings, a, b, ws))
        except KnnclipError as exc:
            return JSONResponse({"detail": redact_text(exc)}, status_code=404)

    @app.get("/releases/diff", response_class=HTMLResponse)
    def diff(a: Optional[str] = None, b: Optional[str] = None) -> HTMLResponse:
        """Diff view of two releases (a form to pick them when not given)."""
        overview = releases_overview(settings, ws)
        result, error, status = None, overview.get("error"), 200
        if a and b:
            try:
                result = release_diff(settings, a, b, ws)
            except KnnclipError as exc:
                error, status = redact_text(exc), 404
        return HTMLResponse(diff_page(overview["releases"], result, a, b, error), status_code=status)

    @app.get("/try", response_class=HTMLResponse)
    def try_form(alias: str = "production") -> HTMLResponse:
        """Upload form."""
        held = _held_aliases(settings)
        return HTMLResponse(try_page(alias_choices(held), alias, held, versions=release_versions(settings)))

    def run_try(data: bytes, alias: str) -> tuple[Optional[dict], Optional[str], int]:
        if not ALIAS_RE.match(alias or ""):
            return None, f"{alias!r} is neither an alias name nor a version (letters, digits, '_', '-', '.').", 400
        try:
            return tryer.segment(data, alias), None, 200
        except KnnclipError as exc:
            return None, redact_text(exc), _status(exc)

    @app.post("/try", response_class=HTMLResponse)
    def try_upload(image: Optional[UploadFile] = File(None, description="the image to segment"),
                   alias: str = Form("production")) -> HTMLResponse:
        """Segment the upload with the release of `alias`; the page shows the overlay and segments."""
        data = _read(image, settings)
        result, error, status = run_try(data, alias)
        held = _held_aliases(settings)
        body = try_page(alias_choices(held), alias, held, result, error, filename=image.filename if image else "",
                        versions=release_versions(settings))
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
    return image.file.read(upload_limit(settings) + 1)
