"""Typed settings: `configs/default.yaml` read once, validated, with paths resolved.

Every module takes a `Settings` (or one of its sections) instead of reading YAML or
holding its own constants, so a knob is defined in exactly one place. Settings are built
once at an entry point (a CLI command, the app factory, a job subprocess) and passed down;
no library module reads the configuration by itself.

Where the project lives (configs/, seeds/, models/, data/) is the *root*: `--root`, else
the `STANCE_ROOT` environment variable, else the current folder. It is never derived from
the location of the installed code, so a non-editable `pip install .` works as well.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, Self, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

CONFIGS_DIR = "configs"  # relative to the root
DEFAULT_CONFIG_NAME = "default"
CONFIG_ENV = "STANCE_CONFIG"
ROOT_ENV = "STANCE_ROOT"


class Section(BaseModel):
    """A block of the config file: unknown keys are errors, values immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Paths(Section):
    articles_dir: Path
    annotations_dir: Path
    models_dir: Path
    data_dir: Path


class BaseModelSettings(Section):
    package: str
    path: Path | None = None  # a local model folder instead of the package (tests use a tiny one)
    subfolder: str = "model"
    max_length: int = Field(128, ge=8, le=512)


class SegmentationSettings(Section):
    max_quote_sentences: int = Field(3, ge=1)
    max_statement_chars: int = Field(1000, ge=50)
    min_alpha_chars: int = Field(2, ge=0)


class TrainingSettings(Section):
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
    # False: skip CV and reuse the current bundle's decision policy and CV figures (quick retrain).
    cross_validate: bool = True
    epochs: float = Field(8, gt=0)
    batch_size: int = Field(16, ge=1)
    learning_rate: float = Field(1e-4, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    bf16: bool = True
    pos_weight_max: float = Field(5.0, ge=1)
    # Regularisers and weight averaging, each measured in grouped CV (`stance experiments`):
    label_smoothing: float = Field(0.0, ge=0, lt=0.5)  # gold targets pulled toward 0.5 by this much
    rdrop_alpha: float = Field(0.0, ge=0)  # R-drop: weight of the symmetric KL between two dropout passes
    layer_lr_decay: float = Field(1.0, gt=0, le=1)  # learning rate x decay**depth-from-top per encoder layer
    average_last_epochs: int = Field(0, ge=0)  # ship the mean of the weights at the end of the last K epochs
    threads: int = Field(1, ge=1)  # per fine-tune (1 beats 2 on MiniLM's small matrices: training/parallel_fit.py)
    parallel_fits: int = Field(2, ge=1)  # fine-tunes of one run (CV folds, final model) side by side in processes
    holdout_fraction: float = Field(0.15, ge=0, lt=1)
    holdout_salt: str = "gate-v1"


class ThresholdSettings(Section):
    # How scores become decisions (training/policy.py); chosen by grouped CV in `stance experiments`.
    policy: Literal["fixed", "tuned", "shrunk", "calibrated"] = "calibrated"
    shrink: float = Field(0.5, ge=0, le=1)  # `shrunk`: tuned threshold pulled toward 0.5 by this factor
    calibration_bins: int = Field(10, ge=2)  # reliability diagram and ECE
    # choosing the policy: within this much CV macro-F1 of the best, the fewest false stances wins
    select_within: float = Field(0.015, ge=0)
    beta: float = Field(1.0, gt=0)
    min: float = Field(0.15, gt=0, lt=1)
    max: float = Field(0.9, gt=0, lt=1)
    fallback: float = Field(0.5, gt=0, lt=1)


class EvaluationSettings(Section):
    bootstrap_samples: int = Field(1000, ge=10)
    confidence: float = Field(0.95, gt=0, lt=1)


class InferenceSettings(Section):
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


class Settings(Section):
    """Training's view of the configuration. Sections of other components (the service's
    `service`, `store`, `auth`, `gate`, `jobs`) are not training's business: they are
    ignored here and validated by the component that owns them (service.settings)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    # The folder that relative paths, configs/ and reports/ hang off (see `resolve_root`).
    # Not a configuration value: set by `load_settings`, never dumped into a config file.
    root: Path = Field(exclude=True)

    labels: tuple[str, ...]
    paths: Paths
    base_model: BaseModelSettings
    segmentation: SegmentationSettings = SegmentationSettings()
    training: TrainingSettings = TrainingSettings()
    thresholds: ThresholdSettings = ThresholdSettings()
    evaluation: EvaluationSettings = EvaluationSettings()
    inference: InferenceSettings = InferenceSettings()

    @property
    def configs_dir(self) -> Path:
        return self.root / CONFIGS_DIR

    def with_overrides(self, **sections: dict[str, Any]) -> Self:
        """A copy with some fields of some sections replaced (tests, quick retrains)."""
        data = self.model_dump()
        for name, values in sections.items():
            data[name] = {**data[name], **values}
        return type(self).model_validate({**data, "root": self.root})


class SettingsError(ValueError):
    """The configuration file is missing or invalid; the message names file and field."""


S = TypeVar("S", bound=Settings)


def resolve_root(root: str | Path | None = None) -> Path:
    """The project folder: the argument, else $STANCE_ROOT, else the current folder."""
    chosen = Path(root or os.environ.get(ROOT_ENV) or Path.cwd()).resolve()
    if not (chosen / CONFIGS_DIR / f"{DEFAULT_CONFIG_NAME}.yaml").is_file():
        raise SettingsError(
            f"{chosen} has no {CONFIGS_DIR}/{DEFAULT_CONFIG_NAME}.yaml; run from the project folder "
            f"or point --root / {ROOT_ENV} at it"
        )
    return chosen


def merge_config(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """`extra` layered over `base`: mappings merge key by key, anything else replaces."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_config(out[key], value)
        else:
            out[key] = value
    return out


def read_config(path: Path, root: Path) -> dict[str, Any]:
    """One YAML config file as a mapping, its relative `paths` made absolute against `root`."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise SettingsError(f"config file not found: {path}") from None
    except yaml.YAMLError as exc:
        raise SettingsError(f"{path}: invalid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise SettingsError(f"{path}: expected a mapping at the top level")
    paths = data.get("paths")
    if isinstance(paths, dict):
        data["paths"] = {
            key: str(root / value) if not Path(value).is_absolute() else str(value) for key, value in paths.items()
        }
    return data


def layered_config(base: dict[str, Any], path: Path, root: Path) -> dict[str, Any]:
    """`base` (a config mapping) with the config file `path` layered on top: the one
    layering rule, used by `load_settings` and by retraining jobs (service.retrain.jobs)."""
    return merge_config(base, read_config(path, root))


def load_settings(path: str | Path | None = None, root: str | Path | None = None, model: type[S] = Settings) -> S:  # type: ignore[assignment]
    """Read a config into `model` (training's `Settings` or a subclass such as the
    service's). A file other than default.yaml is layered on top of default.yaml, so a
    small override file (e.g. configs/fast.yaml) only names what it changes."""
    root = resolve_root(root)
    default = root / CONFIGS_DIR / f"{DEFAULT_CONFIG_NAME}.yaml"
    chosen = Path(path or os.environ.get(CONFIG_ENV) or default)
    data = read_config(default, root)
    if chosen.resolve() != default.resolve():
        data = layered_config(data, chosen, root)
    try:
        return model.model_validate({**data, "root": root})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(x) for x in err['loc'])}: {err['msg']}" for err in exc.errors())
        raise SettingsError(f"{chosen}: {problems}") from None
