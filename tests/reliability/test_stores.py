"""Issue 21: damaged stores and full disks end in one sentence naming the file, exit 2.

A catalog with a page overwritten, truncated or replaced by text; a memory table whose data
files are truncated or whose `_versions/` is gone; a disk that fills up at each stage (a
small tmpfs, so the kernel itself says ENOSPC). After space is freed the same command runs
to the end."""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from benchmarks.fault_scenarios import _stores as fill

pytestmark = pytest.mark.reliability


def one_sentence(err: str, *words: str) -> bool:
    """stderr is one line (warnings aside) holding every word, and no traceback."""
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("knnclip ")]
    return "Traceback" not in err and len(lines) == 1 and all(w in lines[0] for w in words)


def copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, symlinks=True)
    return dst


@pytest.mark.parametrize("damage", ["page", "truncated", "text", "page_curationrun"])
def test_damaged_catalog(stages, tmp_path, env, knnclip, damage):
    """`page_curationrun`: a page ingest itself never reads (it used to write into such a
    catalog and exit 0); quick_check finds it."""
    home = copy(stages["embedded"], tmp_path / "ws")
    db = home / "catalog.db"
    fill.damage_sqlite(db, damage.split("_")[0], table="curationrun" if "_" in damage else None)
    before = db.read_bytes()
    rc, _, err = knnclip(home, "ingest", str(stages["data"]))
    assert rc == 2 and one_sentence(err, str(db), "damaged", "backup"), err
    assert db.read_bytes() == before  # ingest wrote nothing into it
    rc, _, err = knnclip(home, "embed")
    assert rc == 2 and one_sentence(err, str(db), "damaged"), err


def test_truncated_memory_table(stages, tmp_path, env, knnclip):
    home = copy(stages["curated"], tmp_path / "ws")
    (folder,) = (home / "memory").glob("*.lance")
    for f in (folder / "data").glob("*.lance"):
        os.truncate(f, 100)
    for argv in (["embed"], ["curate"], ["memory", "stats"], ["publish"]):
        rc, _, err = knnclip(home, *argv)
        assert rc == 2 and one_sentence(err, str(folder), "cannot be read", "knnclip embed"), (argv, err)


def test_table_without_committed_version_is_absent(stages, tmp_path, env, knnclip, caplog):
    """`_versions/` removed (as a first write killed or out of space leaves it): the table is
    set aside with a warning, and embed creates it again from the catalog."""
    home = copy(stages["curated"], tmp_path / "ws")
    (folder,) = (home / "memory").glob("*.lance")
    shutil.rmtree(folder / "_versions")
    old = time.time() - 120
    for p in (folder, *folder.iterdir()):
        os.utime(p, (old, old))
    rc, out, err = knnclip(home, "memory", "stats")
    assert rc == 0 and "no memory" in out and "set aside" in caplog.text, (out, err)
    assert not folder.exists() and list((home / "memory").glob(f"{folder.name}.no-version-*"))
    rc, out, err = knnclip(home, "embed", "--json")
    assert rc == 0 and '"embedded": 21' in out, err
    assert knnclip(home, "curate")[0] == 0


@pytest.fixture
def small_disk(tmp_path):
    """A 16 MB tmpfs at tmp_path/disk (skipped where mounting is not allowed)."""
    mnt = tmp_path / "disk"
    if not fill.mount_tmpfs(mnt, 16 << 20):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield mnt
    fill.unmount(mnt)


STAGE_BEFORE = {"ingest": "ingested", "embed": "ingested", "curate": "embedded", "publish": "curated"}


@pytest.mark.parametrize("stage", list(STAGE_BEFORE))
def test_disk_full_at_each_stage(stages, small_disk, env, knnclip, stage):
    """No space at all: one sentence naming a path on the full disk; with space again the
    same command succeeds (the first embed's half-created table does not stay in the way)."""
    src = stages["ingested"] if stage == "ingest" else stages[STAGE_BEFORE[stage]]
    home = copy(src, small_disk / "ws")
    if stage == "ingest":
        shutil.rmtree(home)
        home.mkdir()
    argv = {"ingest": ["ingest", str(stages["data"])], "embed": ["embed"], "curate": ["curate"],
            "publish": ["publish"]}[stage]
    filler = fill.fill_disk(small_disk, leave=0)
    rc, _, err = knnclip(home, *argv)
    assert rc == 2 and one_sentence(err, "is full", str(small_disk)), err
    filler.unlink()
    rc, out, err = knnclip(home, *argv)
    assert rc == 0, err
    if stage == "embed":
        rc, out, err = knnclip(home, "memory", "stats", "--json")
        assert rc == 0 and '"rows": 21' in out, (out, err)
