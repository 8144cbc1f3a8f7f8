"""The catalog on a real PostgreSQL: two machines (processes with separate homes) ingesting the
same dataset at once store every image, class and segment once, with no duplicate-key error;
quarantine, read helpers, forget rules and times (UTC) read back as on SQLite."""
from __future__ import annotations

import multiprocessing as mp
from datetime import datetime, timedelta, timezone

from .shared_stores import fresh_database


def _ingest(home: str, catalog_url: str, data: str, barrier, out) -> None:
    from knnclip_core.config import load_settings
    from knnclip_core.ingest import ingest_path

    settings = load_settings(home=home, catalog_url=catalog_url)
    barrier.wait(60)
    try:
        out.put(ingest_path(settings, data, progress=False).to_dict())
    except Exception as exc:  # noqa: BLE001 - reported to the test
        out.put({"error": f"{type(exc).__name__}: {exc}"})


def test_two_machines_ingest_the_same_data_at_once(tmp_path, pg_server):
    from sqlalchemy import func
    from sqlmodel import select

    from knnclip_core.catalog import ClassName, Dataset, Image, Segment, session_scope
    from knnclip_core.catalog.queries import quarantine_items, segment_sources
    from knnclip_core.sample_data import write_sample_dataset

    url = fresh_database(pg_server, "catalog_pg")
    data = write_sample_dataset(tmp_path / "scenes", images=16, classes=5, seed=3)
    (data / "images" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)  # quarantined
    (data / "masks" / "broken.png").write_bytes((data / "masks" / "scene_3_0000.png").read_bytes())
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_ingest, args=(str(tmp_path / f"home{i}"), url, str(data), barrier, out))
             for i in range(2)]
    for p in procs:
        p.start()
    reports = [out.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(60)
    assert not [r["error"] for r in reports if "error" in r]
    assert reports[0]["segments"] == reports[1]["segments"] > 0
    with session_scope(url) as s:
        n_segments = s.exec(select(func.count()).select_from(Segment)).one()
        names = s.exec(select(ClassName.name)).all()
        assert s.exec(select(func.count()).select_from(Dataset)).one() == 1
        assert s.exec(select(func.count()).select_from(Image)).one() == 16
        seg = s.exec(select(Segment)).first()
    assert n_segments == reports[0]["segments"] == sum(r["new_segments"] for r in reports)
    assert len(names) == len(set(names)) == 5
    created = seg.created if seg.created.tzinfo else seg.created.replace(tzinfo=timezone.utc)
    assert abs(datetime.now(timezone.utc) - created) < timedelta(minutes=10)  # stored in UTC
    q = quarantine_items(url)
    assert q["total"] == 2 and all(i["file"].endswith("broken.png") for i in q["items"])
    src = segment_sources(url, [seg.id])[seg.id]
    assert src["image_path"].endswith(".png") and src["class"] in names


def test_forget_rule_and_interrupted_runs_on_postgres(tmp_path, pg_server):
    from sqlmodel import select

    from knnclip_core.catalog import CurationRun, ForgetRule, session_scope
    from knnclip_core.catalog.liveness import RunOwner, mark_stale_runs
    from knnclip_core.catalog.store import get_engine

    url = fresh_database(pg_server, "catalog_runs")
    with session_scope(url) as s:
        s.add(ForgetRule(kind="dataset", value="scenes", reason="licence"))
        run = CurationRun(embedder_id="e", table_name="t")
        s.add(run)
        s.flush()
        owner = s.get(RunOwner, ("curate", str(run.id)))
        owner.pid = 2 ** 22 + 12345  # no such process on this host: its owner died
        s.add(owner)
    assert mark_stale_runs(get_engine(url)) == [("curate", str(run.id))]
    with session_scope(url) as s:
        assert s.get(CurationRun, run.id).status == "failed"
        assert [r.value for r in s.exec(select(ForgetRule).where(ForgetRule.active == True))] == ["scenes"]  # noqa: E712
