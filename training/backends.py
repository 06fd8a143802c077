"""Inference backends: logits for a list of texts, from fp32 PyTorch, ONNX Runtime or OpenVINO.

The bundle format (training.bundle) decides which backend a bundle gets and with what
files; this module only knows how to run a model fast on CPU: length-sorted batches (little
padding), one tokenizer per thread, and ONNX streams (several batches scored at once).
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

import numpy as np


class Backend(Protocol):
    def predict_logits(self, texts: Sequence[str]) -> np.ndarray: ...


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _batches_by_length(texts: Sequence[str], batch_size: int) -> list[list[int]]:
    """Index batches of similar length, so dynamic padding wastes little compute."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def _logits_in_batches(
    texts: Sequence[str],
    tokenizer: Any,
    max_length: int,
    batch_size: int,
    tensors: str,
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
        self.model = AutoModelForSequenceClassification.from_pretrained(model_dir, local_files_only=True).eval()
        self.max_length = max_length
        self.batch_size = batch_size

    def predict_logits(self, texts: Sequence[str]) -> np.ndarray:
        with self._torch.inference_mode():
            return _logits_in_batches(
                texts,
                self._tokenizers.get(),
                self.max_length,
                self.batch_size,
                "pt",
                lambda enc: self.model(**enc).logits.float().numpy(),
            )


class StreamedBackend:
    """Length-sorted batches scored on `streams` threads at once, one tokenizer per thread.

    Subclasses only say how one tokenised batch becomes logits (`_forward`, thread-safe).
    On 2 cores, two 1-thread streams beat one 2-thread call: small int8 GEMMs scale
    poorly across threads, and tokenising one batch overlaps scoring another
    (benchmarks/onnx_ceiling.py, benchmarks/runtimes.py measure both)."""

    def __init__(self, tokenizer: Any, max_length: int, batch_size: int, streams: int) -> None:
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.batch_size = batch_size
        self.streams = max(1, streams)
        self._tokenizers = ThreadTokenizers(tokenizer)
        self._pool: ThreadPoolExecutor | None = None

    def _forward(self, enc: Any) -> np.ndarray:
        raise NotImplementedError

    def predict_logits(self, texts: Sequence[str]) -> np.ndarray:
        if self.streams == 1 or len(texts) < 2:
            return _logits_in_batches(
                texts, self._tokenizers.get(), self.max_length, self.batch_size, "np", self._forward
            )
        # Enough batches to keep every stream busy, none above batch_size.
        size = min(self.batch_size, -(-len(texts) // self.streams))
        groups = _batches_by_length(texts, size)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.streams, thread_name_prefix="infer-stream")

        def run(idx: list[int]) -> np.ndarray:
            return _logits_in_batches(
                [texts[i] for i in idx], self._tokenizers.get(), self.max_length, len(idx), "np", self._forward
            )

        out: np.ndarray | None = None
        for idx, logits in zip(groups, self._pool.map(run, groups), strict=True):
            if out is None:
                out = np.zeros((len(texts), logits.shape[1]), dtype=np.float32)
            out[idx] = logits
        return out if out is not None else np.zeros((0, 0), dtype=np.float32)


def load_tokenizer(tokenizer_dir: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tokenizer_dir, local_files_only=True)


class OnnxBackend(StreamedBackend):
    """ONNX Runtime over an ONNX export (dynamic int8, static QDQ int8 or fp32).

    `streams` > 1 runs that many length-sorted batches at once, each on its own thread
    with `threads // streams` ONNX Runtime threads (one session; `run` is thread-safe)."""

    def __init__(
        self,
        onnx_path: Path,
        tokenizer: Any,
        max_length: int,
        batch_size: int,
        threads: int,
        spin_wait: bool = True,
        streams: int = 1,
    ) -> None:
        import onnxruntime as ort

        super().__init__(tokenizer, max_length, batch_size, min(streams, threads))
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

    @classmethod
    def from_files(
        cls,
        onnx_path: Path,
        tokenizer_dir: Path,
        max_length: int,
        batch_size: int,
        threads: int,
        spin_wait: bool = True,
        streams: int = 1,
    ) -> OnnxBackend:
        return cls(onnx_path, load_tokenizer(tokenizer_dir), max_length, batch_size, threads, spin_wait, streams)

    def _forward(self, enc: Any) -> np.ndarray:
        feeds = {k: v.astype(np.int64) for k, v in enc.items() if k in self.input_names}
        return self.session.run(None, feeds)[0]


class OpenVinoBackend(StreamedBackend):
    """OpenVINO's CPU plugin over an IR (fp32 or NNCF int8), at a given inference precision.

    `precision` "bf16" runs the fp32/int8 graph's float parts in bfloat16 (AVX-512 bf16 /
    AMX), "f32" keeps them in fp32. One compiled model with `streams` CPU streams of
    `threads // streams` threads each; every scoring thread has its own infer request."""

    def __init__(
        self,
        xml_path: Path,
        tokenizer: Any,
        max_length: int,
        batch_size: int,
        threads: int,
        precision: str = "f32",
        streams: int = 1,
    ) -> None:
        import openvino as ov

        super().__init__(tokenizer, max_length, batch_size, min(streams, threads))
        core = ov.Core()
        config = {
            "INFERENCE_PRECISION_HINT": precision,
            "NUM_STREAMS": str(self.streams),
            "INFERENCE_NUM_THREADS": str(max(threads, self.streams)),
            "PERFORMANCE_HINT": "LATENCY" if self.streams == 1 else "THROUGHPUT",
        }
        self.compiled = core.compile_model(core.read_model(str(xml_path)), "CPU", config)
        self.input_names = {i.get_any_name() for i in self.compiled.inputs}
        self._requests = threading.local()

    @classmethod
    def from_files(
        cls,
        xml_path: Path,
        tokenizer_dir: Path,
        max_length: int,
        batch_size: int,
        threads: int,
        precision: str = "f32",
        streams: int = 1,
    ) -> OpenVinoBackend:
        return cls(xml_path, load_tokenizer(tokenizer_dir), max_length, batch_size, threads, precision, streams)

    def _forward(self, enc: Any) -> np.ndarray:
        request = getattr(self._requests, "request", None)
        if request is None:
            request = self._requests.request = self.compiled.create_infer_request()
        feeds = {k: v.astype(np.int64) for k, v in enc.items() if k in self.input_names}
        return np.array(request.infer(feeds)[0], dtype=np.float32, copy=True)
