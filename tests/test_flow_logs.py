"""What operators read while work runs: periodic progress lines off a terminal, the stage
lines and Prefect artifacts of a pipeline run (pure parts; the real flow is in
test_flows.py), and the lines `knnclip serve` prints at start-up and on each release."""
from __future__ import annotations

import io
import os

import pytest

from knnclip_core.progress import Progress, duration_text, progress_for


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_progress_lines_off_a_terminal_every_n_seconds():
    clock, out, logged = FakeClock(), io.StringIO(), []
    p = Progress(5000, "embed", "segments", rate_unit="seg", every=10, clock=clock, stream=out, log=logged.append)
    assert p._bar is None  # a StringIO is no terminal: lines, not a bar
    for _ in range(25):  # 200 segments every 2 s: a line at 10, 20, 30, 40, 50 s
        clock.now += 2
        p.update(200, quarantined=3)
    p.close()
    lines = out.getvalue().splitlines()
    assert lines == logged  # the run log gets the same lines
    assert lines == [f"embed: {n:,}/5,000 segments, 100 seg/s" + (f", eta {duration_text((5000 - n) / 100)}"
                                                                   if n < 5000 else "") + " (3 quarantined)"
                     for n in (1000, 2000, 3000, 4000, 5000)]
    assert lines[0] == "embed: 1,000/5,000 segments, 100 seg/s, eta 40 s (3 quarantined)"


def test_progress_is_silent_when_not_asked_and_rate_free_before_work():
    clock, out = FakeClock(), io.StringIO()
    p = progress_for(False, 10, "ingest", "images")
    clock.now += 60
    p.update(5)
    assert p.echo is False and p.log is None
    q = Progress(10, "ingest", "images", clock=clock, stream=out)
    assert q.line() == "ingest: 0/10 images"  # no rate or eta before anything is done
    seen = []
    r = progress_for(seen.append, 10, "ingest", "images")
    assert r.log is not None and r.echo  # a callable also gets the lines
    assert duration_text(3725) == "1 h 2 min" and duration_text(185) == "3 min 5 s"


def test_progress_bar_on_a_terminal_writes_no_lines():
    clock, out, logged = FakeClock(), io.StringIO(), []
    p = Progress(10, "ingest", "images", rate_unit="img", clock=clock, stream=out, bar=True, log=logged.append)
    clock.now += 30
    p.update(4, quarantined=1)
    p.close()
    assert "ingest" in out.getvalue() and "\n" not in out.getvalue().strip("\n")  # one redrawn bar line
    assert logged == ["ingest: 4/10 images, 0.1 img/s, eta 45 s (1 quarantined)"]  # the run log still gets it


def test_table_artifact_rows_carry_every_column():
    from flows.reports import STATE_COLUMNS, class_table

    curation = {"per_class": {"sky": {"rows": 3, "kept": 3},
                              "grass": {"rows": 5, "kept": 2, "duplicate": 2, "conflict": 1},
                              "sand": {"rows": 1, "forgotten": 1}}}
    table = class_table(curation)
    assert [r["class"] for r in table] == ["grass", "sand", "sky"]
    assert all(list(r) == ["class", *STATE_COLUMNS] for r in table)
    sky = table[2]
    assert sky["duplicate"] == 0 and sky["conflict"] == 0 and sky["kept"] == 3


def test_summary_markdown_reads_as_text():
    from flows.reports import budget_text, pipeline_markdown
    from knnclip_core.stages.results import CurateResult, PromoteResult

    budget = {"vectors": 2000, "strategy": "balanced", "bytes_per_vector": 512, "kept_bytes": 410_000,
              "class_floor": 1, "class_ceiling": None}
    curation = {"rows": 312, "counts": {"kept": 290, "duplicate": 4, "conflict": 1, "over_budget": 17,
                                        "forgotten": 0}, "budget": budget, "params": {"budget_mb": 1.0}}
    assert budget_text(budget, curation["params"]) == ("at most 2,000 vectors (1 MB requested; balanced, class floor 1, "
                                                       "no class ceiling); kept 0.41 MB at 512 B/vector")
    assert budget_text({**budget, "vectors": None, "kept_bytes": 4300}) == ("none (balanced, class floor 1, no class "
                                                                            "ceiling); kept 4.3 kB at 512 B/vector")
    assert CurateResult.from_json(curation).line().startswith("curate: kept 290 of 312, 4 duplicates, 1 conflict, 17 over budget")
    release = {"uri": "models:/knnclip-memory/7", "version": 7, "model_name": "knnclip-memory", "run_id": "abc123",
               "experiment_id": "1", "tracking_uri": "http://mlflow.local:5000", "alias": "staging"}
    refused = {"status": "refused", "alias": "production", "version": 7,
               "reason": "promotion refused: segment accuracy 0.41 < 0.52 - 0.01"}
    md = pipeline_markdown([], {}, curation, release, None, refused)
    assert "{'" not in md and "at most 2,000 vectors" in md
    assert "[abc123](http://mlflow.local:5000/#/experiments/1/runs/abc123)" in md
    assert "(http://mlflow.local:5000/#/models/knnclip-memory/versions/7)" in md
    assert "refused: version 7 was not promoted to production (promotion refused: segment accuracy" in md
    assert "not asked" in pipeline_markdown([], {}, curation, release, None, None)
    assert PromoteResult().line().startswith("promote: not asked")


def test_tracking_uri_password_is_redacted():
    from flows.reports import mlflow_links, redact_uri

    assert redact_uri("postgresql://knn:s3cret@db:5432/mlflow") == "postgresql://knn:***@db:5432/mlflow"
    assert redact_uri("sqlite:////ws/mlflow/mlflow.db") == "sqlite:////ws/mlflow/mlflow.db"
    lines = mlflow_links({"tracking_uri": "sqlite:////ws/mlflow.db", "run_id": "r1", "version": 2,
                          "uri": "models:/m/2", "model_name": "m", "experiment_id": "3"})
    assert lines[0] == "- MLflow run: `r1` in experiment 3, tracking URI `sqlite:////ws/mlflow.db`"


@pytest.fixture
def snapshot_link(tmp_path):
    """A real snapshot served through a symlink 'production', and the embedder cache."""
    from knnclip_core.segment.release import EmbedderCache
    from test_worker import make_snapshot, point

    embedders = EmbedderCache("cpu")
    link = tmp_path / "production"
    point(link, make_snapshot(tmp_path, "v1", embedders))
    return tmp_path, link, embedders


def test_serve_prints_its_banner_and_each_release_change(snapshot_link, settings):
    from knnclip_core.segment.release import LocalSnapshotSource
    from knnclip_core.segment.segmenter import SegmentParams
    from knnclip_core.serving.watcher import ReleaseWatcher
    from serving.cli import announce_releases, serve_banner
    from test_worker import point

    root, link, embedders = snapshot_link
    banner = serve_banner("127.0.0.1", 8123, str(link), 2.0, settings)
    assert "listening on http://127.0.0.1:8123" in banner and "token: off" in banner and "/metrics: open" in banner
    locked = settings.model_copy(update={"worker_token": "t0ken"})
    assert "token: on" in serve_banner("0.0.0.0", 80, "x", 2, locked) and "t0ken" not in serve_banner("0.0.0.0", 80, "x", 2, locked)

    seen, out = [], io.StringIO()
    source = LocalSnapshotSource(link, SegmentParams.from_settings(settings), embedders, alias="production")
    watcher = ReleaseWatcher(source, 1.0, on_change=announce_releases(lambda *a: seen.append(a[0]), out))
    assert watcher.poll_once()
    embedder_id = watcher.current.embedder_id
    (root / "v2").mkdir()  # not a snapshot: refused, v1 stays
    point(link, root / "v2")
    assert not watcher.poll_once() and not watcher.poll_once()
    lines = out.getvalue().splitlines()
    assert seen == ["swapped", "failed", "failed"]  # the metrics hook still sees every event
    assert len(lines) == 2  # a refusal repeated by the next poll is printed once
    assert lines[0].startswith(f"serve: now serving model {os.path.realpath(root / 'v1')} version v1 "
                               f"(alias production), embedder {embedder_id}, base model none")
    assert lines[1].startswith("serve: release refused, still serving version v1: ")
