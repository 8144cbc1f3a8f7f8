"""`knnclip stack down` and `status` act only on the very processes `up` started: a process whose command line
merely names the service or its port, or that took over a recorded pid, is left alone (no servers needed)."""
from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from deploy.process import identity, pid_alive
from deploy.stack import STATE_FILE, down, status


@pytest.fixture
def bystander():
    """An unrelated process group whose argv names a stack service and its port, as a user's editor or grep might."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "serve-1", "127.0.0.1:48123",
                             "dask-scheduler"], start_new_session=True)
    deadline = time.monotonic() + 10
    while (identity(proc.pid) or {}).get("cmdline", [""])[-1:] != ["dask-scheduler"] and time.monotonic() < deadline:
        time.sleep(0.05)  # until the exec has happened
    yield proc
    proc.kill()
    proc.wait(10)


def _state(root, pid: int, **recorded) -> None:
    services = {name: {"kind": kind, "pid": pid, "url": url, "log": None, **recorded}
                for name, kind, url in (("serve-1", "serve", "http://127.0.0.1:48123"),
                                        ("dask-scheduler", "dask-scheduler", "tls://127.0.0.1:48123"))}
    (root / STATE_FILE).write_text(json.dumps({"root": str(root), "services": services, "env": {}}))


def test_down_leaves_a_process_that_merely_names_the_service(tmp_path, bystander):
    _state(tmp_path, bystander.pid)  # a state file of older code: no start time, no argv
    assert not any(r["running"] for r in status(tmp_path).values())
    down(tmp_path)
    time.sleep(0.3)
    assert bystander.poll() is None, "down killed a process it did not start"


def test_down_leaves_a_process_that_took_over_a_recorded_pid(tmp_path, bystander):
    me = identity(bystander.pid)
    _state(tmp_path, bystander.pid, start_time=me["start_time"] - 1, cmdline=me["cmdline"])  # started later
    down(tmp_path)
    _state(tmp_path, bystander.pid, start_time=me["start_time"], cmdline=me["cmdline"][:-1])  # another argv
    down(tmp_path)
    time.sleep(0.3)
    assert bystander.poll() is None


def test_down_stops_the_recorded_process(tmp_path, bystander):
    _state(tmp_path, bystander.pid, **identity(bystander.pid))
    assert status(tmp_path)["serve-1"]["running"]
    down(tmp_path)
    bystander.wait(20)
    assert not pid_alive(bystander.pid) and not (tmp_path / STATE_FILE).exists()
