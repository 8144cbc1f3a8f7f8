"""Concurrent writers on one workspace: two pipelines (ingest -> embed -> curate -> publish),
a forget and two first publishes into a fresh MLflow store, all started together. Each
must end cleanly (exit 0, or exit 2 with one sentence such as 'busy'); after one more
sequential embed -> curate -> publish, the workspace must hold exactly what a sequential
run of the same operations gives: the same memory rows (no duplicate ids), a newest
release with the same content, every version complete, nothing left running."""
from __future__ import annotations

import random
import shutil
from pathlib import Path

from benchmarks.fault_scenarios import common

DEFAULT_CASES = 3
PUBLISH_ONLY = """
from knnclip_core.cli.main import main
sys.exit(main(["--home", sys.argv[1], "publish"]))
"""
SETTLE = """
from knnclip_core.cli.main import main
for argv in (["embed"], ["curate"], ["publish"]):
    if main(["--home", sys.argv[1], *argv]) != 0:
        sys.exit(3)
"""


def _check(state: dict, oracle: dict) -> list[str]:
    problems = []
    if state["memory"] != oracle["memory"]:
        problems.append(f"memory differs ({len(state['memory'])} ids vs {len(oracle['memory'])})")
    if state["memory_rows"] != len(state["memory"]):
        problems.append(f"duplicate memory ids: {state['memory_rows']} rows for {len(state['memory'])} ids")
    if not state["versions"] or state["versions"] != list(range(1, len(state["versions"]) + 1)):
        problems.append(f"versions {state['versions']}")
    elif state["fingerprints"][-1] != oracle["fingerprints"][-1] or None in state["fingerprints"]:
        problems.append("the newest release differs from the sequential run's (or a version is incomplete)")
    if state["mlflow_running"] or state["catalog_running"]:
        problems.append(f"left running: {state['mlflow_running']} MLflow, {state['catalog_running']} catalog")
    return problems


def run(workdir: Path, cases: int = DEFAULT_CASES, seed: int = 0) -> dict:
    """`cases` rounds of the five concurrent operations. Returns the report."""
    from knnclip_core.sample_data import write_sample_dataset

    rng = random.Random(seed)
    a = write_sample_dataset(workdir / "alpha", images=6, classes=3, seed=21)
    b = write_sample_dataset(workdir / "beta", images=6, classes=4, seed=22)
    forget = ["forget", "--dataset", "alpha"]
    oracle_home = workdir / "oracle"  # sequential: ingest a, ingest b, forget a, embed, curate, publish
    steps = [common.run(oracle_home, [str(oracle_home), str(a)], code=common.PIPELINE, timeout=600), common.run(oracle_home, ["ingest", str(b)], timeout=600), common.run(oracle_home, forget, timeout=300),
             common.run(oracle_home, [str(oracle_home)], code=SETTLE, timeout=600)]
    if any(s.returncode for s in steps):
        raise RuntimeError(f"the sequential run failed: {[s.stderr[-800:] for s in steps if s.returncode]}")
    oracle = common.workspace_state(oracle_home)
    failures, unclean, exits, tracebacks = [], 0, [], 0
    for i in range(cases):
        home = workdir / f"case{i}"
        # the memory of alpha exists (embedded, curated), no release store yet
        prep = common.run(home, [str(home), str(a)], code=common.PIPELINE.replace(', ["publish"]', ""), timeout=600)
        if prep.returncode:
            raise RuntimeError(f"preparing case {i} failed: {prep.stderr[-800:]}")
        procs = [common.pipeline(home, [b]), common.pipeline(home, [a]), common.start(home, forget),
                 common.start(home, [str(home)], code=PUBLISH_ONLY), common.start(home, [str(home)], code=PUBLISH_ONLY)]
        rng.shuffle(procs)
        results = []
        for p in procs:
            try:
                out, err = p.communicate(timeout=900)
            except Exception:  # noqa: BLE001
                common.kill(p)
                out, err = p.communicate()
            results.append((p.returncode, err))
        exits.append([rc for rc, _ in results])
        bad = [err.strip()[-300:] for rc, err in results if not (rc == 0 or (rc == 2 and "Traceback" not in err))]
        unclean += len(bad)
        settle = common.run(home, [str(home)], code=SETTLE, timeout=900)
        tracebacks += sum("Traceback" in err for _, err in results) + ("Traceback" in settle.stderr)
        problems = [f"unclean exit: {e}" for e in bad]
        if settle.returncode:
            problems.append(f"the settling run failed: {settle.stderr.strip()[-300:]}")
        problems += _check(common.workspace_state(home), oracle)
        if problems:
            failures.append({"case": i, "problems": problems})
        shutil.rmtree(home, ignore_errors=True)
    return {"cases": cases, "lost_or_corrupted": len(failures), "tracebacks": tracebacks, "failures": failures[:5],
            "exit_codes": exits,
            "unclean_exits": unclean}
