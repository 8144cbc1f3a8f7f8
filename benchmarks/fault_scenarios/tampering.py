"""Release tampering: copies of a real release are published, then changed in the artifact
store (a byte of a data file flipped, a file removed, a file added, the manifest edited), or
published with an embedder id the worker's backbone does not reproduce. Every read path
(`releases show`, `releases diff`, `segment`, `eval`, and `serve` through the worker's
release source) must refuse each of them; a path that accepts one is lost_or_corrupted.
The untouched release must pass every path (else the scenario itself is broken)."""
from __future__ import annotations

import contextlib
import io
import random
import shutil
import time
from pathlib import Path
from urllib.parse import urlparse

from benchmarks.fault_scenarios import common

DEFAULT_CASES = 10
KINDS = ("changed", "missing", "extra", "manifest", "embedder")
PATHS = ("show", "diff", "segment", "eval", "serve")


TRACEBACKS = [0]  # CLI calls that ended in an exception (a traceback for the user)


def _cli(home: Path, *argv: str) -> int:
    from knnclip_core.cli.main import main

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            return main(["--home", str(home), *argv])
        except Exception:  # noqa: BLE001 - counted; a refusal it is not
            TRACEBACKS[0] += 1
            return 1


def _serve_accepts(settings, version: int) -> bool:
    """True when a worker following `version` becomes ready with it."""
    from fastapi.testclient import TestClient

    from knnclip_core.serving.service import create_app
    from serving.worker_source import RegistryReleaseSource

    app = create_app(RegistryReleaseSource(str(version), settings), settings, poll_seconds=0.2)
    with TestClient(app) as client:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if client.get("/readyz").status_code == 200:
                return True
            if app.state.watcher.last_error:
                return False
            time.sleep(0.05)
    return False


def _accepts(home: Path, settings, path: str, version: int, data: Path, image: Path) -> bool:
    shutil.rmtree(home / "cache" / "releases", ignore_errors=True)  # read the store, not a cached copy
    v = str(version)
    if path == "show":
        return _cli(home, "releases", "show", v, "--json") == 0
    if path == "diff":
        return _cli(home, "releases", "diff", "1", v, "--json") == 0
    if path == "segment":
        return _cli(home, "segment", str(image), "--release", v, "--out", str(home / "seg-out"), "--json") == 0
    if path == "eval":
        return _cli(home, "eval", str(data), "--release", v, "--limit", "2", "--json") == 0
    return _serve_accepts(settings, version)


def _tamper(ctx, snapshot: Path, kind: str, rng: random.Random, workdir: Path) -> int:
    """Publish a copy of `snapshot`, tampered by `kind`; returns its version."""
    import json

    from registry.publish import publish_snapshot

    copy = workdir / f"copy-{rng.getrandbits(32):08x}"
    shutil.copytree(snapshot, copy)
    if kind == "embedder":
        from knnclip_core.index import build_snapshot, load_snapshot

        snap = load_snapshot(copy)
        xb = snap.index.reconstruct_n(0, snap.index.ntotal)
        names = [snap.vocabulary[c] for c in snap.class_ids]
        shutil.rmtree(copy)
        build_snapshot(copy, xb, list(snap.segment_ids), names, snap.embedder_id.replace("|l2|", "|l1|") + "|other",
                       lineage=snap.manifest.get("lineage") or {}, factory="Flat")
    version = publish_snapshot(ctx, copy, alias="")["version"]
    shutil.rmtree(copy)
    if kind == "embedder":
        return version
    from registry.store import snapshot_uri

    store = Path(urlparse(snapshot_uri(ctx.model_version(version))).path)  # the snapshot inside the pyfunc model
    files = sorted(p for p in store.iterdir() if p.name != "manifest.json")
    victim = rng.choice(files)
    if kind == "changed":
        data = bytearray(victim.read_bytes())
        data[rng.randrange(len(data))] ^= 0xFF
        victim.write_bytes(bytes(data))
    elif kind == "missing":
        victim.unlink()
    elif kind == "extra":
        (store / rng.choice(["evil.py", "notes.txt", "index2.faiss"])).write_bytes(b"import os\n")
    else:
        m = json.loads((store / "manifest.json").read_text())
        m["vectors"] = int(m["vectors"]) + 1
        (store / "manifest.json").write_text(json.dumps(m))
    return version


def run(workdir: Path, cases: int = DEFAULT_CASES, seed: int = 0) -> dict:
    """`cases` tampered releases (kinds in turn) x the 5 read paths (3 for an embedder
    mismatch: show and diff rightly show such a release). Returns the report."""
    import os

    from knnclip_core.config import load_settings
    from registry.load import load_release
    from registry.store import open_registry

    rng = random.Random(seed)
    TRACEBACKS[0] = 0
    home, data = common.published_workspace(workdir, seed=11)
    image = sorted((data / "images").iterdir())[0]
    saved = os.environ.pop("MLFLOW_TRACKING_URI", None)
    try:
        settings = load_settings(home=str(home))
        ctx = open_registry(settings)
        refused = [p for p in PATHS if not _accepts(home, settings, p, 1, data, image)]
        if refused:
            raise RuntimeError(f"the untouched release was refused by {refused}")
        snapshot = workdir / "v1-snapshot"
        shutil.copytree(load_release(1, ctx=ctx).snapshot.path, snapshot)
        checks, failures = 0, []
        for i in range(cases):
            kind = KINDS[i % len(KINDS)]
            version = _tamper(ctx, snapshot, kind, rng, workdir)
            for path in PATHS if kind != "embedder" else ("segment", "eval", "serve"):
                checks += 1
                if _accepts(home, settings, path, version, data, image):
                    failures.append({"kind": kind, "version": version, "accepted_by": path})
    finally:
        if saved is not None:
            os.environ["MLFLOW_TRACKING_URI"] = saved
    return {"cases": checks, "lost_or_corrupted": len(failures), "tracebacks": TRACEBACKS[0], "tampered_releases": cases,
            "failures": failures[:10]}
