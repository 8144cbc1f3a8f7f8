"""Quality per release: `knnclip eval` (and the promotion gate's evaluation) recorded as MLflow
evaluation runs on a real SQLite store, linked to the evaluated version both ways, with the
metrics equal to the eval's own report, the per-class IoU table and the confusion matrix;
`releases list|show` show the newest figure; the human eval output lists per-class IoU."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from knnclip_core.evaluation import Confusion
from knnclip_core.evaluation.eval_report import confusion_png, confusion_view, per_class_lines, per_class_rows

from test_worker_registry import COLOURS, published, write_evalset  # noqa: F401 - fixture


def _run(capsys, *argv) -> dict:
    """`knnclip ARGV --json` in-process; returns its JSON result."""
    from knnclip_core.cli.main import main

    assert main([*argv, "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    return result


def test_per_class_rows_and_compact_text():
    report = {"per_class_iou": {f"class {i:02d}|alias {i}": i / 40 for i in range(30)},
              "per_class_pixels": {f"class {i:02d}|alias {i}": 1000 + i for i in range(30)}}
    rows = per_class_rows(report)
    assert [r["name"] for r in rows] == [f"class {i:02d}" for i in range(30)]  # display names, worst first
    assert rows[3] == {"class": "class 03|alias 3", "name": "class 03", "iou": 3 / 40, "pixels": 1003}
    lines = per_class_lines(report, top=5)
    assert len(lines) == 1 + 5 + 1 + 5 and "30 classes" in lines[0]
    assert "class 00" in lines[1] and "IoU 0.0000" in lines[1] and "1,000 px" in lines[1]
    assert "20 more classes" in lines[6] and "--all-classes" in lines[6]
    assert "class 29" in lines[-1] and "IoU 0.7250" in lines[-1] and "alias" not in "".join(lines)
    full = per_class_lines(report, top=5, all_classes=True)
    assert len(full) == 31 and all(f"class {i:02d}" in full[i + 1] for i in range(30))


def test_confusion_view_keeps_the_largest_classes(tmp_path):
    c = Confusion(4, ["a", "b|bee", "c", "d"])
    gt = np.array([[0, 0, 0, 0, 1, 1, 1, 2, 2, 3]])
    pred = np.array([[0, 0, 1, -1, 1, 1, 3, 2, 0, 3]])
    c.add(pred, gt)
    norm, rows, cols = confusion_view(c, max_classes=2)
    assert rows == ["a", "b"] and cols == ["a", "b", "other classes", "unknown"]
    # a: 4 px -> a 2, b 1, unknown 1; b: 3 px -> b 2, other (d) 1
    assert norm.tolist() == [[0.5, 0.25, 0.0, 0.25], [0.0, 2 / 3, 1 / 3, 0.0]]
    png = confusion_png(c, tmp_path / "cm.png")
    with Image.open(png) as im:
        assert im.format == "PNG" and im.width > 200 and im.height > 200


@pytest.mark.slow
def test_eval_run_in_mlflow_linked_to_its_version(settings, published, tmp_path, capsys, monkeypatch):
    from knnclip_core.cli.main import main
    from registry.eval_runs import CONFUSION_FILE, EVAL_EXPERIMENT, TABLE_FILE, TAG_LATEST_MIOU, TAG_LATEST_RUN
    from registry.gate import default_evaluator, run_gate

    ctx, publish = published
    v1 = publish("s1", "production")
    v2 = publish("s2", "staging", extra_class="yellow")
    data = write_evalset(tmp_path / "evalset")
    first = _run(capsys, "eval", str(data))  # production = v1, ground-truth masks
    # a 4 x 4 grid cuts the evaluation set's blocks: proposals that cannot be perfect (SLIC with
    # regrouping finds these synthetic blocks exactly)
    monkeypatch.setenv("KNNCLIP_WORKER__PROPOSALS", "grid")
    monkeypatch.setenv("KNNCLIP_WORKER__MERGE_ROUNDS", "0")
    second = _run(capsys, "eval", str(data), "--release", str(v2), "--masks-from", "proposals")
    monkeypatch.delenv("KNNCLIP_WORKER__PROPOSALS")
    monkeypatch.delenv("KNNCLIP_WORKER__MERGE_ROUNDS")
    assert first["release"]["version"] == str(v1) and second["release"]["version"] == str(v2)
    assert second["miou"] < 1.0, "proposals give an imperfect figure, not a constant"

    client = ctx.client
    exp = client.get_experiment_by_name(EVAL_EXPERIMENT)
    assert exp is not None
    for report, version in ((first, v1), (second, v2)):
        run = client.get_run(report["mlflow_run"]["run_id"])
        assert run.info.experiment_id == exp.experiment_id and run.info.status == "FINISHED"
        m, p, t = run.data.metrics, run.data.params, run.data.tags
        assert m["miou"] == pytest.approx(report["miou"], abs=1e-12)
        assert m["pixel_accuracy"] == pytest.approx(report["pixel_accuracy"], abs=1e-12)
        assert m["images"] == report["images"] == 3
        if report["segment_accuracy"] is None:
            assert "segment_accuracy" not in m
        else:
            assert m["segment_accuracy"] == pytest.approx(report["segment_accuracy"], abs=1e-12)
        assert p["dataset_path"] == str(data) and p["dataset_format"] == "semantic-png"
        assert p["masks_from"] == report["masks_from"] and p["embedder_id"] == report["embedder_id"]
        assert p["k"] == str(settings.worker.k) and p["T"] == str(settings.worker.temperature)
        assert (t["knnclip.model_name"], t["knnclip.model_version"]) == ("knnclip-memory", str(version))
        assert [d.dataset.name for d in run.inputs.dataset_inputs] == ["evalset"]
        tags = ctx.model_version(version).tags  # the version points back at its newest eval run
        assert tags[TAG_LATEST_RUN] == run.info.run_id and tags[TAG_LATEST_MIOU] == f"{report['miou']:.4f}"
        arts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {TABLE_FILE, CONFUSION_FILE} <= arts
        local = Path(client.download_artifacts(run.info.run_id, TABLE_FILE, str(tmp_path / run.info.run_id)))
        table = json.loads(local.read_text())
        got = {row[table["columns"].index("label")]: row[table["columns"].index("iou")] for row in table["data"]}
        assert got == pytest.approx(report["per_class_iou"]) and set(got) <= set(COLOURS)
        png = client.download_artifacts(run.info.run_id, CONFUSION_FILE, str(tmp_path / run.info.run_id))
        with Image.open(png) as im:
            assert im.format == "PNG"

    # releases list / show group quality by evaluation set: ground-truth masks (v1) and proposals
    # (v2) measure different things, so they are two sets and never shown side by side
    rows = {r["version"]: r for r in _run(capsys, "releases", "list")}
    assert rows[v2]["quality"]["run_id"] == second["mlflow_run"]["run_id"]  # newest set first on a tie
    assert rows[v1]["quality"] is None and rows[v1]["quality_latest"]["run_id"] == first["mlflow_run"]["run_id"]
    assert rows[v1]["quality_latest"]["eval_set"] != rows[v2]["quality"]["eval_set"]
    assert main(["releases", "list"]) == 0
    text = capsys.readouterr().out
    assert "not evaluated on this set" in text and "evaluations use 2 different sets" in text
    assert f"version {v1} mIoU {first['miou']:.4f}" in text and f"knnclip releases compare {v2} {v1}" in text
    third = _run(capsys, "eval", str(data), "--release", str(v1), "--masks-from", "proposals")  # now both on one set
    rows = {r["version"]: r for r in _run(capsys, "releases", "list")}
    assert rows[v1]["quality"]["run_id"] == third["mlflow_run"]["run_id"] and rows[v1]["quality"]["dataset"] == "evalset"
    assert rows[v2]["quality"]["run_id"] == second["mlflow_run"]["run_id"]
    assert rows[v1]["quality"]["eval_set"] == rows[v2]["quality"]["eval_set"]
    assert len(rows[v1]["quality_sets"]) == 2 and len(rows[v2]["quality_sets"]) == 1
    assert main(["releases", "list"]) == 0
    text = capsys.readouterr().out
    assert f"mIoU {third['miou']:.4f}, seg acc - on evalset [set " in text
    assert f"mIoU {second['miou']:.4f}, seg acc - on evalset [set " in text
    shown = _run(capsys, "releases", "show", str(v2))
    assert shown["quality"]["run_id"] == second["mlflow_run"]["run_id"]
    assert [(p["version"], p["miou"]) for p in shown["quality_history"]["points"]] == \
        [(v1, pytest.approx(third["miou"])), (v2, pytest.approx(second["miou"]))]
    assert [p["version"] for p in shown["quality_history"]["sets"][1]["points"]] == [v1]  # the gt-mask set, apart
    assert main(["releases", "show", str(v2)]) == 0
    text = capsys.readouterr().out
    assert second["mlflow_run"]["run_id"] in text and "quality across versions on evalset [set " in text
    assert f"* version {v2:>4}: mIoU {second['miou']:.4f}" in text

    # the human eval output: headline, per-class IoU by display name with pixels, the run
    assert main(["eval", str(data), "--no-record"]) == 0
    text = capsys.readouterr().out
    assert "per-class IoU, worst first (3 classes)" in text and "recorded as" not in text
    for name, px in first["per_class_pixels"].items():
        assert f"{name}" in text and f"{px:,} px" in text

    # the promotion gate's evaluation is recorded the same way, linked to the candidate
    settings.publish.gate_eval_path = str(data)
    gate = run_gate(ctx, v2, "production", default_evaluator(settings), tolerance=1.0)
    assert gate["status"] == "passed"
    runs = client.search_runs([exp.experiment_id], "tags.`knnclip.eval.source` = 'gate:production:candidate'")
    [cand] = runs
    assert cand.data.tags["knnclip.model_version"] == str(v2)
    assert cand.data.metrics["segment_accuracy"] == pytest.approx(gate["candidate"]["segment_accuracy"])
    assert ctx.model_version(v2).tags[TAG_LATEST_RUN] == cand.info.run_id


def test_eval_of_a_version_backed_by_a_logged_model_links_the_model(settings):
    """MLflow 3: a version registered from a logged model gets the eval metrics on that model
    (its linked run metrics) and the run lists the model as an input."""
    from registry.eval_runs import eval_runs, latest_quality, record_eval
    from registry.store import open_registry

    ctx = open_registry(settings)
    client = ctx.client
    ctx.ensure_model()
    exp = ctx.experiment_id()
    run = client.create_run(exp)
    model = client.create_logged_model(exp, name="snapshot", source_run_id=run.info.run_id)
    with pytest.MonkeyPatch.context() as mp:  # the registry resolves models:/m-... with a default client
        mp.setenv("MLFLOW_TRACKING_URI", ctx.tracking_uri)  # (not mlflow.set_tracking_uri: that one stays set)
        mv = client.create_model_version(ctx.model_name, source=f"models:/{model.model_id}", run_id=run.info.run_id)
    report = {"miou": 0.625, "pixel_accuracy": 0.75, "segment_accuracy": 0.5, "images": 2, "masks_from": "gt",
              "per_class_iou": {"sky": 0.5, "road|street": 0.75}, "per_class_pixels": {"sky": 10, "road|street": 30}}
    rec = record_eval(ctx, int(mv.version), report, dataset={"format": "semantic-png", "root": "/d/val", "dataset": "val"})
    assert rec["model_id"] == model.model_id
    metrics = {m.key: (m.value, m.run_id, m.dataset_name) for m in client.get_logged_model(model.model_id).metrics}
    assert metrics["miou"] == (0.625, rec["run_id"], "val") and metrics["segment_accuracy"][0] == 0.5
    assert [i.model_id for i in client.get_run(rec["run_id"]).inputs.model_inputs] == [model.model_id]
    [summary] = eval_runs(ctx)
    assert latest_quality(ctx) == {int(mv.version): summary}
    assert (summary["miou"], summary["segment_accuracy"], summary["dataset"], summary["images"]) == (0.625, 0.5, "val", 2)
