"""Issue 12, items 11-12: `knnclip run` (real CLI, Prefect's local server) stores no secret
in Prefect's database or files, and persists no pickle that a later run would load: a
planted pickle in the workspace's result folders runs no code at the next run."""
from __future__ import annotations

import base64
import json
import os
import pickle

import pytest

from benchmarks.fault_scenarios import common
from knnclip_core.sample_data import write_sample_dataset

pytestmark = [pytest.mark.reliability, pytest.mark.slow]
SENTINEL = "SENTINELx7q"


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def planted_record(marker) -> str:
    """A Prefect result record that runs `touch marker` when unpickled."""
    blob = base64.encodebytes(pickle.dumps(_Payload(marker))).decode()
    return json.dumps({"metadata": {"storage_key": "x", "expiration": None, "prefect_version": "3.8.8",
                                    "serializer": {"type": "pickle", "picklelib": "cloudpickle"},
                                    "storage_block_id": None}, "result": blob})


def test_run_keeps_secrets_out_of_prefect_and_unpickles_nothing(tmp_path):
    data = write_sample_dataset(tmp_path / "d", images=6, classes=3, seed=3)
    home = tmp_path / "ws"
    env = {"KNNCLIP_WORKER_TOKEN": f"tok-{SENTINEL}",
           "KNNCLIP_CATALOG_URL": f"sqlite:///{tmp_path / f'catalog-{SENTINEL}.db'}"}
    first = common.run(home, ["run", str(data), "--json"], timeout=600, **env)
    assert first.returncode == 0, first.stderr[-3000:]
    leaks = [str(p) for p in (home / "prefect").rglob("*") if p.is_file() and SENTINEL.encode() in p.read_bytes()]
    assert not leaks, f"a secret was stored by Prefect in {leaks}"
    results = [p for d in ("prefect/results", "cache/flow-results") for p in (home / d).glob("**/*") if p.is_file()]
    assert not [p for p in results if b'"pickle"' in p.read_bytes()], "a pickled task result was persisted"
    marker = tmp_path / "pwned"
    for p in results:
        p.write_text(planted_record(marker))
    again = common.run(home, ["run", str(data), "--json"], timeout=600, **env)
    assert not marker.exists(), "a planted pickle was loaded and ran code"
    assert again.returncode == 0, again.stderr[-3000:]
    r1, r2 = common.last_json(first.stdout)["release"], common.last_json(again.stdout)["release"]
    assert (r2["version"], r2["vectors"]) == (r1["version"], r1["vectors"])


def test_schedule_deployment_parameters_hold_no_secret(tmp_path):
    """`knnclip schedule` registers its cron deployment; its stored parameters (and every file
    of the Prefect server) hold neither the worker token nor the catalog URL."""
    import time
    import urllib.request

    drop = tmp_path / "drop"
    drop.mkdir()
    home = tmp_path / "ws"
    p = common.start(home, ["schedule", "--cron", "0 3 * * *", "--watch", str(drop)],
                     KNNCLIP_WORKER_TOKEN=f"tok-{SENTINEL}", PREFECT_HOME=str(tmp_path / "prefect"),
                     KNNCLIP_CATALOG_URL=f"sqlite:///{tmp_path / f'catalog-{SENTINEL}.db'}")
    try:
        url, found, deadline = None, [], time.time() + 240
        while time.time() < deadline and url is None and p.poll() is None:
            line = p.stderr.readline()
            if "Prefect server at" in line:
                url = line.split(" at ")[1].split()[0]
        assert url, "the schedule command did not start a server"
        while time.time() < deadline and not found:
            try:
                req = urllib.request.Request(f"{url}/deployments/filter", data=b"{}",
                                             headers={"Content-Type": "application/json"})
                with urllib.request.urlopen(req, timeout=5) as r:
                    found = [d for d in json.loads(r.read()) if d["name"] == "knnclip-drop-folder"]
            except OSError:
                pass
            time.sleep(1)
        assert found, "no deployment was registered"
        params = json.dumps(found[0]["parameters"])
        assert SENTINEL not in params and "worker_token" not in params and "catalog_url" not in params
        assert found[0]["parameters"]["watch_dir"] == str(drop)
    finally:
        common.kill(p)
    leaks = [str(f) for f in (tmp_path / "prefect").rglob("*") if f.is_file() and SENTINEL.encode() in f.read_bytes()]
    assert not leaks, leaks
