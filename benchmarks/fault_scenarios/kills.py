"""SIGKILL at random instants: across ingest, embed, curate and publish (one child process
running the stages), inside a fresh MLflow store's schema creation, and during `knnclip run`
(Prefect). After each kill the same command runs again to the end; a case is lost or
corrupted unless the workspace then holds exactly the memory rows and release of an
uninterrupted run, one release version, and nothing left running."""
from __future__ import annotations

import random
import shutil
import time
from pathlib import Path

from benchmarks.fault_scenarios import common

DEFAULT_CASES = 20


def _data(workdir: Path) -> Path:
    from knnclip_core.sample_data import write_sample_dataset

    return write_sample_dataset(workdir / "data", images=10, classes=3, seed=7)


def _compare(state: dict, oracle: dict) -> list[str]:
    problems = []
    if state["memory"] != oracle["memory"]:
        problems.append(f"memory differs ({len(state['memory'])} rows vs {len(oracle['memory'])})")
    if state["versions"] != [1] or state["fingerprints"] != oracle["fingerprints"]:
        problems.append(f"release versions {state['versions']} (orphans or a different release)")
    if state["aliases"] != oracle["aliases"]:
        problems.append(f"aliases {state['aliases']} vs {oracle['aliases']}")
    if state["mlflow_running"] or state["catalog_running"]:
        problems.append(f"left running: {state['mlflow_running']} MLflow runs, {state['catalog_running']} catalog runs")
    return problems


def _staged(home: Path, data: Path, kill_after: float) -> bool:
    """Run the staged pipeline, SIGKILL it after `kill_after` s; True when it was killed."""
    p = common.pipeline(home, [data])
    deadline = time.monotonic() + kill_after
    while p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    killed = p.poll() is None
    common.kill(p)
    return killed


def _run_cmd(home: Path, data: Path, kill_after: float) -> bool:
    p = common.start(home, ["run", str(data), "--json"])
    deadline = time.monotonic() + kill_after
    while p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    killed = p.poll() is None
    common.kill(p)  # its whole process group: the temporary Prefect server too
    return killed


def run(workdir: Path, cases: int = DEFAULT_CASES, seed: int = 0) -> dict:
    """Kill cases: 3 of 5 at a random instant of the staged pipeline, 1 of 5 inside schema
    creation, 1 of 5 during `knnclip run`. Returns {'cases', 'lost_or_corrupted', 'failures', ...}."""
    rng = random.Random(seed)
    data = _data(workdir)
    t0 = time.monotonic()
    res = common.run(workdir / "oracle", [str(workdir / "oracle"), str(data)], code=common.PIPELINE, timeout=600)
    if res.returncode != 0:
        raise RuntimeError(f"the uninterrupted pipeline failed: {res.stderr[-1500:]}")
    staged_seconds = time.monotonic() - t0
    oracle = common.workspace_state(workdir / "oracle")
    run_oracle = None
    failures, kinds, reruns, tracebacks = [], {"staged": 0, "schema": 0, "run": 0}, [], 0
    for i in range(cases):
        home = workdir / f"case{i}"
        kind = ("staged", "staged", "staged", "schema", "run")[i % 5]
        if kind == "staged":
            at = rng.uniform(0.5, staged_seconds)
            _staged(home, data, at)
            what = f"staged pipeline killed at {at:.1f} s"
        elif kind == "schema":
            table = rng.randint(1, 60)
            common.kill_in_schema_creation(home, table, argv=("releases", "list"))
            what = f"killed after CREATE TABLE #{table} of a fresh MLflow store"
        else:
            if run_oracle is None:
                for _attempt in range(2):  # Prefect's temporary server can time out on a loaded machine
                    shutil.rmtree(workdir / "run-oracle", ignore_errors=True)
                    t = time.monotonic()
                    res = common.run(workdir / "run-oracle", ["run", str(data), "--json"], timeout=600)
                    if res.returncode == 0:
                        break
                if res.returncode != 0:
                    raise RuntimeError(f"the uninterrupted `knnclip run` failed: {res.stderr[-1500:]}")
                run_seconds, run_oracle = time.monotonic() - t, common.workspace_state(workdir / "run-oracle")
            at = rng.uniform(1.0, run_seconds)
            _run_cmd(home, data, at)
            what = f"`knnclip run` killed at {at:.1f} s"
        kinds[kind] += 1
        t = time.monotonic()
        if kind == "run":
            res = common.run(home, ["run", str(data), "--json"], timeout=900)
        else:
            res = common.run(home, [str(home), str(data)], code=common.PIPELINE, timeout=900)
        reruns.append(time.monotonic() - t)
        tracebacks += "Traceback" in res.stderr
        problems = [] if res.returncode == 0 else [f"rerun exit {res.returncode}: {res.stderr.strip()[-300:]}"]
        problems += _compare(common.workspace_state(home), run_oracle if kind == "run" else oracle)
        if problems:
            failures.append({"case": i, "what": what, "problems": problems})
        shutil.rmtree(home, ignore_errors=True)
    return {"cases": cases, "lost_or_corrupted": len(failures), "tracebacks": tracebacks, "failures": failures[:10],
            "kinds": kinds,
            "uninterrupted_seconds": round(staged_seconds, 1),
            "rerun_seconds_median": round(sorted(reruns)[len(reruns) // 2], 1) if reruns else None}
