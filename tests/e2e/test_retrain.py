"""End to end through `stance serve` in a subprocess: post annotations, retrain (tiny base
model, real `stance train`), the gate decides, the service hot-swaps while classify
requests keep flowing with zero errors; a restart comes back with the promoted version."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter

import httpx

from tests.support.admin import (
    AUTH,
    SEED_FILE,
    LiveServer,
    seed_dir,
    serve_command,
    tiny_base_model,
    tiny_bundle,
    write_config,
)
from training.registry import Registry

JOB_TIMEOUT_S = 600
BATCH3 = SEED_FILE.parent / "annotations_batch3.jsonl"


def test_annotate_retrain_gate_hot_swap(tmp_path):
    base = tiny_base_model(tmp_path / "tiny-base")
    seed_dir(tmp_path / "seeds", 181)
    cfg = write_config(tmp_path, base_model=base)
    models = tmp_path / "models"
    # the current model says no to everything (held-out macro-F1 0): a trained model is not worse
    tiny_bundle(models, "v0-start", threshold=0.999)
    Registry(models).set_current("v0-start", "test start")

    with LiveServer(cfg, command=serve_command(cfg), ready_path="/readyz") as server:
        http = httpx.Client(base_url=server.url, timeout=60)
        # analysts add a batch (new documents) through the API
        new = [json.loads(line) for line in BATCH3.read_text().splitlines()[:60]]
        r = http.post(
            "/v1/annotations", json={"annotations": new, "batch": "week-25", "annotator": "maria"}, headers=AUTH
        )
        assert r.status_code == 201, r.text
        assert r.json()["created"] == 60

        # clients keep classifying during training and the swap
        stop = threading.Event()
        seen: Counter[str] = Counter()
        errors: list[str] = []

        def client_loop() -> None:
            with httpx.Client(base_url=server.url, timeout=60) as c:
                while not stop.is_set():
                    try:
                        resp = c.post(
                            "/v1/classify", json={"texts": ["Invite Ukraine now.", "Guarantees until it joins."]}
                        )
                        if resp.status_code == 200:
                            seen[resp.json()["model_version"]] += 1
                        else:
                            errors.append(f"{resp.status_code}: {resp.text[:200]}")
                    except httpx.HTTPError as exc:
                        errors.append(repr(exc))

        clients = [threading.Thread(target=client_loop) for _ in range(3)]
        for t in clients:
            t.start()
        try:
            job = http.post("/v1/retrain", json={}, headers=AUTH)
            assert job.status_code == 202, job.text
            job_id = job.json()["id"]
            assert job.json()["n_annotations"] == 181 + 60
            deadline = time.monotonic() + JOB_TIMEOUT_S
            state = job.json()
            while state["state"] in ("queued", "running", "judging") and time.monotonic() < deadline:
                time.sleep(0.5)
                state = http.get(f"/v1/jobs/{job_id}").json()
            # keep the clients going a little after the swap
            settle = time.monotonic() + 2
            while time.monotonic() < settle:
                time.sleep(0.1)
        finally:
            stop.set()
            for t in clients:
                t.join()

        assert state["state"] == "succeeded", json.dumps(state, indent=1)[:4000]
        version = state["version"]
        gate = state["gate"]
        assert gate["promote"] and gate["candidate_score"] >= gate["current_score"] - gate["tolerance"]
        assert gate["current_version"] == "v0-start" and gate["n_heldout"] > 0
        listing = http.get("/v1/models").json()
        assert listing["current"] == version
        assert {m["version"]: m["status"] for m in listing["models"]}[version] == "promoted"
        after = http.post("/v1/classify", json={"text": "Ukraine should join after the war."}).json()
        assert after["model_version"] == version
        assert errors == []
        assert seen["v0-start"] > 0 and seen[version] > 0  # requests ran on both sides of the swap

        # roll back over the API: the service swaps back
        back = http.post("/v1/models/rollback", headers=AUTH)
        assert back.status_code == 200 and back.json()["current"] == "v0-start"
        assert http.post("/v1/classify", json={"text": "x y z"}).json()["model_version"] == "v0-start"
        assert http.post(f"/v1/models/{version}/promote", headers=AUTH).status_code == 200

    # a restarted service comes back with the promoted version and the job's record
    with LiveServer(cfg, command=serve_command(cfg), ready_path="/readyz") as again:
        assert httpx.post(again.url + "/v1/classify", json={"text": "x y z"}).json()["model_version"] == version
        assert httpx.get(f"{again.url}/v1/jobs/{job_id}").json()["state"] == "succeeded"
        assert httpx.get(again.url + "/v1/annotations", params={"batch": "week-25"}).json()["total"] == 60
