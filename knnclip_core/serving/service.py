"""The segmentation worker's HTTP API (FastAPI). `create_app(source, settings)` takes a release
source callable (see knnclip_core/segment/release.py), so this module never touches a registry.

Endpoints: POST /segment (multipart image upload -> JSON, optional base64 PNG overlay and
label map, or `format=png` for the overlay itself), GET /healthz (process alive),
GET /readyz (a release is loaded), GET /release (version, alias, vocabulary size, last
reload error), GET /metrics (Prometheus, see metrics.py). With `settings.worker_token` set,
every endpoint but /healthz and /readyz (and /metrics with `worker.metrics_public`; /docs, its
local swagger-ui files under /docs-assets and /openapi.json included) needs
`Authorization: Bearer <token>`, checked with the body size before the body is read (see
upload_guard.py).
"""
from __future__ import annotations

import base64
import logging
import time
from contextlib import asynccontextmanager
from typing import Any, Optional

from fastapi import FastAPI, File, HTTPException, Query, Request, Response, UploadFile
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from ..api_docs import serve_offline_docs
from ..config import token_problem
from ..errors import ConfigError, InputError, KnnclipError
from .metrics import WorkerMetrics
from ..segment.release import ReleaseSource
from ..segment.render import label_map_image, png_bytes, result_overlay
from .upload_guard import MULTIPART_SLACK, OPEN_PATHS, GuardLimits, UploadGuard, UploadTooLarge, decode_upload
from .watcher import ReleaseWatcher

logger = logging.getLogger(__name__)


class ReleaseState(BaseModel):
    """What /release reports."""

    ready: bool
    version: Optional[str] = None
    alias: Optional[str] = None
    uri: Optional[str] = None
    vocabulary_size: Optional[int] = None
    embedder_id: Optional[str] = None      # the memory backbone (the release records it)
    base_model_id: Optional[str] = None    # the base model paired with it (worker.base_model)
    confidence_threshold: Optional[float] = None  # T in force
    threshold_source: Optional[str] = None  # release-calibrated | operator override | configured (why)
    loaded_at: Optional[float] = None
    last_reload_error: Optional[str] = None
    last_check: Optional[float] = None
    swaps: int = 0


class SegmentResponse(BaseModel):
    """What POST /segment answers (JSON)."""

    release: dict
    classes: list[str]
    width: int
    height: int
    segments: list[dict]
    panoptic: list[dict]
    timings: dict
    scale: float = 1.0  # width/height (and everything in pixels) are the upload's times this
    overlay_png: Optional[str] = None    # base64, when overlay=true
    label_map_png: Optional[str] = None  # base64, when label_map=true (value = class index, 255 unknown)


def create_app(source: ReleaseSource, settings=None, poll_seconds: Optional[float] = None,
               start_watcher: bool = True) -> FastAPI:
    """FastAPI app serving the releases `source` yields.

    `settings` (knnclip Settings, default: load_settings()) gives the token, limits and poll
    interval; the watcher thread starts and stops with the app's lifespan when `start_watcher`."""
    if settings is None:
        from ..config import load_settings

        settings = load_settings()
    wcfg = settings.worker
    metrics = WorkerMetrics()
    from ..labelling.capture import store_from_settings

    capture = store_from_settings(settings)  # None unless the operator turned capture on
    watcher = ReleaseWatcher(source, poll_seconds or wcfg.poll_seconds, on_change=metrics.on_change)
    metrics.follow(watcher)
    max_bytes = int(wcfg.max_upload_mb * 1024 * 1024)
    if token_problem(settings.worker_token):  # set after loading: refused at start, not by every request
        raise ConfigError(f"the worker token (KNNCLIP_WORKER_TOKEN) {token_problem(settings.worker_token)}")

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if start_watcher:
            watcher.start()
        try:
            yield
        finally:
            watcher.stop()

    app = FastAPI(title="knnclip worker", version="1", lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="kNN-CLIP segmentation with a retrieval memory from the model registry.")
    serve_offline_docs(app)  # /docs from local swagger-ui files, behind the token like the rest
    app.state.watcher = watcher
    app.state.metrics = metrics
    # Below `measure` (which counts its 401/408/413) and above routing: token and body size are
    # checked before anything reads the body.
    open_paths = OPEN_PATHS | {"/metrics"} if wcfg.metrics_public else OPEN_PATHS
    app.add_middleware(UploadGuard, limits=GuardLimits(settings.worker_token, max_bytes + MULTIPART_SLACK,
                                                       wcfg.body_timeout_s, open_paths))

    @app.middleware("http")
    async def measure(request: Request, call_next):
        t0 = time.perf_counter()
        try:
            response = await call_next(request)
        except Exception:
            metrics.errors.labels("internal").inc()
            raise
        route = request.scope.get("route")
        endpoint = getattr(route, "path", None) or "unmatched"  # bounded label values
        metrics.latency.labels(endpoint).observe(time.perf_counter() - t0)
        metrics.requests.labels(endpoint, str(response.status_code)).inc()
        if response.status_code >= 400:
            metrics.errors.labels(str(response.status_code)).inc()
        return response

    @app.get("/healthz")
    def healthz() -> dict:
        """The process is alive."""
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz() -> Response:
        """200 once a release is loaded, 503 before."""
        rel = watcher.current
        if rel is None:
            return JSONResponse({"ready": False, "last_reload_error": watcher.last_error}, status_code=503)
        return JSONResponse({"ready": True, "version": rel.version})

    @app.get("/release", response_model=ReleaseState)
    def release() -> ReleaseState:
        """The release being served and the last reload error, if the newest one failed."""
        rel = watcher.current
        info: dict[str, Any] = rel.describe() if rel else {}
        return ReleaseState(ready=rel is not None, last_reload_error=watcher.last_error,
                            last_check=watcher.last_check, swaps=watcher.swaps, **info)

    @app.get("/metrics")
    def prometheus() -> Response:
        """Prometheus text exposition."""
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.post("/segment", response_model=SegmentResponse,
              responses={200: {"content": {"image/png": {}}}, 400: {}, 401: {}, 413: {}, 503: {}})
    def segment(image: UploadFile = File(..., description="the image to segment (PNG, JPEG, ...)"),
                classes: list[str] = Query(default=[], description="extra class names (CLIP backbones)"),
                vocabulary: list[str] = Query(default=[], description="answer only with these classes"),
                overlay: bool = Query(False, description="add a base64 colour overlay PNG (with a legend of the classes found)"),
                label_map: bool = Query(False, description="add a base64 label map PNG"),
                format: str = Query("json", pattern="^(json|png)$", description="png: answer the overlay PNG"),
                proposals: Optional[str] = Query(None, description="proposal generator (default: settings)")):
        """Segment one uploaded image with the current release."""
        rel = watcher.current  # taken once: this request finishes on this release
        if rel is None:
            raise HTTPException(status_code=503, detail="no release loaded yet")
        data = image.file.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise HTTPException(status_code=413, detail=f"upload larger than {wcfg.max_upload_mb} MB")
        try:
            pixels, scale = decode_upload(data, wcfg.max_pixels, wcfg.max_side)
        except InputError as exc:
            raise HTTPException(status_code=413 if isinstance(exc, UploadTooLarge) else 400, detail=str(exc)) from None
        if proposals == "masks":
            raise HTTPException(status_code=400, detail="the 'masks' proposals are not available over HTTP")
        try:
            result = rel.segmenter.segment(pixels, vocabulary=vocabulary or None, extra_classes=classes,
                                           proposals=proposals)
        except KnnclipError as exc:
            raise HTTPException(status_code=400, detail=str(exc)) from None
        metrics.observe(result)
        if capture is not None:
            capture.offer(pixels, result, {"version": rel.version, "alias": rel.alias}, "worker",
                          name=image.filename, segment_ids=getattr(rel.segmenter.memory, "segment_ids", None),
                          scale=scale)
        n = len(result.classes)
        if format == "png":
            return Response(png_bytes(result_overlay(pixels, result)), media_type="image/png",
                            headers={"X-Knnclip-Release": rel.version})
        body = result.to_json(segment_ids=getattr(rel.segmenter.memory, "segment_ids", None))
        body["release"] = {"version": rel.version, "alias": rel.alias}
        body["scale"] = scale
        if overlay:
            body["overlay_png"] = base64.b64encode(png_bytes(result_overlay(pixels, result))).decode()
        if label_map:
            body["label_map_png"] = base64.b64encode(png_bytes(label_map_image(result.label_map, n))).decode()
        return body

    return app
