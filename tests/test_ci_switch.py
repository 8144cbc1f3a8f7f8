"""KNNCLIP_REQUIRE_DATA=1 (set by .ci/run) turns the data and browser skips into failures."""
import subprocess
from pathlib import Path

import pytest

from conftest import REQUIRE_ENV, require_or_skip

ROOT = Path(__file__).resolve().parents[1]


def test_skip_without_the_switch(monkeypatch):
    monkeypatch.delenv(REQUIRE_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception):
        require_or_skip("no data")


def test_fail_with_the_switch(monkeypatch):
    monkeypatch.setenv(REQUIRE_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match="no data, and KNNCLIP_REQUIRE_DATA=1 forbids skipping"):
        require_or_skip("no data")


def test_ci_sets_the_switch_and_installs_chromium():
    script = (ROOT / ".ci" / "run").read_text()
    assert f"export {REQUIRE_ENV}=1" in script
    assert "chromium-driver" in script and "|| echo" not in script  # no best-effort install
    assert subprocess.run(["bash", "-n", str(ROOT / ".ci" / "run")]).returncode == 0


def test_every_data_skip_goes_through_the_switch():
    """No test skips on missing data or Chromium except through require_or_skip."""
    offenders = [p.name for p in (ROOT / "tests").glob("test_*.py") if p.name != Path(__file__).name
                 and any("pytest.skip(" in line and ("not found" in line or "not installed" in line)
                        for line in p.read_text().splitlines())]
    assert offenders == []
