"""A full-size bundle without training: the MiniLM base encoder with a random, untrained
head, exported to int8 ONNX like a trained one. Its labels mean nothing, but its size and
cost per call are a real bundle's, so `stance bench --only fairness|swaps --bundle <it>`
measures scheduling and memory on a fresh clone without spending 10 minutes training.

    .venv/bin/python benchmarks/untrained_bundle.py /tmp/untrained
"""

from __future__ import annotations

import sys
from pathlib import Path


def make(target: Path, version: str = "vuntrained") -> Path:
    import torch
    from transformers import AutoTokenizer

    from training.base_model import base_model_dir
    from training.bundle import ONNX_FILE, save_bundle
    from training.modeling import MeanPoolBertConfig, MeanPoolBertForSequenceClassification
    from training.onnx_export import export_int8
    from training.settings import load_settings

    settings = load_settings()
    labels = list(settings.labels)
    torch.manual_seed(0)
    base = base_model_dir(settings.base_model)
    tokenizer = AutoTokenizer.from_pretrained(base, local_files_only=True)
    config = MeanPoolBertConfig.from_pretrained(
        base,
        num_labels=len(labels),
        problem_type="multi_label_classification",
        id2label=dict(enumerate(labels)),
        label2id={n: i for i, n in enumerate(labels)},
        local_files_only=True,
    )
    model = MeanPoolBertForSequenceClassification.from_pretrained(base, config=config, local_files_only=True).eval()
    onnx_path = target.parent / f"{target.name}.onnx"
    export_int8(model, tokenizer, onnx_path)
    meta = {
        "version": version,
        "labels": labels,
        "thresholds": {n: 0.5 for n in labels},
        "max_length": settings.base_model.max_length,
        "default_backend": "onnx",
        "created": "2026-01-01T00:00:00+00:00",
        "note": "untrained head: for benchmarks only",
    }
    return save_bundle(
        target,
        model=model,
        tokenizer=tokenizer,
        meta=meta,
        config_yaml="untrained: true\n",
        metrics={},
        card="# untrained benchmark bundle\n",
        extra={ONNX_FILE: onnx_path},
    )


if __name__ == "__main__":
    print(make(Path(sys.argv[1])))
