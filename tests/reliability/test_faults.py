"""`benchmarks/faults.py` at a small size: each scenario runs, reports `cases` and
`lost_or_corrupted`, and loses nothing; the report's totals add up."""
from __future__ import annotations

import pytest

from benchmarks import faults

pytestmark = [pytest.mark.reliability, pytest.mark.slow]


def test_scenarios_are_found():
    names = faults.scenario_names()
    assert {"kills", "concurrency", "tampering", "worker_load", "corrupt_stores", "disk_full"} <= set(names)
    assert "common" not in names and "_stores" not in names


# concurrency (about 2.5 min even at one case) runs through benchmarks/faults.py only.
@pytest.mark.parametrize("name,cases", [("tampering", 1), ("worker_load", 1), ("kills", 1), ("corrupt_stores", 8),
                                        ("disk_full", 2)])
def test_scenario_small(tmp_path, name, cases):
    report = faults.run_scenarios(tmp_path, [name], cases=cases, seed=1)
    res = report["scenarios"][name]
    assert "crashed" not in res, res.get("traceback")
    assert res["tracebacks"] == 0 and report["tracebacks"] == 0, res
    if res.get("skipped"):  # disk_full where no tmpfs can be mounted
        pytest.skip(res["skipped"])
    assert res["cases"] >= cases and res["lost_or_corrupted"] == 0, res
    assert (report["cases"], report["lost_or_corrupted"]) == (res["cases"], 0)
