"""Releases compared task by task, the class map, and the gate refusing a release that drops
a registered task (issue 14)."""
import pytest

from knnclip_core.config import load_settings
from knnclip_core.embed_stage import run_embed
from knnclip_core.errors import InputError
from knnclip_core.ingest import ingest_path
from knnclip_core.memory.curate import curate
from knnclip_core.memory.forget import forget
from knnclip_core.sample_data import write_sample_dataset
from knnclip_core.evaluation.task_sets import ClassMap, load_tasks
from knnclip_core.workspace import Workspace
from registry.compare import compare_releases, format_comparison, task_regressions
from registry.gate import GateRefusedError
from registry.publish import publish
from registry.releases import promote
from registry.store import open_registry


def test_class_map_canonical_names():
    cmap = ClassMap.load()
    assert cmap.canonical("Pedestrian") == cmap.canonical("person") == "person"
    assert cmap.canonical("sidewalk|pavement") == "sidewalk"  # ADE20K label with its synonyms
    assert cmap.canonical("pavement-merged") == "sidewalk"     # COCO panoptic spelling
    assert cmap.canonical("coffee table|cocktail table") == "coffee table"  # unmapped: its first name
    assert cmap.canonical("auto|car") == "car"  # a later synonym can be the mapped one
    assert cmap.canonical("Bicyclist") == "bicyclist"
    with pytest.raises(ValueError, match="both"):
        ClassMap({"a": ["x"], "b": ["x"]})


def test_tasks_file_resolves_paths_and_refuses_unknown_keys(tmp_path):
    (tmp_path / "t.yaml").write_text("tasks:\n  a: {path: data/a, format: semantic-png, ignore: [11]}\n")
    (task,) = load_tasks(tmp_path / "t.yaml")
    assert task.name == "a" and task.path == str((tmp_path / "data" / "a").resolve()) and task.ignore == (11,)
    (tmp_path / "bad.yaml").write_text("tasks:\n  a: {path: x, colour: red}\n")
    with pytest.raises(InputError, match="unknown keys"):
        load_tasks(tmp_path / "bad.yaml")


def test_task_regressions_oracle():
    inc = {"own": {"a": {"miou": 0.8}, "b": {"miou": 0.5}, "c": {"miou": None}}}
    cand = {"own": {"a": {"miou": 0.79}, "b": {"miou": 0.3}, "c": {"miou": 0.1}}}
    (r,) = task_regressions(cand, inc, tolerance=0.05)
    assert r["task"] == "b" and r["drop"] == pytest.approx(0.2)


@pytest.mark.slow
def test_compare_releases_and_gate_refuses_a_task_drop(tmp_path, monkeypatch):
    two = write_sample_dataset(tmp_path / "two", images=8, classes=2, seed=31)
    four = write_sample_dataset(tmp_path / "four", images=8, classes=4, seed=32)
    held_two = write_sample_dataset(tmp_path / "held_two", images=4, classes=2, seed=33)
    held_four = write_sample_dataset(tmp_path / "held_four", images=4, classes=4, seed=34)
    tasks = tmp_path / "tasks.yaml"
    tasks.write_text(f"tasks:\n  first: {{path: {held_two}, format: semantic-png}}\n"
                     f"  second: {{path: {held_four}, format: semantic-png}}\n")
    monkeypatch.setenv("KNNCLIP_PUBLISH__GATE_TASKS", str(tasks))
    settings = load_settings(home=tmp_path / "ws")
    ws = Workspace.from_settings(settings).ensure()
    ingest_path(settings, two, progress=False)
    run_embed(settings, backbone="classic", num_workers=0)
    curate(settings, ws, "classic")
    v1 = publish(settings, ws, backbone="classic")["version"]
    second = ingest_path(settings, four, progress=False)
    run_embed(settings, backbone="classic", num_workers=0)
    curate(settings, ws, "classic")
    v2 = publish(settings, ws, backbone="classic")["version"]
    ctx = open_registry(settings, ws)

    res = compare_releases(ctx, [v1, v2], str(tasks))
    assert res["versions"] == [v1, v2] and res["tasks"] == ["first", "second"]
    own = res["changes"][v2]["own"]
    assert abs(own["first"]["miou"]) <= 0.05   # the first task's rows are unchanged
    assert own["second"]["miou"] > 0.1          # the second task's classes arrived with v2
    assert res["figures"][v2]["own"]["second"]["miou"] > res["figures"][v1]["own"]["second"]["miou"]
    assert "first" in format_comparison(res) and "union vocabulary" in format_comparison(res)

    assert promote(ctx, v2, alias="production")["gate"]["status"] == "first"
    forget(settings, ws, batch=second.batch_id, reason="test: lose the second task's classes")
    curate(settings, ws, "classic")
    v3 = publish(settings, ws, backbone="classic")["version"]
    with pytest.raises(GateRefusedError, match="task 'second'"):
        promote(ctx, v3, alias="production")
    assert ctx.aliases()["production"] == v2
