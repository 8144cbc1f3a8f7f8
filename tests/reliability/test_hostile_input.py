"""Hostile input across the four readers (issue 12): every generated case quarantined
with a reason, no crash, no hang, bounded memory, every valid sibling ingested."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from fault_scenarios import hostile_input  # noqa: E402

pytestmark = pytest.mark.reliability


def _assert_clean(out: dict, cases: int) -> None:
    assert out["cases"] == cases, out
    assert out["lost_or_corrupted"] == 0, "\n".join(out["failures"])
    assert out["crashes"] == 0 and out["hangs"] == 0
    assert 0 < out["peak_rss_mb"] < hostile_input.MEMORY_MB


def test_hostile_input_sample_of_cases(tmp_path):
    _assert_clean(hostile_input.run(tmp_path, cases=120, seed=1), 120)


def test_the_oracle_sees_a_case_that_was_not_quarantined(tmp_path, monkeypatch):
    """check_batch is not vacuous: a case expecting a reason ingest never gives fails,
    and a valid sibling that was never ingested is reported lost."""
    from fault_scenarios._hostile.folders import Case
    from fault_scenarios._hostile.readers import build_batch

    from knnclip_core.ingest import ingest_path
    settings = hostile_input._settings(tmp_path, 8)
    (tmp_path / "outside").mkdir()
    batch, path = build_batch("semantic-png", tmp_path / "ds", tmp_path / "outside", 6, seed=3, chunk=8)
    report = ingest_path(settings, path, "semantic-png", min_area=1, progress=False)
    assert hostile_input.check_batch(settings, batch, report) == []
    batch.cases.append(Case("v0000", "semantic-png", "planted", "v0000", {"truncated_image"}))
    batch.valid["never-written"] = 2
    failures = hostile_input.check_batch(settings, batch, report)
    assert len(failures) == 2 and "planted" in failures[0] and "never-written" in failures[1]


@pytest.mark.slow
def test_hostile_input_thousand_cases(tmp_path):
    out = hostile_input.run(tmp_path, cases=1000, seed=0)
    _assert_clean(out, 1000)
    assert out["kinds"] >= 90 and out["whole_files"] == 12


def test_child_memory_is_its_own_not_the_forking_parents():
    """The memory bound measures the ingesting child alone: a parent holding 400 MB (as pytest
    does once torch and MLflow are loaded) must not count against it (ru_maxrss would)."""
    import subprocess

    held = bytearray(400 * 1024 * 1024)
    held[::4096] = b"\x01" * len(held[::4096])
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from fault_scenarios import hostile_input as h; "
            "print(h.peak_rss_mb())")
    out = subprocess.run([sys.executable, "-c", code, str(Path(__file__).resolve().parents[2] / "benchmarks")],
                         capture_output=True, text=True, check=True).stdout
    assert float(out) < 200, out
    del held
