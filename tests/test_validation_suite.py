"""The Great Expectations suites are named after the dataset and batch they check."""
from knnclip_core.ingest import ingest_path
from knnclip_core.sample_data import write_sample_dataset
from knnclip_core.validation.suite import BatchValidator
from knnclip_core.workspace import Workspace


def test_suite_names_carry_the_given_name():
    v = BatchValidator(max_pixels=10_000, name="camvid_b42")
    names = {s.name for s in v.context.suites.all()}
    assert names == {"camvid_b42_images", "camvid_b42_segments"}
    assert v.name == "camvid_b42"


def test_ingest_names_its_suites_after_dataset_and_batch(settings, tmp_path):
    root = write_sample_dataset(tmp_path / "s", images=3, classes=2)
    report = ingest_path(settings, root, min_area=1, progress=False)
    docs = Workspace.from_settings(settings).data_docs_dir
    text = " ".join(p.name for p in docs.rglob("*")) + (docs / "index.html").read_text()
    assert f"{report.dataset}_{report.batch_id}_segments" in text
    assert "great_expectations" not in " ".join(p.name for p in docs.rglob("*"))
