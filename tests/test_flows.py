"""The Prefect pipeline end to end on a real (temporary, local) Prefect server:
two runs and a diff, resume after kill -9, and the Dask runner giving the same memory."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from knnclip_core.config import load_settings
from knnclip_core.sample_data import class_names, write_sample_dataset
from knnclip_core.workspace import Workspace

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory):
    """One Prefect test server for the module (prefect_test_harness)."""
    home = tmp_path_factory.mktemp("prefect")
    os.environ.update(PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="true",
                      PREFECT_LOGGING_LEVEL="WARNING", PREFECT_RESULTS_LOCAL_STORAGE_PATH=str(home / "results"))
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        from prefect.settings import PREFECT_API_URL

        os.environ["PREFECT_API_URL"] = PREFECT_API_URL.value()  # Dask workers and subprocesses use it too
        yield PREFECT_API_URL.value()
        os.environ.pop("PREFECT_API_URL", None)


def _memory_state(settings) -> dict:
    """segment id -> (state, vector bytes) of the only memory table."""
    from knnclip_core.memory.table import connect, list_table_names

    ws = Workspace.from_settings(settings)
    db = connect(ws.memory_dir)
    (name,) = list_table_names(db)
    t = db.open_table(name).to_arrow()
    return {i: (s, bytes(memoryview(v.values.to_numpy(zero_copy_only=False).tobytes())))
            for i, s, v in zip(t.column("id").to_pylist(), t.column("state").to_pylist(), t.column("vector"))}


def test_pipeline_twice_gives_version_two_with_the_diff(prefect_server, tmp_path):
    from flows.pipeline import curation_pipeline

    settings = load_settings(home=tmp_path / "ws")
    s = settings.model_dump(mode="json")
    first = curation_pipeline(path=str(write_sample_dataset(tmp_path / "a", images=8, classes=3, seed=1)), settings=s)
    assert first["release"]["version"] == 1 and first["release"]["classes"] == 3
    assert first["ingest"][0]["images"] == 8
    second = curation_pipeline(path=str(write_sample_dataset(tmp_path / "b", images=8, classes=5, seed=2)), settings=s)
    assert second["release"]["version"] == 2
    assert sorted(second["diff"]["added"]) == sorted(set(class_names(5)) - set(class_names(3)))
    assert second["diff"]["removed"] == {}
    # the run summary is a Prefect artifact
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        art = client.read_latest_artifacts()
    summary = [a for a in art if a.key == "knnclip-run-summary"]
    assert summary and "Diff against version 1" in summary[0].data and "models:/knnclip-memory/2" in summary[0].data


def _with_duplicates_and_conflicts(data: Path) -> Path:
    """Add to a sample dataset a near copy of one image (same labels: duplicates) and of
    another with every label moved to the next class (label conflicts)."""
    import numpy as np
    from PIL import Image

    names = sorted(p.name for p in (data / "images").iterdir())
    k = len((data / "classes.txt").read_text().split())
    for src, tag, relabel in ((names[0], "dup", lambda m: m), (names[1], "conflict", lambda m: (m + 1) % k)):
        img = np.array(Image.open(data / "images" / src))
        img[0, 0] = 255 - img[0, 0]  # another file, the same content to the embedder
        Image.fromarray(img).save(data / "images" / f"{tag}.png")
        mask = np.array(Image.open(data / "masks" / src))
        Image.fromarray(relabel(mask).astype(np.uint8), mode="L").save(data / "masks" / f"{tag}.png")
    return data


def test_flow_run_logs_and_artifacts_tell_what_happened(prefect_server, tmp_path):
    """The run's logs (as the Prefect UI's Logs tab reads them) hold a line per stage with
    its counts; the table artifact has every column; the summary has no dict text and names
    the MLflow run, the model version and the promotion result."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (ArtifactFilter, ArtifactFilterFlowRunId, LogFilter,
                                                LogFilterFlowRunId)
    from prefect.logging.handlers import APILogHandler

    from flows.pipeline import curation_pipeline
    from registry.store import default_tracking_uri

    data = _with_duplicates_and_conflicts(write_sample_dataset(tmp_path / "d", images=6, classes=3, seed=4))
    from knnclip_core.overrides import with_overrides

    settings = with_overrides(load_settings(home=tmp_path / "ws"), publish={"gate_eval_path": str(data)})
    state = curation_pipeline(path=str(data), promote_to="production", budget_vectors=1000,
                              settings=settings.model_dump(mode="json"), return_state=True)
    result, run_id = state.result(), state.state_details.flow_run_id
    ing, emb, cur, rel = result["ingest"][0], result["embed"], result["curate"], result["release"]
    counts = cur["counts"]
    assert counts["duplicate"] > 0 and counts["conflict"] > 0, counts
    APILogHandler().flush()
    with get_client(sync_client=True) as client:
        messages = [log.message for log in client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))]
        artifacts = {a.key: a for a in client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id])))}

    def line(prefix: str) -> str:
        found = [m for m in messages if m.startswith(prefix)]
        assert found, f"no log line starting {prefix!r} in {messages}"
        return found[0]

    assert line("ingest: ").startswith(f"ingest: {ing['images']} images, {ing['segments']} segments "
                                       f"({ing['new_segments']} new), {ing['quarantined']} quarantined")
    assert line("embed: ").startswith(f"embed: {emb['embedded']} vectors ({emb['backbone']} on ")
    assert line("curate: ").startswith(f"curate: kept {counts['kept']} of {cur['rows']}, {counts['duplicate']} "
                                       f"duplicate")
    assert "budget at most 1,000 vectors" in line("curate: ")
    assert line("publish: ").startswith(f"publish: version {rel['version']} ({rel['factory']}, recall@10 ")
    assert line("promote: ").startswith(f"promote: promoted version {rel['version']} to production")

    table = json.loads(artifacts["knnclip-memory-classes"].data)
    assert {r["class"] for r in table} == set(cur["per_class"])
    for column in ("rows", "kept", "duplicate", "conflict", "over_budget", "forgotten"):
        assert all(column in r for r in table), column
        assert sum(r[column] for r in table) == (cur["rows"] if column == "rows" else counts[column])

    md = artifacts["knnclip-run-summary"].data
    assert "{'" not in md and "budget: at most 1,000 vectors" in md
    assert rel["run_id"] in md and default_tracking_uri(Workspace.from_settings(settings)) in md
    assert f"models:/knnclip-memory/{rel['version']}" in md
    assert f"promoted version {rel['version']} to production" in md


def _run_cli(home: Path, data: Path, api_url: str, extra=()) -> subprocess.Popen:
    env = {**os.environ, "KNNCLIP_HOME": str(home), "PREFECT_API_URL": api_url,
           "KNNCLIP_EMBED__CHUNK_SEGMENTS": "8", "KNNCLIP_EMBED__NUM_WORKERS": "0"}
    return subprocess.Popen([sys.executable, "-m", "knnclip_core.cli.main", "run", str(data), "--json", *extra],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)


def test_kill_during_embedding_then_resume(prefect_server, tmp_path):
    data = write_sample_dataset(tmp_path / "d", images=120, classes=4, seed=5, size=(192, 256))
    home = tmp_path / "killed"
    proc = _run_cli(home, data, prefect_server)
    settings = load_settings(home=home)
    deadline = time.time() + 240
    from knnclip_core.memory.table import connect, list_table_names

    embedded_before_kill = 0
    while time.time() < deadline and proc.poll() is None:
        try:
            db = connect(Workspace.from_settings(settings).memory_dir)
            names = list_table_names(db)
            embedded_before_kill = db.open_table(names[0]).count_rows() if names else 0
        except Exception:
            embedded_before_kill = 0
        if embedded_before_kill > 0:
            break
        time.sleep(0.2)
    assert proc.poll() is None, "the run finished before it could be killed: make the data larger"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert embedded_before_kill > 0
    rerun = _run_cli(home, data, prefect_server)
    out, err = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, err[-3000:]
    resumed = json.loads(out.strip().splitlines()[-1])
    assert resumed["embed"]["skipped_existing"] >= embedded_before_kill
    # `knnclip run` printed a line per stage on stderr as it went (stdout stays JSON)
    assert "ingest: 120 images" in err and "(already ingested: cached summary)" in err
    assert f"embed: {resumed['embed']['embedded']} vectors" in err and "curate: kept " in err
    assert f"publish: version {resumed['release']['version']} (" in err and "promote: not asked" in err
    total = resumed["embed"]["skipped_existing"] + resumed["embed"]["embedded"]
    # an uninterrupted run elsewhere ends with the same memory and an equal release
    clean_home = tmp_path / "clean"
    clean = _run_cli(clean_home, data, prefect_server)
    out2, err2 = clean.communicate(timeout=600)
    assert clean.returncode == 0, err2[-3000:]
    uninterrupted = json.loads(out2.strip().splitlines()[-1])
    assert uninterrupted["embed"]["embedded"] == total
    assert _memory_state(settings) == _memory_state(load_settings(home=clean_home))
    for key in ("version", "vectors", "classes", "factory"):
        assert resumed["release"][key] == uninterrupted["release"][key]


def test_dask_runner_gives_the_same_memory(prefect_server, tmp_path):
    from flows.pipeline import curation_pipeline

    data = str(write_sample_dataset(tmp_path / "d", images=10, classes=3, seed=9))
    plain = load_settings(home=tmp_path / "plain")
    curation_pipeline(path=data, settings=plain.model_dump(mode="json"))
    dask = load_settings(home=tmp_path / "dask")
    result = curation_pipeline(path=data, use_dask=True, embed_shards=2, settings=dask.model_dump(mode="json"))
    assert result["embed"]["shards"] == 2
    assert result["embed"]["embedded"] == result["embed"]["segments"] == len(_memory_state(plain))
    assert _memory_state(plain) == _memory_state(dask)


def test_drop_folder_picks_up_only_new_batches(prefect_server, tmp_path):
    from flows.pipeline import drop_folder_pipeline

    drop = tmp_path / "drop"
    write_sample_dataset(drop / "day1", images=6, classes=3, seed=21)
    s = load_settings(home=tmp_path / "ws").model_dump(mode="json")
    first = drop_folder_pipeline(str(drop), settings=s)
    assert [Path(p).name for p in first["new_sources"]] == ["day1"] and first["release"]["version"] == 1
    assert drop_folder_pipeline(str(drop), settings=s) == {"new_sources": [], "release": None}
    write_sample_dataset(drop / "day2", images=6, classes=4, seed=22)
    third = drop_folder_pipeline(str(drop), settings=s)
    assert [Path(p).name for p in third["new_sources"]] == ["day2"] and third["release"]["version"] == 2


def test_schedule_command_serves_a_cron_deployment(tmp_path):
    """`knnclip schedule` starts a loopback Prefect server and registers the cron deployment."""
    import httpx

    drop = tmp_path / "drop"
    drop.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update(KNNCLIP_HOME=str(tmp_path / "ws"), PREFECT_HOME=str(tmp_path / "prefect"))
    proc = subprocess.Popen([sys.executable, "-m", "knnclip_core.cli.main", "schedule", "--cron", "0 3 * * *",
                             "--watch", str(drop)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=REPO, start_new_session=True)
    try:
        url = None
        deadline = time.time() + 180
        while time.time() < deadline and url is None:
            line = proc.stderr.readline()
            if "Prefect server at" in line:
                url = line.split(" at ")[1].split()[0]
            assert proc.poll() is None or url, proc.stderr.read()[-2000:]
        assert url, "the schedule command did not start a server"
        found = []
        while time.time() < deadline and not found:
            try:
                r = httpx.post(f"{url}/deployments/filter", json={}, timeout=5)
                found = [d for d in r.json() if d["name"] == "knnclip-drop-folder"]
            except httpx.HTTPError:
                pass
            time.sleep(1)
        assert found, "no knnclip-drop-folder deployment was registered"
        crons = [s["schedule"].get("cron") for s in found[0].get("schedules", [])]
        assert crons == ["0 3 * * *"]
        assert found[0]["parameters"]["watch_dir"] == str(drop)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def test_label_export_and_import_flows(prefect_server, tmp_path):
    """The labelling flows: captured segments out as a CVAT task set, the answers back in as
    a correction batch, with a markdown artifact each."""
    import numpy as np
    from prefect.client.orchestration import get_client

    from flows.labelling import label_export_flow, label_import_flow
    from flows.tasks import public_settings
    from knnclip_core.labelling.capture import CaptureStore
    from knnclip_core.readers.regions import encode_mask

    settings = load_settings(home=str(tmp_path / "ws"))
    settings.capture.dir = str(tmp_path / "captures")
    store = CaptureStore(tmp_path / "captures")
    img = np.zeros((24, 32, 3), np.uint8)
    img[:, 16:] = 200
    mask = np.zeros((24, 32), bool)
    mask[:, 16:] = True
    counts, area, bbox = encode_mask(mask)
    store.add(img, {"release": {"version": "3"}, "source": "test", "classes": ["road"], "height": 24, "width": 32,
                    "segments": [{"index": 0, "reasons": ["unknown"], "mask_rle": counts, "area": area,
                                  "bbox": list(bbox), "proposed_class": "wall", "confidence": 0.1}]})
    res = label_export_flow(str(tmp_path / "out"), tool="cvat", settings=public_settings(settings))
    assert res["tasks"] == 1 and (tmp_path / "out" / "annotations.xml").is_file()
    rep = label_import_flow(str(tmp_path / "out" / "annotations.xml"), tool="cvat", settings=public_settings(settings))
    assert rep["segments"] == 1 and rep["correction"]["releases"] == ["3"] and rep["quarantined"] == 0

    async def keys():
        async with get_client() as client:
            return {a.key for a in await client.read_artifacts()}

    import asyncio

    assert {"label-export", "label-import"} <= asyncio.run(keys())


def test_run_reads_as_people_read_it_and_its_budget_reaches_publish(prefect_server, tmp_path, monkeypatch):
    """As `knnclip run` calls it (settings from the environment): the flow run is named
    '<dataset> <UTC time>', its parameters (read back through the Prefect client) are what it was
    asked, no settings dump and no secret, in it or its subflow; its --budget-mb bounds the
    published index even where the unbudgeted choice would be bigger (HNSW)."""
    import re

    from faiss.contrib.factory_tools import get_code_size
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId

    import knnclip_core.index.choice as choice
    from flows.pipeline import curation_pipeline
    from knnclip_core.index.choice import flat_bytes
    from registry import load_release

    monkeypatch.setenv("KNNCLIP_HOME", str(tmp_path / "ws"))
    monkeypatch.setenv("KNNCLIP_WORKER_TOKEN", "t0ken-never-a-parameter")
    monkeypatch.setattr(choice, "FLAT_MAX_VECTORS", 1)  # unbudgeted, this memory would be HNSW32,Flat
    data = write_sample_dataset(tmp_path / "harbour", images=6, classes=3, seed=7)
    from knnclip_core.embedders import embedder_id_for

    dim = int(embedder_id_for(None, load_settings()).rsplit("dim=", 1)[1])
    budget_mb = flat_bytes(4, dim) / 1e6
    state = curation_pipeline(path=str(data), budget_mb=budget_mb, return_state=True)
    rel = state.result()["release"]
    manifest = load_release(rel["version"], load_settings()).snapshot.manifest
    budget = int(budget_mb * 1e6)
    assert manifest["build"]["byte_budget"] == budget and manifest["factory"] == "Flat"
    assert get_code_size(dim, manifest["factory"]) * manifest["vectors"] <= budget
    assert manifest["bytes"]["index"] <= budget

    with get_client(sync_client=True) as client:
        run = client.read_flow_run(state.state_details.flow_run_id)
        children = client.read_flow_runs(flow_run_filter=FlowRunFilter(
            parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[run.id])))
    assert re.fullmatch(r"harbour \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ", run.name), run.name
    assert run.parameters["path"] == str(data) and run.parameters["budget_mb"] == budget_mb
    assert run.parameters["settings"] is None
    assert not any(isinstance(v, dict) and len(v) > 5 for v in run.parameters.values()), run.parameters
    for r in [run, *children]:
        assert "t0ken-never-a-parameter" not in json.dumps(r.parameters, default=str)
        assert (r.parameters.get("settings") or {}) == {}, r.name


def _untimed(line: str) -> str:
    """A stage line without its timing ('(3.1 s)', ', 11.2 s)'), the one part two runs differ in."""
    import re

    return re.sub(r"\d[\d,]*\.\d s\)", "T s)", line)


def test_cli_and_flow_print_the_same_stage_lines(prefect_server, tmp_path, monkeypatch, capsys):
    """Each stage's summary is formatted in one place: the line `knnclip <stage>` prints first is
    the line the Prefect flow logs for the same stage on the same data (timings aside), each is
    its typed result's `line()`, and the stages called as one shape return their typed results."""
    import yaml

    from flows.pipeline import curation_pipeline
    from knnclip_core.cli.main import main as cli_main
    from knnclip_core.overrides import with_overrides
    from knnclip_core import stage_api as core
    from knnclip_core.stages.results import CurateResult, EmbedResult, IngestReport, PromoteResult, PublishResult
    from registry import stages as registry_stages

    data = write_sample_dataset(tmp_path / "d", images=6, classes=3, seed=4)
    flow_settings = with_overrides(load_settings(home=tmp_path / "flow"), publish={"gate_eval_path": str(data)})
    result = curation_pipeline(path=str(data), promote_to="production", budget_vectors=1000,
                               settings=flow_settings.model_dump(mode="json"))
    flow_err = capsys.readouterr().err
    flow_lines = {line.split(":")[0]: line for line in flow_err.splitlines()
                  if line.split(":")[0] in ("ingest", "embed", "curate", "publish", "promote")}
    typed = {"ingest": IngestReport.from_json(result["ingest"][0]), "embed": EmbedResult.from_json(result["embed"]),
             "curate": CurateResult.from_json(result["curate"]), "publish": PublishResult.from_json(result["release"]),
             "promote": PromoteResult.from_json(result["promoted"])}
    for name, r in typed.items():  # the flow logged each stage's line() of the result it returned
        assert flow_lines[name] == r.line(), name

    home = tmp_path / "cli"
    config = tmp_path / "cli.yaml"
    config.write_text(yaml.safe_dump({"publish": {"gate_eval_path": str(data)}}))
    monkeypatch.setenv("KNNCLIP_HOME", str(home))  # the CLI sets them; restored after the test
    monkeypatch.setenv("KNNCLIP_CONFIG", str(config))
    base = ["--home", str(home), "--config", str(config)]
    commands = {"ingest": ["ingest", str(data)], "embed": ["embed"], "curate": ["curate", "--budget-vectors", "1000"],
                "publish": ["publish"], "promote": ["releases", "promote", "1", "--alias", "production"]}
    for name, argv in commands.items():
        assert cli_main(base + argv) == 0, name
        first = capsys.readouterr().out.splitlines()[0]
        assert _untimed(first) == _untimed(flow_lines[name]), name

    # the one shape: stage(settings, ws, **asked) -> its typed result, whose JSON has the flow's keys
    settings = load_settings(home=home)
    ws = Workspace.from_settings(settings).ensure()
    again = {"ingest": core.ingest(settings, ws, path=data, progress=False), "embed": core.embed(settings, ws),
             "curate": core.curate(settings, ws), "publish": registry_stages.publish(settings, ws),
             "promote": registry_stages.promote(settings, ws, version=1, alias="production")}
    for name, r in again.items():
        assert type(r) is type(typed[name]), name
        assert type(r).from_json(r.to_json()) == r, name
    assert set(again["curate"].to_json()) == set(result["curate"])
    assert set(again["embed"].to_json()) | {"shards"} == set(result["embed"])
    assert again["publish"].reused and again["promote"].gate["status"] == "unchanged"
