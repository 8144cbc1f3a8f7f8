"""One "machine" of test_two_machines.py, run as its own process:

    python machine.py NAME DATA SYNC OUT MOVES

Its own KNNCLIP_HOME; the environment points it at the shared servers (PostgreSQL catalog and
locks, the memory on s3://, the MLflow server). It ingests DATA, embeds, curates, publishes
twice and moves the alias `race` MOVES times, meeting the other machine at a file barrier in
SYNC before each step so that the two really run each step at the same time. Writes what it
did to OUT as JSON.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

PEERS = 2
STEPS = ("start", "ingested", "embedded", "curated", "published")


def barrier(sync: Path, step: str, name: str, timeout_s: float = 300.0) -> None:
    """Wait until every peer reached `step` (each leaves a file SYNC/step.NAME)."""
    print(f"{time.strftime('%H:%M:%S')} {name} at {step}", flush=True)
    (sync / f"{step}.{name}").touch()
    deadline = time.monotonic() + timeout_s
    while len(list(sync.glob(f"{step}.*"))) < PEERS:
        if any(sync.glob("failed.*")):
            raise RuntimeError(f"{name}: the other machine failed before {step!r}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{name}: the other machine never reached {step!r}")
        time.sleep(0.05)


def main(name: str, data: str, sync: str, out: str, moves: int) -> None:
    from knnclip_core.config import load_settings
    from knnclip_core.embed_stage import run_embed
    from knnclip_core.ingest import ingest_path
    from knnclip_core.memory.curate import curate
    from knnclip_core.workspace import Workspace
    from registry.aliases import move_alias
    from registry.load import load_release
    from registry.publish import publish
    from registry.store import open_registry

    sync_dir, done = Path(sync), {}
    settings = load_settings()
    ws = Workspace.from_settings(settings).ensure()
    barrier(sync_dir, "start", name)
    done["ingest"] = ingest_path(settings, data, progress=False).to_dict()
    barrier(sync_dir, "ingested", name)
    done["embed"] = run_embed(settings, backbone="classic-v2")  # both embed both datasets' segments at once
    barrier(sync_dir, "embedded", name)
    done["curate"] = curate(settings, ws, "classic-v2", lock_timeout_s=300)["lance_tag"]
    barrier(sync_dir, "curated", name)
    done["publish"] = []
    for floor in (0.90, 0.91):  # two distinct releases per machine (the floor is part of a release's content)
        floor += 0.002 if name.endswith("1") else 0.0
        s = settings.model_copy(update={"publish": settings.publish.model_copy(update={"recall_floor": floor})})
        done["publish"].append(publish(s, ws, backbone="classic-v2", alias="staging"))
    barrier(sync_dir, "published", name)
    ctx = open_registry(settings, ws)
    versions = [p["version"] for p in done["publish"]]
    done["moves"] = [move_alias(ctx, "race", versions[i % len(versions)], action=f"{name}-move-{i}")
                     for i in range(moves)]
    done["loaded"] = load_release("staging", ctx=ctx).describe()  # from the MLflow server, verified, cached
    Path(out).write_text(json.dumps(done, default=str))


if __name__ == "__main__":
    try:
        main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    except BaseException:
        (Path(sys.argv[3]) / f"failed.{sys.argv[1]}").touch()  # the other machine stops waiting
        raise
