"""Provenance of a release as one artifact and MLflow dataset inputs, instead of many tags.

Each publish run holds `provenance.json` (PROVENANCE_ARTIFACT): the memory backbone spec and
weights sha256, the embedder id, the memory table with its Lance version and tag, the source
datasets and batches with their row counts, the index and the config knobs that shaped the
release. Each source (dataset, batch) is also a dataset input of the run, so MLflow's
Datasets section lists them. Versions published before this kept the same facts in
`knnclip.*` version tags; the readers here fall back to those, so old versions still list,
show and load.
"""
from __future__ import annotations

import json
import logging
import tempfile
import warnings
from pathlib import Path
from typing import Iterable, Optional, Sequence

from mlflow.exceptions import MlflowException

from . import store
from .store import RegistryContext

logger = logging.getLogger(__name__)

PROVENANCE_ARTIFACT = "provenance.json"
PROVENANCE_FORMAT = 1
DATASET_CONTEXT = "training"  # the sources are what the memory was built from


def provenance_record(manifest: dict, manifest_sha256: str, settings=None, backbone: Optional[str] = None,
                      fingerprint: Optional[str] = None, previous: Optional[int] = None) -> dict:
    """The provenance record of a release built from `manifest` (see module docstring).
    `settings` (knnclip Settings) adds the config knobs; `previous` the version it follows."""
    lineage = manifest.get("lineage") or {}
    prov = manifest.get("provenance") or {}
    knobs = {}
    if settings is not None:
        knobs = {"publish.index": settings.publish.index, "publish.recall_floor": settings.publish.recall_floor,
                 "publish.alias": settings.publish.alias, "curate.budget_mb": settings.curate.budget_mb,
                 "curate.budget_vectors": settings.curate.budget_vectors,
                 "worker.base_model": settings.worker.base_model.model_dump()}
    return {
        "format": PROVENANCE_FORMAT,
        "embedder_id": manifest["embedder_id"],
        "backbone": {"name": backbone or lineage.get("backbone"), "spec": prov.get("backbone"),
                     "weights_sha256": prov.get("weights_sha256")},
        "memory": {"table": lineage.get("memory_table"), "lance_version": lineage.get("lance_version"),
                   "lance_tag": lineage.get("lance_tag")},
        "sources": sources_of(lineage),
        "thing_classes": lineage.get("thing_classes"),
        "index": {"factory": manifest["factory"], "search_params": manifest.get("search_params"),
                  "recall_at_10": manifest.get("recall_at_10"), "dim": manifest.get("dim"),
                  "metric": manifest.get("metric"), "build": {k: v for k, v in (manifest.get("build") or {}).items()
                                                              if k != "recall_curve"},
                  "bytes": manifest.get("bytes")},
        "vectors": manifest["vectors"], "classes": manifest["classes"], "created": manifest.get("created"),
        "snapshot": {"manifest_sha256": manifest_sha256, "format_version": manifest.get("format_version")},
        "content_fingerprint": fingerprint,
        "previous_version": previous,
        "config": knobs,
    }


def sources_of(lineage: dict) -> list[dict]:
    """Source (dataset, batch) records of a lineage: its 'sources' list, else one record per
    batch named in the older 'batches'/'datasets' lists (counts unknown)."""
    if lineage.get("sources"):
        return list(lineage["sources"])
    datasets = list(lineage.get("datasets") or [])
    one = datasets[0] if len(datasets) == 1 else None
    return [{"dataset": one, "batch": str(b), "rows": None} for b in lineage.get("batches") or []]


def log_provenance(ctx: RegistryContext, run_id: str, record: dict) -> None:
    """Write `record` as PROVENANCE_ARTIFACT at the root of the run's artifacts."""
    with tempfile.TemporaryDirectory(prefix="provenance-") as tmp:
        path = Path(tmp) / PROVENANCE_ARTIFACT
        path.write_text(json.dumps(record, indent=1, sort_keys=True, default=str))
        ctx.client.log_artifact(run_id, str(path))


def dataset_inputs(sources: Sequence[dict], frames: Optional[dict] = None) -> list:
    """MLflow DatasetInputs, one per source (dataset, batch), context 'training'.

    `frames` maps (dataset, batch) to a pandas DataFrame of the rows taken from it (logged
    with mlflow.data.from_pandas: schema, row count, digest); sources without one become a
    MetaDataset (name, source, digest of the batch's content hash)."""
    import mlflow.data
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.entities import DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    out = []
    for src in sources:
        name = f"{src.get('dataset') or 'unknown'}@{src['batch']}"[:500]
        source = _dataset_source(src.get("source") or f"knnclip-batch:{src['batch']}")
        frame = (frames or {}).get((src.get("dataset"), src["batch"]))
        if frame is not None:
            with warnings.catch_warnings():  # mlflow's digest code trips pandas' future-keyword warnings
                warnings.simplefilter("ignore")
                ds = mlflow.data.from_pandas(frame, source=source, name=name)
        else:
            digest = (src.get("content_hash") or "")[:36] or None
            ds = MetaDataset(source, name=name, digest=digest)
        tags = [InputTag(MLFLOW_DATASET_CONTEXT, DATASET_CONTEXT)]
        tags += [InputTag(f"knnclip.{k}", str(src[k])[:500]) for k in ("rows", "format") if src.get(k) is not None]
        out.append(DatasetInput(ds._to_mlflow_entity(), tags=tags))
    return out


def _dataset_source(uri: str):
    """A DatasetSource for a path or URI (a local path becomes a local artifact source)."""
    from mlflow.data.dataset_source_registry import resolve_dataset_source

    with warnings.catch_warnings():  # "can be interpreted in multiple ways": any local reading will do
        warnings.simplefilter("ignore")
        try:
            return resolve_dataset_source(uri)
        except MlflowException:
            from mlflow.data.http_dataset_source import HTTPDatasetSource

            return HTTPDatasetSource(url=uri)


def read_provenance(ctx: RegistryContext, version: int) -> dict:
    """The provenance record of `version`: its run's PROVENANCE_ARTIFACT, else (versions
    published before it existed) one rebuilt from the version's old `knnclip.*` tags with
    'format' 0. Raises ReleaseNotFoundError for an unknown version."""
    mv = ctx.model_version(version)
    if mv.run_id:
        try:
            with tempfile.TemporaryDirectory(prefix="provenance-") as tmp:
                local = ctx.client.download_artifacts(mv.run_id, PROVENANCE_ARTIFACT, tmp)
                return json.loads(Path(local).read_text())
        except (MlflowException, OSError, ValueError) as exc:
            logger.debug("version %s has no readable %s (%s); using its tags", version, PROVENANCE_ARTIFACT, exc)
    return _from_tags(mv.tags or {})


def _from_tags(tags: dict) -> dict:
    try:
        lineage = json.loads(tags.get(store.TAG_LINEAGE) or "{}")
    except ValueError:
        lineage = {}
    return {"format": 0, "embedder_id": tags.get(store.TAG_EMBEDDER),
            "backbone": {"name": tags.get(store.TAG_BACKBONE) or lineage.get("backbone"), "spec": None,
                         "weights_sha256": None},
            "memory": {"table": None, "lance_version": lineage.get("lance_version"),
                       "lance_tag": lineage.get("lance_tag")},
            "sources": sources_of(lineage), "thing_classes": lineage.get("thing_classes"),
            "index": {"factory": tags.get(store.TAG_FACTORY), "recall_at_10": _num(tags.get(store.TAG_RECALL))},
            "vectors": _num(tags.get(store.TAG_VECTORS), int), "classes": _num(tags.get(store.TAG_CLASSES), int),
            "created": tags.get(store.TAG_CREATED),
            "snapshot": {"manifest_sha256": tags.get(store.TAG_MANIFEST_SHA)},
            "content_fingerprint": tags.get(store.TAG_FINGERPRINT)}


def _num(value, kind=float):
    try:
        return kind(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def release_facts(ctx: RegistryContext, versions: Iterable) -> dict[int, dict]:
    """{version: {'classes', 'vectors', 'embedder_id', 'backbone', 'factory', 'recall_at_10'}}
    of ModelVersions, read from their publish runs (one search) with the old version tags as
    a fallback."""
    versions = list(versions)
    runs = _runs(ctx, [mv.run_id for mv in versions if mv.run_id])
    out = {}
    for mv in versions:
        tags = mv.tags or {}
        run = runs.get(mv.run_id)
        params, metrics = (run.data.params, run.data.metrics) if run is not None else ({}, {})
        out[int(mv.version)] = {
            "classes": _num(metrics.get("classes", tags.get(store.TAG_CLASSES)), int),
            "vectors": _num(metrics.get("vectors", tags.get(store.TAG_VECTORS)), int),
            "embedder_id": tags.get(store.TAG_EMBEDDER) or params.get("embedder_id"),
            "backbone": _text(params.get("backbone")) or tags.get(store.TAG_BACKBONE),
            "factory": params.get("factory") or tags.get(store.TAG_FACTORY),
            "recall_at_10": _num(metrics.get("recall_at_10", tags.get(store.TAG_RECALL)))}
    return out


def _text(value: Optional[str]) -> Optional[str]:
    return None if value in (None, "", "None") else value


def _runs(ctx: RegistryContext, run_ids: list[str]) -> dict:
    """run id -> Run of the publish experiment (missing runs are left out)."""
    found: dict = {}
    exp = ctx.client.get_experiment_by_name(store.EXPERIMENT_NAME)
    if exp is None or not run_ids:
        return found
    ids = sorted(set(run_ids))
    for start in range(0, len(ids), 100):
        chunk = ", ".join(f"'{r}'" for r in ids[start:start + 100])
        for run in ctx.client.search_runs([exp.experiment_id], f"attributes.run_id IN ({chunk})",
                                          max_results=1000):
            found[run.info.run_id] = run
    return found
