"""Typed configuration: defaults < configs/default.yaml < --config FILE < KNNCLIP_* env.

Nested fields are overridden with a double underscore, e.g.
`KNNCLIP_INGEST__MIN_AREA=4` or `KNNCLIP_WORKER__K=20`.
"""
from __future__ import annotations

import os
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Optional

import yaml
from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

REPO_CONFIGS = Path(__file__).resolve().parent.parent / "configs"
DEFAULT_CONFIG_FILE = REPO_CONFIGS / "default.yaml"


class IngestConfig(BaseModel):
    min_area: int = Field(16, description="Segments with fewer pixels are dropped and counted (skipped_small).")
    max_pixels: int = Field(60_000_000, description="Images with more pixels are quarantined (decompression bombs).")
    chunk_images: int = Field(64, description="Images validated and written per chunk; bounds memory use.")


class EmbedConfig(BaseModel):
    backbone: str = Field("classic", description="Backbone name from configs/backbones.yaml (`knnclip backbones`).")
    device: str = Field("auto", description="auto | cpu | cuda.")
    batch_size: int = Field(16, description="Images per forward pass.")
    num_workers: Optional[int] = Field(None, description="DataLoader workers decoding and resizing images (None: auto, 4 at most on CUDA, and on CPU only the cores the model leaves idle).")
    gpu_concurrency: int = Field(1, description="Embedding tasks allowed on the GPU at once (Prefect global concurrency limit).")
    chunk_segments: int = Field(2048, description="Vectors written to the memory table per commit; a kill loses at most one chunk.")


class CurateConfig(BaseModel):
    strategy: str = Field("balanced", description="Budget selection strategy: balanced | diversity | random.")
    dedup_threshold: Optional[float] = Field(None, description="Cosine similarity at or above which two segments are near-duplicates (None: the backbone's dedup_threshold in configs/backbones.yaml, else 0.98).")
    budget_vectors: Optional[int] = Field(None, description="Keep at most this many vectors (None: no vector budget).")
    budget_mb: Optional[float] = Field(None, description="Keep the published index under this many MB (None: no byte budget).")
    class_floor: int = Field(1, description="Minimum vectors kept per class when the budget allows.")
    class_ceiling: Optional[int] = Field(None, description="Maximum vectors kept per class (None: no ceiling).")
    seed: int = Field(0, description="Seed for randomised strategies.")
    lock_timeout_s: float = Field(60.0, description="Seconds a curate/forget run waits for another one on the same workspace before failing (0: fail at once).")


class PublishConfig(BaseModel):
    model_name: str = Field("knnclip-memory", description="MLflow registered model name.")
    alias: str = Field("staging", description="Alias a new publish sets.")
    recall_floor: float = Field(0.95, description="Refuse to publish an index whose recall@10 vs Flat is below this.")
    index: Optional[str] = Field(None, description="FAISS factory string overriding the automatic choice.")
    gate_tolerance: float = Field(0.01, description="Promotion refuses a drop in accuracy larger than this.")
    gate_eval_path: Optional[str] = Field(None, description="Dataset used by the promotion quality gate (None: the gate is skipped, and says so).")
    gate_eval_format: str = Field("auto", description="Reader format of gate_eval_path.")
    gate_tasks: Optional[str] = Field(None, description="Tasks YAML (see knnclip_core.segment.tasks) the gate checks one by one: a release that drops any task's mIoU by more than gate_tolerance is refused; also the default of `releases compare`.")


class WorkerConfig(BaseModel):
    k: int = Field(10, description="Neighbours retrieved per mask proposal.")
    temperature: float = Field(0.1, description="Softmax temperature of the retrieval vote.")
    fusion_lambda: float = Field(0.5, description="Weight of P_ret in P = lambda * P_ret + (1 - lambda) * P_clip.")
    confidence_threshold: float = Field(0.5, description="Retrieval confidence T at or above which fusion applies.")
    proposals: str = Field("slic", description="Mask proposal generator: slic | grid | masks | sam.")
    poll_seconds: float = Field(10.0, description="How often the service checks the alias for a new release.")
    max_upload_mb: float = Field(20.0, description="Largest accepted upload.")
    max_pixels: int = Field(40_000_000, description="Largest accepted image, in pixels.")
    proposal_options: dict = Field(default_factory=dict, description="Keyword options of the proposal generator, e.g. {max_regions: 128, n_segments: 400} for slic, {rows: 4, cols: 4} for grid.")


class Settings(BaseSettings):
    """All knnclip settings. Secrets and URIs come from the environment, never from git."""

    model_config = SettingsConfigDict(env_prefix="KNNCLIP_", env_nested_delimiter="__", extra="ignore")

    home: Path = Field(Path(".knnclip"), description="Workspace folder holding all state (KNNCLIP_HOME).")
    catalog_url: Optional[str] = Field(None, description="SQLAlchemy URL of the catalog (default: SQLite in the workspace).")
    worker_token: Optional[str] = Field(None, description="Bearer token the worker requires when set.")
    ingest: IngestConfig = IngestConfig()
    embed: EmbedConfig = EmbedConfig()
    curate: CurateConfig = CurateConfig()
    publish: PublishConfig = PublishConfig()
    worker: WorkerConfig = WorkerConfig()

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings):
        return (init_settings, env_settings, _YamlSource(settings_cls))


_CONFIG_FILE: ContextVar[Optional[str]] = ContextVar("knnclip_config_file", default=None)


class _YamlSource(PydanticBaseSettingsSource):
    """Reads configs/default.yaml, then the file given to `load_settings` (--config), else
    the one named by KNNCLIP_CONFIG."""

    def __init__(self, settings_cls):
        super().__init__(settings_cls)
        self._data: dict[str, Any] = {}
        for path in (DEFAULT_CONFIG_FILE, _CONFIG_FILE.get() or os.environ.get("KNNCLIP_CONFIG")):
            if path and Path(path).is_file():
                _deep_update(self._data, read_yaml(Path(path)))
            elif path and path != DEFAULT_CONFIG_FILE:
                raise FileNotFoundError(f"config file {path} does not exist")

    def get_field_value(self, field, field_name):
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._data)


def read_yaml(path: Path) -> dict[str, Any]:
    """Load a YAML mapping; raises ValueError naming the file when it is not one."""
    with open(path) as f:
        data = yaml.safe_load(f) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a YAML mapping at the top level")
    return data


def _deep_update(base: dict, new: dict) -> None:
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _deep_update(base[key], value)
        else:
            base[key] = value


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Build Settings; `config_file` is layered over configs/default.yaml."""
    token = _CONFIG_FILE.set(str(config_file) if config_file is not None else None)
    try:
        return Settings(**overrides)
    finally:
        _CONFIG_FILE.reset(token)
