"""Ingest: read a labelled dataset, validate every image and segment, fill the catalog.

Bad items go to the quarantine table with a reason code and a message naming the
file; the valid items of the same batch are ingested. Segment ids are content hashes,
so ingesting the same data twice adds nothing.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from pathlib import Path
from typing import Iterable, Iterator, Optional

import pandas as pd
from sqlalchemy import insert
from sqlmodel import select

from .catalog import ClassName, Dataset, Image, IngestBatch, Quarantine, Segment, session_scope
from .catalog.models import utcnow
from .catalog.store import check_catalog, insert_missing
from .config import Settings
from .progress import ProgressArg, progress_for
from .readers import Reader, open_reader
from .readers.safe_files import printable
from .stages.results import IngestReport
from .validation.facts import ImageFacts, inspect_item
from .validation.reasons import IMAGE_REASONS, SEGMENT_REASONS
from .validation.suite import BatchValidator
from .workspace import Workspace

logger = logging.getLogger(__name__)


def segment_id(image_sha256: str, class_name: str, rle: str) -> str:
    """Deterministic segment id: a hash of the image content, the class and the mask."""
    return hashlib.sha256(f"{image_sha256}|{class_name}|{rle}".encode()).hexdigest()[:32]


def ingest_path(settings: Settings, path: str | Path, fmt: str = "auto", *, split: str = "validation",
                dataset: str | None = None, images: str | Path | None = None, masks: str | Path | None = None,
                classes: str | Path | None = None, ignore: Iterable[int] = (), min_area: int | None = None,
                progress: ProgressArg = True, extra_params: dict | None = None) -> IngestReport:
    """Open `path` with the right reader and ingest it. Raises InputError when nothing can be read.
    `progress` is as knnclip_core.progress.progress_for takes it; `extra_params` are recorded
    with the batch (e.g. the drop-folder fingerprint)."""
    reader = open_reader(path, fmt, split=split, dataset=dataset, images=images, masks=masks, classes=classes, ignore=ignore)
    return ingest_reader(settings, reader, min_area=min_area, progress=progress, source=str(path),
                         extra_params=extra_params)


CHUNK_ROWS = 4096  # fact rows (images + segments) per validation chunk at most


def _inspect(item, root: Path, row_id: str, max_pixels: int) -> ImageFacts:
    """inspect_item, with any error it did not expect turned into an `inspect_failed` verdict."""
    try:
        return inspect_item(item, root, row_id, max_pixels)
    except Exception as exc:  # never lose the batch to one item
        logger.warning("inspecting %s failed", printable(item.rel_path), exc_info=True)
        return ImageFacts(row_id=row_id, item=printable(item.rel_path), path=printable(str(item.image_path)),
                          source_id=printable(item.source_id), reader_reason="inspect_failed",
                          reader_message=f"{printable(str(item.image_path))}: cannot be inspected ({type(exc).__name__}: {exc})")


def _chunks(facts: Iterator[ImageFacts], images: int) -> Iterator[list[ImageFacts]]:
    """Facts in chunks of at most `images` opened images or CHUNK_ROWS rows: items refused
    before anything was opened are cheap, so thousands of them share one validation run."""
    chunk, opened, rows = [], 0, 0
    for f in facts:
        chunk.append(f)
        opened += bool(f.sha256)
        rows += 1 + len(f.segments)
        if opened >= images or rows >= CHUNK_ROWS:
            yield chunk
            chunk, opened, rows = [], 0, 0
    if chunk:
        yield chunk


class _BatchWriter:
    """Accumulates the verdicts of one batch and writes them to the catalog chunk by chunk."""

    def __init__(self, ws: Workspace, report: IngestReport, dataset_id: int, min_area: int):
        self.ws, self.report, self.dataset_id, self.min_area = ws, report, dataset_id, min_area
        self.class_ids: dict[str, int] = {}
        self.class_names: set[str] = set()
        self.seen_images: set[str] = set()
        self.seen_segments: set[str] = set()
        self.seen_source_images: set[str] = set()
        self.seen_source_segments: set[str] = set()
        self.hash = hashlib.sha256()

    def quarantine(self, rows: list[dict], item: str, reason: str, message: str) -> None:
        item, message = printable(item), printable(message)
        rows.append({"batch_id": self.report.batch_id, "item": item, "reason": reason, "message": message,
                     "created": utcnow()})
        self.report.reasons[reason] = self.report.reasons.get(reason, 0) + 1
        self.report.quarantined += 1
        if len(self.report.examples) < 50:
            self.report.examples.append({"item": item, "reason": reason, "message": message})
        self.hash.update(f"q|{item}|{reason}".encode())

    def first_seen(self, seen: set[str], key: str) -> bool:
        new = key not in seen
        seen.add(key)
        return new

    def write(self, facts: list[ImageFacts], validator: BatchValidator, docs_rows: tuple[list, list]) -> None:
        img_rows = [f.image_row() | {"id_first_seen": self.first_seen(self.seen_source_images, f.source_id or f.row_id)} for f in facts]
        seg_rows = [r | {"id_first_seen": self.first_seen(self.seen_source_segments, f"{r['image_row_id']}:{r['source_id']}")}
                    for f in facts for r in f.segment_rows()]
        img_df, seg_df = pd.DataFrame(img_rows), pd.DataFrame(seg_rows)
        docs_rows[0].append(img_df)
        docs_rows[1].append(seg_df)
        img_fail = _failures(validator, "images", img_df)
        seg_fail = _failures(validator, "segments", seg_df)
        quarantine: list[dict] = []
        new_images: dict[str, Image] = {}
        new_segments: dict[str, Segment] = {}
        r = self.report
        for f in facts:
            self.report.skipped_crowd += f.skipped_crowd
            if f.row_id in img_fail:
                reason = img_fail[f.row_id][0]
                if reason == "reader":
                    reason, message = f.reader_reason, f.reader_message
                else:
                    message = _image_message(f, reason)
                self.quarantine(quarantine, f.item, reason, message)
                continue
            r.images += 1
            self.hash.update(f"i|{f.sha256}".encode())
            if f.sha256 not in self.seen_images:
                self.seen_images.add(f.sha256)
                new_images[f.sha256] = Image(sha256=f.sha256, path=str(Path(f.path).resolve()), width=f.width, height=f.height,
                                             bytes=f.bytes, dataset_id=self.dataset_id, batch_id=r.batch_id)
            for s in f.segments:
                if s.row_id in seg_fail:
                    reason = seg_fail[s.row_id][0]
                    if reason == "reader":
                        reason, message = s.reader_reason, s.reader_message
                    else:
                        message = f"{f.path}: {s.source} (label {s.label}): {SEGMENT_REASONS[reason]}"
                    self.quarantine(quarantine, f"{f.item} :: {s.source}", reason, message)
                    continue
                if s.area < self.min_area:
                    r.skipped_small += 1
                    continue
                sid = segment_id(f.sha256, s.class_name, s.rle)
                self.hash.update(f"s|{sid}".encode())
                if sid in self.seen_segments:
                    continue  # the same segment twice in one batch (e.g. a copied image)
                self.seen_segments.add(sid)
                r.segments += 1
                self.class_names.add(s.class_name)
                x, y, w, h = s.bbox
                new_segments[sid] = Segment(id=sid, image_sha256=f.sha256, class_id=-1, area=s.area, bbox_x=x, bbox_y=y,
                                            bbox_w=w, bbox_h=h, is_thing=s.is_thing, mask_rle=s.rle,
                                            dataset_id=self.dataset_id, batch_id=r.batch_id)
                new_segments[sid]._class_name = (s.class_name, s.is_thing)  # resolved to an id below
        self._commit(new_images, new_segments, quarantine)
        r.classes = len(self.class_names)

    def _commit(self, images: dict[str, Image], segments: dict[str, Segment], quarantine: list[dict]) -> None:
        """Write one chunk in one transaction: classes, images, segments (each sorted, so
        writers on other machines take row locks in one order), then the refusals. Rows
        already in the catalog, from this or another machine, are left as they are."""
        with session_scope(self.ws.catalog_url) as s:
            self._class_ids(s, {seg._class_name for seg in segments.values()})
            insert_missing(s, Image, [img.model_dump() for img in images.values()])
            for seg in segments.values():
                seg.class_id = self.class_ids[seg._class_name[0]]
            fresh = insert_missing(s, Segment, [seg.model_dump() for seg in segments.values()], returning=Segment.id)
            self.report.new_segments += len(fresh)
            if quarantine:  # one bulk insert: thousands of refusals a chunk stay cheap
                s.execute(insert(Quarantine), quarantine)

    def _class_ids(self, session, classes: set[tuple[str, Optional[bool]]]) -> None:
        """Fill `class_ids` for the (name, is_thing) of `classes`, adding the unknown names."""
        todo = {name: thing for name, thing in classes if name not in self.class_ids}
        if not todo:
            return
        insert_missing(session, ClassName, [{"name": n, "dataset_id": self.dataset_id, "is_thing": t}
                                            for n, t in todo.items()], order=("name",))
        rows = session.exec(select(ClassName.name, ClassName.id).where(ClassName.name.in_(list(todo)))).all()
        self.class_ids.update(dict(rows))


def _failures(validator: BatchValidator, kind: str, rows: pd.DataFrame) -> dict[str, list[str]]:
    """row_id -> failed reasons. Rows the reader refused fail the suite's first check,
    'reader', whatever else: they skip the GX run, whose cost grows with failing rows."""
    if rows.empty:
        return {}
    refused = ~rows["reader_ok"].astype(bool)
    out = {rid: ["reader"] for rid in rows.loc[refused, "row_id"]}
    out.update(validator.failures(kind, rows[~refused].reset_index(drop=True)))
    return out


def _image_message(f: ImageFacts, reason: str) -> str:
    detail = {
        "truncated_image": f" ({f.decode_error})",
        "not_an_image": f" ({f.decode_error})" if f.decode_error else "",
        "size_mismatch": f" ({f.size_detail})",
        "too_many_pixels": f" ({f.width}x{f.height} = {f.pixels} pixels)",
        "duplicate_id": f" (id {f.source_id})",
    }.get(reason, "")
    return f"{f.path}: {IMAGE_REASONS.get(reason, reason)}{detail}"


def ingest_reader(settings: Settings, reader: Reader, min_area: int | None = None, progress: ProgressArg = True,
                  source: str | None = None, extra_params: dict | None = None) -> IngestReport:
    """Validate and ingest everything `reader` yields, one chunk of images at a time."""
    ws = Workspace.from_settings(settings).ensure()
    min_area = settings.ingest.min_area if min_area is None else int(min_area)
    started = time.perf_counter()
    batch_id = uuid.uuid4().hex[:12]
    source = source or str(reader.root)
    check_catalog(ws.catalog_url)  # never write a batch into a damaged catalog
    with session_scope(ws.catalog_url) as s:
        insert_missing(s, Dataset, [{"name": reader.dataset_name, "created": utcnow()}], order=("name",))
        dataset_id = s.exec(select(Dataset.id).where(Dataset.name == reader.dataset_name)).one()
        params = {**reader.describe(), "min_area": min_area, "max_pixels": settings.ingest.max_pixels,
                  **(extra_params or {})}
        s.add(IngestBatch(id=batch_id, dataset_id=dataset_id, source=source, format=reader.format,
                          params_json=json.dumps(params, default=str)))
    report = IngestReport(batch_id=batch_id, dataset=reader.dataset_name, format=reader.format, source=source)
    writer = _BatchWriter(ws, report, dataset_id, min_area)
    validator = BatchValidator(settings.ingest.max_pixels, dataset=reader.dataset_name, batch_id=batch_id)
    docs_rows: tuple[list, list] = ([], [])
    root = Path(reader.root)
    reader.max_pixels = settings.ingest.max_pixels  # masks over it are refused from their headers
    try:
        bar = progress_for(progress, len(reader), "ingest", "images", rate_unit="img")
        facts = (_inspect(item, root, f"img{n}", settings.ingest.max_pixels) for n, item in enumerate(reader))
        for chunk in _chunks(facts, settings.ingest.chunk_images):
            writer.write(chunk, validator, docs_rows)
            bar.update(len(chunk), segments=report.segments, quarantined=report.quarantined)
        bar.close()
    except BaseException as exc:
        _finish_batch(ws, report, started, status="failed", error=f"{type(exc).__name__}: {exc}")
        raise
    report.content_hash = writer.hash.hexdigest()
    report.data_docs = _write_docs(validator, docs_rows, ws, batch_id)
    _finish_batch(ws, report, started, status="done")
    return report


def _write_docs(validator: BatchValidator, docs_rows: tuple[list, list], ws: Workspace, batch_id: str) -> Optional[str]:
    try:
        frames = [pd.concat(rows, ignore_index=True) if rows else pd.DataFrame() for rows in docs_rows]
        index = validator.write_data_docs(frames[0], frames[1], ws.data_docs_dir)
        return str(index) if index else None
    except Exception as exc:  # the report is a convenience; the verdicts are already stored
        logger.warning("could not write the Great Expectations Data Docs: %s", exc)
        return None


def _finish_batch(ws: Workspace, report: IngestReport, started: float, status: str, error: str = "") -> None:
    report.seconds = round(time.perf_counter() - started, 3)
    path = ws.reports_dir / f"ingest-{report.batch_id}.json"
    report.report_path = str(path)
    path.write_text(json.dumps(report.to_dict(), indent=2, default=str))
    with session_scope(ws.catalog_url) as s:
        batch = s.get(IngestBatch, report.batch_id)
        for key in ("images", "segments", "new_segments", "classes", "quarantined", "skipped_crowd", "skipped_small",
                    "content_hash", "seconds"):
            setattr(batch, key, getattr(report, key))
        batch.status, batch.error, batch.finished = status, error, utcnow()
        s.add(batch)
