"""Catalog tables (sqlmodel): datasets, batches, classes, images, segments, quarantine,
curation runs and forget rules."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Optional

from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Dataset(SQLModel, table=True):
    id: Optional[int] = Field(default=None, primary_key=True)
    name: str = Field(index=True, unique=True)
    created: datetime = Field(default_factory=utcnow)


class IngestBatch(SQLModel, table=True):
    """One run of `ingest` over one source."""

    id: str = Field(primary_key=True)
    dataset_id: int = Field(foreign_key="dataset.id", index=True)
    source: str
    format: str
    content_hash: str = Field(default="", index=True)  # sha256 over the batch's images and masks
    images: int = 0  # valid images
    segments: int = 0  # valid segments
    new_segments: int = 0  # segments not in the catalog before
    classes: int = 0  # distinct classes among valid segments
    quarantined: int = 0
    skipped_crowd: int = 0
    skipped_small: int = 0
    status: str = "running"  # running | done | failed
    error: str = ""
    started: datetime = Field(default_factory=utcnow)
    finished: Optional[datetime] = None
    seconds: float = 0.0
    params_json: str = "{}"


class ClassName(SQLModel, table=True):
    __tablename__ = "class"
    id: Optional[int] = Field(default=None, primary_key=True)
    name: str = Field(index=True, unique=True)
    dataset_id: int = Field(foreign_key="dataset.id")  # dataset of first appearance
    is_thing: Optional[bool] = None


class Image(SQLModel, table=True):
    sha256: str = Field(primary_key=True)
    path: str  # absolute path where it was first ingested
    width: int
    height: int
    bytes: int
    dataset_id: int = Field(foreign_key="dataset.id", index=True)
    batch_id: str = Field(foreign_key="ingestbatch.id", index=True)


class Segment(SQLModel, table=True):
    """A labelled mask of one image; its id is a content hash (image, class, mask)."""

    id: str = Field(primary_key=True)
    image_sha256: str = Field(foreign_key="image.sha256", index=True)
    class_id: int = Field(foreign_key="class.id", index=True)
    area: int
    bbox_x: int
    bbox_y: int
    bbox_w: int
    bbox_h: int
    is_thing: Optional[bool] = None
    mask_rle: str  # COCO compressed RLE counts of the mask (height/width from the image)
    dataset_id: int = Field(foreign_key="dataset.id", index=True)
    batch_id: str = Field(foreign_key="ingestbatch.id", index=True)
    created: datetime = Field(default_factory=utcnow)


class Quarantine(SQLModel, table=True):
    id: Optional[int] = Field(default=None, primary_key=True)
    batch_id: str = Field(foreign_key="ingestbatch.id", index=True)
    item: str  # file (and segment) the problem is about
    reason: str = Field(index=True)  # reason code, e.g. truncated_image
    message: str
    created: datetime = Field(default_factory=utcnow)


class CurationRun(SQLModel, table=True):
    """One `curate` run: its parameters, outcome and the LanceDB version/tag it wrote."""

    id: Optional[int] = Field(default=None, primary_key=True)
    embedder_id: str = Field(index=True)
    table_name: str
    lance_version: int = 0
    lance_tag: str = ""
    params_json: str = "{}"
    report_json: str = "{}"
    status: str = "running"  # running | done | failed
    started: datetime = Field(default_factory=utcnow)
    finished: Optional[datetime] = None


class ForgetRule(SQLModel, table=True):
    """Segments matching (kind, value) stay out of the memory while the rule is active."""

    id: Optional[int] = Field(default=None, primary_key=True)
    kind: str  # dataset | batch | image_sha
    value: str
    reason: str = ""
    active: bool = True
    created: datetime = Field(default_factory=utcnow)
