"""The label audit: planted label errors in the real annotations surface near the top; the
CLI and the API report the ranking without changing anything."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np

from tests.support import PROJECT, project_settings
from training.audit import label_studio_tasks, rank_suspects, tfidf_out_of_fold
from training.train import load_training_data

PLANTED = 20
TOP = 100
MIN_FOUND = 10  # measured 13 of 20 in the top 100 with TF-IDF scores (README, "Label audit")


def _plant_flips(annotations, labels, n, seed):
    rng = np.random.default_rng(seed)
    picked = rng.choice(len(annotations), n, replace=False)
    out = list(annotations)
    for i in picked:
        flip = labels[rng.integers(len(labels))]
        out[i] = replace(out[i], labels=tuple(x for x in labels if (x in out[i].labels) != (x == flip)))
    return out, {out[i].text for i in picked}


def test_planted_label_errors_rank_near_the_top():
    settings = project_settings()
    labels = list(settings.labels)
    annotations, _ = load_training_data(settings)
    flipped, planted = _plant_flips(annotations, labels, PLANTED, seed=7)
    probs = tfidf_out_of_fold(flipped, labels, n_folds=5, seed=13)
    suspects = rank_suspects(flipped, probs, labels, [0.5] * len(labels))
    found = sum(s.text in planted for s in suspects[:TOP])
    assert found >= MIN_FOUND, f"only {found} of {PLANTED} planted errors in the top {TOP}"
    assert [s.rank for s in suspects] == list(range(1, len(flipped) + 1))
    assert all(a.quality <= b.quality for a, b in zip(suspects, suspects[1:]))


def test_label_studio_tasks_carry_current_and_suggested_labels():
    settings = project_settings()
    labels = list(settings.labels)
    annotations, _ = load_training_data(settings)
    few = annotations[:40]
    probs = np.tile(np.array([[0.9, 0.1, 0.1, 0.1]], dtype=np.float32), (len(few), 1))
    tasks = label_studio_tasks(rank_suspects(few, probs, labels, [0.5] * 4), "vX")
    assert len(tasks) == len(few)
    first = tasks[0]
    assert first["data"]["text"] and first["data"]["current_labels"]
    assert first["predictions"][0]["result"][0]["value"]["choices"] == ["fast_track_membership"]
    assert first["predictions"][0]["model_version"] == "vX"


def test_audit_api_explains_when_the_model_has_no_out_of_fold_scores(client):
    # the tiny test bundles were not trained with CV: a clear 409, not a 500
    r = client.get("/v1/annotations/audit")
    assert r.status_code == 409 and "out-of-fold" in r.text
    assert client.get("/v1/annotations/audit", params={"format": "xml"}).status_code == 422


def test_audit_cli_writes_the_ranking_and_label_studio_tasks(tmp_path):
    import os
    import subprocess
    import sys

    from tests.support.tiny import write_config

    seeds = tmp_path / "seeds"
    seeds.mkdir()
    settings = project_settings()
    annotations, _ = load_training_data(settings)
    sources = sorted({a.source for a in annotations})[:30]
    (seeds / "few.jsonl").write_text(
        "".join(json.dumps(a.to_json()) + "\n" for a in annotations if a.source in sources)
    )
    cfg = write_config(
        tmp_path / "cfg.yaml",
        paths={"annotations_dir": seeds, "data_dir": tmp_path / "data", "models_dir": tmp_path / "models"},
    )
    out, ls = tmp_path / "audit.jsonl", tmp_path / "tasks.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "service.cli.main",
            "annotations",
            "audit",
            "--config",
            str(cfg),
            "--scores",
            "tfidf",
            "--limit",
            "5",
            "-o",
            str(out),
            "--label-studio",
            str(ls),
        ],
        capture_output=True,
        text=True,
        env={**os.environ},
        timeout=600,
        cwd=PROJECT,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == sum(a.source in sources for a in annotations) and rows[0]["rank"] == 1
    assert len(done.stdout.strip().splitlines()) == 5
    assert len(json.loads(ls.read_text())) == len(rows)
    missing = subprocess.run(
        [sys.executable, "-m", "service.cli.main", "annotations", "audit", "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=PROJECT,
    )
    assert missing.returncode == 1 and "scores=tfidf" in missing.stderr and "Traceback" not in missing.stderr
