"""The labelling loop on real data (CamVid): capture bounded by its quota, export -> import
keeping every pixel and label, a class first seen in an import found by the next release,
bad annotation files quarantined; our files read by Label Studio's and COCO's own code."""
from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from knnclip_core.labelling.capture import CaptureParams, CaptureStore
from knnclip_core.labelling.importer import import_corrections

CAR, VOID = 8, 11
SDK_VERSION = "2.1.2"


def camvid_names(shared_data):
    return [n.strip() for n in (shared_data / "camvid" / "classes.txt").read_text().splitlines() if n.strip()]


def load_pair(shared_data, split, name, size=None):
    img = Image.open(shared_data / "camvid" / split / name).convert("RGB")
    lab = Image.open(shared_data / "camvid" / f"{split}annot" / name)
    if size:
        img, lab = img.resize(size, Image.BILINEAR), lab.resize(size, Image.NEAREST)
    return np.asarray(img), np.asarray(lab)


def gt_store(tmp_path, shared_data, names, size=(120, 90)):
    """A capture store whose proposals are the ground-truth segments (class names normalised)."""
    from knnclip_core.readers.base import normalise_class_name
    from knnclip_core.readers.regions import encode_mask

    classes = [normalise_class_name(n) for n in camvid_names(shared_data)]
    store = CaptureStore(tmp_path / "captures", CaptureParams(quota_mb=50))
    truth = {}
    for name in names:
        img, lab = load_pair(shared_data, "train", name, size)
        segs = []
        for v in np.unique(lab):
            if v == VOID:
                continue
            counts, area, bbox = encode_mask(lab == v)
            segs.append({"index": int(v), "reasons": ["unknown"], "mask_rle": counts, "area": area, "bbox": list(bbox),
                         "class": "unknown", "proposed_class": classes[v], "score": 0.0, "confidence": 0.1,
                         "fused": False, "scores": {}, "neighbours": [{"row": 0, "similarity": 0.5, "segment_id": "x"}]})
        cid = store.add(img, {"release": {"version": "1", "alias": "production"}, "source": "test", "name": name,
                              "classes": classes[:VOID], "height": img.shape[0], "width": img.shape[1], "segments": segs})
        truth[cid] = {classes[v]: lab == v for v in np.unique(lab) if v != VOID}
    return store, truth


def accept_predictions(tasks_file: Path, out: Path) -> Path:
    """Label Studio's export after an annotator accepted every pre-annotation."""
    tasks = json.loads(tasks_file.read_text())
    for t in tasks:
        t["annotations"] = [{"id": t["id"], "result": t["predictions"][0]["result"], "was_cancelled": False,
                             "created_at": "2026-12-03T10:00:00Z"}]
    out.write_text(json.dumps(tasks))
    return out


def catalog_masks(workspace, batch_id):
    """{capture id: {class: mask}} of the segments a batch ingested."""
    from sqlmodel import select

    from knnclip_core.catalog import ClassName, Image as CImage, Segment, session_scope

    out = {}
    with session_scope(workspace.catalog_url) as s:
        rows = s.exec(select(Segment, ClassName.name, CImage).join(ClassName, Segment.class_id == ClassName.id)
                      .join(CImage, Segment.image_sha256 == CImage.sha256).where(Segment.batch_id == batch_id)).all()
        for seg, name, img in rows:
            m = mask_utils.decode({"size": [img.height, img.width], "counts": seg.mask_rle.encode()}).astype(bool)
            out.setdefault(Path(img.path).stem, {})[name] = m
    return out


@pytest.mark.data
@pytest.mark.parametrize("tool", ["label-studio", "cvat", "coco"])
def test_export_import_round_trip_keeps_every_pixel_and_label(settings, workspace, shared_data, tmp_path, tool):
    from knnclip_core.cli.label_cmd import export_tasks

    names = sorted(p.name for p in (shared_data / "camvid" / "train").glob("*.png"))[:3]
    store, truth = gt_store(tmp_path, shared_data, names)
    settings.capture.dir = str(store.root)
    out = tmp_path / "export"
    res = export_tasks(settings, tool, out)
    assert res["tasks"] == 3 and (out / "export.json").is_file()
    path = {"label-studio": lambda: accept_predictions(out / "tasks.json", out / "annotations.json"),
            "cvat": lambda: out / "annotations.xml", "coco": lambda: out / "annotations.json"}[tool]()
    rep = import_corrections(settings, path, tool)
    assert rep["quarantined"] == 0 and rep["images"] == 3
    assert rep["correction"]["releases"] == ["1"] and rep["correction"]["tool"] == tool
    assert sorted(rep["correction"]["captures"]) == sorted(truth)
    got = catalog_masks(workspace, rep["batch_id"])
    assert set(got) == set(truth)
    for cid, classes in truth.items():
        assert set(got[cid]) == set(classes)
        for name, mask in classes.items():
            assert np.array_equal(got[cid][name], mask), (cid, name)


@pytest.mark.data
def test_our_files_parse_with_label_studio_and_coco_code(settings, shared_data, tmp_path):
    """label-studio-converter decodes our brush RLE to the ground truth and converts our
    polygons to COCO; pycocotools reads our COCO; the XML has CVAT's documented elements;
    label-studio-sdk validates tasks against the config (its own folder, see .ci/run)."""
    from label_studio_converter import Converter
    from label_studio_converter.brush import decode_rle
    from pycocotools.coco import COCO

    from knnclip_core.cli.label_cmd import export_tasks

    names = sorted(p.name for p in (shared_data / "camvid" / "train").glob("*.png"))[3:5]
    store, truth = gt_store(tmp_path, shared_data, names)
    settings.capture.dir = str(store.root)
    ls = tmp_path / "ls"
    export_tasks(settings, "label-studio", ls)
    config = (ls / "label_config.xml").read_text()
    tasks = json.loads((ls / "tasks.json").read_text())
    conv = Converter(config, project_dir=str(ls))
    assert "BRUSH_TO_NUMPY" in conv.supported_formats
    for t in tasks:
        cid = t["data"]["capture_id"]
        for r in t["predictions"][0]["result"]:
            h, w = r["original_height"], r["original_width"]
            mask = decode_rle(r["value"]["rle"]).reshape(h, w, 4)[:, :, 3] > 0
            assert np.array_equal(mask, truth[cid][r["value"]["brushlabels"][0]])
            assert (r["from_name"], r["to_name"]) == ("label", "image")
    ann = accept_predictions(ls / "tasks.json", tmp_path / "ls_annotations.json")
    (tmp_path / "npy").mkdir()
    conv.convert(str(ann), str(tmp_path / "npy"), "BRUSH_TO_NUMPY", is_dir=False)
    assert len(list((tmp_path / "npy").glob("*.npy"))) == sum(len(v) for v in truth.values())
    # polygons through the converter's COCO conversion, read back by pycocotools
    poly = tmp_path / "poly"
    export_tasks(settings, "label-studio", poly, shape="polygon")
    pann = accept_predictions(poly / "tasks.json", poly / "annotations.json")
    pconv = Converter((poly / "label_config.xml").read_text(), project_dir=str(poly))
    pconv.convert(str(pann), str(tmp_path / "coco_out"), "COCO", is_dir=False)
    coco = COCO(str(tmp_path / "coco_out" / "result.json"))
    assert len(coco.getAnnIds()) > 0 and {c["name"] for c in coco.loadCats(coco.getCatIds())} <= set(
        json.loads((poly / "export.json").read_text())["vocabulary"])
    # our COCO 1.0 with pycocotools: every mask exactly the ground truth
    cdir = tmp_path / "coco"
    export_tasks(settings, "coco", cdir)
    c = COCO(str(cdir / "annotations.json"))
    for img in c.loadImgs(c.getImgIds()):
        cid = img["knnclip"]["capture_id"]
        for a in c.loadAnns(c.getAnnIds(imgIds=img["id"])):
            name = c.loadCats(a["category_id"])[0]["name"]
            assert np.array_equal(c.annToMask(a).astype(bool), truth[cid][name])
    # CVAT for images 1.1: the documented elements and attributes
    xdir = tmp_path / "cvat"
    export_tasks(settings, "cvat", xdir)
    root = ET.parse(xdir / "annotations.xml").getroot()
    assert root.tag == "annotations" and root.find("version").text == "1.1"
    assert root.find("meta/task/mode").text == "annotation" and root.findall("meta/task/labels/label/name")
    for img in root.findall("image"):
        assert {"id", "name", "width", "height"} <= set(img.attrib)
        for m in img.findall("mask"):
            assert {"label", "source", "occluded", "rle", "left", "top", "width", "height", "z_order"} <= set(m.attrib)
    sdk = Path(os.environ.get("KNNCLIP_LS_SDK_PATH") or Path.home() / ".cache" / "knnclip" / f"label-studio-sdk-{SDK_VERSION}")
    if not (sdk / "label_studio_sdk").is_dir():
        from conftest import require_or_skip

        require_or_skip(f"label-studio-sdk not installed in {sdk} (.ci/run installs it)")
    code = ("import json,sys\nfrom label_studio_sdk.label_interface import LabelInterface\n"
            "li = LabelInterface(open(sys.argv[1]).read())\nbad = []\n"
            "for t in json.load(open(sys.argv[2])):\n"
            "    errs = li.validate_prediction(t['predictions'][0], return_errors=True)\n"
            "    bad += [] if errs is True or not errs else [errs]\nprint(json.dumps(bad))\n")
    for folder in (ls, poly):
        proc = subprocess.run([sys.executable, "-c", code, str(folder / "label_config.xml"), str(folder / "tasks.json")],
                              env={**os.environ, "PYTHONPATH": str(sdk)}, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert json.loads(proc.stdout.strip().splitlines()[-1]) == []


def small_png(img):
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.data
def test_worker_capture_stays_under_its_quota_for_1000_requests(settings, shared_data, tmp_path):
    """Off by default (nothing stored); on, 1,000 uploads leave the store under its quota at
    every point, oldest dropped first, about sample_rate of the answers recorded."""
    from fastapi.testclient import TestClient

    from knnclip_core.index import build_snapshot
    from knnclip_core.segment.release import EmbedderCache, LocalSnapshotSource
    from knnclip_core.segment.segmenter import SegmentParams
    from knnclip_core.serving.service import create_app

    emb = EmbedderCache("cpu").get("classic")
    names = sorted(p.name for p in (shared_data / "camvid" / "train").glob("*.png"))[:4]
    xb, cls = [], []
    for n in names:
        img, lab = load_pair(shared_data, "train", n, (64, 48))
        vals = [v for v in np.unique(lab) if v not in (VOID, CAR)]
        xb.append(emb.embed_masks(img, [lab == v for v in vals]))
        cls += [camvid_names(shared_data)[v] for v in vals]
    snap = tmp_path / "snap"
    build_snapshot(snap, np.concatenate(xb), [f"s{i}" for i in range(len(cls))], cls, emb.id,
                   lineage={"backbone": "classic"}, factory="Flat")
    settings.worker.proposals = "grid"
    uploads = [small_png(load_pair(shared_data, "val", n, (40, 30))[0])
               for n in sorted(p.name for p in (shared_data / "camvid" / "val").glob("*.png"))[:20]]

    def run(n):
        source = LocalSnapshotSource(snap, SegmentParams.from_settings(settings), EmbedderCache("cpu"), alias="production")
        with TestClient(create_app(source, settings, poll_seconds=60)) as client:
            end = time.time() + 20
            while client.get("/readyz").status_code != 200 and time.time() < end:
                time.sleep(0.05)
            for i in range(n):
                r = client.post("/segment", files={"image": (f"u{i}.png", uploads[i % len(uploads)], "image/png")})
                assert r.status_code == 200
                yield i

    root = tmp_path / "captures"
    settings.capture.dir = str(root)
    assert sum(1 for _ in run(20)) == 20 and not root.exists()  # off by default: no upload stored
    settings.capture.enabled, settings.capture.quota_mb, settings.capture.sample_rate = True, 1.0, 0.5
    settings.capture.confidence_below = 1.01  # every segment is doubtful: the sample rate alone decides
    quota, peak = 1.0 * 1024 * 1024, 0
    for i in run(1000):
        if i % 50 == 0:
            used = sum(f.stat().st_size for f in root.rglob("*") if f.is_file())
            peak = max(peak, used)
    used = sum(f.stat().st_size for f in root.rglob("*") if f.is_file())
    assert max(peak, used) <= quota
    store = CaptureStore(root, CaptureParams(quota_mb=1.0))
    ids = store.ids()
    per = used / len(ids)
    assert len(ids) >= int(quota / per) - 2  # the store stays near full: only the oldest went
    first = json.loads((root / ids[0] / "record.json").read_text())
    assert first["release"]["alias"] == "production" and first["segments"][0]["neighbours"][0]["segment_id"].startswith("s")
    assert ids == sorted(ids)
    kept_idx = [int(json.loads((root / c / "record.json").read_text())["name"][1:-4]) for c in ids]
    assert kept_idx == sorted(kept_idx) and kept_idx[-1] >= 990 and kept_idx[0] > 200  # newest kept, oldest dropped
    span = kept_idx[-1] - kept_idx[0] + 1
    assert 0.35 < len(kept_idx) / span < 0.65  # about half of the answers recorded (sample_rate 0.5)


@pytest.mark.data
@pytest.mark.slow
def test_new_class_from_an_import_is_in_the_next_release_and_found(settings, workspace, shared_data, tmp_path,
                                                                   monkeypatch, capsys):
    """Memory without Car -> `knnclip segment --capture` -> `label export` -> the oracle
    annotator types 'Car' -> `label import` -> embed, curate, publish -> the new release has
    car, `releases diff` says it came from corrections, `segment` finds it."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from benchmarks.active_loop import answer_tasks, camvid_classes
    from knnclip_core.cli.main import main as cli
    from knnclip_core.embed_stage import run_embed
    from knnclip_core.ingest import ingest_path
    from knnclip_core.memory.curate import curate
    from registry.publish import publish

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("KNNCLIP_EMBED__BACKBONE", "classic")
    monkeypatch.setenv("KNNCLIP_CAPTURE__CONFIDENCE_BELOW", "1.01")  # every segment is worth a label here
    monkeypatch.setenv("KNNCLIP_WORKER__PROPOSALS", "grid")
    from knnclip_core.config import load_settings

    settings = load_settings()
    cam = shared_data / "camvid"
    names = sorted(p.name for p in (cam / "train").glob("*.png"))
    src = tmp_path / "start"
    for folder, split in (("images", "train"), ("masks", "trainannot")):
        (src / folder).mkdir(parents=True)
        for n in names[:2]:  # half size: the same scenes, four times fewer pixels to embed
            Image.open(cam / split / n).resize((240, 180), Image.NEAREST).save(src / folder / n)
    shutil.copy2(cam / "classes.txt", src / "classes.txt")
    ingest_path(settings, src, "semantic-png", ignore=[VOID, CAR], progress=False)
    run_embed(settings, backbone="classic", num_workers=0)
    curate(settings, workspace, "classic")
    v1 = publish(settings, workspace, backbone="classic", alias="production")["version"]
    # a held-out image with many car pixels, segmented by the worker CLI with capture on
    name = max(names[3:12], key=lambda n: int((np.asarray(Image.open(cam / "trainannot" / n)) == CAR).sum()))
    target = tmp_path / name
    Image.open(cam / "train" / name).resize((240, 180), Image.BILINEAR).save(target)
    home = ["--home", str(workspace.home)]
    assert cli(home + ["segment", str(target), "--out", str(tmp_path / "seg1"), "--capture", "--json"]) == 0
    first = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert "car" not in first["images"][0]["classes_found"]
    assert cli(home + ["label", "export", str(tmp_path / "ls"), "--to", "label-studio", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["tasks"] == 1
    labels = np.asarray(Image.open(cam / "trainannot" / name).resize((240, 180), Image.NEAREST))
    task = json.loads((tmp_path / "ls" / "tasks.json").read_text())[0]
    vocab = set(json.loads((tmp_path / "ls" / "export.json").read_text())["vocabulary"])
    assert "car" not in vocab
    spent = answer_tasks(tmp_path / "ls" / "tasks.json", tmp_path / "ls" / "annotations.json",
                         {task["data"]["capture_id"]: labels}, camvid_classes(), vocab)
    assert spent > 0
    assert cli(home + ["label", "import", str(tmp_path / "ls" / "annotations.json"), "--from", "label-studio",
                       "--json"]) == 0
    rep = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rep["quarantined"] == 0 and rep["correction"]["releases"] == [str(v1)]
    run_embed(settings, backbone="classic", num_workers=0)
    curate(settings, workspace, "classic")
    v2 = publish(settings, workspace, backbone="classic", alias="production")["version"]
    assert cli(home + ["releases", "diff", str(v1), str(v2), "--json"]) == 0
    diff = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert "car" in diff["added"] and "car" in diff["corrections"]["new_classes"]
    assert diff["corrections"]["rows_added"] > 0 and diff["corrections"]["batches"][0]["releases"] == [str(v1)]
    assert cli(home + ["segment", str(target), "--out", str(tmp_path / "seg2"), "--json"]) == 0
    second = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert second["release"]["version"] == str(v2) and "car" in second["images"][0]["classes_found"]


@pytest.mark.data
def test_bad_annotation_files_are_quarantined_with_a_reason(settings, workspace, shared_data, tmp_path, capsys):
    """A broken brush RLE, a region without a class, an image that is not there and a bad
    CVAT mask are quarantined naming the task/region; the valid regions go through; a file
    that is not an annotation file at all is one sentence and exit 2."""
    from knnclip_core.cli.label_cmd import export_tasks
    from knnclip_core.cli.main import main as cli

    names = sorted(p.name for p in (shared_data / "camvid" / "train").glob("*.png"))[5:8]
    store, truth = gt_store(tmp_path, shared_data, names)
    settings.capture.dir = str(store.root)
    out = tmp_path / "ls"
    export_tasks(settings, "label-studio", out)
    ann = json.loads(accept_predictions(out / "tasks.json", out / "annotations.json").read_text())
    res = ann[0]["annotations"][0]["result"]
    res[0]["value"]["rle"] = res[0]["value"]["rle"][:20]  # cut short
    res[1]["value"]["brushlabels"] = []  # no class, no new_class text
    ann[1]["data"]["knnclip_image"] = "images/not-there.png"
    shutil.copy2(out / ann[2]["data"]["knnclip_image"], tmp_path / "outside.png")
    ann[2]["data"]["knnclip_image"] = "../outside.png"  # a real image, outside the export folder
    (out / "annotations.json").write_text(json.dumps(ann))
    rep = import_corrections(settings, out / "annotations.json", "label-studio")
    by_reason = {}
    for e in rep["examples"]:
        by_reason.setdefault(e["reason"], []).append(e["message"])
    assert rep["quarantined"] == 4 and set(by_reason) == {"bad_segmentation", "unknown_label", "missing_file",
                                                          "path_outside_root"}
    assert f"task {ann[0]['id']} region '{res[0]['id']}'" in by_reason["bad_segmentation"][0]
    assert "annotations.json" in by_reason["bad_segmentation"][0]
    assert rep["segments"] + rep["skipped_small"] == len(truth[ann[0]["data"]["capture_id"]]) - 2  # the rest went in
    x = tmp_path / "cvat"
    export_tasks(settings, "cvat", x)
    text = (x / "annotations.xml").read_text()
    first = text.index('rle="') + 5
    (x / "annotations.xml").write_text(text[:first] + "1, 2, " + text[first:])  # counts overflow the box
    rep = import_corrections(settings, x / "annotations.xml", "cvat")
    assert rep["quarantined"] == 1 and rep["examples"][0]["reason"] == "bad_segmentation"
    assert "do not lie" in rep["examples"][0]["message"] or "add up to" in rep["examples"][0]["message"]
    (tmp_path / "junk.xml").write_text("<html><body>not cvat")
    assert cli(["--home", str(workspace.home), "label", "import", str(tmp_path / "junk.xml"), "--from", "cvat"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "junk.xml is not a readable cvat annotation file" in err[0]


@pytest.mark.data
def test_curation_conflicts_and_duplicates_are_queued_like_captures(settings, workspace, shared_data, tmp_path, capsys,
                                                                    monkeypatch):
    """`knnclip label queue` turns the rows curation left out (conflicts, duplicates) into
    captures holding the catalog's masks and classes; `label export --reason` picks them."""
    from knnclip_core.cli.main import main as cli
    from knnclip_core.embed_stage import run_embed
    from knnclip_core.embedders import embedder_id_for
    from knnclip_core.ingest import ingest_path
    from knnclip_core.memory.curate import curate
    from knnclip_core.memory.table import MemoryTable

    cam = shared_data / "camvid"
    src = tmp_path / "start"
    names = sorted(p.name for p in (cam / "train").glob("*.png"))[:2]
    for folder, split in (("images", "train"), ("masks", "trainannot")):
        (src / folder).mkdir(parents=True)
        for n in names:
            Image.open(cam / split / n).resize((120, 90), Image.NEAREST).save(src / folder / n)
    shutil.copy2(cam / "classes.txt", src / "classes.txt")
    ingest_path(settings, src, "semantic-png", ignore=[VOID], progress=False)
    run_embed(settings, backbone="classic", num_workers=0)
    curate(settings, workspace, "classic", dedup_threshold=0.6)  # loose: conflicts and duplicates appear
    table = MemoryTable.open(workspace.memory_uri, embedder_id_for("classic"), create=False).table
    rows = [r for r in table.to_arrow().to_pylist() if r["state"] in ("conflict", "duplicate")]
    assert rows
    settings.capture.dir = str(tmp_path / "captures")
    home = ["--home", str(workspace.home)]
    monkeypatch.setenv("KNNCLIP_CAPTURE__DIR", str(tmp_path / "captures"))
    assert cli(home + ["label", "queue", "--backbone", "classic", "--json"]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["label_conflict"] == sum(r["state"] == "conflict" for r in rows)
    assert res["near_duplicate"] == sum(r["state"] == "duplicate" for r in rows)
    store = CaptureStore(tmp_path / "captures")
    segs = [s for c in store.ids() for s in store.read(c)["segments"]]
    assert {s["segment_id"] for s in segs} == {r["id"] for r in rows}
    assert all(s["class"] == {r["id"]: r["class_name"] for r in rows}[s["segment_id"]] for s in segs)
    assert cli(home + ["label", "export", str(tmp_path / "x"), "--to", "coco", "--reason", "label_conflict",
                       "--json"]) == 0
    exp = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert exp["proposals"] == res["label_conflict"]


def test_capture_without_a_configured_bound_uses_the_answers_own_threshold(tmp_path):
    """confidence_below unset (the default, worker T from the release): a segment is low
    confidence against the T its answer was decided with, not against a fixed number."""
    from knnclip_core.segment.segmenter import Segment, SegmentationResult

    mask = np.zeros((8, 8), bool)
    mask[:4] = True

    def answer(threshold):
        seg = Segment(mask=mask, label=0, score=0.9, scores=np.array([0.9, 0.1]), confidence=0.4, fused=True,
                      neighbours=[(0, 0.4)])
        return SegmentationResult(classes=["car", "road"], label_map=np.zeros((8, 8), np.int32), segments=[seg],
                                  panoptic_map=np.zeros((8, 8), np.int32), panoptic=[], threshold=threshold)

    store = CaptureStore(tmp_path / "captures", CaptureParams())
    image = np.zeros((8, 8, 3), np.uint8)
    assert store.offer(image, answer(0.2), {"version": "1"}, "test") is None  # 0.4 >= T: confident
    cid = store.offer(image, answer(0.5), {"version": "1"}, "test")
    assert cid is not None and store.read(cid)["segments"][0]["reasons"] == ["low_confidence"]
