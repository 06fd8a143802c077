"""The model bundle format: one folder that holds everything needed to score, and nothing else.

Layout (the only place it is defined):

    bundle.json            version, labels, thresholds, base model, default backend, max length
    model/                 fine-tuned weights (safetensors) + config + tokenizer (HF layout,
                           so `transformers.pipeline` can load it too)
    onnx/model.int8.onnx   dynamic-int8 ONNX export (optional; see training.onnx_export)
    training_config.yaml   the settings the bundle was trained with
    metrics.json           cross-validated and held-out figures
    README.md              the model card
    plots/*.png            precision-recall curves
    manifest.json          sha256 of every file above; written last, verified on load

A bundle is written to a hidden temporary folder and renamed into place, and loading
verifies the manifest, so a half-written or corrupted bundle is never used.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

BUNDLE_META = "bundle.json"
MANIFEST = "manifest.json"
MODEL_DIR = "model"
ONNX_FILE = "onnx/model.int8.onnx"
CONFIG_FILE = "training_config.yaml"
METRICS_FILE = "metrics.json"
CARD_FILE = "README.md"
PLOTS_DIR = "plots"
FORMAT_VERSION = 1
_EMBEDDER_LOCK = threading.Lock()


class BundleError(RuntimeError):
    """A bundle cannot be used: missing, incomplete or corrupted. The message says which file."""


@dataclass(frozen=True)
class Prediction:
    labels: list[str]
    scores: dict[str, float]


class Backend(Protocol):
    def predict_logits(self, texts: Sequence[str]) -> np.ndarray: ...


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _batches_by_length(texts: Sequence[str], batch_size: int) -> list[list[int]]:
    """Index batches of similar length, so dynamic padding wastes little compute."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def _logits_in_batches(
    texts: Sequence[str], tokenizer: Any, max_length: int, batch_size: int, tensors: str,
    forward: Callable[[Any], np.ndarray],
) -> np.ndarray:
    """Tokenise length-sorted batches, run `forward` on each, return logits in input order."""
    out: np.ndarray | None = None
    for idx in _batches_by_length(texts, batch_size):
        enc = tokenizer(
            [texts[i] for i in idx], padding=True, truncation=True, max_length=max_length, return_tensors=tensors
        )
        logits = forward(enc)
        if out is None:
            out = np.zeros((len(texts), logits.shape[1]), dtype=np.float32)
        out[idx] = logits
    return out if out is not None else np.zeros((0, 0), dtype=np.float32)


class ThreadTokenizers:
    """One copy of the tokenizer per thread: HF fast tokenizers must not be shared between
    threads, and the batches of one call are scored on several at once (streams)."""

    def __init__(self, tokenizer: Any) -> None:
        self.base = tokenizer
        self._local = threading.local()

    def get(self) -> Any:
        tok = getattr(self._local, "tokenizer", None)
        if tok is None:
            tok = self._local.tokenizer = copy.deepcopy(self.base)
        return tok


class TorchBackend:
    """fp32 PyTorch inference (the reference the int8 export is checked against)."""

    def __init__(self, model_dir: Path, max_length: int, batch_size: int, threads: int) -> None:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        torch.set_num_threads(threads)
        self._torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        self._tokenizers = ThreadTokenizers(self.tokenizer)
        self.model = AutoModelForSequenceClassification.from_pretrained(
            model_dir, local_files_only=True
        ).eval()
        self.max_length = max_length
        self.batch_size = batch_size

    def predict_logits(self, texts: Sequence[str]) -> np.ndarray:
        with self._torch.inference_mode():
            return _logits_in_batches(
                texts, self._tokenizers.get(), self.max_length, self.batch_size, "pt",
                lambda enc: self.model(**enc).logits.float().numpy(),
            )


class OnnxBackend:
    """ONNX Runtime over the int8 export: the fast default on CPU.

    `streams` > 1 runs that many length-sorted batches at once, each on its own thread
    with `threads // streams` ONNX Runtime threads (one session; `run` is thread-safe).
    On 2 cores, two 1-thread streams beat one 2-thread call: small int8 GEMMs scale
    poorly across threads, and tokenising one batch overlaps scoring another
    (benchmarks/onnx_ceiling.py measures both)."""

    def __init__(
        self, onnx_path: Path, tokenizer: Any, max_length: int, batch_size: int, threads: int,
        spin_wait: bool = True, streams: int = 1,
    ) -> None:
        import onnxruntime as ort

        self.streams = max(1, min(streams, threads))
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(1, threads // self.streams)
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Busy-waiting pool threads win on an idle machine and lose when the cores are
        # shared (e.g. with a web server's event loop): the caller decides.
        allow = "1" if spin_wait else "0"
        opts.add_session_config_entry("session.intra_op.allow_spinning", allow)
        opts.add_session_config_entry("session.inter_op.allow_spinning", allow)
        self.session = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
        self.input_names = {i.name for i in self.session.get_inputs()}
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.batch_size = batch_size
        self._tokenizers = ThreadTokenizers(tokenizer)
        self._pool: ThreadPoolExecutor | None = None

    @classmethod
    def from_bundle(
        cls, bundle_dir: Path, max_length: int, batch_size: int, threads: int, spin_wait: bool = True,
        streams: int = 1,
    ) -> "OnnxBackend":
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(bundle_dir / MODEL_DIR, local_files_only=True)
        return cls(bundle_dir / ONNX_FILE, tokenizer, max_length, batch_size, threads, spin_wait, streams)

    def _forward(self, enc: Any) -> np.ndarray:
        feeds = {k: v.astype(np.int64) for k, v in enc.items() if k in self.input_names}
        return self.session.run(None, feeds)[0]

    def predict_logits(self, texts: Sequence[str]) -> np.ndarray:
        if self.streams == 1 or len(texts) < 2:
            return _logits_in_batches(
                texts, self._tokenizers.get(), self.max_length, self.batch_size, "np", self._forward
            )
        # Enough batches to keep every stream busy, none above batch_size.
        size = min(self.batch_size, -(-len(texts) // self.streams))
        groups = _batches_by_length(texts, size)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.streams, thread_name_prefix="onnx-stream")

        def run(idx: list[int]) -> np.ndarray:
            return _logits_in_batches(
                [texts[i] for i in idx], self._tokenizers.get(), self.max_length, len(idx), "np", self._forward
            )

        out: np.ndarray | None = None
        for idx, logits in zip(groups, self._pool.map(run, groups)):
            if out is None:
                out = np.zeros((len(texts), logits.shape[1]), dtype=np.float32)
            out[idx] = logits
        return out if out is not None else np.zeros((0, 0), dtype=np.float32)


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

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        if len(texts) == 0:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        return sigmoid(self.backend.predict_logits(list(texts)))

    def decide(self, probs: np.ndarray) -> list[Prediction]:
        """Probabilities -> labels through the bundle's per-label thresholds."""
        cut = np.array([self.thresholds[name] for name in self.labels])
        return [
            Prediction(
                labels=[n for n, p, t in zip(self.labels, row, cut) if p >= t],
                scores={n: round(float(p), 6) for n, p in zip(self.labels, row)},
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
        (tmp / BUNDLE_META).write_text(
            json.dumps({"format": FORMAT_VERSION, **meta}, indent=2, sort_keys=True)
        )
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
    backend: str | None = None,
    threads: int | None = None,
    batch_size: int | None = None,
    spin_wait: bool = True,
    streams: int | None = None,
) -> Bundle:
    """Verify and load a bundle. `backend` None -> the bundle's default (int8 ONNX when it
    passed the agreement check at training time, else torch). `spin_wait` False stops
    ONNX Runtime's threads busy-waiting between calls (for a shared machine)."""
    import training.modeling  # noqa: F401  (registers the bundle's model type with the Auto classes)
    from training.settings import get_settings

    root = Path(path)
    if not root.is_dir():
        raise BundleError(f"no bundle at {root}")
    verify_manifest(root)
    meta = read_meta(root)
    inference = get_settings().inference
    name = backend or meta.get("default_backend") or inference.backend
    if name == "onnx" and not (root / ONNX_FILE).is_file():
        if backend == "onnx":
            raise BundleError(f"{root}: backend 'onnx' requested but the bundle has no {ONNX_FILE}")
        name = "torch"
    kwargs = dict(
        max_length=int(meta.get("max_length", 128)),
        batch_size=batch_size or inference.batch_size,
        threads=threads or inference.threads,
    )
    if name == "onnx":
        impl: Backend = OnnxBackend.from_bundle(
            root, **kwargs, spin_wait=spin_wait, streams=streams or inference.streams
        )
    elif name == "torch":
        impl = TorchBackend(root / MODEL_DIR, **kwargs)
    else:
        raise BundleError(f"unknown backend {name!r}; choose 'onnx' or 'torch'")
    return Bundle(path=root, meta=meta, backend=impl, backend_name=name, metrics=read_metrics(root))
