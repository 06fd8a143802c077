"""The CPU runtimes a bundle can carry: how each is exported from the fine-tuned torch
model, which bundle files it needs, and how it is loaded as a `Backend`.

Every export starts from one fp32 ONNX graph (training.onnx_export.export_fp32):

    torch               the fine-tuned weights in model/ (always there; the reference)
    onnx-fp32           ONNX Runtime, fp32
    onnx-int8           ONNX Runtime, dynamic int8 MatMuls (per-channel weights)
    onnx-qdq-int8       ONNX Runtime's transformer optimizer (attention fusion), then static
                        QDQ int8 calibrated on TRAINING statements
    openvino-fp32       OpenVINO CPU plugin, fp32 IR
    openvino-bf16       the same IR run in bfloat16 (inference precision hint)
    openvino-int8       NNCF post-training int8 (calibrated on training statements), f32 activations
    openvino-int8-bf16  the same int8 IR with bf16 for the float parts

Which of them a bundle serves is decided at training time on held-out statements
(training/runtime_choice.py); benchmarks/runtimes.py measures them all.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, get_args

from training.backends import Backend, OnnxBackend, OpenVinoBackend, TorchBackend, load_tokenizer
from training.settings import RuntimeName

RUNTIMES: tuple[str, ...] = get_args(RuntimeName)
LEGACY_NAMES = {"onnx": "onnx-int8"}  # bundle.json default_backend of bundles written before runtimes.py

MODEL_DIR = "model"
ONNX_FP32 = "onnx/model.fp32.onnx"
ONNX_INT8 = "onnx/model.int8.onnx"
ONNX_QDQ = "onnx/model.qdq.onnx"
OV_FP32 = "openvino/model.xml"
OV_INT8 = "openvino/model.int8.xml"

# The file a runtime is loaded from (an OpenVINO IR's .bin sits beside its .xml).
_MAIN_FILE: dict[str, str | None] = {
    "torch": None,
    "onnx-fp32": ONNX_FP32,
    "onnx-int8": ONNX_INT8,
    "onnx-qdq-int8": ONNX_QDQ,
    "openvino-fp32": OV_FP32,
    "openvino-bf16": OV_FP32,
    "openvino-int8": OV_INT8,
    "openvino-int8-bf16": OV_INT8,
}
_OV_PRECISION = {"openvino-fp32": "f32", "openvino-bf16": "bf16", "openvino-int8": "f32", "openvino-int8-bf16": "bf16"}


class RuntimeUnavailable(RuntimeError):
    """A runtime cannot be exported or loaded here (package missing, export failed); the
    message says which and why."""


def canonical(name: str) -> str:
    """A runtime's current name (bundles written before this module say "onnx")."""
    name = LEGACY_NAMES.get(name, name)
    if name not in RUNTIMES:
        raise RuntimeUnavailable(f"unknown runtime {name!r}; known: {', '.join(RUNTIMES)}")
    return name


def runtime_files(name: str) -> list[str]:
    """Bundle-relative files the runtime needs beside model/ (empty for torch)."""
    main = _MAIN_FILE[canonical(name)]
    if main is None:
        return []
    return [main, main[: -len(".xml")] + ".bin"] if main.endswith(".xml") else [main]


def carried_runtimes(root: Path) -> list[str]:
    """The runtimes whose files are all in the bundle folder `root`."""
    return [n for n in RUNTIMES if all((Path(root) / f).is_file() for f in runtime_files(n))]


def load_runtime(
    name: str,
    root: Path,
    *,
    max_length: int,
    batch_size: int,
    threads: int,
    streams: int,
    spin_wait: bool = True,
    tokenizer: Any = None,
) -> Backend:
    """The runtime `name` of the bundle folder `root` as a Backend."""
    name = canonical(name)
    root = Path(root)
    missing = [f for f in runtime_files(name) if not (root / f).is_file()]
    if missing:
        raise RuntimeUnavailable(f"{root}: runtime {name!r} needs {missing}, which the bundle does not carry")
    tokenizer = tokenizer if tokenizer is not None else load_tokenizer(root / MODEL_DIR)
    main = _MAIN_FILE[name]
    if main is None:
        return TorchBackend(root / MODEL_DIR, max_length, batch_size, threads)
    if name.startswith("onnx"):
        return OnnxBackend(root / main, tokenizer, max_length, batch_size, threads, spin_wait, streams)
    try:
        return OpenVinoBackend(root / main, tokenizer, max_length, batch_size, threads, _OV_PRECISION[name], streams)
    except ImportError as exc:
        raise RuntimeUnavailable(f"runtime {name!r} needs OpenVINO: pip install -e '.[openvino]' ({exc})") from None


def _calibration_batches(tokenizer: Any, texts: Sequence[str], max_length: int) -> list[dict[str, Any]]:
    """One tokenised statement per calibration item (int64 numpy, as the graphs take them)."""
    return [
        {
            k: v.astype("int64")
            for k, v in tokenizer([t], truncation=True, max_length=max_length, return_tensors="np").items()
        }
        for t in texts
    ]


class Exporter:
    """Exports of one fine-tuned model into `workdir`, sharing the fp32 ONNX graph.

    `calibration_texts` are training statements (static quantisation learns activation
    ranges from them); the held-out statements judge the result, never calibrate it."""

    def __init__(
        self, model: Any, tokenizer: Any, workdir: Path, calibration_texts: Sequence[str], max_length: int
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.workdir = Path(workdir).resolve()
        self.calibration_texts = list(calibration_texts)
        self.max_length = max_length

    def _path(self, rel: str) -> Path:
        path = self.workdir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def fp32_onnx(self) -> Path:
        path = self.workdir / ONNX_FP32
        if not path.is_file():
            from training.onnx_export import export_fp32

            export_fp32(self.model, self.tokenizer, self._path(ONNX_FP32))
        return path

    def export(self, name: str) -> dict[str, Path]:
        """Produce the runtime's files; bundle-relative name -> file in workdir."""
        name = canonical(name)
        main = _MAIN_FILE[name]
        if main is not None and not (self.workdir / main).is_file():
            try:
                {
                    ONNX_FP32: self.fp32_onnx,
                    ONNX_INT8: self._onnx_int8,
                    ONNX_QDQ: self._onnx_qdq,
                    OV_FP32: self._openvino_fp32,
                    OV_INT8: self._openvino_int8,
                }[main]()
            except ImportError as exc:
                raise RuntimeUnavailable(f"runtime {name!r}: a package is missing ({exc})") from None
        return {rel: self.workdir / rel for rel in runtime_files(name)}

    def _onnx_int8(self) -> None:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        # Per-channel int8 weights on the MatMuls only: closest to fp32 of the options tried.
        quantize_dynamic(
            str(self.fp32_onnx()),
            str(self._path(ONNX_INT8)),
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=["MatMul"],
        )

    def _onnx_qdq(self) -> None:
        from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
        from onnxruntime.quantization.shape_inference import quant_pre_process
        from onnxruntime.transformers.optimizer import optimize_model

        config = self.model.config
        fused = self.workdir / "onnx" / "model.fused.onnx"
        optimize_model(
            str(self.fp32_onnx()),
            model_type="bert",
            num_heads=int(config.num_attention_heads),
            hidden_size=int(config.hidden_size),
        ).save_model_to_file(str(fused))
        # Symbolic shape inference first: without tensor types the quantiser skips most MatMuls.
        # On failure it dumps the model into the current folder: keep that inside workdir.
        with contextlib.chdir(self.workdir):
            quant_pre_process(str(fused), str(fused), skip_optimization=True, auto_merge=True)
        items = _calibration_batches(self.tokenizer, self.calibration_texts, self.max_length)

        class Reader(CalibrationDataReader):
            def __init__(self) -> None:
                self._it: Iterator[dict[str, Any]] = iter(items)

            def get_next(self) -> dict[str, Any] | None:
                return next(self._it, None)

        quantize_static(
            str(fused),
            str(self._path(ONNX_QDQ)),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            op_types_to_quantize=["MatMul"],
            extra_options={"ActivationSymmetric": False, "WeightSymmetric": True},
        )
        fused.unlink(missing_ok=True)

    def _openvino_fp32(self) -> None:
        import openvino as ov

        ov.save_model(ov.convert_model(str(self.fp32_onnx())), str(self._path(OV_FP32)), compress_to_fp16=False)

    def _openvino_int8(self) -> None:
        import nncf
        import openvino as ov

        if not (self.workdir / OV_FP32).is_file():
            self._openvino_fp32()
        model = ov.Core().read_model(str(self.workdir / OV_FP32))
        items = _calibration_batches(self.tokenizer, self.calibration_texts, self.max_length)
        quantized = nncf.quantize(
            model,
            nncf.Dataset(items),
            model_type=nncf.ModelType.TRANSFORMER,
            subset_size=len(items),
        )
        ov.save_model(quantized, str(self._path(OV_INT8)), compress_to_fp16=False)


def copy_runtime_files(files: dict[str, Path], root: Path) -> None:
    """Copy exported files into a bundle folder (before its manifest is re-sealed)."""
    for rel, src in files.items():
        dest = Path(root) / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
