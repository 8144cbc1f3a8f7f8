"""Provenance as data: what made a memory's vectors, stored as JSON next to them (memory
table metadata, snapshot manifest) and compared field by field, never parsed from an id.

A record is `{"format": 1, "embedder_id": ..., "backbone": BackboneSpec.as_dict(),
"weights_sha256": full hex digest or None}`. Two records describe the same embedder when
their backbone specs agree on every field that shapes the vectors (`IDENTITY_FIELDS`:
all but the name, description and dedup threshold) and their weights checksums agree.
"""
from __future__ import annotations

import dataclasses
import json
from typing import Any, Optional

from .backbones import BackboneSpec

PROVENANCE_FORMAT = 1
NOT_IDENTITY = frozenset({"name", "description", "dedup_threshold"})  # labels and curation hints


class ProvenanceError(ValueError):
    """A stored provenance record cannot be read."""


def make_provenance(spec: BackboneSpec, weights_sha256: Optional[str], embedder_id: str) -> dict[str, Any]:
    """The provenance record of an embedder built from `spec`."""
    return {"format": PROVENANCE_FORMAT, "embedder_id": embedder_id, "backbone": spec.as_dict(),
            "weights_sha256": weights_sha256}


def spec_identity(backbone: dict | BackboneSpec) -> dict[str, Any]:
    """The fields of a backbone spec (object or stored dict) that shape its vectors; fields a
    stored dict lacks (written before the field existed) take the dataclass default."""
    data = backbone.as_dict() if isinstance(backbone, BackboneSpec) else dict(backbone)
    out = {}
    for f in dataclasses.fields(BackboneSpec):
        if f.name in NOT_IDENTITY:
            continue
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)  # type: ignore[misc]
        out[f.name] = data.get(f.name, default)
    out["weights"] = str(out["weights"])
    return out


def same_spec(record: dict, spec: BackboneSpec) -> bool:
    """True when the record's backbone spec shapes vectors exactly as `spec` does."""
    return spec_identity(record["backbone"]) == spec_identity(spec)


def dumps(record: dict) -> str:
    """Canonical JSON of a record (sorted keys)."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"))


def loads(raw: str | bytes, where: str) -> dict:
    """A record from its JSON; raises ProvenanceError naming `where` when it is not one."""
    try:
        record = json.loads(raw)
        if not isinstance(record, dict) or not isinstance(record.get("backbone"), dict) or "embedder_id" not in record:
            raise ValueError("not a provenance record")
    except ValueError:
        raise ProvenanceError(f"the provenance stored in {where} is not a valid knnclip provenance record") from None
    return record
