"""The Great Expectations suites over image and segment fact rows.

Each expectation stands for one reason code; a row's verdict is the first failed
expectation in reason order. GX runs in an ephemeral context (no network); its HTML
report (Data Docs, one page per batch and suite, kept across batches) is written into the
workspace by `write_data_docs` (see docs.py).
"""
from __future__ import annotations

import datetime
import logging
import warnings
from pathlib import Path

import pandas as pd

from .docs import run_name, write_batch_docs

SUITE_PREFIX = "knnclip"
logger = logging.getLogger(__name__)


def _image_expectations(gx, max_pixels: int) -> list[tuple[str, object]]:
    E = gx.expectations
    return [
        ("reader", E.ExpectColumnValuesToBeInSet(column="reader_ok", value_set=[True])),
        ("path_outside_root", E.ExpectColumnValuesToBeInSet(column="inside_root", value_set=[True])),
        ("missing_file", E.ExpectColumnValuesToBeInSet(column="exists", value_set=[True])),
        ("not_an_image", E.ExpectColumnValuesToBeInSet(column="is_image", value_set=[True])),
        ("too_many_pixels", E.ExpectColumnValuesToBeBetween(column="pixels", max_value=max_pixels)),
        ("truncated_image", E.ExpectColumnValuesToBeInSet(column="decodes", value_set=[True])),
        ("size_mismatch", E.ExpectColumnValuesToBeInSet(column="size_match", value_set=[True])),
        ("duplicate_id", E.ExpectColumnValuesToBeInSet(column="id_first_seen", value_set=[True])),  # over the batch
    ]


def _segment_expectations(gx) -> list[tuple[str, object]]:
    E = gx.expectations
    return [
        ("reader", E.ExpectColumnValuesToBeInSet(column="reader_ok", value_set=[True])),
        ("unknown_label", E.ExpectColumnValuesToBeInSet(column="class_known", value_set=[True])),
        ("empty_mask", E.ExpectColumnValuesToBeBetween(column="area", min_value=1)),
        ("bad_area", E.ExpectColumnValuesToBeInSet(column="area_le_pixels", value_set=[True])),
        ("bbox_outside_image", E.ExpectColumnValuesToBeInSet(column="bbox_inside", value_set=[True])),
        ("duplicate_id", E.ExpectColumnValuesToBeInSet(column="id_first_seen", value_set=[True])),  # over the batch
    ]


class BatchValidator:
    """Runs the image and segment suites (`knnclip.images`, `knnclip.segments`) on fact rows of
    one ingest batch of `dataset`; returns failing row ids by reason and writes its Data Docs."""

    def __init__(self, max_pixels: int, dataset: str = "knnclip", batch_id: str = ""):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import great_expectations as gx
            from great_expectations.data_context.types.base import ProgressBarsConfig
        for logger_name in ["great_expectations", *logging.root.manager.loggerDict]:
            if logger_name.startswith("great_expectations"):  # GX sets INFO on some of its own loggers
                logging.getLogger(logger_name).setLevel(logging.WARNING)
        self.gx = gx
        self.dataset, self.batch_id = dataset, batch_id
        self.context = gx.get_context(mode="ephemeral")
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False)
        source = self.context.data_sources.add_pandas(SUITE_PREFIX)
        self.suites = {}
        for kind, expectations in (("images", _image_expectations(gx, max_pixels)), ("segments", _segment_expectations(gx))):
            batch_def = source.add_dataframe_asset(kind).add_batch_definition_whole_dataframe(f"{kind} of a batch")
            suite = self.context.suites.add(gx.ExpectationSuite(name=f"{SUITE_PREFIX}.{kind}"))
            reasons = {}
            for reason, exp in expectations:
                exp = suite.add_expectation(exp)
                reasons[exp.id] = reason
            vd = self.context.validation_definitions.add(gx.ValidationDefinition(name=f"{SUITE_PREFIX}.{kind} check", data=batch_def, suite=suite))
            self.suites[kind] = (vd, reasons)

    def _validate(self, kind: str, rows: pd.DataFrame, result_format: dict, run_id=None):
        """GX's ValidationDefinition.run without its results store: the ephemeral store kept every
        chunk's COMPLETE result in memory, and serialising it cost more than validating."""
        from great_expectations.core.run_identifier import RunIdentifier
        from great_expectations.validator.v1_validator import Validator

        vd, _ = self.suites[kind]
        result = Validator(batch_definition=vd.batch_definition, batch_parameters={"dataframe": rows},
                           result_format=result_format).validate_expectation_suite(vd.suite)
        run_id = run_id or RunIdentifier(run_time=datetime.datetime.now(datetime.timezone.utc))
        result.meta.update(run_id=run_id, validation_time=run_id.run_time, validation_id=vd.id)
        return result

    def failures(self, kind: str, rows: pd.DataFrame) -> dict[str, list[str]]:
        """row_id -> reason codes it fails, in the suite's order, for `kind` images|segments."""
        if rows.empty:
            return {}
        _, reasons = self.suites[kind]
        result = self._validate(kind, rows, {"result_format": "COMPLETE", "unexpected_index_column_names": ["row_id"]})
        failed: dict[str, list[str]] = {}
        for res in result.results:
            if res.success:
                continue
            reason = reasons[res.expectation_config.id]
            for entry in res.result.get("unexpected_index_list") or []:
                failed.setdefault(entry["row_id"], []).append(reason)
        order = list(reasons.values())
        return {rid: sorted(set(rs), key=order.index) for rid, rs in failed.items()}

    def write_data_docs(self, images: pd.DataFrame, segments: pd.DataFrame, out_dir: Path) -> Path | None:
        """Validate the whole batch once more (summary results) under a run named by dataset, batch
        and time, and add its pages to the Data Docs in `out_dir` (see docs.py); returns index.html."""
        from great_expectations.core.run_identifier import RunIdentifier

        now = datetime.datetime.now(datetime.timezone.utc)
        run_id = RunIdentifier(run_name=run_name(self.dataset, self.batch_id, now), run_time=now)
        results, suites = {}, {}
        for kind, frame in (("images", images), ("segments", segments)):
            if frame.empty:
                continue
            result = self._validate(kind, frame, {"result_format": "SUMMARY"}, run_id)
            result.meta["batch_spec"] = {**result.meta.get("batch_spec", {}), "data_asset_name": f"{self.dataset} {kind}"}
            results[kind] = (result, len(frame))
            suites[kind] = self.suites[kind][0].suite
        if not results:
            return None
        return write_batch_docs(out_dir, self.dataset, self.batch_id, results, suites)
