"""The dashboard in headless Chromium, driven through chromedriver's W3C WebDriver protocol
(plain HTTP, no extra client library), over the pipeline-built workspace of test_dashboard.py:
every page renders without console errors (the browser log, level SEVERE and WARNING), the
numbers shown equal the catalog's and the registry's, the quarantine items and the neighbour
crops of an upload appear. Screenshots go to test-artifacts/dashboard/ (git-ignored).

Chromium and chromedriver are Debian's `chromium` and `chromium-driver`; without them the test
skips, and fails instead when KNNCLIP_REQUIRE_DATA=1 (CI installs them)."""
from __future__ import annotations

import base64
import shutil
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

from knnclip_core.net import free_port

from conftest import require_or_skip

from test_dashboard import _settings, _text, built  # noqa: F401 - the module fixture, built again here

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "dashboard"
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--window-size=1280,1000"]


def _require_browser() -> None:
    missing = [p for p in (str(CHROMIUM), CHROMEDRIVER) if not Path(p).exists()]
    if missing:
        require_or_skip(f"{', '.join(missing)} not installed (apt-get install chromium chromium-driver)")


class Browser:
    """A chromedriver session: open pages, read the console log, find elements, screenshots."""

    def __init__(self, profile: Path):
        self.port = free_port()
        self.proc = subprocess.Popen([CHROMEDRIVER, f"--port={self.port}"], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=60)
        deadline = time.time() + 20
        while True:
            try:
                if self.http.get("/status").json()["value"]["ready"]:
                    break
            except httpx.HTTPError:
                pass
            assert time.time() < deadline, "chromedriver did not start"
            time.sleep(0.1)
        caps = {"browserName": "chrome", "goog:loggingPrefs": {"browser": "ALL"},
                "goog:chromeOptions": {"binary": str(CHROMIUM), "args": [*FLAGS, f"--user-data-dir={profile}"]}}
        self.sid = self._call("POST", "/session", {"capabilities": {"alwaysMatch": caps}})["sessionId"]

    def _call(self, method: str, path: str, body: dict | None = None):
        r = self.http.request(method, path, json=body)
        value = r.json()["value"]
        assert r.status_code == 200, f"{method} {path}: {value}"
        return value

    def cmd(self, method: str, path: str, body: dict | None = None):
        return self._call(method, f"/session/{self.sid}{path}", body)

    def open(self, url: str) -> None:
        self.cmd("POST", "/url", {"url": url})

    def problems(self) -> list[str]:
        """Console entries at WARNING or SEVERE since the last call."""
        return [f"{e['level']}: {e['message']}" for e in self.cmd("POST", "/se/log", {"type": "browser"})
                if e["level"] in ("SEVERE", "WARNING")]

    def js(self, script: str):
        return self.cmd("POST", "/execute/sync", {"script": script, "args": []})

    def find(self, css: str) -> str:
        found = self.cmd("POST", "/element", {"using": "css selector", "value": css})
        assert ELEMENT in found, f"{css}: {found}"
        return found[ELEMENT]

    def screenshot(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(self.cmd("GET", "/screenshot")))

    def close(self) -> None:
        try:
            self.cmd("DELETE", "")
        finally:
            self.http.close()
            self.proc.terminate()
            self.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def served(built):  # noqa: F811 - the imported fixture
    import uvicorn

    from dashboards.app import create_app

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(built["settings"]), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    _require_browser()
    b = Browser(tmp_path_factory.mktemp("chromium-profile"))
    yield b
    b.close()


@pytest.mark.slow
def test_every_page_renders_without_console_errors(built, served, browser):  # noqa: F811
    from knnclip_core.catalog import Image, Quarantine, Segment, session_scope
    from registry.releases import list_releases
    from registry.store import open_registry
    from sqlalchemy import func
    from sqlmodel import select

    with session_scope(built["ws"].catalog_url) as s:
        n_images = s.exec(select(func.count()).select_from(Image)).one()
        n_segments = s.exec(select(func.count()).select_from(Segment)).one()
        items = list(s.exec(select(Quarantine)))
    ctx = open_registry(built["settings"], built["ws"])
    releases = list_releases(ctx)
    pages = {"/": "memory", "/quarantine": "quarantine", "/releases": "releases",
             "/releases/diff?a=1&b=2": "diff", "/try": "try", "/?q=sky": "memory-filtered"}
    browser.open("data:text/html,<script>console.error('probe')</script>")
    assert any("probe" in p for p in browser.problems()), "the console log is not read"
    texts = {}
    for path, name in pages.items():
        browser.open(served + path)
        assert browser.js("return document.readyState") == "complete"
        texts[path] = " ".join(browser.js("return document.body.innerText").split())
        browser.screenshot(ARTIFACTS / f"{name}.png")
        assert browser.problems() == [], f"console errors on {path}"
        assert browser.js("return document.querySelectorAll('link[href^=\"http\"],script[src]').length") == 0
        broken = browser.js("return [...document.images].filter(i => !i.complete || i.naturalWidth === 0).length")
        assert broken == 0, f"broken images on {path}"

    memory = texts["/"]
    assert f"{n_images} images" in memory and f"{n_segments} segments" in memory and f"{len(items)} quarantined" in memory
    quarantine = texts["/quarantine"]
    assert f"{len(items)} matching" in quarantine
    for q in items:
        assert q.item in quarantine and q.message in quarantine
    for r in releases:
        assert f"{r['version']} " in texts["/releases"] and f"{r['vectors']}" in texts["/releases"]
        q = r["quality"]  # the newest evaluation run in MLflow, as the registry reads it
        assert f"{q['miou']:.4f} {q['segment_accuracy']:.4f} {q['dataset']}" in texts["/releases"]
    assert "Quality across versions" in texts["/releases"]
    for alias, version in ctx.aliases().items():
        assert f"{alias} now version {version}" in texts["/releases"]
    assert "version 1" in texts["/try"] and "version 2" in texts["/try"]


@pytest.mark.slow
def test_try_upload_shows_neighbour_crops_in_the_browser(built, served, browser):  # noqa: F811
    browser.open(served + "/try")
    browser.cmd("POST", f"/element/{browser.find('input[type=file]')}/value", {"text": str(built["image"])})
    version_1 = browser.find("select[name=alias] option[value='1']")
    browser.cmd("POST", f"/element/{version_1}/click", {})
    browser.cmd("POST", f"/element/{browser.find('form button[type=submit]')}/click", {})
    deadline = time.time() + 60
    while "Neighbours that voted" not in (browser.js("return document.body.innerText") or ""):
        assert time.time() < deadline, "no result after the upload"
        time.sleep(0.2)
    text = " ".join(browser.js("return document.body.innerText").split())
    assert "release version 1" in text
    crops = browser.js("return [...document.querySelectorAll('.crops img.crop')]"
                       ".filter(i => i.complete && i.naturalWidth > 0).length")
    assert crops > 0, "no neighbour crop shown"
    browser.screenshot(ARTIFACTS / "try-result.png")
    assert browser.problems() == []


def _loaded_from(browser: Browser, origin: str) -> list[str]:
    """Resources the open page fetched from anywhere but `origin`."""
    return [u for u in browser.js("return performance.getEntriesByType('resource').map(e => e.name)")
            if not u.startswith(origin)]


@pytest.mark.slow
def test_data_docs_open_offline_in_the_browser(built, browser):  # noqa: F811
    """The Data Docs of the pipeline's two ingest batches, opened from disk: every validation is
    listed, every resource comes from the data_docs folder, pages are styled (Bootstrap's font
    stack on body), jQuery runs, no image is broken and the console stays clean."""
    docs = built["ws"].data_docs_dir
    index = (docs / "index.html").as_uri()
    browser.open(index)
    assert browser.js("return document.querySelectorAll('#validations tbody tr').length") == 4
    links = browser.js("return [...document.querySelectorAll('#validations a')].map(a => a.href)")
    origin = docs.as_uri()
    for n, url in enumerate([index, *sorted(set(links))]):
        browser.open(url)
        assert browser.problems() == [], f"console errors on {url}"
        assert _loaded_from(browser, origin) == [], url
        assert "apple-system" in browser.js("return getComputedStyle(document.body).fontFamily"), url
        broken = browser.js("return [...document.images].filter(i => !i.complete || i.naturalWidth === 0).length")
        assert broken == 0, f"broken images on {url}"
        if "/validations/" in url:
            assert browser.js("return typeof jQuery") == "function", url
        browser.screenshot(ARTIFACTS / "data_docs" / f"{n}-{url.rsplit('/', 1)[-1].replace('.html', '')}.png")


@pytest.mark.slow
def test_swagger_docs_render_offline_in_the_browser(served, browser):
    """/docs draws the API from local swagger-ui files (FastAPI's OpenAPI 3.1 needs Swagger UI 5)."""
    browser.open(served + "/docs")
    deadline = time.time() + 30
    while not browser.js("return document.querySelectorAll('.swagger-ui .opblock').length"):
        assert time.time() < deadline, "Swagger UI drew no operation"
        time.sleep(0.2)
    assert "knnclip dashboard" in browser.js("return document.body.innerText")
    assert browser.problems() == []
    assert _loaded_from(browser, served) == []
    browser.screenshot(ARTIFACTS / "swagger.png")
