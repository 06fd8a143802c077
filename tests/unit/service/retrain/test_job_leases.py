"""Job leases across service replicas (service/retrain/leases.py, service/jobs.py), on
SQLite: a live replica's job is left alone, a dead replica's job is taken over (adopted,
then failed with the reason when its training dies), a cancel through another replica
sticks, and a re-scoring job of a live replica survives another replica's start-up."""

from __future__ import annotations

import os
import signal
import time
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from service.settings import load_service_settings
from service.store.engine import Database
from service.store.tables import Job
from tests.support.admin import seed_dir, tiny_bundle, write_config
from tests.unit.service.retrain.test_jobs import WAIT_S, _wait_state, manager
from training.registry import Registry

LEASE_S = 2.0  # tests/support/admin.py write_config: heartbeat 0.5 s


@pytest.fixture
def settings(tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_TRAIN_MODE", "hang")
    seed_dir(tmp_path / "seeds", 40)
    s = load_service_settings(write_config(tmp_path, jobs={"train_module": "tests.support.fake_trainer"}))
    tiny_bundle(s.paths.models_dir, "v-current", threshold=0.5)
    Registry(s.paths.models_dir).set_current("v-current", "test setup")
    assert s.jobs.lease_s == LEASE_S
    return s


def _db(tmp_path) -> Database:
    from service.retrain import leases

    db = Database(f"sqlite:///{tmp_path / 'leases.db'}", 5000)
    leases.ensure_table(db)
    return db


def _add_job(db: Database, job_id: str, slot: int = 1) -> None:
    with db.write() as s:
        s.add(Job(id=job_id, state="running", active=slot, config="x", job_dir="/nonexistent"))


def test_a_lease_is_taken_only_after_it_expires(tmp_path):
    from service.retrain import leases

    db = _db(tmp_path)
    _add_job(db, "j1")
    with db.write() as s:
        leases.add_lease(s, "j1", "replica-a", ttl_s=0.5)
    assert leases.take_orphans(db, 1, "replica-b", ttl_s=5) == []
    assert leases.renew(db, ["j1"], "replica-a", ttl_s=0.5) == set()
    time.sleep(0.7)
    taken = leases.take_orphans(db, 1, "replica-b", ttl_s=5)
    assert [(t.job_id, t.previous) for t in taken] == [("j1", "replica-a")]
    assert "replica-a" in taken[0].describe() and "expired" in taken[0].describe()
    assert leases.renew(db, ["j1"], "replica-a", ttl_s=5) == {"j1"}  # A lost it to B
    assert leases.take_orphans(db, 1, "replica-c", ttl_s=5) == []  # B holds it now
    assert leases.holder_of(db, "j1") == "replica-b"
    leases.release(db, ["j1"], "replica-b", drop=True)
    assert leases.holder_of(db, "j1") is None


def test_an_active_job_without_a_lease_is_taken_over(tmp_path):
    """A job row left by a version without leases (or a lost row) counts as orphaned."""
    from service.retrain import leases

    db = _db(tmp_path)
    _add_job(db, "old")
    _add_job(db, "scoring", slot=2)
    taken = leases.take_orphans(db, 1, "replica-b", ttl_s=5)
    assert [(t.job_id, t.previous) for t in taken] == [("old", None)]
    assert "no lease" in taken[0].describe()


def test_a_live_replicas_job_is_left_alone_and_taken_over_when_it_dies(settings):
    first, _ = manager(settings)
    job_id = first.start()["id"]
    pid = _wait_state(first, job_id, {"running"})["pid"]
    second, _ = manager(settings)
    assert second.recover() == []  # first keeps beating: not an orphan
    time.sleep(LEASE_S * 1.5)
    assert second.recover() == [] and first.get(job_id)["state"] == "running"
    first._stop.set()  # first "dies": no heartbeat, no clean release
    deadline = time.monotonic() + WAIT_S
    while job_id not in second._takeovers and time.monotonic() < deadline:
        time.sleep(0.1)  # second's heartbeat thread takes it over after the lease expires
    assert job_id in second._takeovers
    assert second.get(job_id)["state"] == "running"  # adopted: the training still runs
    os.kill(pid, signal.SIGKILL)
    failed = _wait_state(second, job_id, {"failed"})
    assert "stopped (its lease expired" in failed["error"] and "without a result" in failed["error"]
    assert first.holder in failed["error"]
    second.shutdown()


def test_a_cancel_through_another_replica_sticks(settings):
    first, _ = manager(settings)
    job_id = first.start()["id"]
    pid = _wait_state(first, job_id, {"running"})["pid"]
    second, _ = manager(settings)
    assert second.cancel(job_id)["state"] == "cancelled"
    job = first.wait(job_id, WAIT_S)  # first's monitor sees the cancel and stops following
    assert job["state"] == "cancelled", job
    from service.retrain.process import alive as _alive

    deadline = time.monotonic() + WAIT_S
    while _alive(pid, None) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(pid, None)  # the training was stopped (same host: killed by the cancel)
    first.shutdown()
    second.shutdown()


def test_a_live_replicas_rescore_survives_another_replicas_start(settings):
    from service.monitor.rescore import ACTIVE_SLOT, Rescorer
    from service.monitor.wiring import ensure_tables
    from service.store.engine import open_database

    db = open_database(settings)
    ensure_tables(db)
    model = SimpleNamespace(version="v-current")
    running = Rescorer(settings, db, model)  # type: ignore[arg-type]
    running._insert("r-live", "/nonexistent")
    Rescorer(settings, db, model).recover()  # type: ignore[arg-type]  # another replica starts
    with db.read() as s:
        assert s.get(Job, "r-live").active == ACTIVE_SLOT
    time.sleep(LEASE_S * 1.2)  # the running replica died (no renewal): its job is failed
    Rescorer(settings, db, model).recover()  # type: ignore[arg-type]
    with db.read() as s:
        job = s.get(Job, "r-live")
    assert job.state == "failed" and job.active is None and "lease expired" in job.error
    assert job.finished_at is not None and job.finished_at.replace(tzinfo=UTC) <= datetime.now(UTC)
