"""`benchmarks/faults.py` at a small size: each scenario runs, reports `cases` and
`lost_or_corrupted`, and loses nothing; the report's totals add up."""
from __future__ import annotations

import pytest

from benchmarks import faults

pytestmark = [pytest.mark.reliability, pytest.mark.slow]


def test_scenarios_are_found():
    names = faults.scenario_names()
    assert {"kills", "concurrency", "tampering", "worker_load"} <= set(names) and "common" not in names


# concurrency (about 2.5 min even at one case) runs through benchmarks/faults.py only.
@pytest.mark.parametrize("name,cases", [("tampering", 1), ("worker_load", 1), ("kills", 1)])
def test_scenario_small(tmp_path, name, cases):
    report = faults.run_scenarios(tmp_path, [name], cases=cases, seed=1)
    res = report["scenarios"][name]
    assert "crashed" not in res, res.get("traceback")
    assert res["cases"] >= cases and res["lost_or_corrupted"] == 0, res
    assert (report["cases"], report["lost_or_corrupted"]) == (res["cases"], 0)
