"""The Great Expectations suites and their Data Docs: suites named for what they check, runs
named by dataset and batch, every batch kept, nothing loaded from the network."""
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd

from knnclip_core.ingest import ingest_path
from knnclip_core.sample_data import write_sample_dataset
from knnclip_core.validation.suite import BatchValidator
from knnclip_core.workspace import Workspace

from fixture_datasets import write_ade


class _Refs(HTMLParser):
    """Addresses a browser loads (link href, script src, img src) and the rows of table#validations."""

    def __init__(self):
        super().__init__()
        self.refs: list[str] = []
        self.rows: list[dict] = []
        self._table = self._cell = False
        self._row: list = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in ("link", "script", "img") and a.get("href" if tag == "link" else "src"):
            self.refs.append(a.get("href" if tag == "link" else "src"))
        if tag == "table" and a.get("id") == "validations":
            self._table = True
        elif self._table and tag == "tr":
            self._row = []
        elif self._table and tag == "td":
            self._cell = True
            self._row.append({"text": "", "href": None})
        elif self._cell and tag == "a" and self._row[-1]["href"] is None:
            self._row[-1]["href"] = a.get("href")

    def handle_endtag(self, tag):
        if tag == "table":
            self._table = False
        elif self._table and tag == "td":
            self._cell = False
        elif self._table and tag == "tr" and self._row:
            self.rows.append(self._row)

    def handle_data(self, data):
        if self._cell:
            self._row[-1]["text"] += data


def _parse(path: Path) -> _Refs:
    p = _Refs()
    p.feed(path.read_text())
    return p


def test_suites_are_named_for_what_they_check():
    v = BatchValidator(max_pixels=10_000, dataset="camvid", batch_id="b42")
    assert {s.name for s in v.context.suites.all()} == {"knnclip.images", "knnclip.segments"}


def test_failures_keep_no_result_in_memory():
    v = BatchValidator(max_pixels=10_000, dataset="camvid", batch_id="b42")
    rows = pd.DataFrame({"reader_ok": [True, True], "class_known": [True, False], "area": [5, 0],
                         "area_le_pixels": [True, True], "bbox_inside": [True, True], "id_first_seen": [True, True],
                         "row_id": ["a", "b"]})
    for _ in range(3):
        assert v.failures("segments", rows) == {"b": ["unknown_label", "empty_mask"]}
    assert v.context.validation_results_store.list_keys() == []


def test_data_docs_list_every_batch_and_load_nothing_from_the_network(settings, tmp_path):
    first = ingest_path(settings, write_sample_dataset(tmp_path / "s", images=3, classes=2), min_area=1, progress=False)
    second = ingest_path(settings, write_ade(tmp_path / "a"), min_area=1, progress=False)
    docs = Workspace.from_settings(settings).data_docs_dir
    assert first.dataset != second.dataset and Path(second.data_docs) == docs / "index.html"

    index = _parse(docs / "index.html")
    listed = {(r[2]["text"], r[3]["text"], r[4]["text"]) for r in index.rows}  # dataset, batch, suite
    assert listed == {(rep.dataset, rep.batch_id, f"knnclip.{kind}")
                      for rep in (first, second) for kind in ("images", "segments")}
    for row in index.rows:
        run_name = row[7]["text"]
        assert run_name.startswith(f"{row[2]['text']} batch {row[3]['text']} "), run_name
        page = docs / row[7]["href"]
        assert page.is_file() and run_name in page.read_text(), page  # the first batch's pages survive
        assert (docs / row[4]["href"]).is_file()

    pages = sorted(docs.rglob("*.html"))
    assert len(pages) == 1 + 4 + 2  # index, 2 batches x 2 suites, 2 suite pages
    for page in pages:
        refs = _parse(page).refs
        assert refs, page
        for ref in refs:
            assert not ref.lower().startswith(("http:", "https:", "//")), f"{page}: {ref}"
            assert (page.parent / ref.split("?")[0]).resolve().is_file(), f"{page}: missing {ref}"
        assert "great-expectations-web-assets" not in page.read_text()  # nor a CSS url() to its logo
