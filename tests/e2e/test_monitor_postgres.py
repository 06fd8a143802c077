"""The monitoring flow on PostgreSQL: poll, dedup, trends, review, re-score. On a temporary
server started by the `postgres` fixture (tests/conftest.py), or on STANCE_TEST_PG_URL when
set (an empty scratch database, e.g. postgresql+psycopg://postgres@127.0.0.1:5433/stance_test;
its tables are dropped after)."""

from __future__ import annotations

import shutil
import time

from fastapi.testclient import TestClient

from tests.support import project_settings
from tests.support.monitor import AUTH, TOKEN, FeedServer


def test_monitoring_on_postgres(tiny_registry, tmp_path, monkeypatch, pg_url):
    from service.app import create_app
    from service.store.tables import Base

    monkeypatch.delenv("STANCE_API_TOKEN", raising=False)
    shutil.copytree(tiny_registry, tmp_path / "models")
    (tmp_path / "seeds").mkdir()
    settings = project_settings().with_overrides(
        paths={"models_dir": tmp_path / "models", "data_dir": tmp_path / "data", "annotations_dir": tmp_path / "seeds"},
        store={"url": pg_url},
        auth={"token": TOKEN},
        monitor={"poller": False},
        jobs={"watch_registry_s": 0},
    )
    server = FeedServer().start()
    server.serve_file("/wire.xml", "wire_v1.xml")
    app = create_app(settings)
    try:
        with TestClient(app) as c:
            feed = c.post(
                "/v1/feeds", json={"name": "wire", "outlet": "Wire", "url": server.url("/wire.xml")}, headers=AUTH
            ).json()
            assert c.post(f"/v1/feeds/{feed['id']}/poll", headers=AUTH).json()["new"] == 3
            server.serve_file("/wire.xml", "wire_v2.xml")
            second = c.post(f"/v1/feeds/{feed['id']}/poll", headers=AUTH).json()
            assert (second["new"], second["seen"], second["failed"]) == (2, 2, 1)
            rows = c.get("/v1/trends", params={"bucket": "week"}).json()["rows"]
            assert [(r["bucket_start"], r["articles"]) for r in rows] == [("2024-07-01", 2), ("2024-07-08", 3)]
            first = c.get("/v1/review/next", params={"n": 5}).json()["items"][0]["id"]
            assert c.post(f"/v1/review/{first}", json={"labels": []}, headers=AUTH).status_code == 200
            assert first not in [i["id"] for i in c.get("/v1/review/next", params={"n": 50}).json()["items"]]
            c.post("/v1/models/vtest-b/promote", headers=AUTH)
            job = c.post("/v1/rescore", headers=AUTH).json()
            deadline = time.time() + 60
            while (state := c.get(f"/v1/jobs/{job['id']}").json())["state"] == "running" and time.time() < deadline:
                time.sleep(0.2)
            assert state["state"] == "succeeded"
            versions = c.get("/v1/trends", params={"bucket": "month"}).json()["model_versions"]
            assert [v["version"] for v in versions] == ["vtest-b"]
    finally:
        server.stop()
        from service.store.engine import open_database

        Base.metadata.drop_all(open_database(settings).engine)
