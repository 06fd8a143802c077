"""Where does int8 ONNX Runtime spend its time on our statements? Profiles the current
model (or VERSION) over all annotated statements in length-sorted batches and prints JSON:
the share of kernel time per operator type, and the int8 matrix-product throughput that
implies (multiply-accumulates per second) to compare with the cores' peak.
Usage: .venv/bin/python benchmarks/onnx_profile.py [VERSION]
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import onnxruntime as ort
from transformers import AutoConfig, AutoTokenizer

import training.modeling  # noqa: F401  (registers the bundle's model type)
from training.annotations import annotation_files, load_annotations
from training.bundle import MODEL_DIR, ONNX_FILE
from training.registry import Registry
from training.settings import load_settings

MATMUL_OPS = {"DynamicQuantizeMatMul", "MatMulIntegerToFloat", "MatMulInteger", "QAttention"}


def main(version: str | None = None) -> None:
    settings = load_settings()  # the entry point: configs/ under the current folder or $STANCE_ROOT
    path = Registry(settings.paths.models_dir).resolve(version)
    texts = [
        a.text for a in load_annotations(annotation_files(settings.paths.annotations_dir), settings.labels).annotations
    ]
    tokenizer = AutoTokenizer.from_pretrained(path / MODEL_DIR, local_files_only=True)
    config = AutoConfig.from_pretrained(path / MODEL_DIR, local_files_only=True)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.enable_profiling = True
    with tempfile.TemporaryDirectory() as tmp:
        opts.profile_file_prefix = str(Path(tmp) / "profile")
        session = ort.InferenceSession(str(path / ONNX_FILE), opts, providers=["CPUExecutionProvider"])
        names = {i.name for i in session.get_inputs()}
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        size = settings.inference.batch_size
        feeds = [
            {
                k: v.astype(np.int64)
                for k, v in tokenizer(
                    [texts[j] for j in order[i : i + size]], padding=True, return_tensors="np"
                ).items()
                if k in names
            }
            for i in range(0, len(order), size)
        ]
        for feed in feeds[:3]:
            session.run(None, feed)
        t0 = time.perf_counter()
        for feed in feeds:
            session.run(None, feed)
        seconds = time.perf_counter() - t0
        events = json.loads(Path(session.end_profiling()).read_text())
    by_op: Counter[str] = Counter()
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            by_op[event["args"]["op_name"]] += event["dur"]
    total = sum(by_op.values())
    tokens = sum(int(f["input_ids"].size) for f in feeds)
    h, i, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    macs = tokens * layers * (4 * h * h + 2 * h * i)  # Q, K, V, output projections + the FFN
    matmul_s = sum(v for k, v in by_op.items() if k in MATMUL_OPS) / 1e6
    print(
        json.dumps(
            {
                "model": path.name,
                "threads": 1,
                "statements_per_s_one_thread": round(len(texts) / seconds, 1),
                "tokens_incl_padding": tokens,
                "share_of_kernel_time": {k: round(v / total, 3) for k, v in by_op.most_common(10)},
                "int8_matmul_gmacs_per_s_one_thread": round(macs / matmul_s / 1e9, 1) if matmul_s else None,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
