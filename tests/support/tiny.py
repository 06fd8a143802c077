"""A tiny randomly initialised BERT bundle for fast tests (seconds, not minutes)."""

from __future__ import annotations

from pathlib import Path

from tests.support import project_settings
from training.base_model import base_model_dir
from training.bundle import ONNX_FILE, save_bundle


def make_tiny_bundle(target: Path, version: str = "vtest-tiny", with_onnx: bool = True, seed: int = 0) -> Path:
    import torch
    from transformers import AutoTokenizer

    from training.modeling import MeanPoolBertConfig, MeanPoolBertForSequenceClassification
    from training.onnx_export import export_int8

    torch.manual_seed(seed)
    LABELS = project_settings().labels
    tokenizer = AutoTokenizer.from_pretrained(base_model_dir(project_settings().base_model), local_files_only=True)
    config = MeanPoolBertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        num_labels=len(LABELS),
        problem_type="multi_label_classification",
        id2label=dict(enumerate(LABELS)),
        label2id={n: i for i, n in enumerate(LABELS)},
    )
    model = MeanPoolBertForSequenceClassification(config).eval()
    extra = {}
    if with_onnx:
        onnx_path = target.parent / f"{target.name}.onnx"
        export_int8(model, tokenizer, onnx_path)
        extra[ONNX_FILE] = onnx_path
    meta = {
        "version": version,
        "labels": list(LABELS),
        "thresholds": {n: 0.5 for n in LABELS},
        "max_length": 64,
        "default_backend": "onnx" if with_onnx else "torch",
        "created": "2026-01-01T00:00:00+00:00",
    }
    return save_bundle(
        target,
        model=model,
        tokenizer=tokenizer,
        meta=meta,
        config_yaml="tiny: true\n",
        metrics={"holdout": {"macro_f1": 0.1}},
        card="# tiny test bundle\n",
        extra=extra,
    )


def make_tiny_base_model(target: Path, seed: int = 0, layers: int = 1) -> Path:
    """A tiny random BERT *encoder* folder (config, weights, the real tokenizer) to stand in
    for the base model (`base_model.path`), so the whole training pipeline runs in seconds."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(base_model_dir(project_settings().base_model), local_files_only=True)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target


def write_config(path: Path, **sections: dict) -> Path:
    """A YAML layered over configs/default.yaml (only what a test changes)."""
    import yaml

    def plain(value):
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return str(value) if isinstance(value, Path) else value

    path.write_text(yaml.safe_dump(plain(sections)))
    return path
