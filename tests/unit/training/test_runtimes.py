"""CPU runtimes: exports agree with torch; the bundle's runtime is the fastest that passes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.support import PROJECT, project_settings, seed_subset
from tests.support.tiny import make_tiny_bundle
from training.bundle import BundleError, load_bundle, read_meta, verify_manifest, write_manifest
from training.data import split_holdout, texts_and_targets
from training.policy import Decision
from training.registry import Registry
from training.runtime_choice import choose_runtime
from training.runtime_upgrade import upgrade_runtimes
from training.runtimes import Exporter, RuntimeUnavailable, carried_runtimes, load_runtime, runtime_files

TEXTS = [f"Statement {i}: " + "Ukraine and NATO membership guarantees " * (i % 5 + 1) for i in range(24)]
KEPT = ("onnx-int8", "openvino-fp32", "openvino-bf16", "openvino-int8", "openvino-int8-bf16")
# Largest logit gap to fp32 torch on a tiny random model: fp32 graphs are exact, bf16 and
# int8 round (int8 weights and activations of a random 2-layer BERT stay within this).
TOLERANCE = {"openvino-fp32": 1e-4, "onnx-fp32": 1e-4}
ROUNDED = 0.1


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    import training.modeling  # noqa: F401

    root = make_tiny_bundle(tmp_path_factory.mktemp("rt") / "vtiny", with_onnx=False)
    model = AutoModelForSequenceClassification.from_pretrained(root / "model").eval()
    tokenizer = AutoTokenizer.from_pretrained(root / "model")
    return root, model, tokenizer


@pytest.fixture(scope="module")
def exported(tiny, tmp_path_factory):
    root, model, tokenizer = tiny
    work = tmp_path_factory.mktemp("exports")
    exporter = Exporter(model, tokenizer, work, TEXTS[:8], max_length=64)
    for name in (*KEPT, "onnx-fp32", "onnx-qdq-int8"):
        exporter.export(name)
    return work


def _settings(**inference):
    return project_settings().with_overrides(
        inference=inference, base_model={"max_length": 64}, evaluation={"bootstrap_samples": 20}
    )


@pytest.mark.parametrize("name", [*KEPT, "onnx-fp32", "onnx-qdq-int8"])
def test_each_export_predicts_close_to_torch(tiny, exported, name):
    root, _, tokenizer = tiny
    reference = load_runtime("torch", root, max_length=64, batch_size=4, threads=1, streams=1).predict_logits(TEXTS)
    backend = load_runtime(name, exported, max_length=64, batch_size=4, threads=2, streams=2, tokenizer=tokenizer)
    logits = backend.predict_logits(TEXTS)
    assert logits.shape == reference.shape
    assert np.abs(logits - reference).max() < TOLERANCE.get(name, ROUNDED)


def test_exports_are_the_runtimes_files(exported):
    assert set(carried_runtimes(exported)) >= {*KEPT, "onnx-fp32", "onnx-qdq-int8"}
    assert not list(Path.cwd().glob("sym_shape_infer_temp*"))  # nothing left in the current folder
    assert runtime_files("openvino-int8") == ["openvino/model.int8.xml", "openvino/model.int8.bin"]
    assert runtime_files("onnx") == ["onnx/model.int8.onnx"]  # bundles written before runtimes.py
    assert runtime_files("torch") == []
    with pytest.raises(RuntimeUnavailable, match="unknown runtime"):
        runtime_files("tensorrt")


def _check_inputs(tiny):
    root, model, tokenizer = tiny
    anns = seed_subset(12)[:40]
    texts, targets = texts_and_targets(anns, project_settings().labels)
    labels = tuple(project_settings().labels)
    decision = Decision(labels, {n: (1.0, 0.0) for n in labels}, {n: 0.5 for n in labels})
    return model, tokenizer, texts, targets, [a.source for a in anns], decision


def _choose(tiny, tmp_path, settings, candidates):
    """choose_runtime on the tiny model, checked on its own statements."""
    model, tokenizer, texts, targets, groups, decision = _check_inputs(tiny)
    return choose_runtime(
        model, tokenizer, tmp_path, texts, targets, groups, decision, settings, texts[:8], candidates=candidates
    )


def test_choice_is_the_first_passing_candidate_and_skips_failures(tiny, tmp_path):
    choice = _choose(tiny, tmp_path, _settings(), ["no-such-runtime", "openvino-fp32", "onnx-fp32"])
    assert choice.chosen == "openvino-fp32"  # the first that passes, although onnx-fp32 passes too
    assert list(choice.candidates) == ["no-such-runtime", "openvino-fp32", "onnx-fp32"]
    assert (
        not choice.candidates["no-such-runtime"]["ok"]
        and "unknown runtime" in choice.candidates["no-such-runtime"]["verdict"]
    )
    assert choice.candidates["openvino-fp32"]["ok"] and choice.candidates["onnx-fp32"]["ok"]
    assert choice.candidates["openvino-fp32"]["decision_agreement"] == 1.0
    assert "faster but failed: no-such-runtime" in choice.reason
    assert sorted(choice.files) == sorted(runtime_files("openvino-fp32"))
    assert all(path.is_file() for path in choice.files.values())


def test_no_passing_candidate_means_fp32_torch(tiny, tmp_path):
    # "drops by less than 0": every candidate fails on purpose
    choice = _choose(tiny, tmp_path, _settings(int8_max_macro_f1_drop=0.0), ["openvino-fp32"])
    assert choice.chosen == "torch" and choice.files == {}
    assert not choice.candidates["openvino-fp32"]["ok"]
    assert choice.reason.startswith("fp32 torch serves")


def _trained_like(tiny, tmp_path):
    """The tiny bundle as a registry entry with a real training config (holdout split)."""
    import shutil

    root = tmp_path / "models" / "vtiny"
    shutil.copytree(tiny[0], root)
    training = project_settings().training.model_dump()
    (root / "training_config.yaml").write_text(yaml.safe_dump({"training": training}))
    write_manifest(root)
    return root


def test_upgrade_writes_a_new_version_carrying_the_chosen_runtime(tiny, tmp_path):
    source = _trained_like(tiny, tmp_path)
    before = (source / "manifest.json").read_text()
    anns = seed_subset(60)
    path, choice = upgrade_runtimes(source, anns, _settings(runtimes=("openvino-fp32",)), version="vtiny-rt")
    assert path == source.parent / "vtiny-rt" and Registry(source.parent).versions() == ["vtiny", "vtiny-rt"]
    verify_manifest(path)
    assert (source / "manifest.json").read_text() == before  # the source bundle is untouched
    meta = read_meta(path)
    assert meta["default_backend"] == choice.chosen == "openvino-fp32" and meta["derived_from"] == "vtest-tiny"
    assert meta["runtimes"]["carried"] == sorted(runtime_files("openvino-fp32"))
    assert carried_runtimes(path) == ["torch", "openvino-fp32", "openvino-bf16"]  # same IR, two precisions
    metrics = json.loads((path / "metrics.json").read_text())
    verdict = metrics["runtimes"]["candidates"]["openvino-fp32"]
    cfg = project_settings().training
    _, held = split_holdout(anns, cfg.holdout_fraction, cfg.holdout_salt)  # the split training made
    assert held and verdict["n"] == len(held) and verdict["on"] == f"{len(held)} held-out statements"
    assert load_bundle(path, _settings().inference).backend_name == "openvino-fp32"


def test_upgrade_refuses_data_without_the_bundles_held_out_documents(tiny, tmp_path):
    source = _trained_like(tiny, tmp_path)
    metrics = json.loads((source / "metrics.json").read_text())
    metrics["holdout"] = {"sources": ["a-document-that-is-not-in-the-data"]}
    (source / "metrics.json").write_text(json.dumps(metrics))
    write_manifest(source)
    with pytest.raises(BundleError, match="held-out documents of the bundle are not in the annotation data"):
        upgrade_runtimes(source, seed_subset(20), _settings(runtimes=("openvino-fp32",)))


def test_a_requested_runtime_the_bundle_lacks_is_a_clear_error(tiny):
    with pytest.raises(BundleError, match="openvino-int8.*lacks"):
        load_bundle(tiny[0], _settings().inference, backend="openvino-int8")
    assert load_bundle(tiny[0], _settings().inference).backend_name == "torch"


def test_export_runtimes_cli_refuses_a_folder_that_is_no_bundle(tmp_path):
    from typer.testing import CliRunner

    from training.cli import build_app

    result = CliRunner().invoke(build_app(), ["--root", str(PROJECT), "export-runtimes", "--bundle", str(tmp_path)])
    assert result.exit_code == 2 and "not a bundle folder (no bundle.json)" in result.output
