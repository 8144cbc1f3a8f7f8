"""Swagger UI at /docs of the worker and the dashboard loads only local files (no CDN), and on
the worker those files sit behind the bearer token like /docs itself."""
from html.parser import HTMLParser

from fastapi.testclient import TestClient

from knnclip_core.serving.service import create_app

TOKEN = {"Authorization": "Bearer s3cret"}


class _Refs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        ref = a.get("href") if tag == "link" else a.get("src") if tag in ("script", "img") else None
        if ref:
            self.refs.append(ref)


def _assets(html: str) -> list[str]:
    p = _Refs()
    p.feed(html)
    return p.refs


def _check_docs(client: TestClient, headers: dict) -> list[str]:
    r = client.get("/docs", headers=headers)
    assert r.status_code == 200 and "SwaggerUIBundle" in r.text
    refs = _assets(r.text)
    assert {ref.rsplit("/", 1)[-1] for ref in refs} >= {"swagger-ui-bundle.js", "swagger-ui.css"}
    assert "validatorUrl" in r.text  # no badge image from validator.swagger.io
    for ref in refs:
        assert ref.startswith("/") and not ref.startswith("//"), ref
        asset = client.get(ref, headers=headers)
        assert asset.status_code == 200 and len(asset.content) > 100, ref
        kind = {"js": "javascript", "css": "text/css", "png": "image/png"}[ref.rsplit(".", 1)[-1]]
        assert kind in asset.headers["content-type"], ref
    assert client.get("/openapi.json", headers=headers).status_code == 200
    return refs


def test_worker_docs_are_local_and_behind_the_token(settings):
    settings.worker_token = "s3cret"
    with TestClient(create_app(lambda version=None: None, settings, start_watcher=False)) as client:
        assert client.get("/docs").status_code == 401
        refs = _check_docs(client, TOKEN)
        for ref in refs:
            assert client.get(ref).status_code == 401, ref
        assert client.get("/redoc", headers=TOKEN).status_code == 404  # ReDoc's script is not shipped


def test_dashboard_docs_are_local(settings):
    from dashboards.app import create_app as dashboard_app

    _check_docs(TestClient(dashboard_app(settings)), {})
