"""The registry as people read it: a markdown description per version whose figures are the
catalog's and the memory's, provenance as one artifact plus MLflow dataset inputs (not a
wall of tags), old tag-based versions still listed and loaded, alias moves made outside
knnclip recorded, and a rollback that explains itself and acts on the corrected history."""
from __future__ import annotations

import contextlib
import io
import json

import pytest

from test_registry import EMB, seeded_snapshot
from test_worker_registry import published  # noqa: F401 (fixture)


@pytest.fixture
def ctx(settings, monkeypatch):
    """A registry (SQLite + local artifacts) in the test's fresh workspace; model knnclip-memory."""
    from registry.store import open_registry

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return open_registry(settings)


def knnclip(ctx, *argv: str) -> tuple[int, str, str]:
    """Run `knnclip --home HOME ARGV` in-process: (exit code, stdout, stderr)."""
    from knnclip_core.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(["--home", str(ctx.ws.home), *argv])
    return rc, out.getvalue(), err.getvalue()


def last_json(text: str):
    return json.loads(text.strip().splitlines()[-1])


def three_promoted(ctx, tmp_path) -> None:
    """Versions 1, 2, 3, each promoted to production in turn (stack 1 -> 2 -> 3)."""
    from registry.publish import publish_snapshot
    from registry.releases import promote

    for i in range(3):
        publish_snapshot(ctx, seeded_snapshot(tmp_path / f"s{i}", {"a": 4 + i, "b": 3}, 40 + i), alias="")
        promote(ctx, i + 1, "production", evaluator=None)


@pytest.fixture
def warnings_logged():
    """WARNING records of registry.aliases, whatever handlers the process's logging has."""
    import logging

    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append
    logger = logging.getLogger("registry.aliases")
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


def test_out_of_band_move_is_recorded_shown_and_rolled_back_over(ctx, tmp_path, warnings_logged):
    three_promoted(ctx, tmp_path)
    ctx.client.set_registered_model_alias(ctx.model_name, "production", "1")  # as in the MLflow UI

    rc, out, _ = knnclip(ctx, "releases", "show", "production", "--json")
    shown = last_json(out)
    assert rc == 0 and shown["version"] == 1
    entry = shown["alias_history"]["production"]["log"][-1]
    assert (entry["action"], entry["previous"], entry["version"]) == ("out-of-band", 3, 1)
    assert entry["detected_by"] == "releases show" and entry["at"]
    assert shown["alias_history"]["production"]["stack"] == [1, 2, 3, 1]
    assert ["'production' of 'knnclip-memory' was moved outside knnclip" in r.getMessage()
            for r in warnings_logged] == [True]  # warned once
    rc, out, _ = knnclip(ctx, "releases", "history", "--alias", "production")
    assert rc == 0 and "out-of-band" in out and "3 -> 1" in out and "found by `releases show`" in out
    # recorded once: reading again adds nothing
    knnclip(ctx, "releases", "list", "--json")
    from registry.aliases import read_history

    assert [e["action"] for e in read_history(ctx, "production")["log"]].count("out-of-band") == 1

    rc, out, err = knnclip(ctx, "releases", "rollback", "--alias", "production", "--json")  # not a TTY: proceeds
    res = last_json(out)
    assert rc == 0 and (res["previous"], res["version"]) == (1, 3)  # back to the holder before the outside move
    assert res["plan"]["how_current"]["action"] == "out-of-band" and "now:    version 1" in err
    assert "target: version 3" in err and "1 -> 2 -> 3 -> 1" in err
    rc, out, _ = knnclip(ctx, "releases", "rollback", "--alias", "production")
    assert rc == 0 and "now:    version 3" in out and "target: version 2" in out and "rolled back to version 2" in out
    assert ctx.aliases()["production"] == 2


def test_rollback_finds_an_outside_move_itself_and_asks_on_a_terminal(ctx, tmp_path, monkeypatch):
    three_promoted(ctx, tmp_path)
    ctx.client.set_registered_model_alias(ctx.model_name, "production", "2")
    monkeypatch.setattr("registry.cli_aliases.interactive", lambda: True)  # a person at a terminal
    answers = iter(["n"])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(answers))
    rc, out, _ = knnclip(ctx, "releases", "rollback")
    assert rc == 1 and "warning: alias moved outside knnclip, 3 -> 2" in out and "nothing done" in out
    assert ctx.aliases()["production"] == 2  # declined: not moved, but the outside move is recorded
    from registry.aliases import read_history

    assert read_history(ctx, "production")["log"][-1]["detected_by"] == "releases rollback"
    rc, out, _ = knnclip(ctx, "releases", "rollback", "--yes")
    assert rc == 0 and ctx.aliases()["production"] == 3  # 2 was put there from 3


def test_promote_after_an_outside_move_records_it_first(ctx, tmp_path):
    from registry.aliases import read_history
    from registry.releases import promote

    three_promoted(ctx, tmp_path)
    ctx.client.delete_registered_model_alias(ctx.model_name, "production")  # removed outside knnclip
    promote(ctx, 1, "production", evaluator=None)
    log = read_history(ctx, "production")["log"]
    assert [(e["action"], e["previous"], e["version"]) for e in log[-2:]] == [("out-of-band", 3, None),
                                                                              ("promote", None, 1)]


def test_quality_gate_figures_reach_the_description(ctx, tmp_path):
    from registry.publish import publish_snapshot
    from registry.releases import promote

    for i, score in enumerate((0.9, 0.95)):
        publish_snapshot(ctx, seeded_snapshot(tmp_path / f"q{i}", {"a": 5}, 50 + i, {"score": score}), alias="")

    def evaluator(snapshot):
        return {"segment_accuracy": snapshot.manifest["lineage"]["score"], "miou": 0.5, "images": 3}

    promote(ctx, 1, "production", evaluator=evaluator)
    promote(ctx, 2, "production", evaluator=evaluator)
    text = ctx.model_version(2).description
    tags = ctx.model_version(2).tags
    acc = float(tags["knnclip.gate.production.segment_accuracy"])
    assert f"segment accuracy {acc:.4f}, mIoU 0.5000 on 3 images" in text
    assert "+0.0500 vs version 1" in text and text.count("### Quality") == 1
    assert "Provenance: `provenance.json`" in text  # the rest of the description is kept


def test_an_evaluation_run_reaches_the_description(ctx, tmp_path):
    from registry.eval_runs import record_eval
    from registry.publish import publish_snapshot

    v = publish_snapshot(ctx, seeded_snapshot(tmp_path / "e", {"a": 5, "b": 4}, 70), alias="")["version"]
    report = {"miou": 0.4321, "segment_accuracy": 0.8, "images": 2, "per_class_iou": {"a": 0.5, "b": 0.3642}}
    run_id = record_eval(ctx, v, report, dataset={"dataset": "val", "format": "semantic-png", "root": "/d/val"})["run_id"]
    mv = ctx.model_version(v)
    assert f"- latest evaluation: mIoU {float(mv.tags['knnclip.eval.latest_miou']):.4f} (run `{run_id}`" in mv.description
    assert "0.4321" in mv.description and "not evaluated yet" not in mv.description


def _old_style_version(ctx, snapshot_dir):
    """A version written as knnclip did before provenance.json: ten `knnclip.*` version tags
    (counts, embedder, index, recall, lineage, ...), a one-line description, no dataset inputs."""
    from mlflow.entities import Metric, Param

    from knnclip_core.hashing import sha256_file
    from knnclip_core.index import verify_snapshot

    m = verify_snapshot(snapshot_dir)
    run = ctx.client.create_run(ctx.experiment_id(), tags={"knnclip.kind": "publish"})
    ctx.client.log_batch(run.info.run_id, params=[Param("factory", m["factory"]), Param("embedder_id", m["embedder_id"])],
                         metrics=[Metric("vectors", m["vectors"], 0, 0), Metric("classes", m["classes"], 0, 0),
                                  Metric("recall_at_10", m["recall_at_10"], 0, 0)])
    ctx.client.log_artifacts(run.info.run_id, str(snapshot_dir), artifact_path="snapshot")
    ctx.client.set_terminated(run.info.run_id, "FINISHED")
    ctx.ensure_model()
    tags = {"knnclip.vectors": m["vectors"], "knnclip.classes": m["classes"], "knnclip.embedder_id": m["embedder_id"],
            "knnclip.factory": m["factory"], "knnclip.recall_at_10": m["recall_at_10"], "knnclip.created": m["created"],
            "knnclip.manifest_sha256": sha256_file(snapshot_dir / "manifest.json"), "knnclip.backbone": "classic",
            "knnclip.lineage": json.dumps(m["lineage"])}
    mv = ctx.client.create_model_version(ctx.model_name, source=f"{run.info.artifact_uri}/snapshot", run_id=run.info.run_id,
                                         tags={k: str(v) for k, v in tags.items()},
                                         description=f"{m['vectors']} vectors, {m['classes']} classes, {m['factory']}")
    return int(mv.version), run.info.run_id, m


def test_old_tag_based_versions_still_list_show_load_and_diff(ctx, tmp_path):
    from registry import load_release
    from registry.publish import publish_snapshot
    from registry.releases import diff_releases, list_releases, show_release

    v1, run1, m1 = _old_style_version(ctx, seeded_snapshot(tmp_path / "o1", {"a": 6, "b": 4}, 60,
                                                         {"lance_version": 5, "batches": ["b1"], "backbone": "classic"}))
    v2, run2, m2 = _old_style_version(ctx, seeded_snapshot(tmp_path / "o2", {"a": 7}, 61, {"lance_version": 6}))
    ctx.client.delete_run(run2)  # its run is gone: only the tags are left
    new = publish_snapshot(ctx, seeded_snapshot(tmp_path / "n", {"a": 7, "c": 2}, 62), alias="")["version"]
    rows = {r["version"]: r for r in list_releases(ctx)}
    for v, m in ((v1, m1), (v2, m2)):
        assert (rows[v]["vectors"], rows[v]["classes"], rows[v]["factory"], rows[v]["embedder_id"]) == \
            (m["vectors"], m["classes"], m["factory"], EMB)
        assert rows[v]["recall_at_10"] == pytest.approx(m["recall_at_10"])
    assert rows[v1]["backbone"] == "classic" and rows[new]["vectors"] == 9
    shown = show_release(ctx, v1)
    assert shown["provenance"]["format"] == 0 and shown["provenance"]["memory"]["lance_version"] == 5
    assert shown["provenance"]["sources"] == [{"dataset": None, "batch": "b1", "rows": None}]
    assert load_release(v2, ctx=ctx, embedder_id=EMB).snapshot.ntotal == 7
    d = diff_releases(ctx, v2, new)
    assert d["added"] == {"c": 2} and d["rows"] == {"added": 9, "removed": 7, "kept": 0}
    text = ctx.model_version(new).description
    assert f"### Changes since version {v2}" in text and "classes added (1): c (2)" in text
    assert "rows: 9 added, 7 removed, 0 kept" in text  # seeded ids differ per snapshot


@pytest.mark.slow
def test_published_version_describes_itself_from_catalog_and_memory(settings, workspace, tmp_path):
    """A real pipeline publish twice: the description's figures, provenance.json and the
    run's dataset inputs equal what the memory and the catalog hold."""
    from collections import Counter

    from sqlmodel import select

    from knnclip_core.catalog import IngestBatch, session_scope
    from knnclip_core.embed_stage import run_embed
    from knnclip_core.embedders import embedder_provenance
    from knnclip_core.ingest import ingest_path
    from knnclip_core.memory.curate import curate
    from knnclip_core.memory.published import load_kept
    from knnclip_core.sample_data import write_sample_dataset
    from registry import load_release
    from registry.provenance import read_provenance
    from registry.publish import publish
    from registry.store import open_registry

    ingest_path(settings, write_sample_dataset(tmp_path / "a", images=5, classes=3, seed=4), progress=False)
    emb = run_embed(settings, backbone="classic", num_workers=0)["embedder_id"]
    curate(settings, workspace, "classic")
    first = publish(settings, workspace, backbone="classic")
    kept1 = load_kept(workspace, emb)
    ingest_path(settings, write_sample_dataset(tmp_path / "b", images=4, classes=5, seed=5), progress=False)
    run_embed(settings, backbone="classic", num_workers=0)
    curate(settings, workspace, "classic")
    second = publish(settings, workspace, backbone="classic")
    kept2 = load_kept(workspace, emb)
    ctx = open_registry(settings, workspace)

    mv = ctx.model_version(second["version"])
    text = mv.description
    manifest = load_release(second["version"], settings).snapshot.manifest
    assert f"**{len(kept2.vocabulary):,} classes, {len(kept2.ids):,} vectors**" in text
    assert f"index `{manifest['factory']}` (recall@10 {manifest['recall_at_10']:.4f}" in text
    assert f"Lance version {kept2.lance_version}, tag `{kept2.lance_tag}`" in text and kept2.table_name in text
    assert "backbone `classic`" in text and f"embedder `{emb}`" in text and "base model: none" in text
    added = sorted(set(kept2.vocabulary) - set(kept1.vocabulary))
    counts2 = Counter(kept2.class_names)
    if added:
        assert f"classes added ({len(added)}): " + ", ".join(f"{n} ({counts2[n]})" for n in added[:8]) in text
    a, b = set(kept1.ids), set(kept2.ids)
    assert f"rows: {len(b - a):,} added, {len(a - b):,} removed, {len(a & b):,} kept" in text
    assert f"### Changes since version {first['version']}" in text and len(text) <= 5000
    assert "### Changes\n- first version" in ctx.model_version(first["version"]).description

    # provenance as one artifact; only lookup tags on the version
    assert set(mv.tags) == {"knnclip.embedder_id", "knnclip.manifest_sha256", "knnclip.content_fingerprint",
                            "knnclip.layout"}
    prov = read_provenance(ctx, second["version"])
    record = embedder_provenance("classic")
    assert prov["backbone"]["spec"] == record["backbone"] and prov["backbone"]["weights_sha256"] == record["weights_sha256"]
    assert prov["memory"] == {"table": kept2.table_name, "lance_version": kept2.lance_version, "lance_tag": kept2.lance_tag}
    by_batch = Counter(zip(kept2.datasets, kept2.batch_ids))
    assert {(s["dataset"], s["batch"]): s["rows"] for s in prov["sources"]} == dict(by_batch)
    with session_scope(workspace.catalog_url) as s:
        catalog = {b.id: b for b in s.exec(select(IngestBatch)).all()}
    for src in prov["sources"]:
        assert src["source"] == catalog[src["batch"]].source and src["content_hash"] == catalog[src["batch"]].content_hash
    assert prov["snapshot"]["manifest_sha256"] == mv.tags["knnclip.manifest_sha256"]

    # one dataset input per source batch, with its rows, context training
    run = ctx.client.get_run(mv.run_id)
    inputs = {d.dataset.name: d for d in run.inputs.dataset_inputs}
    assert set(inputs) == {f"{d}@{b}" for d, b in by_batch}
    for (d, b), n in by_batch.items():
        di = inputs[f"{d}@{b}"]
        assert json.loads(di.dataset.profile)["num_rows"] == n
        assert {t.key: t.value for t in di.tags}["mlflow.data.context"] == "training"
        assert json.loads(di.dataset.source)["uri"] == catalog[b].source


def test_worker_poll_records_an_outside_move_when_it_swaps(settings, published):
    from knnclip_core.serving.watcher import ReleaseWatcher
    from registry.aliases import read_history
    from serving.worker_source import RegistryReleaseSource

    ctx, publish = published
    v1 = publish("w1", "production")
    v2 = publish("w2", "staging", extra_class="yellow")
    watcher = ReleaseWatcher(RegistryReleaseSource("models:/knnclip-memory@production", settings), poll_seconds=1)
    assert watcher.poll_once() and watcher.current.version == str(v1)
    ctx.client.set_registered_model_alias(ctx.model_name, "production", str(v2))  # outside knnclip
    assert watcher.poll_once() and watcher.current.version == str(v2)
    entry = read_history(ctx, "production")["log"][-1]
    assert (entry["action"], entry["previous"], entry["version"], entry["detected_by"]) == \
        ("out-of-band", v1, v2, "worker poll")


def test_promote_to_the_version_an_outside_move_chose_records_it(ctx, tmp_path):
    from registry.aliases import read_history
    from registry.releases import promote

    three_promoted(ctx, tmp_path)
    ctx.client.set_registered_model_alias(ctx.model_name, "production", "1")
    assert promote(ctx, 1, "production", evaluator=None)["changed"] is False  # already there: nothing to move
    entry = read_history(ctx, "production")["log"][-1]
    assert (entry["action"], entry["previous"], entry["version"]) == ("out-of-band", 3, 1)
