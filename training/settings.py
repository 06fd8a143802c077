"""Typed settings: `configs/default.yaml` read once, validated, with paths resolved.

Every module takes a `Settings` (or one of its sections) instead of reading YAML or
holding its own constants, so a knob is defined in exactly one place.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = PROJECT_ROOT / "configs" / "default.yaml"
CONFIG_ENV = "STANCE_CONFIG"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Paths(_Section):
    articles_dir: Path
    annotations_dir: Path
    models_dir: Path
    data_dir: Path


class BaseModelSettings(_Section):
    package: str
    path: Path | None = None  # a local model folder instead of the package (tests use a tiny one)
    subfolder: str = "model"
    max_length: int = Field(128, ge=8, le=512)


class SegmentationSettings(_Section):
    max_quote_sentences: int = Field(3, ge=1)
    max_statement_chars: int = Field(1000, ge=50)
    min_alpha_chars: int = Field(2, ge=0)


class TrainingSettings(_Section):
    seed: int = 13
    pooling: Literal["mean", "cls"] = "mean"
    # Keep only the first N transformer layers of the base encoder (None = all). Inference
    # cost is nearly proportional to depth; the quality cost is measured in grouped CV.
    encoder_layers: int | None = Field(None, ge=1)
    # Knowledge distillation: ship a student of the teacher's first N layers (None = off).
    distill_layers: int | None = Field(None, ge=1)
    distill_weight: float = Field(0.5, ge=0, le=1)  # share of the loss on teacher probabilities
    distill_pick: Literal["first", "spread"] = "first"  # which teacher layers the student keeps
    n_folds: int = Field(5, ge=2)
    epochs: float = Field(8, gt=0)
    batch_size: int = Field(16, ge=1)
    learning_rate: float = Field(1e-4, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    bf16: bool = True
    pos_weight_max: float = Field(5.0, ge=1)
    threads: int = Field(2, ge=1)
    holdout_fraction: float = Field(0.15, ge=0, lt=1)
    holdout_salt: str = "gate-v1"


class ThresholdSettings(_Section):
    beta: float = Field(1.0, gt=0)
    min: float = Field(0.15, gt=0, lt=1)
    max: float = Field(0.9, gt=0, lt=1)
    fallback: float = Field(0.5, gt=0, lt=1)


class EvaluationSettings(_Section):
    bootstrap_samples: int = Field(1000, ge=10)
    confidence: float = Field(0.95, gt=0, lt=1)


class InferenceSettings(_Section):
    backend: Literal["onnx", "torch"] = "onnx"
    batch_size: int = Field(16, ge=1)
    # Offline scoring hands this many statements to the backend at once: sorted by length,
    # cut into batches, spread over the streams. Wider pads less; memory is bounded by it.
    window: int = Field(1024, ge=1)
    threads: int = Field(2, ge=1)
    # ONNX: batches scored at once, each with threads // streams threads (OnnxBackend);
    # the service's micro-batches are split over the streams too.
    streams: int = Field(2, ge=1)
    int8_min_agreement: float = Field(0.99, ge=0, le=1)
    int8_max_macro_f1_drop: float = Field(0.01, ge=0)


class ServiceSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    max_text_chars: int = Field(20000, ge=1)
    max_texts: int = Field(64, ge=1)
    max_body_bytes: int = Field(1_000_000, ge=1)
    max_feed_bytes: int = Field(50_000_000, ge=1)
    microbatch_max_size: int = Field(8, ge=1)  # small concurrent requests merged per model call
    max_call_size: int = Field(64, ge=1)  # statements per model call for a large request or a feed chunk
    microbatch_max_wait_ms: float = Field(4, ge=0)
    spin_wait: bool = False  # inference threads busy-wait between calls (ONNX Runtime, OpenMP); steals CPU on small machines


class StoreSettings(_Section):
    url: str | None = None
    busy_timeout_ms: int = Field(30000, ge=0)  # SQLite: how long a writer waits for the lock
    seed_annotator: str = "seed"  # annotator recorded for files of paths.annotations_dir
    page_size: int = Field(100, ge=1)  # GET /v1/annotations default page
    max_page_size: int = Field(1000, ge=1)
    max_post_records: int = Field(1000, ge=1)  # records per POST /v1/annotations


class JobsSettings(_Section):
    """Retraining jobs (service/jobs.py): a subprocess per job, one at a time."""

    default_config: str = "default"  # configs/<name>.yaml layered over the service's settings
    train_module: str = "service.cli"  # run as `python -m <module> train ...`
    poll_interval_s: float = Field(1.0, gt=0)
    timeout_s: float = Field(6 * 3600, gt=0)  # a job running longer is killed and failed
    log_tail_lines: int = Field(40, ge=1)
    watch_registry_s: float = Field(2.0, ge=0)  # follow CURRENT changed by the CLI; 0 = off


class AuthSettings(_Section):
    token_env: str = "STANCE_API_TOKEN"
    token: str | None = None

    def resolved_token(self) -> str | None:
        """The environment wins over the file so secrets need not be committed."""
        return os.environ.get(self.token_env) or self.token


class GateSettings(_Section):
    metric: Literal["macro_f1", "micro_f1"] = "macro_f1"
    tolerance: float = Field(0.0, ge=0)


class ConsoleSettings(_Section):
    """The analyst console (service/web): knobs its pages read from the HTML."""

    poll_interval_ms: int = Field(1000, ge=100)  # how often the models page polls a running job
    render_chunk: int = Field(200, ge=10)  # statements rendered per animation frame on long documents
    review_batch: int = Field(20, ge=1)  # statements fetched per review-queue request
    review_session_max: int = Field(2000, ge=10)  # statements of pasted documents kept for the fallback queue


class Settings(_Section):
    labels: tuple[str, ...]
    paths: Paths
    base_model: BaseModelSettings
    segmentation: SegmentationSettings = SegmentationSettings()
    training: TrainingSettings = TrainingSettings()
    thresholds: ThresholdSettings = ThresholdSettings()
    evaluation: EvaluationSettings = EvaluationSettings()
    inference: InferenceSettings = InferenceSettings()
    service: ServiceSettings = ServiceSettings()
    store: StoreSettings = StoreSettings()
    auth: AuthSettings = AuthSettings()
    gate: GateSettings = GateSettings()
    jobs: JobsSettings = JobsSettings()
    console: ConsoleSettings = ConsoleSettings()

    def store_url(self) -> str:
        return self.store.url or f"sqlite:///{self.paths.data_dir / 'annotations.db'}"

    def with_overrides(self, **sections: dict[str, Any]) -> "Settings":
        """A copy with some fields of some sections replaced (tests, quick retrains)."""
        data = self.model_dump()
        for name, values in sections.items():
            data[name] = {**data[name], **values}
        return Settings.model_validate(data)


class SettingsError(ValueError):
    """The configuration file is missing or invalid; the message names file and field."""


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise SettingsError(f"config file not found: {path}") from None
    except yaml.YAMLError as exc:
        raise SettingsError(f"{path}: invalid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise SettingsError(f"{path}: expected a mapping at the top level")
    return data


def load_settings(path: str | Path | None = None, root: Path = PROJECT_ROOT) -> Settings:
    """Read a config. A file other than default.yaml is layered on top of default.yaml,
    so a small override file (e.g. configs/fast.yaml) only names what it changes."""
    chosen = Path(path or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG)
    data = _read_yaml(DEFAULT_CONFIG)
    if chosen.resolve() != DEFAULT_CONFIG.resolve():
        data = _deep_merge(data, _read_yaml(chosen))
    paths = data.get("paths", {})
    for key, value in list(paths.items()):
        p = Path(value)
        paths[key] = p if p.is_absolute() else root / p
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(x) for x in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise SettingsError(f"{chosen}: {problems}") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return load_settings()
