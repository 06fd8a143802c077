"""Export a fine-tuned classifier to ONNX and quantise it to dynamic int8 for fast CPU scoring."""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import Any


def export_fp32(model: Any, tokenizer: Any, out_path: Path, opset: int = 17) -> Path:
    """Write `out_path` (fp32 ONNX) from a torch sequence classifier; inputs are
    input_ids / attention_mask / token_type_ids with dynamic batch and sequence axes.
    The source of every other runtime's export (training/runtimes.py)."""
    import torch

    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    model = model.float().eval()
    sample = tokenizer(["a short sample", "another, slightly longer sample text"], padding=True, return_tensors="pt")
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in sample]
    args = tuple(sample[n] for n in names)
    axes = {n: {0: "batch", 1: "sequence"} for n in names}
    axes["logits"] = {0: "batch"}

    class _Logits(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
            return self.inner(**dict(zip(names, tensors, strict=True))).logits

    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _Logits(model),
            args,
            str(out_path),
            input_names=names,
            output_names=["logits"],
            dynamic_axes=axes,
            opset_version=opset,
            dynamo=False,
        )
    return out_path


def export_int8(model: Any, tokenizer: Any, out_path: Path, opset: int = 17) -> Path:
    """Write `out_path` (dynamic int8 ONNX) from a torch sequence classifier."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = export_fp32(model, tokenizer, Path(tmp) / "model.fp32.onnx", opset)
        # Per-channel int8 weights on the MatMuls only: closest to fp32 decisions of the
        # options tried; every bundle records its own agreement (metrics.json "int8").
        quantize_dynamic(
            str(fp32), str(out_path), weight_type=QuantType.QInt8, per_channel=True, op_types_to_quantize=["MatMul"]
        )
    return out_path
