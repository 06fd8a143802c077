"""The model bundle format: one folder that holds everything needed to score, and nothing else.

Layout (the only place it is defined):

    bundle.json            version, labels, calibration (per-label Platt a, b of the logit),
                           thresholds (on the calibrated score), base model, default backend
                           and why, max length
    model/                 fine-tuned weights (safetensors) + config + tokenizer (HF layout,
                           so `transformers.pipeline` can load it too)
    onnx/, openvino/       the files of the faster CPU runtime chosen at training time, if any
                           (training/runtimes.py lists them; bundle.json "runtimes" says which
                           the bundle carries and every candidate's verdict)
    training_config.yaml   the settings the bundle was trained with
    metrics.json           cross-validated and held-out figures
    README.md              the model card
    plots/*.png            precision-recall curves
    manifest.json          sha256 of every file above; written last, verified on load

A bundle is written to a hidden temporary folder and renamed into place, and loading
verifies the manifest, so a half-written or corrupted bundle is never used.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from training.backends import Backend, sigmoid
from training.runtimes import ONNX_INT8, RuntimeUnavailable, canonical, carried_runtimes, load_runtime, runtime_files
from training.settings import InferenceSettings

BUNDLE_META = "bundle.json"
MANIFEST = "manifest.json"
MODEL_DIR = "model"
ONNX_FILE = ONNX_INT8  # the dynamic-int8 export (every runtime's files: training/runtimes.py)
CONFIG_FILE = "training_config.yaml"
METRICS_FILE = "metrics.json"
CARD_FILE = "README.md"
PLOTS_DIR = "plots"
OOF_FILE = "oof.npz"  # the CV's out-of-fold scores, read by the label audit
FORMAT_VERSION = 1
_EMBEDDER_LOCK = threading.Lock()


class BundleError(RuntimeError):
    """A bundle cannot be used: missing, incomplete or corrupted. The message says which file."""


@dataclass(frozen=True)
class Prediction:
    labels: list[str]
    scores: dict[str, float]


@dataclass
class Bundle:
    path: Path
    meta: dict[str, Any]
    backend: Backend
    backend_name: str
    metrics: dict[str, Any] = field(default_factory=dict)
    _embedder: Any = field(default=None, repr=False, compare=False)

    @property
    def version(self) -> str:
        return str(self.meta["version"])

    @property
    def labels(self) -> list[str]:
        return list(self.meta["labels"])

    @property
    def thresholds(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.meta["thresholds"].items()}

    @property
    def calibration(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-label Platt scaling (a, b) of the logit; identity for bundles without it."""
        cal = self.meta.get("calibration") or {}
        a = np.array([float(cal.get(n, (1.0, 0.0))[0]) for n in self.labels], dtype=np.float32)
        b = np.array([float(cal.get(n, (1.0, 0.0))[1]) for n in self.labels], dtype=np.float32)
        return a, b

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Calibrated probabilities: sigmoid(a * logit + b) per label."""
        if len(texts) == 0:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        a, b = self.calibration
        return sigmoid(self.backend.predict_logits(list(texts)) * a + b)

    def decide(self, probs: np.ndarray) -> list[Prediction]:
        """Probabilities -> labels through the bundle's per-label thresholds."""
        cut = np.array([self.thresholds[name] for name in self.labels])
        return [
            Prediction(
                labels=[n for n, p, t in zip(self.labels, row, cut, strict=True) if p >= t],
                scores={n: round(float(p), 6) for n, p in zip(self.labels, row, strict=True)},
            )
            for row in probs
        ]

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        return self.decide(self.predict_proba(texts))

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length mean-pooled encoder embeddings (active learning's diversity). The
        fp32 torch encoder is loaded on first use, beside whichever backend scores."""
        if self._embedder is None:
            from training.embedding import Embedder

            with _EMBEDDER_LOCK:
                if self._embedder is None:
                    self._embedder = Embedder(self.path / MODEL_DIR, int(self.meta.get("max_length", 128)))
        return self._embedder.embed(texts)


# ---------------------------------------------------------------- manifest


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _bundle_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name != MANIFEST)


def write_manifest(root: Path) -> None:
    files = {str(p.relative_to(root)): _sha256(p) for p in _bundle_files(root)}
    (root / MANIFEST).write_text(json.dumps({"sha256": files}, indent=2, sort_keys=True))


def verify_manifest(root: Path) -> None:
    """Raise BundleError unless every file matches the manifest and none is extra or missing."""
    manifest_path = root / MANIFEST
    if not manifest_path.is_file():
        raise BundleError(f"{root}: no {MANIFEST}; the bundle is incomplete (interrupted write?)")
    try:
        expected: dict[str, str] = json.loads(manifest_path.read_text())["sha256"]
    except (ValueError, KeyError) as exc:
        raise BundleError(f"{manifest_path}: unreadable manifest ({exc})") from None
    present = {str(p.relative_to(root)) for p in _bundle_files(root)}
    missing = sorted(set(expected) - present)
    extra = sorted(present - set(expected))
    if missing:
        raise BundleError(f"{root}: files missing from the bundle: {missing}")
    if extra:
        raise BundleError(f"{root}: files not in the manifest: {extra}")
    for rel, digest in expected.items():
        if _sha256(root / rel) != digest:
            raise BundleError(f"{root / rel}: checksum mismatch; the bundle is corrupted")


# ---------------------------------------------------------------- save / load


def save_bundle(
    target: Path,
    *,
    model: Any,
    tokenizer: Any,
    meta: dict[str, Any],
    config_yaml: str,
    metrics: dict[str, Any],
    card: str,
    extra: dict[str, Path] | None = None,
) -> Path:
    """Write a complete bundle to `target` atomically (temp folder + rename).

    `meta` needs version, labels, thresholds; `extra` maps bundle-relative names
    (e.g. "plots/pr_opposition.png", ONNX_FILE) to files to copy in.
    """
    for key in ("version", "labels", "thresholds"):
        if key not in meta:
            raise ValueError(f"bundle meta needs '{key}'")
    target = Path(target)
    if target.exists():
        raise BundleError(f"{target} exists already; bundles are immutable")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{target.name}-", dir=target.parent))
    try:
        model.save_pretrained(tmp / MODEL_DIR, safe_serialization=True)
        tokenizer.save_pretrained(tmp / MODEL_DIR)
        (tmp / BUNDLE_META).write_text(json.dumps({"format": FORMAT_VERSION, **meta}, indent=2, sort_keys=True))
        (tmp / CONFIG_FILE).write_text(config_yaml)
        (tmp / METRICS_FILE).write_text(json.dumps(metrics, indent=2, sort_keys=True))
        (tmp / CARD_FILE).write_text(card)
        for rel, src in (extra or {}).items():
            dest = tmp / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest)
        write_manifest(tmp)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def add_to_bundle(root: Path, files: dict[str, Path | bytes | str]) -> None:
    """Add or replace files in an existing bundle and re-seal its manifest (used while
    the bundle is still being assembled, before it is registered)."""
    verify_manifest(root)
    for rel, content in files.items():
        dest = root / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Path):
            shutil.copyfile(content, dest)
        elif isinstance(content, bytes):
            dest.write_bytes(content)
        else:
            dest.write_text(content)
    write_manifest(root)


def read_meta(root: Path) -> dict[str, Any]:
    try:
        return json.loads((Path(root) / BUNDLE_META).read_text())
    except FileNotFoundError:
        raise BundleError(f"{root}: not a bundle (no {BUNDLE_META})") from None
    except ValueError as exc:
        raise BundleError(f"{root / BUNDLE_META}: invalid JSON ({exc})") from None


def read_metrics(root: Path) -> dict[str, Any]:
    path = Path(root) / METRICS_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def load_bundle(
    path: str | Path,
    inference: InferenceSettings,
    backend: str | None = None,
    threads: int | None = None,
    batch_size: int | None = None,
    spin_wait: bool = True,
    streams: int | None = None,
) -> Bundle:
    """Verify and load a bundle. `backend` None -> the bundle's default (the runtime chosen
    at training time, training/runtime_choice.py; torch if its files are missing); `threads`,
    `batch_size` and `streams` override `inference`'s. `spin_wait` False stops ONNX
    Runtime's threads busy-waiting between calls (for a shared machine)."""
    import training.modeling  # noqa: F401  (registers the bundle's model type with the Auto classes)

    root = Path(path)
    if not root.is_dir():
        raise BundleError(f"no bundle at {root}")
    verify_manifest(root)
    meta = read_meta(root)
    name = backend or meta.get("default_backend") or inference.backend
    try:
        runtime = canonical(name)
    except RuntimeUnavailable as exc:
        raise BundleError(str(exc)) from None
    if runtime not in carried_runtimes(root):
        if backend is not None:
            raise BundleError(f"{root}: backend {name!r} requested but the bundle lacks {runtime_files(runtime)}")
        name = runtime = "torch"
    try:
        impl = load_runtime(
            runtime,
            root,
            max_length=int(meta.get("max_length", 128)),
            batch_size=batch_size or inference.batch_size,
            threads=threads or inference.threads,
            streams=streams or inference.streams,
            spin_wait=spin_wait,
        )
    except RuntimeUnavailable as exc:
        raise BundleError(str(exc)) from None
    return Bundle(path=root, meta=meta, backend=impl, backend_name=name, metrics=read_metrics(root))
