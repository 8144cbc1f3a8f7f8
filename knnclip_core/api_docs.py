"""Swagger UI at /docs from local files instead of a CDN, for the worker and the dashboard.

FastAPI's own /docs page loads swagger-ui from jsDelivr and its favicon from fastapi.tiangolo.com,
so offline it is blank. `serve_offline_docs(app)` serves the swagger-ui files that the
`swagger-ui-bundle-v2` package ships (Swagger UI 5, Apache-2.0) under /docs-assets and a /docs
page that loads only those. Create the app with `docs_url=None, redoc_url=None` (ReDoc's script
is not shipped, so /redoc is gone). Whatever guards the app (the worker's bearer token) guards
these paths too.
"""
from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = "/docs-assets"


def serve_offline_docs(app: FastAPI, docs_url: str = "/docs", assets: str = ASSETS) -> None:
    """Add `docs_url` (Swagger UI over app.openapi_url) and the static `assets` it loads to `app`."""
    from swagger_ui_bundle import swagger_ui_path  # the swagger-ui-bundle-v2 package

    app.mount(assets, StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")

    @app.get(docs_url, include_in_schema=False)
    def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        # validatorUrl None: no badge image from validator.swagger.io
        return get_swagger_ui_html(openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} - Swagger UI",
                                   swagger_js_url=f"{root}{assets}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{root}{assets}/swagger-ui.css",
                                   swagger_favicon_url=f"{root}{assets}/favicon-32x32.png",
                                   oauth2_redirect_url=None,
                                   swagger_ui_parameters={**(app.swagger_ui_parameters or {}), "validatorUrl": None})
