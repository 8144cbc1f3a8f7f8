"""The Great Expectations suites over image and segment fact rows.

Each expectation stands for one reason code; a row's verdict is the first failed
expectation in reason order. GX runs in an ephemeral context (no network); its HTML
report (Data Docs) is written into the workspace by `write_data_docs`.
"""
from __future__ import annotations

import logging
import warnings
from pathlib import Path

import pandas as pd

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
    """Runs the image and segment suites on fact rows; returns failing row ids by reason."""

    def __init__(self, max_pixels: int, name: str = "knnclip"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import great_expectations as gx
            from great_expectations.data_context.types.base import ProgressBarsConfig
        for logger_name in ["great_expectations", *logging.root.manager.loggerDict]:
            if logger_name.startswith("great_expectations"):  # GX sets INFO on some of its own loggers
                logging.getLogger(logger_name).setLevel(logging.WARNING)
        self.gx = gx
        self.context = gx.get_context(mode="ephemeral")
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False)
        source = self.context.data_sources.add_pandas(f"{name}_facts")
        self.name = name
        self.suites = {}
        for kind, expectations in (("images", _image_expectations(gx, max_pixels)), ("segments", _segment_expectations(gx))):
            batch_def = source.add_dataframe_asset(kind).add_batch_definition_whole_dataframe(f"{kind}_batch")
            suite = self.context.suites.add(gx.ExpectationSuite(name=f"{name}_{kind}"))
            reasons = {}
            for reason, exp in expectations:
                exp = suite.add_expectation(exp)
                reasons[exp.id] = reason
            vd = self.context.validation_definitions.add(gx.ValidationDefinition(name=f"{name}_{kind}_check", data=batch_def, suite=suite))
            self.suites[kind] = (vd, reasons)

    def failures(self, kind: str, rows: pd.DataFrame) -> dict[str, list[str]]:
        """row_id -> reason codes it fails, in the suite's order, for `kind` images|segments."""
        if rows.empty:
            return {}
        vd, reasons = self.suites[kind]
        result = vd.run(batch_parameters={"dataframe": rows},
                        result_format={"result_format": "COMPLETE", "unexpected_index_column_names": ["row_id"]})
        failed: dict[str, list[str]] = {}
        for res in result.results:
            if res.success:
                continue
            reason = reasons[res.expectation_config.id]
            for entry in res.result.get("unexpected_index_list") or []:
                failed.setdefault(entry["row_id"], []).append(reason)
        order = list(reasons.values())
        return {rid: sorted(set(rs), key=order.index) for rid, rs in failed.items()}

    def write_data_docs(self, images: pd.DataFrame, segments: pd.DataFrame, out_dir: Path, batch_id: str) -> Path | None:
        """Run both suites once more through a checkpoint that renders Data Docs into `out_dir`."""
        gx = self.gx
        out_dir.mkdir(parents=True, exist_ok=True)
        site = "knnclip_local"
        if site not in (self.context.get_config().data_docs_sites or {}):
            self.context.add_data_docs_site(site_name=site, site_config={
                "class_name": "SiteBuilder",
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
                "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(out_dir)},
            })
        for kind, frame in (("images", images), ("segments", segments)):
            if frame.empty:
                continue
            vd, _ = self.suites[kind]
            cp_name = f"{batch_id}_{kind}"
            cp = self.context.checkpoints.add(gx.Checkpoint(
                name=cp_name, validation_definitions=[vd],
                actions=[gx.checkpoint.actions.UpdateDataDocsAction(name="docs", site_names=[site])],
                result_format={"result_format": "SUMMARY"}))
            cp.run(batch_parameters={"dataframe": frame})
        index = out_dir / "index.html"
        return index if index.exists() else None
