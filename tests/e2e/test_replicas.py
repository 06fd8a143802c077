"""Two `stance serve` replicas on one PostgreSQL and one registry folder behave as one
service (docs/REPLICAS.md): a promotion or rollback through either is served by both within
seconds; one retrain at a time across replicas; a job survives the death of the replica
that started it (the other takes it over and finishes it), and a job whose training died
with its replica is failed with the reason. Real server processes on loopback, a temporary
PostgreSQL (the `pg_url` fixture), the stand-in trainer (tests/support/fake_trainer.py)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.support.admin import AUTH, LiveServer, seed_dir, serve_command, tiny_bundle, write_config
from training.registry import Registry

SWAP_S = 10.0  # "within a few seconds": watch interval 0.5 s, plus loading a tiny bundle
TAKEOVER_S = 60.0  # lease 3 s, heartbeat 0.5 s, then the gate on a slow shared machine
DONE = {"succeeded", "rejected", "failed", "cancelled"}


def _until(probe: Callable[[], Any], timeout: float, what: str, took: dict[str, float] | None = None) -> Any:
    """Poll `probe` until truthy; record the wait under `what` in `took` (printed at the end)."""
    start = time.monotonic()
    while time.monotonic() < start + timeout:
        value = probe()
        if value:
            if took is not None:
                took[what] = time.monotonic() - start
            return value
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout:g} s: {what}")


def _version(server: LiveServer) -> str:
    return httpx.get(server.url + "/v1/model", timeout=10).json()["version"]


def _job(server: LiveServer, job_id: str) -> dict[str, Any]:
    r = httpx.get(f"{server.url}/v1/jobs/{job_id}", timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def _post(server: LiveServer, path: str) -> httpx.Response:
    return httpx.post(server.url + path, headers=AUTH, timeout=60)


def test_two_replicas_behave_as_one(tmp_path: Path, pg_url: str) -> None:
    seed_dir(tmp_path / "seeds", 181)
    models = tmp_path / "models"
    tiny_bundle(models, "v0-start", threshold=0.999)  # predicts nothing: a trained model passes the gate
    tiny_bundle(models, "v1-manual", threshold=0.5, seed=1)
    Registry(models).set_current("v0-start", "test start")
    cfg = write_config(
        tmp_path,
        jobs={"train_module": "tests.support.fake_trainer", "heartbeat_s": 0.5, "lease_s": 3.0},
        store={"url": pg_url},
        monitor={"poller": False},
    )
    release = tmp_path / "release-training"  # the stand-in trainer finishes once this exists
    env = {"FAKE_TRAIN_MODE": "wait", "FAKE_TRAIN_RELEASE": str(release), "STANCE_API_TOKEN": ""}
    servers: list[LiveServer] = []
    took: dict[str, float] = {}

    def replica(name: str) -> LiveServer:
        server = LiveServer(cfg, serve_command(cfg), "/readyz", tmp_path / f"{name}.log", env)
        servers.append(server)
        return server

    try:
        a, b = replica("a"), replica("b")

        # 1. a promotion through A and a rollback through B are served by both
        assert _post(a, "/v1/models/v1-manual/promote").status_code == 200
        _until(lambda: _version(b) == "v1-manual", SWAP_S, "B serves the version promoted through A", took)
        assert _post(b, "/v1/models/rollback").json()["current"] == "v0-start"
        _until(lambda: _version(a) == "v0-start", SWAP_S, "A serves the version B rolled back to", took)

        # 2. one retrain at a time across replicas: B refuses while A's job runs
        started = _post(a, "/v1/retrain")
        assert started.status_code == 202, started.text
        job_id = started.json()["id"]
        busy = _post(b, "/v1/retrain")
        assert busy.status_code == 409 and busy.json()["active_job"] == job_id, busy.text
        assert job_id in busy.json()["detail"]
        running = _until(lambda: (j := _job(b, job_id))["state"] == "running" and j["pid"] and j, 30, "job running")

        # 3. A dies mid-job; B answers for the job, takes it over after the lease expires,
        # judges and promotes its result; A restarted serves it too
        a.kill()
        assert _job(b, job_id)["state"] == "running"
        b_log = tmp_path / "b.log"
        _until(lambda: f"job {job_id}: taking over" in b_log.read_text(), TAKEOVER_S, "B takes A's job over", took)
        assert _job(b, job_id)["state"] == "running"  # adopted: the training (waiting) still runs
        release.touch()
        finished = "B judges and promotes the adopted job once its training ends"
        done = _until(lambda: (j := _job(b, job_id))["state"] in DONE and j, TAKEOVER_S, finished, took)
        assert done["state"] == "succeeded" and done["version"], done
        _until(lambda: _version(b) == done["version"], SWAP_S, "B serves the trained version")
        a = replica("a-restarted")
        assert _version(a) == done["version"]
        assert _job(a, job_id)["state"] == "succeeded"
        assert running["pid"] == done["pid"]

        # a job whose training dies with its replica is failed, with the reason
        release.unlink()
        second = _post(a, "/v1/retrain").json()["id"]
        pid = _until(lambda: _job(a, second)["pid"], 30, "second job running")
        a.kill()
        os.killpg(pid, signal.SIGKILL)  # the training ran in its own process group
        gone = "B fails the job whose training died with A"
        failed = _until(lambda: (j := _job(b, second))["state"] in DONE and j, TAKEOVER_S, gone, took)
        assert failed["state"] == "failed", failed
        assert "stopped (its lease expired" in failed["error"] and "without a result" in failed["error"]
        again = _post(b, "/v1/retrain")  # the slot is free again
        assert again.status_code == 202, again.text
        assert _post(b, f"/v1/jobs/{again.json()['id']}/cancel").status_code == 200
        print("replica timings (s):", {k: round(v, 2) for k, v in took.items()})  # shown with -s
    finally:
        release.touch()  # a waiting stand-in trainer ends
        for server in servers:
            server.stop()
