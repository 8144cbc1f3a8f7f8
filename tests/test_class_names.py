"""Class labels carry their synonyms (`a|b|c`): ADE20K's full names from objectInfo150.txt,
classes files, the text ensemble over synonyms, and the first name for display."""
from __future__ import annotations

import numpy as np
import pytest

from knnclip_core.classnames import display_name, join_synonyms, synonyms
from knnclip_core.readers import normalise_class_name, open_reader
from knnclip_core.readers.ade20k import read_object_info
from knnclip_core.sample_data import write_sample_dataset

from fixture_datasets import write_ade


def test_label_helpers_and_plain_labels_unchanged():
    assert synonyms("coffee table|cocktail table") == ["coffee table", "cocktail table"]
    assert display_name("coffee table|cocktail table") == "coffee table"
    assert synonyms("road") == ["road"] and display_name("road") == "road"  # labels from before synonyms
    assert join_synonyms(["a b", " a b ", "", "c"]) == "a b|c"
    assert normalise_class_name(" Coffee_Table |  cocktail-table|") == "coffee table|cocktail table"
    assert normalise_class_name("Traffic_light") == "traffic light"


@pytest.mark.data
def test_ade20k_names_are_the_full_names_of_object_info_txt(shared_data):
    root = shared_data / "ade20k/ADEChallengeData2016"
    classes = read_object_info(root)
    assert len(classes) == 151 and classes[0].name == ""
    # oracle: the txt file itself, parsed here independently
    lines = (root / "objectInfo150.txt").read_text().splitlines()[1:]
    want = {int(line.split("\t")[0]): list(dict.fromkeys(n.strip().replace("-", " ")  # 'ash-bin' is 'ash bin'
                                                          for n in line.split("\t")[4].split(",")))
            for line in lines}
    assert {i: synonyms(c.name) for i, c in enumerate(classes) if i} == want
    assert classes[65].name == "coffee table|cocktail table" and display_name(classes[65].name) == "coffee table"
    assert classes[2].name == "building|edifice" and classes[2].is_thing is False
    assert classes[65].is_thing is True  # Stuff flag from objectInfo150.csv
    shown = {display_name(c.name) for c in classes[1:]}
    assert len(shown) == 150  # first names tell every class apart
    assert not shown & {"coffee", "swimming", "trade", "swivel", "crt"}  # the csv's cut words ("palm" is a real name)
    segments = [s for item in open_reader(root, split="validation") for s in item.segments]
    assert all(s.class_name == classes[int(s.label)].name for s in segments)
    assert any("|" in s.class_name for s in segments)


def test_ade20k_csv_alone_reads_each_part_as_a_synonym_with_a_warning(tmp_path, caplog):
    write_ade(tmp_path, txt=False)
    with caplog.at_level("WARNING"):
        classes = read_object_info(tmp_path / "ADEChallengeData2016")
    assert [c.name for c in classes[:4]] == ["", "wall", "building|edifice", "car|auto"]
    assert "objectInfo150.txt is missing" in caplog.text


def test_ade20k_bad_txt_row_is_named_and_the_others_go_through(tmp_path, caplog):
    ade = write_ade(tmp_path)
    (ade / "objectInfo150.txt").write_text("Idx\tRatio\tTrain\tVal\tName\n1\t0.1\t1\t1\twall\n"
                                            "x\t0.1\t1\t1\tbuilding\n3\t0.1\t1\t1\tcar, auto\n")
    with caplog.at_level("WARNING"):
        classes = read_object_info(ade)
    assert [c.name for c in classes[:4]] == ["", "wall", "", "car|auto"]
    assert "objectInfo150.txt row 3: Idx 'x' is not a class index" in caplog.text


def test_classes_file_synonyms(tmp_path):
    root = write_sample_dataset(tmp_path / "s", images=3, classes=3, seed=1)
    names = (root / "classes.txt").read_text().splitlines()
    names[1] = f"{names[1]}|Another_Name| third name"
    (root / "classes.txt").write_text("\n".join(names) + "\n")
    labels = {s.class_name for item in open_reader(root) for s in item.segments}
    full = f"{normalise_class_name(names[1].split('|')[0])}|another name|third name"
    assert full in labels


def test_text_scores_ensemble_over_synonyms():
    from knnclip_core.embedders import get_embedder

    emb = get_embedder("tiny-vit-random", device="cpu")
    both, first, second, plain = emb.encode_text(["coffee table|cocktail table", "coffee table", "cocktail table",
                                                  "road"])
    mean = (first + second) / 2
    np.testing.assert_allclose(both, mean / np.linalg.norm(mean), atol=1e-5)
    np.testing.assert_allclose(emb.encode_text(["road|"])[0], plain, atol=1e-6)  # a lone name: as before


def test_dashboards_show_the_first_full_name():
    from dashboards.charts import stacked_bars
    from dashboards.pages_memory import _class_table
    from dashboards.pages_releases import diff_page

    label = "coffee table|cocktail table"
    pair = {"a": 1, "b": 2, "delta": 1}
    diff = {"a": 1, "b": 2, "vectors": pair, "classes": pair, "factory": {"a": "Flat", "b": "Flat"},
            "embedder": {"a": "e", "b": "e", "changed": False}, "added": {label: 3}, "removed": {"wall|partition": 2},
            "changed": {"sky": {"a": 1, "b": 2, "delta": 1}}, "unchanged_classes": 0}
    html = diff_page([], diff, "1", "2")
    assert "+ coffee table<" in html and "wall<" in html and "cocktail" not in html and "partition" not in html
    per_class = {label: {"rows": 3, "kept": 3}}
    assert "coffee table<" in _class_table(per_class) and "cocktail" not in _class_table(per_class)
    chart = stacked_bars(per_class)
    assert ">coffee table<title>coffee table|cocktail table</title>" in chart


def test_a_request_naming_any_synonym_gets_the_memory_class():
    from knnclip_core.embedders import get_embedder
    from knnclip_core.segment import FlatMemory, Segmenter

    classic = get_embedder("classic")
    mem = FlatMemory(np.eye(classic.dim, dtype=np.float32)[:2], [0, 1], ["coffee table|cocktail table", "wall"])
    seg = Segmenter(classic, mem)
    assert seg.resolve_classes(["Cocktail table", "wall"]) == (["coffee table|cocktail table", "wall"], True)
    assert seg.resolve_classes(["coffee table|cocktail table"])[0] == ["coffee table|cocktail table"]


@pytest.mark.data
@pytest.mark.slow
def test_ade20k_ingest_stores_full_labels_in_the_catalog(settings, shared_data):
    from sqlmodel import select

    from knnclip_core.catalog import ClassName, session_scope
    from knnclip_core.ingest import ingest_path
    from knnclip_core.workspace import Workspace

    root = shared_data / "ade20k/ADEChallengeData2016"
    ingest_path(settings, root, split="validation", min_area=1, progress=False)
    with session_scope(Workspace.from_settings(settings).catalog_url) as s:
        stored = {c.name for c in s.exec(select(ClassName)).all()}
    present = {s.class_name for item in open_reader(root, split="validation") for s in item.segments}
    assert stored == present and len(stored) == 87
    assert {"building|edifice", "floor|flooring"} <= stored and "building" not in stored
