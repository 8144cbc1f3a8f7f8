"""Forgetting removes exactly the named rows, keeps them out of curation, and can be undone."""
from __future__ import annotations

import json

import pytest

from knnclip_core.cli.main import main as cli_main
from knnclip_core.errors import InputError
from knnclip_core.memory.curate import curate
from knnclip_core.memory.forget import forget, unforget
from knnclip_core.memory.published import load_kept
from knnclip_core.memory.synthetic import clustered_vectors, write_memory
from knnclip_core.memory.table import MemoryTable

EID = "test|tiny|random-init|mean|l2|dim=16"
EID2 = "test2|tiny|random-init|mean|l2|dim=8"


def states_of(ws, eid=EID):
    t = MemoryTable.open(ws.memory_dir, eid).table.to_arrow()
    return dict(zip(t.column("id").to_pylist(), zip(t.column("state").to_pylist(), t.column("state_reason").to_pylist())))


@pytest.fixture
def two_memories(settings, workspace):
    xb, labels = clustered_vectors(200, 16, 4, dup_rate=0.0, seed=7)
    datasets = ["ade" if i % 3 == 0 else "coco" for i in range(200)]
    batches = [f"b{i % 5}" for i in range(200)]
    ids = write_memory(workspace.memory_dir, EID, xb, labels, datasets=datasets, batches=batches)
    xb2, labels2 = clustered_vectors(50, 8, 2, dup_rate=0.0, seed=8)
    write_memory(workspace.memory_dir, EID2, xb2, labels2, datasets=["ade"] * 25 + ["coco"] * 25)
    curate(settings, workspace, EID)
    curate(settings, workspace, EID2)
    return ids, datasets, batches


def test_forget_dataset_exactly(settings, workspace, two_memories):
    ids, datasets, _ = two_memories
    before, before2 = states_of(workspace), states_of(workspace, EID2)
    res = forget(settings, workspace, dataset="ade", reason="licence withdrawn")
    assert res["tables"][EID]["forgotten"] == datasets.count("ade") and res["tables"][EID2]["forgotten"] == 25
    after = states_of(workspace)
    for i, d in zip(ids, datasets):
        if d == "ade":
            assert after[i] == ("forgotten", f"forget_rule:{res['rule_id']}(dataset=ade)")
        else:
            assert after[i] == before[i]  # nothing else changes
    assert sum(s == "forgotten" for s, _ in states_of(workspace, EID2).values()) == 25
    assert len(before2) == 50
    kept = load_kept(workspace, EID)  # the forget tag is the newest memory version
    assert kept.lance_tag == res["tables"][EID]["lance_tag"] and not set(kept.ids) & {
        i for i, d in zip(ids, datasets) if d == "ade"}
    # later curation keeps them out; forgetting again changes nothing
    curate(settings, workspace, EID)
    assert states_of(workspace) == after
    again = forget(settings, workspace, dataset="ade")
    assert again["rule_id"] == res["rule_id"] and again["forgotten"] == 0
    # unforget: the table does not change until the next curate, which brings them back
    un = unforget(settings, workspace, dataset="ade")
    assert un["deactivated"] == [res["rule_id"]] and un["rows_to_reconsider"] == datasets.count("ade") + 25
    assert states_of(workspace) == after
    curate(settings, workspace, EID)
    assert states_of(workspace) == before
    with pytest.raises(InputError):
        unforget(settings, workspace, dataset="ade")


def test_forget_batch_and_image(settings, workspace, two_memories):
    ids, _, batches = two_memories
    res = forget(settings, workspace, batch="b2")
    assert res["forgotten"] == batches.count("b2")
    res = forget(settings, workspace, image_sha="img3")  # rows 12..15 (4 per image)
    st = states_of(workspace)
    assert res["tables"][EID]["forgotten"] == sum(1 for k in range(12, 16) if batches[k] != "b2")
    assert res["tables"][EID2]["forgotten"] == 4  # the other memory has rows of that image too
    assert all(st[ids[k]][0] == "forgotten" for k in range(12, 16))
    assert sum(s == "forgotten" for s, _ in st.values()) == batches.count("b2") + res["tables"][EID]["forgotten"]
    with pytest.raises(InputError):
        forget(settings, workspace, dataset="x", batch="y")


def test_forget_cli(settings, workspace, two_memories, capsys):
    home = ["--home", str(workspace.home)]
    assert cli_main(home + ["forget", "--dataset", "coco", "--reason", "test", "--json"]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["forgotten"] > 0 and res["reason"] == "test"
    assert cli_main(home + ["memory", "history", "--json"]) == 0
    hist = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert hist["forget_rules"][0]["value"] == "coco" and hist["forget_rules"][0]["active"]
    assert cli_main(home + ["unforget", "--rule", str(res["rule_id"]), "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["deactivated"] == [res["rule_id"]]
    with pytest.raises(SystemExit) as exc:  # argparse refuses two targets
        cli_main(home + ["forget", "--dataset", "a", "--batch", "b"])
    assert exc.value.code == 2


def test_forget_refuses_unknown_target(settings, workspace, two_memories, capsys):
    from knnclip_core.catalog import Dataset, session_scope
    from knnclip_core.memory.forget import list_rules

    home = ["--home", str(workspace.home)]
    assert cli_main(home + ["forget", "--dataset", "nosuch"]) == 2
    err = capsys.readouterr().err
    assert "'nosuch' is not in the catalog or any memory" in err and "--allow-unknown" in err
    assert cli_main(home + ["forget", "--batch", "b99"]) == 2
    assert list_rules(workspace) == [] and all(s != "forgotten" for s, _ in states_of(workspace).values())
    with session_scope(workspace.catalog_url) as s:  # known to the catalog only (no rows embedded yet)
        s.add(Dataset(name="camvid"))
    assert cli_main(home + ["forget", "--dataset", "camvid"]) == 0
    out = capsys.readouterr().out
    assert "0 rows forgotten" in out and "keeps serving them until the next `knnclip publish`" in out
    assert cli_main(home + ["forget", "--dataset", "nosuch", "--allow-unknown", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["forgotten"] == 0
    assert [r["value"] for r in list_rules(workspace)] == ["camvid", "nosuch"]
