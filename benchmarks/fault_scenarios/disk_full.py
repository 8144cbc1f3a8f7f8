"""Disk full: a workspace on a small tmpfs (the kernel's own ENOSPC, nothing patched) that is
filled up to a random few bytes-to-kilobytes before one stage (ingest, embed, curate,
publish) runs. The stage must succeed or end in one sentence that says the disk is full and
names a path on it (exit 2, no traceback). Then the space is freed, the same stage and the
rest of the pipeline run again, and the workspace must hold exactly the memory and release
of an undisturbed run, nothing left running. Skipped (0 cases) where a tmpfs cannot be
mounted (not root)."""
from __future__ import annotations

import os
import random
import shutil
from pathlib import Path
from typing import Optional

from benchmarks.fault_scenarios import _stores, common
from benchmarks.fault_scenarios.kills import _compare  # one release, the oracle's memory, nothing running

DEFAULT_CASES = 12  # 3 a stage; 2-10 s a case on 2 cores (the stage, then the rest of the pipeline)
STAGES = ("ingest", "embed", "curate", "publish")
BEFORE = {"ingest": None, "embed": "ingested", "curate": "embedded", "publish": "curated"}
DISK_BYTES = 32 << 20
LEAVE_MAX = 256 << 10  # free bytes left, at most


def _argv(stage: str, data: Path) -> list[str]:
    return ["ingest", str(data)] if stage == "ingest" else [stage]


def _case(ws: dict, mnt: Path, stage: str, leave: int) -> tuple[list[str], int, Optional[str]]:
    """(problems, tracebacks, the sentence when the stage was refused) of one case."""
    home = mnt / "ws"
    if BEFORE[stage]:
        _stores.copy_workspace(ws[BEFORE[stage]], home)
    label = f"{stage} with {leave} bytes free"
    filler = _stores.fill_disk(mnt, leave=leave)
    rc, err, tb = _stores.cli(home, *_argv(stage, ws["data"]))
    filler.unlink()
    line = _stores.sentence(err)
    problems = []
    if tb:
        problems.append(f"{label}: traceback {err.strip()[-400:]}")
    elif rc != 0 and not (rc == 2 and line and "is full" in line and str(mnt) in line):
        problems.append(f"{label}: exit {rc}, {line or err.strip()[-300:]!r}")
    refused = line.replace(str(mnt), "<disk>") if rc == 2 and line else None
    for later in STAGES[STAGES.index(stage):]:
        rc2, err2, tb2 = _stores.cli(home, *_argv(later, ws["data"]))
        tb += tb2
        if rc2 != 0:
            problems.append(f"{label}: with space again, {later} exit {rc2}: {err2.strip()[-300:]}")
            break
    else:
        problems += [f"{label}: {p}" for p in _compare(common.workspace_state(home), ws["oracle"])]
    return problems, int(tb), refused


def run(workdir: Path, cases: int = DEFAULT_CASES, seed: int = 0) -> dict:
    """`cases` stages on a nearly full disk (stages in turn, free space at random)."""
    import logging

    rng = random.Random(seed)
    probe = workdir / "probe"
    if not _stores.mount_tmpfs(probe, 1 << 20):
        return {"cases": 0, "lost_or_corrupted": 0, "tracebacks": 0, "skipped": "cannot mount a tmpfs here (needs root)"}
    _stores.unmount(probe)
    saved = os.environ.pop("MLFLOW_TRACKING_URI", None)
    logging.disable(logging.WARNING)
    try:
        ws = _stores.staged_workspaces(workdir, seed=seed + 9)
        ws["oracle"] = common.workspace_state(ws["published"])
        failures, tracebacks, refused = [], 0, []
        for i in range(cases):
            stage, leave = STAGES[i % len(STAGES)], rng.choice([0, rng.randrange(LEAVE_MAX)])
            mnt = workdir / f"disk{i}"  # a fresh tmpfs a case: handles left open elsewhere cannot hold its space
            if not _stores.mount_tmpfs(mnt, DISK_BYTES):
                raise RuntimeError(f"mounting a tmpfs at {mnt} failed")
            try:
                problems, tb, ref = _case(ws, mnt, stage, leave)
            finally:
                shutil.rmtree(mnt / "ws", ignore_errors=True)
                _stores.unmount(mnt)
            tracebacks += tb
            refused += [ref] if ref else []
            if problems:
                failures.append({"case": i, "problems": problems})
    finally:
        logging.disable(logging.NOTSET)
        if saved is not None:
            os.environ["MLFLOW_TRACKING_URI"] = saved
    return {"cases": cases, "lost_or_corrupted": len(failures), "tracebacks": tracebacks,
            "refused_for_space": len(refused), "sentences": sorted(set(refused))[:8], "failures": failures[:10]}
