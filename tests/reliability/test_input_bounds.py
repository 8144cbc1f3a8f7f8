"""Issue 21: hostile or mistaken input is one sentence (tasks files, rule ids, forget targets,
classes files), the dashboard's upload shares the worker's guard, the worker closes slow
header connections and refuses an unusable token, a copied workspace does not write into the
original's MLflow artifacts."""
from __future__ import annotations

import shutil
import socket
import time

import pytest

from benchmarks.fault_scenarios import common
from knnclip_core.errors import InputError, KnnclipError

pytestmark = pytest.mark.reliability
MB = 1024 * 1024


@pytest.fixture
def cli(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KNNCLIP_HOME", str(tmp_path / "ws"))
    monkeypatch.delenv("KNNCLIP_CONFIG", raising=False)
    for var in ("KNNCLIP_CATALOG_URL", "KNNCLIP_MEMORY_URI", "KNNCLIP_LOCK_URL", "KNNCLIP_PRESET"):
        monkeypatch.delenv(var, raising=False)
    from knnclip_core.cli.main import main

    def run(*argv):
        rc = main(list(argv))
        return rc, capsys.readouterr().err
    return run


def _one_sentence(rc, err, *needles):
    assert rc == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, (rc, err)
    for n in needles:
        assert n in err, (n, err)


TASKS = {
    "list": (b"- a\n", "top level"),
    "string": (b"tasks:\n  a: just-a-string\n", "must be a mapping"),
    "ignore_abc": (b"tasks:\n  a: {path: x, ignore: abc}\n", "`ignore` must be a list"),
    "ignore_5": (b"tasks:\n  a: {path: x, ignore: 5}\n", "`ignore` must be a list"),
    "ignore_big": (b"tasks:\n  a: {path: x, ignore: [99999999999999999999]}\n", "`ignore` must be a list"),
    "tag": (b"tasks:\n  a: !!python/object/apply:os.system [ls]\n", "tags are not allowed"),
    "latin1": (b"tasks:\n  a: {path: caf\xe9}\n", "not UTF-8"),
    "duplicate": (b"tasks:\n  a: {path: x}\n  a: {path: y}\n", "given twice"),
    "limit": (b"tasks:\n  a: {path: x, limit: many}\n", "`limit`"),
    "path_list": (b"tasks:\n  a: {path: [x]}\n", "`path` must be a string"),
}


@pytest.mark.parametrize("case", sorted(TASKS))
def test_malformed_tasks_file_is_one_sentence(tmp_path, case):
    from knnclip_core.evaluation.task_sets import load_tasks

    body, needle = TASKS[case]
    path = tmp_path / f"{case}.yaml"
    path.write_bytes(body)
    with pytest.raises(InputError) as info:
        load_tasks(path)
    assert needle in str(info.value) and path.name in str(info.value), str(info.value)


def test_releases_compare_with_a_bad_tasks_file_exits_2(cli, tmp_path):
    path = tmp_path / "t.yaml"
    path.write_bytes(TASKS["ignore_5"][0])
    _one_sentence(*cli("releases", "compare", "1", "2", "--tasks", str(path)), "t.yaml", "ignore")


def test_unforget_a_rule_id_past_64_bits(cli):
    _one_sentence(*cli("unforget", "--rule", "99999999999999999999999"), "no forget rule", "history")


@pytest.mark.parametrize("name,needle", [("x" * 100_000, "characters long"), ("a\x1b[2Jb", "control characters"),
                                         ("a\nb", "control characters")])
def test_forget_allow_unknown_names_are_bounded(cli, name, needle):
    _one_sentence(*cli("forget", "--dataset", name, "--allow-unknown"), needle)


@pytest.mark.parametrize("body,needle", [("road\nsky\nroad\n", "line 3 repeats the name 'road' of line 1"),
                                         ("road\ncar|sky\nsky\n", "line 3 repeats the name 'sky' of line 2"),
                                         ("road\n|\nsky\n", "line 2"), ("road\n | | \n", "names no class")])
def test_classes_file_duplicates_and_empty_synonym_lines_are_refused(tmp_path, body, needle):
    from knnclip_core.readers.semantic_png import read_classes_file

    path = tmp_path / "classes.txt"
    path.write_text(body)
    with pytest.raises(InputError, match=needle):
        read_classes_file(path)
    path.write_text("road\n\nsky|heaven\n")  # blank lines keep their index; synonyms stay one class
    assert [c.name for c in read_classes_file(path)] == ["road", "", "sky|heaven"]


@pytest.fixture
def dashboard(settings):
    from dashboards.app import create_app

    settings.worker.max_upload_mb = 2
    settings.worker.body_timeout_s = 1.5
    with common.serving(create_app(settings)) as base:
        yield base


@pytest.mark.parametrize("path", ["/try", "/api/try"])
def test_dashboard_upload_declared_too_large_is_413_at_once(dashboard, path):
    r = common.raw_post(dashboard, path, 300 * MB, {}, timeout=60)
    assert r["status"] == 413 and r["sent"] < 16 * MB, r


@pytest.mark.parametrize("path", ["/try", "/api/try"])
def test_dashboard_chunked_upload_is_cut_off(dashboard, path):
    r = common.raw_post(dashboard, path, 100 * MB, {}, declare=None, timeout=60)
    assert r["status"] == 413 and r["sent"] < 20 * MB, r


def test_dashboard_pages_are_not_guarded(dashboard):
    import urllib.request

    with urllib.request.urlopen(f"{dashboard}/healthz", timeout=10) as resp:
        assert resp.status == 200


def test_worker_closes_connections_whose_headers_are_slow():
    """A slowloris client (request line sent, headers never finished) is cut off after the
    header deadline; a normal keep-alive client is served twice."""
    import threading

    import uvicorn
    from fastapi import FastAPI

    from knnclip_core.net import free_port
    from knnclip_core.serving.http_server import header_timeout_protocol

    app = FastAPI()
    app.get("/healthz")(lambda: {"ok": True})
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error",
                                           http=header_timeout_protocol(0.5)))
    threading.Thread(target=server.run, daemon=True).start()
    try:
        deadline = time.monotonic() + 20
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        slow = []
        for _ in range(40):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            slow.append(s)
        ok = socket.create_connection(("127.0.0.1", port), timeout=5)
        for _ in range(2):
            ok.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = b""
            while b'{"ok":true}' not in answer:
                answer += ok.recv(4096) or b"!"
                assert not answer.endswith(b"!"), answer
            assert answer.startswith(b"HTTP/1.1 200"), answer
        time.sleep(1.2)
        assert all(s.recv(16) == b"" for s in slow)  # closed by the server
        for s in (*slow, ok):
            s.close()
    finally:
        server.should_exit = True


def test_worker_serve_uses_the_header_deadline():
    from knnclip_core.config import load_settings

    assert load_settings().worker.header_timeout_s == 10.0
    import inspect

    from serving import cli

    assert "serve(app, args.host, args.port, settings.worker.header_timeout_s" in inspect.getsource(cli.cmd_serve)


@pytest.mark.parametrize("token", ["", "  ", "t\u00f6ken", "tok en\n"])
def test_worker_refuses_an_unusable_token_at_start(settings, token):
    from knnclip_core.serving.service import create_app

    settings.worker_token = token
    with pytest.raises(KnnclipError, match="worker token"):
        create_app(lambda known: None, settings, start_watcher=False)


def test_copied_workspace_does_not_use_the_originals_artifacts(tmp_path, monkeypatch):
    from knnclip_core.config import load_settings
    from registry.store import open_registry

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("KNNCLIP_CONFIG", raising=False)
    a, b = tmp_path / "a", tmp_path / "b"
    ctx = open_registry(load_settings(home=str(a)))
    ctx.experiment_id()  # the publish experiment, with its artifact location in a/
    shutil.copytree(a, b, symlinks=True)  # cp -a
    with pytest.raises(KnnclipError, match="copied from another one"):
        open_registry(load_settings(home=str(b)))
    assert open_registry(load_settings(home=str(a))).experiment_id()  # the original still works
