"""The annotation store behind a live server: durability after SIGKILL and concurrent writes
over HTTP lose and duplicate nothing."""

from __future__ import annotations

import threading

import httpx

from tests.support.admin import AUTH, LiveServer, write_config


def _records(prefix: str, n: int) -> list[dict]:
    return [
        {
            "text": f"{prefix} statement number {i} about security guarantees.",
            "labels": ["interim_guarantees"],
            "source": f"{prefix}-doc",
        }
        for i in range(n)
    ]


def test_writes_acknowledged_survive_sigkill(tmp_path):
    cfg = write_config(tmp_path)
    server = LiveServer(cfg)
    try:
        r = httpx.post(
            server.url + "/v1/annotations", headers=AUTH, json={"annotations": _records("durable", 5), "batch": "dur"}
        )
        assert r.status_code == 201
        ids = r.json()["ids"]
    finally:
        server.kill()  # SIGKILL right after the 2xx: no shutdown hook runs
    with LiveServer(cfg) as again:
        got = httpx.get(again.url + "/v1/annotations", params={"batch": "dur"}).json()
    assert sorted(i["id"] for i in got["items"]) == sorted(ids)
    assert got["total"] == 5


def test_concurrent_writes_lose_and_duplicate_nothing(tmp_path):
    """8 clients x 40 requests, every request sent twice (a retry), plus shared statements
    that every client posts: exactly the distinct records end up stored."""
    cfg = write_config(tmp_path)
    clients, per_client = 8, 40
    errors: list[str] = []
    shared = _records("shared", 5)

    def work(c: int, url: str) -> None:
        with httpx.Client(base_url=url, headers=AUTH, timeout=60) as http:
            for i in range(per_client):
                body = {
                    "annotations": [_records(f"c{c}-r{i}", 1)[0], shared[i % len(shared)]],
                    "batch": "load",
                    "annotator": f"client{c}",
                }
                for _attempt in range(2):
                    r = http.post("/v1/annotations", json=body)
                    if r.status_code != 201:
                        errors.append(f"{r.status_code} {r.text[:200]}")

    with LiveServer(cfg) as server:
        threads = [threading.Thread(target=work, args=(c, server.url)) for c in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        stats = httpx.get(server.url + "/v1/annotations/stats").json()
        history = httpx.get(
            server.url + "/v1/annotations", params={"view": "history", "batch": "load", "page_size": 1000}
        ).json()
    assert errors == []
    assert stats["statements"] == clients * per_client + len(shared)
    # each client annotated each shared statement once; retries added nothing
    assert history["total"] == clients * per_client + clients * len(shared)
    assert len({i["id"] for i in history["items"]}) == history["total"]
