"""One typed result per stage. Each renders its summary line once (`line()`: what the CLI
prints first and the flows log as the stage line), its JSON once (`to_json()`: the CLI's
`--json` and the flows' return values; the keys of the dicts these stages returned before),
and is read back from that JSON (`from_json`, e.g. a cached ingest or a task's return value).
`details()` are the CLI's extra lines under the summary (per class, examples, paths)."""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Optional

from .text import budget_text, count, number, reasons_text


@dataclass
class StageResult:
    """Base of the stage results: JSON out and back. Keys a result does not name travel in
    `extra` (e.g. the curation report's per-class counts), so nothing is lost either way."""

    OPTIONAL: ClassVar[tuple[str, ...]] = ()  # fields left out of the JSON while None or False

    def to_json(self) -> dict:
        """The result as a JSON-able dict (the keys the stage always returned)."""
        out = dict(getattr(self, "extra", None) or {})
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "extra" or (f.name in self.OPTIONAL and value in (None, False)):
                continue
            out[f.name] = value
        return out

    @classmethod
    def from_json(cls, d: dict):
        """The result of a `to_json` dict (unknown keys kept in `extra` where the class has one)."""
        names = {f.name for f in fields(cls)} - {"extra"}
        known = {k: v for k, v in d.items() if k in names}
        if "extra" in {f.name for f in fields(cls)}:
            known["extra"] = {k: v for k, v in d.items() if k not in names}
        return cls(**known)

    def line(self) -> str:  # pragma: no cover - every stage defines it
        raise NotImplementedError

    def details(self) -> list[str]:
        """Extra lines the CLI prints under `line()` (none by default)."""
        return []

    def text(self) -> str:
        """The CLI's human output: the summary line, then the details."""
        return "\n".join([self.line(), *self.details()])


@dataclass
class IngestReport(StageResult):
    """What one ingest did. `images`, `segments`, `classes` count valid items of the batch."""

    OPTIONAL: ClassVar[tuple[str, ...]] = ("cached",)

    batch_id: str
    dataset: str
    format: str
    source: str
    images: int = 0
    segments: int = 0
    new_segments: int = 0
    classes: int = 0
    quarantined: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    skipped_crowd: int = 0
    skipped_small: int = 0
    seconds: float = 0.0
    content_hash: str = ""
    data_docs: Optional[str] = None
    report_path: Optional[str] = None
    examples: list[dict] = field(default_factory=list)  # first quarantined items, with messages
    cached: bool = False  # read back from the flow's cache (the source was already ingested)

    def to_dict(self) -> dict:
        """As `to_json` (the name ingest's callers use)."""
        return self.to_json()

    def line(self) -> str:
        """'ingest: 48 images, 312 segments (300 new), 2 quarantined (3.1 s) from <source>'."""
        text = (f"ingest: {count(self.images, 'image')}, {count(self.segments, 'segment')} "
                f"({self.new_segments or 0:,} new), {self.quarantined or 0:,} quarantined")
        if self.reasons:
            text += f" [{reasons_text(self.reasons)}]"
        text += f" ({self.seconds or 0:.1f} s) from {self.source}"
        return text + (" (already ingested: cached summary)" if self.cached else "")

    def details(self) -> list[str]:
        nothing_new = "; nothing new: all were already in the catalog" if self.segments and not self.new_segments else ""
        lines = [f"  batch {self.batch_id}: {self.format} into dataset {self.dataset!r}, {self.classes} classes"
                 f"{nothing_new}",
                 f"  skipped: {self.skipped_small} below --min-area, {self.skipped_crowd} crowd annotations"]
        for ex in self.examples[:10]:
            lines.append(f"    [{ex['reason']}] {ex['message']}")
        if self.quarantined > len(self.examples[:10]):
            lines.append(f"    ... see the quarantine table or {self.report_path}")
        if self.data_docs:
            lines.append(f"  validation report: {self.data_docs}")
        return lines

    def summary(self) -> str:
        """The CLI's human lines (kept for callers of the old name)."""
        return self.text()


@dataclass
class EmbedResult(StageResult):
    """What one embedding run (or the merge of its shards) did."""

    OPTIONAL: ClassVar[tuple[str, ...]] = ("shards",)

    backbone: str = ""
    device: str = ""
    embedder_id: str = ""
    table: str = ""
    images: int = 0
    segments: int = 0
    embedded: int = 0
    skipped_existing: int = 0
    failed_images: int = 0
    missing_images: list[str] = field(default_factory=list)  # at most 20 named
    rows: int = 0
    seconds: float = 0.0
    shards: Optional[int] = None  # set on the merge of a sharded run

    @classmethod
    def merged(cls, parts: list["EmbedResult"], shards: int) -> "EmbedResult":
        """One result of disjoint shards run side by side (counts add up, time is the longest)."""
        first = parts[0]
        return cls(backbone=first.backbone, device=first.device, embedder_id=first.embedder_id, table=first.table,
                   images=sum(p.images for p in parts), segments=sum(p.segments for p in parts),
                   embedded=sum(p.embedded for p in parts), skipped_existing=sum(p.skipped_existing for p in parts),
                   failed_images=sum(p.failed_images for p in parts),
                   missing_images=[m for p in parts for m in p.missing_images][:20],
                   rows=max(p.rows for p in parts), seconds=max(p.seconds for p in parts), shards=shards)

    def line(self, prefix: str = "embed") -> str:
        """'embed: 312 vectors (classic-v2 on cpu, 11.2 s), 40 already in the memory'."""
        text = (f"{prefix}: {count(self.embedded, 'vector')} ({self.backbone} on {self.device}, "
                f"{self.seconds or 0:.1f} s), {self.skipped_existing or 0:,} already in the memory")
        if self.failed_images:
            text += f", {count(self.failed_images, 'image')} unreadable"
        return text

    def details(self) -> list[str]:
        lines = [f"  embedder {self.embedder_id}", f"  table    {self.table} ({self.rows} rows)"]
        if self.failed_images:
            lines.append(f"  {self.failed_images} images could not be read: " + ", ".join(self.missing_images))
        return lines


@dataclass
class CurateResult(StageResult):
    """The curation report: counts per state, the budget, the LanceDB version and tag written;
    per-class counts, drops and listed conflicts travel in `extra` under their report keys."""

    run_id: Optional[int] = None
    embedder_id: str = ""
    table: str = ""
    rows: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    budget: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    lance_version: Optional[int] = None
    lance_tag: Optional[str] = None
    changed_rows: int = 0
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        """'curate: kept 290 of 312, 4 duplicates, 1 conflict, 0 over budget, 0 forgotten; budget ...'."""
        c = self.counts or {}
        return (f"curate: kept {c.get('kept', 0):,} of {self.rows or 0:,}, "
                f"{count(c.get('duplicate'), 'duplicate')}, {count(c.get('conflict'), 'conflict')}, "
                f"{c.get('over_budget', 0):,} over budget, {c.get('forgotten', 0):,} forgotten; "
                f"budget {budget_text(self.budget, self.params)} ({self.seconds or 0:.1f} s)")

    def details(self) -> list[str]:
        lines = [f"  curation {self.run_id} of {self.embedder_id}: {self.changed_rows} rows changed; "
                 f"version {self.lance_version}, tag {self.lance_tag}"]
        per_class = self.extra.get("per_class") or {}
        for cls, dropped in (self.extra.get("dropped") or {}).items():
            if dropped:
                lines.append(f"  {cls}: kept {per_class.get(cls, {}).get('kept', 0)}, dropped " +
                             ", ".join(f"{k} {v}" for k, v in sorted(dropped.items())))
        for conf in (self.extra.get("conflicts") or [])[:10]:
            lines.append(f"  conflict {conf['a']} ({conf['a_class']}) ~ {conf['b']} ({conf['b_class']}): "
                         f"{conf['similarity']}")
        return lines


@dataclass
class PublishResult(StageResult):
    """A published (or, for an unchanged memory, reused) release."""

    OPTIONAL: ClassVar[tuple[str, ...]] = ("bytes", "tracking_uri", "experiment_id")

    version: Optional[int] = None
    model_name: str = ""
    uri: str = ""
    run_id: Optional[str] = None
    alias: Optional[str] = None
    previous: Optional[int] = None
    reused: bool = False
    vectors: int = 0
    classes: int = 0
    factory: Optional[str] = None
    recall_at_10: Optional[float] = None
    embedder_id: Optional[str] = None
    bytes: Optional[int] = None  # the index's bytes (a new release)
    tracking_uri: Optional[str] = None  # where its MLflow run lives, without a password
    experiment_id: Optional[str] = None

    def line(self) -> str:
        """'publish: version 7 (IVF64,Flat, recall@10 0.990, 290 vectors, 5 classes) -> staging'."""
        text = (f"publish: version {self.version} ({self.factory}, recall@10 {number(self.recall_at_10)}, "
                f"{count(self.vectors, 'vector')}, {count(self.classes, 'class', 'classes')})")
        text += f" -> {self.alias}" if self.alias else " (no alias)"
        return text + (" (unchanged memory: existing release kept)" if self.reused else "")

    def details(self) -> list[str]:
        return [f"  {self.uri} ({self.embedder_id}), MLflow run {self.run_id}"]


@dataclass
class PromoteResult(StageResult):
    """A promotion: 'promoted' (`gate` says how the quality gate judged, status 'unchanged'
    when the alias already pointed there), 'refused' (`reason`), or 'not asked'."""

    OPTIONAL: ClassVar[tuple[str, ...]] = ("reason",)

    status: str = "not asked"
    alias: Optional[str] = None
    version: Optional[int] = None
    previous: Optional[int] = None
    gate: dict[str, Any] = field(default_factory=dict)
    changed: bool = False
    reason: Optional[str] = None

    def text_only(self) -> str:
        """The promotion in words, without the stage name (the run summary's Promotion section)."""
        if self.status == "not asked":
            return "not asked (`knnclip run --promote ALIAS` promotes through the quality gate)"
        if self.status == "refused":
            return f"refused: version {self.version} was not promoted to {self.alias} ({self.reason})"
        gate = self.gate or {}
        if gate.get("status") == "unchanged":
            return f"{self.alias} already pointed at version {self.version}"
        verdict = gate.get("reason") or f"quality gate {gate.get('status')}"
        was = "no version" if self.previous is None else f"version {self.previous}"
        return f"promoted version {self.version} to {self.alias} (it held {was}; {verdict})"

    def line(self) -> str:
        """'promote: promoted version 3 to production (it held version 2; quality gate passed)'."""
        return f"promote: {self.text_only()}"
