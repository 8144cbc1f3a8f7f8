"""Releases on a real MLflow SQLite store: publish -> list -> promote -> publish -> diff ->
rollback -> load, tampering refused, alias history across processes, the quality gate."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

import numpy as np
import pytest

from registry.store import snapshot_uri  # the snapshot's files, inside a version's pyfunc model

from knnclip_core.errors import VerificationError
from knnclip_core.index import build_snapshot

EMB = "classic|lab-hist|none|mean|l2|dim=16"


def seeded_snapshot(out: Path, classes: dict[str, int], seed: int, lineage: dict | None = None) -> Path:
    """A Flat snapshot with `classes` {name: vectors} of seeded random unit vectors."""
    rng = np.random.default_rng(seed)
    names = [c for c, k in classes.items() for _ in range(k)]
    xb = rng.standard_normal((len(names), 16)).astype(np.float32)
    xb /= np.linalg.norm(xb, axis=1, keepdims=True)
    build_snapshot(out, xb, [f"s{seed}-{i}" for i in range(len(names))], names, EMB, lineage=lineage or {})
    return out


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One MLflow store (SQLite + local artifacts) in a module-wide workspace."""
    from knnclip_core.config import load_settings

    home = tmp_path_factory.mktemp("registry") / "ws"
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        mp.delenv("KNNCLIP_CONFIG", raising=False)
        mp.setenv("KNNCLIP_HOME", str(home))
        from registry.store import open_registry

        settings = load_settings(home=str(home))
        yield open_registry(settings), home


def ctx_for(store, model_name):
    from registry.store import RegistryContext

    ctx = store[0]
    return RegistryContext(ctx.client, ctx.tracking_uri, model_name, ctx.settings, ctx.ws, ctx.artifact_location)


def cli(home: Path, *argv: str):
    """Run `knnclip --home HOME ARGV --json` in-process; returns the last stdout line as JSON."""
    import contextlib
    import io

    from knnclip_core.cli.main import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = main(["--home", str(home), *argv, "--json"])
    assert rc == 0, out.getvalue()
    return json.loads(out.getvalue().strip().splitlines()[-1])


def test_release_lifecycle(store, tmp_path):
    from registry import load_release
    from registry.publish import publish_snapshot
    from registry.gate import GateRefusedError
    from registry.releases import promote, rollback

    ctx, home = store
    v1 = publish_snapshot(ctx, seeded_snapshot(tmp_path / "a", {"road": 30, "sky": 20, "tree": 10}, 1,
                                               {"lance_version": 3, "batches": ["b1"]}))
    assert v1["version"] == 1 and v1["alias"] == "staging"
    rows = cli(home, "releases", "list")
    assert rows == [dict(rows[0], version=1, aliases=["staging"], classes=3, vectors=60)]
    assert rows[0]["created"]
    with pytest.raises(GateRefusedError, match="no quality-gate evaluation.*publish.gate_eval_path.*--force"):
        promote(ctx, 1, alias="production")  # no gate configured: production needs --force
    assert "production" not in ctx.aliases()
    assert promote(ctx, 1, alias="canary")["gate"]["status"] == "skipped"  # other aliases: the gate says it skipped
    promoted = promote(ctx, 1, alias="production", force=True)
    assert promoted["gate"]["status"] == "forced" and "without a gate evaluation" in promoted["gate"]["reason"]

    v2 = publish_snapshot(ctx, seeded_snapshot(tmp_path / "b", {"road": 30, "sky": 25, "car": 5}, 2,
                                               {"lance_version": 4, "batches": ["b1", "b2"]}))
    assert v2["version"] == 2 and v2["previous"] == 1
    rows = cli(home, "releases", "list")
    assert [(r["version"], r["aliases"]) for r in rows] == [(1, ["canary", "production"]), (2, ["staging"])]
    d = cli(home, "releases", "diff", "1", "2")
    assert d["added"] == {"car": 5} and d["removed"] == {"tree": 10}
    assert d["changed"] == {"sky": {"a": 20, "b": 25, "delta": 5}}
    assert d["embedder"]["changed"] is False and d["vectors"] == {"a": 60, "b": 60, "delta": 0}

    import contextlib
    import io

    from knnclip_core.cli.main import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        assert main(["--home", str(home), "releases", "promote", "2"]) == 2  # the CLI refuses too, in a sentence
    assert "no quality-gate evaluation" in err.getvalue() and "KNNCLIP_PUBLISH__GATE_EVAL_PATH" in err.getvalue()
    assert ctx.aliases()["production"] == 1
    res = cli(home, "releases", "promote", "2", "--alias", "production", "--force")
    assert res["version"] == 2 and res["previous"] == 1
    assert load_release("production", settings=ctx.settings).version == 2
    back = rollback(ctx, "production")
    assert (back["version"], back["previous"]) == (1, 2)

    rel = load_release("models:/knnclip-memory@production", settings=ctx.settings, embedder_id=EMB)
    assert rel.version == 1 and rel.alias == "production"
    assert rel.snapshot.vocabulary == ["road", "sky", "tree"] and rel.snapshot.ntotal == 60
    D, I = rel.snapshot.search(rel.snapshot.index.reconstruct_n(0, 3), 1)
    assert I[:, 0].tolist() == [0, 1, 2]
    shown = cli(home, "releases", "show", "production")
    assert shown["version"] == 1 and shown["manifest"]["lineage"]["lance_version"] == 3
    from registry import resolve_ref
    assert resolve_ref("staging", settings=ctx.settings) == 2


def test_alias_history_survives_a_new_process(store, tmp_path):
    from registry.publish import publish_snapshot
    from registry.releases import promote

    ctx = ctx_for(store, "history-test")
    home = store[1]
    for i in range(3):
        publish_snapshot(ctx, seeded_snapshot(tmp_path / f"h{i}", {"a": 5 + i}, 10 + i), alias="")
    for v in (1, 2, 3):
        promote(ctx, v, alias="production", evaluator=None)
    code = ("import json,sys; from knnclip_core.config import load_settings; "
            "from registry.store import open_registry; from registry.releases import rollback; "
            "ctx = open_registry(load_settings(home=sys.argv[1]), model_name='history-test'); "
            "print(json.dumps(rollback(ctx, 'production')))")
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    out = subprocess.run([sys.executable, "-c", code, str(home)], capture_output=True, text=True, env=env,
                         timeout=120, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1])["version"] == 2
    # a fresh client (as after a restart) sees the move and can roll back once more
    from mlflow import MlflowClient

    from registry.releases import rollback
    from registry.store import RegistryContext

    fresh = RegistryContext(MlflowClient(ctx.tracking_uri, ctx.tracking_uri), ctx.tracking_uri, "history-test",
                            ctx.settings, ctx.ws, ctx.artifact_location)
    assert fresh.aliases()["production"] == 2
    assert rollback(fresh, "production")["version"] == 1
    from registry.aliases import RollbackError
    with pytest.raises(RollbackError, match="nothing to roll back"):
        rollback(fresh, "production")


def test_tampered_release_is_refused(store, tmp_path):
    from registry import load_release
    from registry.publish import publish_snapshot

    ctx = ctx_for(store, "tamper-test")
    v = publish_snapshot(ctx, seeded_snapshot(tmp_path / "t", {"a": 10, "b": 10}, 5))["version"]
    rel = load_release(v, ctx=ctx)  # good copy, now cached
    cached = rel.snapshot.path / "index.faiss"
    cached.write_bytes(cached.read_bytes()[:-1] + b"\x00")
    assert load_release(v, ctx=ctx).snapshot.ntotal == 20  # bad cache: downloaded again, verified
    source = Path(url2pathname(urlparse(snapshot_uri(ctx.model_version(v))).path))
    raw = bytearray((source / "index.faiss").read_bytes())
    raw[100] ^= 0xFF
    (source / "index.faiss").write_bytes(bytes(raw))
    cached.write_bytes(b"x")
    with pytest.raises(VerificationError, match="index.faiss"):
        load_release(v, ctx=ctx)


def test_quality_gate_refuses_regression_unless_forced(store, tmp_path):
    from registry.gate import GateRefusedError
    from registry.publish import publish_snapshot
    from registry.releases import promote

    ctx = ctx_for(store, "gate-test")
    good = publish_snapshot(ctx, seeded_snapshot(tmp_path / "g", {"a": 8}, 20, {"score": 0.90}))["version"]
    bad = publish_snapshot(ctx, seeded_snapshot(tmp_path / "w", {"a": 9}, 21, {"score": 0.80}))["version"]
    ok = publish_snapshot(ctx, seeded_snapshot(tmp_path / "o", {"a": 7}, 22, {"score": 0.895}))["version"]
    seen = []

    def evaluator(snapshot):
        seen.append(snapshot.manifest["lineage"]["score"])
        return {"segment_accuracy": snapshot.manifest["lineage"]["score"], "images": 3}

    first = promote(ctx, good, "production", evaluator=evaluator, tolerance=0.01)
    assert first["gate"]["status"] == "first"
    with pytest.raises(GateRefusedError, match=r"0\.8000 against 0\.9000 .* --force"):
        promote(ctx, bad, "production", evaluator=evaluator, tolerance=0.01)
    assert ctx.aliases()["production"] == good
    passed = promote(ctx, ok, "production", evaluator=evaluator, tolerance=0.01)
    assert passed["gate"]["status"] == "passed" and passed["gate"]["delta"] == pytest.approx(-0.005)
    forced = promote(ctx, bad, "production", evaluator=evaluator, tolerance=0.01, force=True)
    assert forced["gate"]["status"] == "forced" and ctx.aliases()["production"] == bad
    tags = ctx.model_version(bad).tags
    assert tags["knnclip.gate.production.segment_accuracy"] == "0.8"
    run = ctx.client.get_run(ctx.model_version(bad).run_id)
    assert run.data.metrics["gate_production_segment_accuracy"] == pytest.approx(0.8)


def test_concurrent_alias_moves_lose_no_history(store, tmp_path):
    """4 processes move one alias 5 times each at once: the history logs all 20 moves."""
    from registry.aliases import read_history
    from registry.publish import publish_snapshot

    ctx = ctx_for(store, "concurrent-aliases")
    for i in range(3):
        publish_snapshot(ctx, seeded_snapshot(tmp_path / f"c{i}", {"a": 4 + i}, 30 + i), alias="")
    code = ("import sys; from knnclip_core.config import load_settings; "
            "from registry.store import open_registry; from registry.aliases import move_alias; "
            "ctx = open_registry(load_settings(home=sys.argv[1]), model_name='concurrent-aliases'); "
            "[move_alias(ctx, 'canary', 1 + (int(sys.argv[2]) + i) % 3, 'promote', note=f'{sys.argv[2]}-{i}') "
            "for i in range(5)]")
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    procs = [subprocess.Popen([sys.executable, "-c", code, str(store[1]), str(p)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for p in range(4)]
    for p in procs:
        _, err = p.communicate(timeout=180)
        assert p.returncode == 0, err
    notes = sorted(e["note"] for e in read_history(ctx, "canary")["log"])
    assert notes == sorted(f"{p}-{i}" for p in range(4) for i in range(5))


def test_promote_refuses_a_release_that_fails_verification(store, tmp_path):
    from registry.publish import publish_snapshot
    from registry.releases import promote

    ctx = ctx_for(store, "promote-verify-test")
    good = publish_snapshot(ctx, seeded_snapshot(tmp_path / "g", {"a": 10, "b": 10}, 6))["version"]
    promote(ctx, good, "production", evaluator=None)
    bad = publish_snapshot(ctx, seeded_snapshot(tmp_path / "b", {"a": 10, "b": 12}, 7))["version"]
    source = Path(url2pathname(urlparse(snapshot_uri(ctx.model_version(bad))).path))
    raw = bytearray((source / "index.faiss").read_bytes())
    raw[100] ^= 0xFF
    (source / "index.faiss").write_bytes(bytes(raw))
    for force in (False, True):  # no gate configured, and --force: still refused
        with pytest.raises(VerificationError, match=rf"promotion refused: release {bad} fails verification .*index\.faiss.*"
                                                    rf"'production' stays on version {good}"):
            promote(ctx, bad, "production", evaluator=None, force=force)
    assert ctx.aliases()["production"] == good


def test_releases_diff_summarises_a_long_diff(store, tmp_path, capsys):
    """Over 20 lines, `releases diff` prints counts and the largest changes (--full: every line);
    a short diff prints every line, as before."""
    from knnclip_core.cli.main import main
    from registry.publish import publish_snapshot

    ctx, home = store
    a = {f"class{i:02d}": 2 + i % 3 for i in range(30)}
    b = {**{f"class{i:02d}": 2 + i % 3 for i in range(10, 30)}, **{f"new{i:02d}": 3 for i in range(12)},
         "class29": 9}
    va = publish_snapshot(ctx, seeded_snapshot(tmp_path / "a", a, 1), alias="")["version"]
    vb = publish_snapshot(ctx, seeded_snapshot(tmp_path / "b", b, 2), alias="")["version"]

    def diff(*flags) -> list[str]:
        assert main(["--home", str(home), "releases", "diff", str(va), str(vb), *flags]) == 0
        return capsys.readouterr().out.strip().splitlines()

    summary, full = diff(), diff("--full")
    assert len(full) == 1 + 12 + 10 + 1  # the headline, 12 added, 10 removed, class29 changed
    assert len(summary) == 5 and summary[0] == full[0]
    assert summary[1].startswith("  + 12 classes added; largest: ") and summary[1].endswith("... 7 more")
    assert summary[2].startswith("  - 10 classes removed; largest: ")
    assert summary[3] == "  ~ 1 classes changed; largest: class29 4 -> 9"
    assert summary[4] == "  (23 class lines; `--full` shows them all)"
    assert diff("--summary") == summary
    small = {"class00": 2, "class01": 3}
    vc = publish_snapshot(ctx, seeded_snapshot(tmp_path / "c", small, 3), alias="")["version"]
    vd = publish_snapshot(ctx, seeded_snapshot(tmp_path / "d", {**small, "extra": 2}, 4), alias="")["version"]
    assert main(["--home", str(home), "releases", "diff", str(vc), str(vd)]) == 0
    assert capsys.readouterr().out.strip().splitlines()[1:] == ["  + extra (2 vectors)"]
