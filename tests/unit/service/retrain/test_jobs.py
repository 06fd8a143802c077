"""Retraining jobs with a stand-in trainer (tests/support/fake_trainer.py): gate outcomes,
crashes, kills, half-written bundles, one job at a time, and recovery after a restart."""

from __future__ import annotations

import os
import signal
import time

import pytest
from fastapi.testclient import TestClient

from service.settings import load_service_settings
from tests.support.admin import AUTH, FakeScorer, make_app, seed_dir, tiny_bundle, write_config
from training.registry import Registry

WAIT_S = 120


@pytest.fixture
def settings(tmp_path):
    seed_dir(tmp_path / "seeds", 181)
    s = load_service_settings(write_config(tmp_path, jobs={"train_module": "tests.support.fake_trainer"}))
    tiny_bundle(s.paths.models_dir, "v-current", threshold=0.5)
    Registry(s.paths.models_dir).set_current("v-current", "test setup")
    return s


def manager(settings):
    from service.retrain.jobs import JobManager
    from service.retrain.promotion import ModelAdmin
    from service.store.repository import AnnotationStore

    scorer = FakeScorer()
    admin = ModelAdmin(settings, scorer=lambda: scorer)
    store = AnnotationStore(settings)
    store.ensure_seeds()
    return JobManager(settings, admin, store), scorer


def _wait_state(jobs, job_id, states, timeout=WAIT_S):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = jobs.get(job_id)
        if job["state"] in states:
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} stuck in {jobs.get(job_id)['state']}")


def test_better_model_is_promoted_and_swapped(settings, monkeypatch):
    monkeypatch.setenv("FAKE_TRAIN_MODE", "ok")  # a bundle that says yes to every label
    tiny_bundle(settings.paths.models_dir, "v-mute", threshold=0.999)
    Registry(settings.paths.models_dir).set_current("v-mute", "a model that predicts nothing")
    jobs, scorer = manager(settings)
    job = jobs.wait(jobs.start()["id"], WAIT_S)
    assert job["state"] == "succeeded", job
    assert job["gate"]["promote"] and job["gate"]["candidate_score"] > job["gate"]["current_score"]
    assert Registry(settings.paths.models_dir).current() == job["version"] == scorer.version
    listing = {m["version"]: m for m in jobs.admin.list()["models"]}
    assert listing[job["version"]]["status"] == "promoted" and listing[job["version"]]["current"]
    assert job["n_annotations"] == 181


def test_worse_model_is_kept_as_rejected_candidate(settings, monkeypatch):
    monkeypatch.setenv("FAKE_TRAIN_MODE", "bad")  # says no to everything: macro-F1 0
    tiny_bundle(settings.paths.models_dir, "v-eager", threshold=0.001)
    Registry(settings.paths.models_dir).set_current("v-eager", "a model that predicts everything")
    jobs, scorer = manager(settings)
    job = jobs.wait(jobs.start()["id"], WAIT_S)
    assert job["state"] == "rejected", job
    assert not job["gate"]["promote"] and "kept as a candidate" in job["gate"]["reason"]
    assert Registry(settings.paths.models_dir).current() == "v-eager" and scorer.swaps == []
    listing = {m["version"]: m for m in jobs.admin.list()["models"]}
    assert listing[job["version"]]["status"] == "rejected"
    assert "kept as a candidate" in listing[job["version"]]["reason"]


def test_crash_marks_failed_with_log(settings, monkeypatch):
    monkeypatch.setenv("FAKE_TRAIN_MODE", "crash")
    jobs, scorer = manager(settings)
    job = jobs.wait(jobs.start()["id"], WAIT_S)
    assert job["state"] == "failed" and job["exit_code"] == 3
    assert "fake crash in training" in job["error"] and "exited with code 3" in job["error"]
    assert any("fake crash" in line for line in job["log_tail"])
    assert Registry(settings.paths.models_dir).current() == "v-current" and scorer.swaps == []


def test_killed_training_marks_failed_and_leaves_no_bundle(settings, monkeypatch):
    monkeypatch.setenv("FAKE_TRAIN_MODE", "partial")  # half-written bundle folder, then SIGKILL
    jobs, _ = manager(settings)
    job = jobs.wait(jobs.start()["id"], WAIT_S)
    assert job["state"] == "failed" and "signal 9" in job["error"]
    registry = Registry(settings.paths.models_dir)
    assert registry.versions() == ["v-current"] and registry.current() == "v-current"


def test_one_job_at_a_time_then_kill_and_cancel(settings, monkeypatch):
    monkeypatch.setenv("FAKE_TRAIN_MODE", "hang")
    app = make_app(settings.with_overrides(jobs={"train_module": "tests.support.fake_trainer"}))
    with TestClient(app) as client:
        r = client.post("/v1/retrain", json={"config": "fast"}, headers=AUTH)
        assert r.status_code == 202, r.text
        job_id = r.json()["id"]
        assert r.json()["config"] == "fast"
        busy = client.post("/v1/retrain", headers=AUTH)
        assert busy.status_code == 409 and busy.json()["active_job"] == job_id
        assert busy.json()["error"] == "conflict" and job_id in busy.json()["detail"]
        assert client.post("/v1/retrain", json={"config": "../etc"}, headers=AUTH).status_code in (409, 422)
        jobs = app.state.jobs
        running = _wait_state(jobs, job_id, {"running"})
        deadline = time.monotonic() + WAIT_S
        while (
            not (client.get(f"/v1/jobs/{job_id}").json()["progress"] or {}).get("step") and time.monotonic() < deadline
        ):
            time.sleep(0.1)
        shown = client.get(f"/v1/jobs/{job_id}").json()
        assert shown["progress"]["phase"] == "final model" and shown["progress"]["phases"] == 2
        assert 0 < shown["progress"]["percent"] < 100 and shown["progress"]["state"] == "running"
        assert "epoch 1" in shown["log_last_line"]
        os.kill(running["pid"], signal.SIGKILL)  # the training dies
        failed = _wait_state(jobs, job_id, {"failed"})
        assert "signal 9" in failed["error"] and "epoch 1" in failed["error"]
        # the slot is free again; a new job can be cancelled
        second = client.post("/v1/retrain", headers=AUTH).json()["id"]
        _wait_state(jobs, second, {"running"})
        cancelled = client.post(f"/v1/jobs/{second}/cancel", headers=AUTH)
        assert cancelled.status_code == 200
        assert _wait_state(jobs, second, {"cancelled"})["state"] == "cancelled"
        assert Registry(settings.paths.models_dir).current() == "v-current"


def test_unknown_config_is_refused(settings):
    from service.retrain.configs import ConfigNotFound

    jobs, _ = manager(settings)
    with pytest.raises(ConfigNotFound):
        jobs.start("../../etc/passwd")
    assert jobs.list(10) == []


def test_restart_adopts_running_job_and_fails_it_when_its_process_dies(settings, monkeypatch):
    monkeypatch.setenv("FAKE_TRAIN_MODE", "hang")
    first, _ = manager(settings)
    job_id = first.start()["id"]
    pid = _wait_state(first, job_id, {"running"})["pid"]
    first.shutdown()  # the service stops; the training keeps running
    assert first.get(job_id)["state"] == "running"
    second, _ = manager(settings)  # the restarted service
    assert second.recover() == [job_id]
    os.kill(pid, signal.SIGKILL)
    job = _wait_state(second, job_id, {"failed"})
    assert "without a result" in job["error"]


def test_restart_judges_a_job_that_finished_while_down(settings, monkeypatch):
    monkeypatch.setenv("FAKE_TRAIN_MODE", "ok")
    first, _ = manager(settings)
    first._follow = lambda job_id: None  # the service "dies" right after launching training
    job_id = first.start()["id"]
    proc = first._procs[job_id]
    proc.wait(WAIT_S)
    second, scorer = manager(settings)
    second.recover()
    job = _wait_state(second, job_id, {"succeeded", "rejected"})
    assert job["version"] and job["gate"] is not None


def test_snapshot_is_checked_against_the_jobs_own_labels(tmp_path, monkeypatch):
    """A configs/<name>.yaml that changes the label schema: the job's snapshot is validated
    against the labels the job trained with, not the service's."""
    import shutil

    import yaml

    from tests.support import PROJECT

    root = tmp_path / "root"
    (root / "configs").mkdir(parents=True)
    shutil.copy(PROJECT / "configs" / "default.yaml", root / "configs" / "default.yaml")
    service = load_service_settings(
        write_config(tmp_path, jobs={"train_module": "tests.support.fake_trainer"}), root=root
    )
    narrower = [name for name in service.labels if name != "opposition"]
    (root / "configs" / "narrow.yaml").write_text(yaml.safe_dump({"labels": narrower}))
    seed_dir(tmp_path / "seeds", 181)
    monkeypatch.setenv("PYTHONPATH", str(PROJECT))  # the stand-in trainer runs in the job's root
    monkeypatch.setenv("FAKE_TRAIN_MODE", "ok")
    jobs, _ = manager(service)
    job = jobs.wait(jobs.start("narrow")["id"], WAIT_S)
    assert job["state"] == "failed", job
    assert "unknown label" in job["error"] and "opposition" in job["error"]
