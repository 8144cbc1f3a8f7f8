"""Offline assets for the Great Expectations Data Docs.

GX's page templates load Bootstrap, jQuery, Popper, Font Awesome, bootstrap-table, a
datepicker, a dark theme and Vega from CDNs and its logo from S3. `install_assets` copies
local versions under `<data_docs>/static/`: GX's favicon and logo, and
Bootstrap 4.6, jQuery, Popper and Bootstrap Icons from the `bootstrap-flask` package (MIT).
`localize` rewrites one rendered page to use them: Font Awesome classes become Bootstrap
Icons, the logo is the packaged one, and what has no local copy is dropped (bootstrap-table
and the datepicker only add sorting/filtering widgets to tables that are already HTML;
Vega draws charts that these suites never produce; the dark theme is cosmetic).
"""
from __future__ import annotations

import importlib.util
import os
import re
import shutil
import tempfile
from pathlib import Path

# CDN address fragment -> file under static/ (None: drop the tag). First match wins.
_CDN = [
    ("font-awesome", "vendor/css/font/bootstrap-icons.min.css"),
    ("bootstrap-table", None),
    ("bootstrap-datepicker", None),
    ("bootstrap-dark", None),
    ("vega", None),
    ("bootstrap.min.css", "vendor/css/bootstrap.min.css"),
    ("bootstrap.min.js", "vendor/js/bootstrap.min.js"),
    ("jquery", "vendor/jquery.min.js"),
    ("popper", "vendor/umd/popper.min.js"),
    ("logo", "images/logo-long.png"),
]
# Files copied from bootstrap-flask's static/bootstrap4/ into static/vendor/.
_VENDOR = ["css/bootstrap.min.css", "js/bootstrap.min.js", "jquery.min.js", "umd/popper.min.js",
           "css/font/bootstrap-icons.min.css", "css/font/fonts/bootstrap-icons.woff2",
           "css/font/fonts/bootstrap-icons.woff"]
_GX_STATIC = ["images/favicon.ico", "images/logo-long.png", "images/validation_failed_unexpected_values.gif"]
# The five Font Awesome icons GX's renderers use -> Bootstrap Icons.
_ICONS = {"fa-check-circle": "bi-check-circle-fill", "fa-times": "bi-x-circle-fill",
          "fa-question-circle": "bi-question-circle", "fa-exclamation-triangle": "bi-exclamation-triangle",
          "fa-comment": "bi-chat-left-text"}

_EXTERNAL = re.compile(r"""^(?:https?:)?//""", re.I)
_LINK = re.compile(r"<link\b[^>]*>", re.I)
_SCRIPT = re.compile(r"<script\b[^>]*\bsrc=[^>]*>\s*</script>", re.I)
_IMG = re.compile(r"<img\b[^>]*>", re.I)
_ATTR = re.compile(r"""\b(href|src)\s*=\s*(["'])(.*?)\2""", re.I | re.S)
_CSS_URL = re.compile(r"""url\(\s*(["']?)(https?://[^)"']*)\1\s*\)""", re.I)
_LOCAL_STATIC = re.compile(r"""(["'(])(?:\./|(?:\.\./)+)static/""")
_HOME = re.compile(r"""(href=["'])(?:\./|(?:\.\./)+)index\.html""")
_SUITE_LINK = re.compile(r"""(href=["'])(?:\./|(?:\.\./)+)expectations/([^"']+)\.html""")  # GX: one folder per dot
_FOOTER = re.compile(r"<footer>.*?</footer>", re.S)
_FA_CLASS = re.compile(r"""class=(["'])([^"']*\bfa-[^"']*)\1""")


def _package_dir(module: str) -> Path:
    """The folder of an installed package, found without importing it."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"the package {module!r} is not installed; reinstall knnclip's dependencies")
    return Path(list(spec.submodule_search_locations)[0])


def install_assets(docs_dir: Path) -> Path:
    """Copy the local stylesheets, scripts, icon fonts and images under `docs_dir`/static (once);
    returns that folder. Raises RuntimeError when bootstrap-flask or GX is missing."""
    static = docs_dir / "static"
    sources = [(_package_dir("great_expectations") / "render/view/static" / rel, static / rel) for rel in _GX_STATIC]
    sources += [(_package_dir("flask_bootstrap") / "static/bootstrap4" / rel, static / "vendor" / rel)
                for rel in _VENDOR]
    for src, dst in sources:
        if not dst.exists() or dst.stat().st_size != src.stat().st_size:
            replace_file(dst, lambda tmp: shutil.copyfile(src, tmp))
    return static


def replace_file(path: Path, write) -> None:
    """Create `path` through `write(tmp_path)` and a rename, so that readers (and concurrent
    ingests writing the same file) never see half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _local_target(url: str) -> str | None:
    for fragment, target in _CDN:
        if fragment in url:
            return target
    return None


def _local_css_urls(text: str, prefix: str) -> str:
    """CSS url(http...) -> the local copy under `prefix` (the static folder), or none."""
    def repl(m: re.Match) -> str:
        target = _local_target(m.group(2))
        return f"url('{prefix}{target}')" if target else "none"
    return _CSS_URL.sub(repl, text)


def _rewrite_tag(tag: str, static: str) -> str:
    """One <link>, <script src> or <img> tag: external address -> local file, or '' to drop it."""
    m = _ATTR.search(tag)
    if not m or not _EXTERNAL.match(m.group(3)):
        return tag
    target = _local_target(m.group(3))
    if target is None:
        return ""
    tag = re.sub(r"""\s(integrity|crossorigin)=(["'])[^"']*\2""", "", tag)
    return tag[:m.start(3)] + static + target + tag[m.end(3):]


def _icon_classes(m: re.Match) -> str:
    tokens = []
    for token in m.group(2).split():
        if token in ("fa", "fas", "far"):
            token = "bi"
        tokens.append(_ICONS.get(token, token))
    return f"class={m.group(1)}{' '.join(tokens)}{m.group(1)}"


def localize(html: str, depth: int) -> str:
    """Rewrite a GX page that sits `depth` folders below the Data Docs root so that it loads
    nothing from the network: CDN tags -> static/ copies (or dropped), logo -> local file,
    relative static/, index.html and suite links recomputed for `depth` (suite pages are
    expectations/<suite name>.html), GX's newsletter footer removed."""
    up = "../" * depth
    static = up + "static/"
    html = _LOCAL_STATIC.sub(lambda m: m.group(1) + static, html)
    html = _HOME.sub(lambda m: m.group(1) + up + "index.html", html)
    html = _SUITE_LINK.sub(lambda m: f"{m.group(1)}{up}expectations/{m.group(2).replace('/', '.')}.html", html)
    for pattern in (_LINK, _SCRIPT, _IMG):
        html = pattern.sub(lambda m: _rewrite_tag(m.group(0), static), html)
    html = _local_css_urls(html, static)
    html = _FA_CLASS.sub(_icon_classes, html)
    return _FOOTER.sub("", html)
