"""Typed configuration: defaults < configs/default.yaml < preset < --config FILE < KNNCLIP_* env.

Every mistake is one sentence naming the file or variable, the key and the reason
(ConfigError, exit 2): a config file that is not UTF-8 or plain YAML, an unknown key (with the
closest known one), a value out of its bounds (each field carries them), a missing --config
file, an unknown preset, a KNNCLIP_HOME that is empty or a file.

Nested fields are overridden with a double underscore, e.g.
`KNNCLIP_INGEST__MIN_AREA=4` or `KNNCLIP_WORKER__K=20`. A preset is a named file of
configs/presets/ (`preset: paper` in a config file, or KNNCLIP_PRESET=paper) that pairs a
memory backbone with a base model: `paper` (DINOv2 memory + CLIP ConvNeXt base model) and
`offline` (classic memory, no base model).
"""
from __future__ import annotations

import os
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, SettingsError

from .config_errors import ConfigError, explain_settings_error, explain_validation_error, read_yaml

REPO_CONFIGS = Path(__file__).resolve().parent.parent / "configs"
DEFAULT_CONFIG_FILE = REPO_CONFIGS / "default.yaml"
PRESETS_DIR = REPO_CONFIGS / "presets"


class _Section(BaseModel):
    """A config section: unknown keys are refused, floats are finite."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class IngestConfig(_Section):
    min_area: int = Field(16, ge=0, description="Segments with fewer pixels are dropped and counted (skipped_small).")
    max_pixels: int = Field(60_000_000, gt=0, description="Images with more pixels are quarantined (decompression bombs).")
    chunk_images: int = Field(64, ge=1, description="Images validated and written per chunk; bounds memory use.")


class EmbedConfig(_Section):
    backbone: str = Field("classic-v2", description="Backbone name from configs/backbones.yaml (`knnclip backbones`).")
    device: str = Field("auto", description="auto | cpu | cuda.")
    batch_size: int = Field(16, ge=1, description="Images per forward pass.")
    num_workers: Optional[int] = Field(None, ge=0, description="DataLoader workers decoding and resizing images (None: auto, 4 at most on CUDA, and on CPU only the cores the model leaves idle).")
    gpu_concurrency: int = Field(1, ge=1, description="Embedding tasks allowed on the GPU at once (Prefect global concurrency limit).")
    chunk_segments: int = Field(2048, ge=1, description="Vectors written to the memory table per commit; a kill loses at most one chunk.")


class CurateConfig(_Section):
    strategy: str = Field("balanced", description="Budget selection strategy: balanced | diversity | random.")
    dedup_threshold: Optional[float] = Field(None, ge=-1.0, le=1.0, description="Cosine similarity at or above which two segments are near-duplicates (None: the backbone's dedup_threshold in configs/backbones.yaml, else 0.98).")
    budget_vectors: Optional[int] = Field(None, ge=0, description="Keep at most this many vectors (None: no vector budget).")
    budget_mb: Optional[float] = Field(None, ge=0, description="Keep the published index under this many MB (None: no byte budget).")
    class_floor: int = Field(1, ge=0, description="Minimum vectors kept per class when the budget allows.")
    class_ceiling: Optional[int] = Field(None, ge=1, description="Maximum vectors kept per class (None: no ceiling).")
    seed: int = Field(0, description="Seed for randomised strategies.")
    lock_timeout_s: float = Field(60.0, ge=0, description="Seconds a curate/forget run waits for another one on the same workspace before failing (0: fail at once).")


class CalibrationConfig(_Section):
    target: Literal["known_accuracy", "unknown_rate"] = Field("known_accuracy", description="What T must meet on the held-out split (knnclip_core/segment/calibrate.py): known_accuracy (the highest T keeping held-out known-class accuracy >= value) | unknown_rate (the highest T marking at most `value` of held-out known-class segments unknown).")
    value: float = Field(0.95, ge=0.0, le=1.0, description="The target's value (known_accuracy: e.g. 0.95, chosen on a calibration split by benchmarks/open_set.py; unknown_rate: e.g. 0.05).")
    fraction: float = Field(0.15, gt=0.0, lt=1.0, description="Share of the release's images held out for calibration (all rows of an image on one side).")
    seed: int = Field(0, description="Seed of the held-out split.")
    max_rows: Optional[int] = Field(20000, ge=1, description="Held-out rows at most (whole images), bounding the publish-time search.")
    enabled: bool = Field(True, description="False: publish writes no calibration; workers use worker.fallback_threshold.")


class PublishConfig(_Section):
    model_name: str = Field("knnclip-memory", description="MLflow registered model name.")
    alias: str = Field("staging", description="Alias a new publish sets.")
    recall_floor: float = Field(0.95, ge=0.0, le=1.0, description="Refuse to publish an index whose recall@10 vs Flat is below this.")
    index: Optional[str] = Field(None, description="FAISS factory string overriding the automatic choice.")
    gate_tolerance: float = Field(0.01, ge=0.0, description="Promotion refuses a drop in accuracy larger than this.")
    gate_eval_path: Optional[str] = Field(None, description="Dataset used by the promotion quality gate (None: the gate is skipped, and says so).")
    gate_eval_format: str = Field("auto", description="Reader format of gate_eval_path.")
    gate_tasks: Optional[str] = Field(None, description="Tasks YAML (see knnclip_core.evaluation.task_sets) the gate checks one by one: a release that drops any task's mIoU by more than gate_tolerance is refused; also the default of `releases compare`.")
    calibration: CalibrationConfig = Field(default_factory=CalibrationConfig, description="How publish calibrates the release's confidence threshold T on a held-out split of its own rows, by image.")


class BaseModelConfig(_Section):
    kind: str = Field("none", description="Base model from the BASE_MODELS registry (knnclip_core/segment/base_models.py): `none` (retrieval only; below T a segment is unknown) | `clip` (an open_clip model's dense features pooled in each mask, against prompt-ensembled text embeddings of any class names).")
    backbone: Optional[str] = Field(None, description="The base model's backbone in configs/backbones.yaml (kind clip: an open_clip backbone; null: the memory backbone, which must then have a text tower).")
    options: dict = Field(default_factory=dict, description="Extra keyword options for the base model's factory.")


# slic options chosen on CamVid val (benchmarks/proposals.py): fine superpixels, at most 512 px a side
SLIC_TUNED = {"n_segments": 400, "merge_threshold": 4, "max_regions": 200, "max_side": 512}


class WorkerConfig(_Section):
    memory_backbone: Optional[str] = Field(None, description="Backbone that makes the query vectors (configs/backbones.yaml); null: the one the release records. A release built with another embedder is refused.")
    base_model: BaseModelConfig = Field(default_factory=BaseModelConfig, description="The base model: proposes masks (through `proposals` unless it has its own) and gives P_base over any class names.")
    k: int = Field(10, ge=1, description="Neighbours retrieved per mask proposal.")
    temperature: float = Field(0.1, gt=0.0, description="Softmax temperature of the retrieval vote.")
    confidence: Literal["top1", "mean_cosine", "similarity", "vote_share"] = Field("top1", description="Retrieval confidence (knnclip_core/segment/retrieval.py): top1 (cosine of the nearest neighbour; best on the held-out split of benchmarks/open_set.py) | mean_cosine (mean cosine of the k) | similarity (vote share x weighted mean cosine of the winning class's neighbours) | vote_share (the old, shift-invariant one).")
    fusion_lambda: float = Field(0.5, ge=0.0, le=1.0, description="Weight of P_ret in P = lambda * P_ret + (1 - lambda) * P_base.")
    confidence_threshold: Optional[float] = Field(None, ge=-1.0, le=1.0, description="Operator override of the retrieval confidence T at or above which fusion applies (below it: P_base, or unknown without a base model). None: the T the release was calibrated with at publish (publish.calibration), else fallback_threshold.")
    fallback_threshold: float = Field(0.6, ge=-1.0, le=1.0, description="T for a release published before calibration (or not calibrated, or calibrated for another k / temperature / confidence); measured for `classic` (benchmarks/open_set.py).")
    proposals: str = Field("slic", description="Mask proposal generator: slic | grid | masks | sam | mask2former.")
    poll_seconds: float = Field(10.0, gt=0.0, description="How often the service checks the alias for a new release.")
    max_upload_mb: float = Field(20.0, gt=0.0, description="Largest accepted upload.")
    max_pixels: int = Field(40_000_000, gt=0, description="Largest accepted image, in pixels.")
    max_side: Optional[int] = Field(1024, ge=1, description="Uploads with a longer side are decoded at reduced scale to this size (None: full size).")
    body_timeout_s: float = Field(60.0, gt=0.0, description="Seconds a client has to send a whole request body (slow bodies get 408).")
    header_timeout_s: float = Field(10.0, gt=0.0, description="Seconds a client has to send a request's line and headers; slower connections are closed (slowloris).")
    metrics_public: bool = Field(False, description="True: GET /metrics answers without the worker token (for Prometheus scrapers); every other path still needs it.")
    proposal_options: dict = Field(default_factory=lambda: dict(SLIC_TUNED), description="Keyword options of the proposal generator: slic's are fine superpixels at most 512 px a side (chosen on CamVid val, benchmarks/proposals.py); {rows: 4, cols: 4} for grid.")
    merge_rounds: int = Field(2, ge=0, le=20, description="Rounds in which touching generated proposals that retrieval gives one class are joined and classified again (knnclip_core/segment/regroup.py; 0: off).")
    merge_scope: Literal["touching", "class"] = Field("touching", description="Which agreeing proposals a round joins: touching | class (all of a class).")
    merge_smoothing: float = Field(0.0, ge=0.0, le=1.0, description="Weight of the touching neighbours' scores in the class a proposal joins by.")
    panoptic: dict = Field(default_factory=dict, description="Panoptic composition (knnclip_core/segment/panoptic.py PanopticParams): score_threshold, overlap_threshold (drop a proposal whose visible part is below this share of it), merge_things (touching generated proposals of one thing class are one instance), paint (score | area).")


class CaptureConfig(_Section):
    enabled: bool = Field(False, description="Record answers' doubtful segments with their image for labelling (the worker and `knnclip segment`); off by default: no upload is stored unless the operator turns this on.")
    dir: Optional[str] = Field(None, description="Folder of the capture store (None: <workspace>/captures).")
    quota_mb: float = Field(500.0, gt=0.0, description="Disk the captures may use; the oldest are dropped first to stay under it.")
    sample_rate: float = Field(1.0, ge=0.0, le=1.0, description="Share of the answers with doubtful segments that are recorded (0..1).")
    confidence_below: Optional[float] = Field(None, description="A segment whose retrieval confidence is below this is captured (above the largest confidence, 1: every segment) (None: worker.confidence_threshold, else the T in force for the answer: the release's calibrated T); `unknown` and base-model/memory disagreements always are.")


def token_problem(token: Optional[str]) -> Optional[str]:
    """Why `token` cannot be a bearer token (blank, not printable ASCII), or None (None: no token)."""
    if token is None:
        return None
    if not token.strip():
        return "is blank (unset it for no token, or set one of printable ASCII characters)"
    if not token.isascii() or not token.isprintable() or token != token.strip():
        return "must be printable ASCII without surrounding spaces (HTTP headers cannot carry others)"
    return None


class Settings(BaseSettings):
    """All knnclip settings. Secrets and URIs come from the environment, never from git."""

    model_config = SettingsConfigDict(env_prefix="KNNCLIP_", env_nested_delimiter="__", extra="forbid",
                                      allow_inf_nan=False)

    home: Path = Field(Path(".knnclip"), description="Workspace folder holding all state (KNNCLIP_HOME).")
    preset: Optional[str] = Field(None, description="Named pairing of configs/presets/ layered over default.yaml (paper | offline; KNNCLIP_PRESET).")
    catalog_url: Optional[str] = Field(None, description="SQLAlchemy URL of the catalog (default: SQLite in the workspace).")
    memory_uri: Optional[str] = Field(None, description="Where the LanceDB memory lives: a folder or s3://bucket/prefix (KNNCLIP_MEMORY_URI; default: the workspace's memory folder). Object-store credentials come from the environment only (AWS_*).")
    lock_url: Optional[str] = Field(None, description="PostgreSQL URL whose advisory locks serialise curate, forget and alias moves across machines (KNNCLIP_LOCK_URL; default: the catalog when it is PostgreSQL, else lock files in the workspace).")
    worker_token: Optional[str] = Field(None, description="Bearer token the worker requires when set.")
    ingest: IngestConfig = IngestConfig()
    embed: EmbedConfig = EmbedConfig()
    curate: CurateConfig = CurateConfig()
    publish: PublishConfig = PublishConfig()
    worker: WorkerConfig = WorkerConfig()
    capture: CaptureConfig = CaptureConfig()

    @field_validator("home", mode="before")
    @classmethod
    def _home_is_a_folder(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            raise ValueError("is empty (unset it for ./.knnclip, or name a folder)")
        path = Path(str(value)).expanduser()
        if path.exists() and not path.is_dir():
            raise ValueError(f"{path} is not a folder")
        return value

    @field_validator("worker_token")
    @classmethod
    def _token_is_sendable(cls, value: Optional[str]) -> Optional[str]:
        problem = token_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings):
        return (init_settings, env_settings, _YamlSource(settings_cls))


_CONFIG_FILE: ContextVar[Optional[str]] = ContextVar("knnclip_config_file", default=None)
_PRESET: ContextVar[Optional[str]] = ContextVar("knnclip_preset", default=None)


def list_presets() -> list[str]:
    """Names of the presets in configs/presets/."""
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def preset_file(name: str) -> Path:
    """configs/presets/<name>.yaml; raises ValueError naming the known presets when absent."""
    path = PRESETS_DIR / f"{name}.yaml"
    if not path.is_file() or "/" in name or "\\" in name or name.startswith("."):
        raise ValueError(f"unknown preset {name!r}; known: {', '.join(list_presets()) or 'none'}")
    return path


class _YamlSource(PydanticBaseSettingsSource):
    """Reads configs/default.yaml, then the preset (load_settings(preset=...), else
    KNNCLIP_PRESET, else the config files' `preset`), then the file given to `load_settings`
    (--config), else the one named by KNNCLIP_CONFIG."""

    def __init__(self, settings_cls):
        super().__init__(settings_cls)
        self._data: dict[str, Any] = {}
        for _, layer in yaml_layers():
            _deep_update(self._data, layer)

    def get_field_value(self, field, field_name):
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._data)


class _MissingConfigFile(ConfigError, FileNotFoundError):
    """--config / KNNCLIP_CONFIG names no file (a FileNotFoundError too)."""


class _UnknownPreset(ConfigError, ValueError):
    """The preset named is not in configs/presets/ (a ValueError too)."""


def yaml_layers() -> list[tuple[str, dict[str, Any]]]:
    """(where, mapping) of each YAML layer, lowest first: configs/default.yaml, the preset, the
    --config / KNNCLIP_CONFIG file. Raises ConfigError (missing file, unknown preset, bad YAML)."""
    layers = [(str(DEFAULT_CONFIG_FILE), read_yaml(DEFAULT_CONFIG_FILE, "config file"))]
    path = _CONFIG_FILE.get() or os.environ.get("KNNCLIP_CONFIG")
    if path:
        if not Path(path).is_file():
            what = "is a folder, not a file" if Path(path).is_dir() else "does not exist"
            raise _MissingConfigFile(f"config file {path} (--config or KNNCLIP_CONFIG) {what}")
        layers.append((f"config file {path}", read_yaml(Path(path), "config file")))
    preset, where = _PRESET.get(), "the preset argument"
    if not preset and os.environ.get("KNNCLIP_PRESET"):
        preset, where = os.environ["KNNCLIP_PRESET"], "KNNCLIP_PRESET"
    if not preset:
        for name, layer in reversed(layers):
            if layer.get("preset"):
                preset, where = layer["preset"], f"{name}: preset"
                break
    if preset:
        if not isinstance(preset, str):
            raise ConfigError(f"{where}: a preset is a name ({', '.join(list_presets())}), not {preset!r}")
        try:
            pfile = preset_file(preset)
        except ValueError as exc:
            raise _UnknownPreset(f"{where}: {exc}") from None
        layers.insert(1, (f"preset file {pfile}", {**read_yaml(pfile, "preset file"), "preset": preset}))
    return layers


def _deep_update(base: dict, new: dict) -> None:
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _deep_update(base[key], value)
        else:
            base[key] = value


def load_settings(config_file: str | Path | None = None, preset: Optional[str] = None, **overrides: Any) -> Settings:
    """Build Settings; `preset` (a configs/presets/ name) and then `config_file` are layered
    over configs/default.yaml. Raises ConfigError (a KnnclipError: one sentence naming the file
    or variable, the key and the reason) for any mistake."""
    token = _CONFIG_FILE.set(str(config_file) if config_file is not None else None)
    ptoken = _PRESET.set(preset)
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(explain_validation_error(exc, Settings, yaml_layers(), overrides)) from None
    except SettingsError as exc:  # a KNNCLIP_<SECTION> (or mapping) variable that is not JSON
        raise ConfigError(explain_settings_error(exc, Settings)) from None
    finally:
        _CONFIG_FILE.reset(token)
        _PRESET.reset(ptoken)
