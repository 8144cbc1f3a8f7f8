"""Issue 21: a publish SIGKILLed at the worst instants. Killed after its MLflow version
exists, the next publish (which reuses that version) still marks the run FAILED, so none is
left RUNNING; killed between MLflow's alias move and the alias history entry, the move is
later recorded as the publish's own, not reported as an out-of-band move by someone else.
The child kills itself with SIGKILL right at the chosen MLflow call (only the instant is
chosen; the kill and everything after it are real)."""
from __future__ import annotations

import json
import shutil
import signal

import pytest

from benchmarks.fault_scenarios import common

pytestmark = pytest.mark.reliability

KILL_AT = """
import os, signal
from mlflow import MlflowClient
_orig = getattr(MlflowClient, os.environ["KC_KILL_METHOD"])
def _killer(self, *a, **kw):
    key = os.environ.get("KC_KILL_KEY")
    if os.environ.get("KC_KILL_WHEN") == "before" and (not key or key in a):
        os.kill(os.getpid(), signal.SIGKILL)
    out = _orig(self, *a, **kw)
    if not key or key in a:
        os.kill(os.getpid(), signal.SIGKILL)
    return out
setattr(MlflowClient, os.environ["KC_KILL_METHOD"], _killer)
"""


def killed_publish(home, method: str, key: str = "", when: str = "after") -> int:
    """Run `knnclip publish` in a child that SIGKILLs itself at MLflow's `method` (whose
    arguments include `key`, when given); returns its exit code."""
    res = common.run(home, ["--home", str(home), "publish"], code=KILL_AT + common.MAIN, timeout=300,
                     KC_KILL_METHOD=method, KC_KILL_KEY=key, KC_KILL_WHEN=when)
    return res.returncode


def test_publish_killed_after_its_version_leaves_no_running_run(stages, tmp_path, env, knnclip):
    home = tmp_path / "ws"
    shutil.copytree(stages["curated"], home, symlinks=True)
    assert killed_publish(home, "set_tag", key="knnclip.model_version") == -signal.SIGKILL
    state = common.workspace_state(home)
    assert state["versions"] == [1] and state["mlflow_running"] == 1  # the kill landed after the version
    rc, out, err = knnclip(home, "publish", "--json")
    assert rc == 0 and json.loads(out.strip().splitlines()[-1])["reused"] is True, err
    state = common.workspace_state(home)
    assert state["versions"] == [1] and state["mlflow_running"] == 0, state


def test_alias_moved_then_killed_is_not_out_of_band(stages, tmp_path, env, knnclip):
    home = tmp_path / "ws"
    shutil.copytree(stages["curated"], home, symlinks=True)
    assert killed_publish(home, "set_registered_model_alias") == -signal.SIGKILL
    assert common.workspace_state(home)["aliases"] == {"staging": 1}  # MLflow moved it, no history written after
    rc, out, err = knnclip(home, "releases", "history", "--alias", "staging", "--json")
    assert rc == 0, err
    log = json.loads(out.strip().splitlines()[-1])["log"]
    assert [(e["action"], e["version"]) for e in log] == [("publish", 1)], log
    assert "outside knnclip" not in err
    rc, out, err = knnclip(home, "publish", "--json")  # and the rerun reuses it quietly
    assert rc == 0 and json.loads(out.strip().splitlines()[-1])["reused"] is True, err
    assert common.workspace_state(home)["mlflow_running"] == 0


def test_alias_move_killed_before_it_happened_leaves_nothing(stages, tmp_path, env, knnclip):
    """The intent written, the alias not moved: the intent is dropped, nothing is invented."""
    home = tmp_path / "ws"
    shutil.copytree(stages["curated"], home, symlinks=True)
    assert killed_publish(home, "set_registered_model_alias", when="before") == -signal.SIGKILL
    rc, out, err = knnclip(home, "releases", "history", "--alias", "staging", "--json")
    assert rc == 0 and json.loads(out.strip().splitlines()[-1])["log"] == [], (out, err)
    rc, out, err = knnclip(home, "publish", "--json")
    assert rc == 0, err
    rc, out, err = knnclip(home, "releases", "history", "--alias", "staging", "--json")
    log = json.loads(out.strip().splitlines()[-1])["log"]
    assert [(e["action"], e["version"]) for e in log] == [("publish", 1)], log
