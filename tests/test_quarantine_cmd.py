"""`knnclip quarantine list|show` over a real ingest that quarantines three items of a
semantic-PNG dataset: an image without a mask, a truncated image and a symlink leaving the
root. The oracle is the set of bad files written and the catalog rows."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from PIL import Image

from knnclip_core.cli.main import main

BAD = {"missing_mask": "extra_nomask.png", "truncated_image": "scene_trunc.png", "path_outside_root": "scene_link.png"}


def add_bad_items(data: Path) -> dict[str, str]:
    """Add to a write_sample_dataset folder one image without mask, one truncated image (with a
    mask) and one symlink to an image outside the folder (with a mask). Returns reason -> file."""
    good = sorted((data / "images").glob("*.png"))[0]
    mask = data / "masks" / good.name
    Image.open(good).save(data / "images" / BAD["missing_mask"])
    raw = good.read_bytes()
    (data / "images" / BAD["truncated_image"]).write_bytes(raw[: len(raw) // 2])
    (data / "masks" / BAD["truncated_image"]).write_bytes(mask.read_bytes())
    outside = data.parent / f"outside_{data.name}.png"
    outside.write_bytes(raw)
    os.symlink(outside, data / "images" / BAD["path_outside_root"])
    (data / "masks" / BAD["path_outside_root"]).write_bytes(mask.read_bytes())
    return {reason: f"images/{name}" for reason, name in BAD.items()}


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def ingested(settings, tmp_path):
    from knnclip_core.ingest import ingest_path
    from knnclip_core.sample_data import write_sample_dataset

    data = write_sample_dataset(tmp_path / "set_q", images=3, classes=3, seed=0)
    bad = add_bad_items(data)
    report = ingest_path(settings, data, progress=False)
    return {"report": report, "bad": bad}


def test_list_and_show_every_quarantined_item(ingested, capsys):
    report, bad = ingested["report"], ingested["bad"]
    assert report.images == 3 and report.reasons == {r: 1 for r in bad}
    code, out, _ = _run(capsys, "quarantine", "list", "--json")
    listed = json.loads(out.strip().splitlines()[-1])
    assert code == 0 and listed["total"] == 3
    assert {q["reason"]: q["file"] for q in listed["items"]} == bad
    assert all(q["batch"] == report.batch_id and q["dataset"] == "set_q" and q["message"] for q in listed["items"])

    code, out, _ = _run(capsys, "quarantine", "list", "--reason", "truncated_image")
    assert code == 0 and "truncated_image" in out and bad["truncated_image"] in out and "missing_mask" not in out
    code, out, _ = _run(capsys, "quarantine", "list", "--limit", "1", "--json")
    one = json.loads(out.strip().splitlines()[-1])
    assert len(one["items"]) == 1 and one["total"] == 3
    code, out, _ = _run(capsys, "quarantine", "list", "--batch", "nosuchbatch")
    assert code == 0 and "no quarantined items matching the filters" in out

    item = next(q for q in listed["items"] if q["reason"] == "missing_mask")
    code, out, _ = _run(capsys, "quarantine", "show", str(item["id"]))
    assert code == 0
    assert f"file:    {bad['missing_mask']}" in out and "reason:  missing_mask" in out
    assert f"message: {item['message']}" in out and "row:     (the whole image)" in out


def test_show_unknown_id_is_a_one_sentence_error(ingested, capsys):
    code, out, err = _run(capsys, "quarantine", "show", "999999")
    assert code == 2 and out == ""
    assert err.strip() == ("knnclip quarantine: there is no quarantined item with id 999999; "
                           "`knnclip quarantine list` shows the ids.")


def test_empty_workspace_lists_nothing_and_creates_nothing(settings, capsys):
    code, out, _ = _run(capsys, "quarantine", "list")
    assert code == 0 and out.strip() == "no quarantined items"
    assert not Path(settings.home).exists()
