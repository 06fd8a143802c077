"""The monitoring API on a running app (tiny bundles): feeds CRUD and auth, polls through
the service's scorer, trends against hand-computed counts, CSV, re-scoring after a
promotion, and the review queue."""

from __future__ import annotations

import asyncio
import csv
import io
import shutil
import time
from collections import defaultdict
from datetime import date, timedelta

import httpx
import pytest
from fastapi.testclient import TestClient

from service.monitor.poller import PollContext, poll_feed
from service.monitor.trends import wilson
from tests.support import project_settings
from tests.support.monitor import AUTH, TOKEN, FeedServer, KeywordModel, keyword_labels

LABELS = project_settings().labels


@pytest.fixture
def server():
    s = FeedServer().start()
    s.serve_file("/wire.xml", "wire_v1.xml")
    s.serve_file("/daily.atom", "daily.atom", "application/atom+xml")
    yield s
    s.stop()


@pytest.fixture
def settings(tiny_registry, tmp_path, monkeypatch):
    monkeypatch.delenv("STANCE_API_TOKEN", raising=False)
    models = tmp_path / "models"
    shutil.copytree(tiny_registry, models)  # promotions here must not move the shared registry
    (tmp_path / "seeds").mkdir()
    return project_settings().with_overrides(
        paths={"models_dir": models, "data_dir": tmp_path / "data", "annotations_dir": tmp_path / "seeds"},
        auth={"token": TOKEN},
        monitor={"poller": False, "fetch_timeout_s": 2, "review_pool": 50},
        jobs={"watch_registry_s": 0},
    )


@pytest.fixture
def client(settings):
    from service.app import create_app

    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c


def add_feed(client, server, name, outlet, path):
    r = client.post(
        "/v1/feeds", json={"name": name, "outlet": outlet, "url": server.url(path), "interval_s": 60}, headers=AUTH
    )
    assert r.status_code == 201, r.text
    return r.json()


def keyword_poll(client, feed_id):
    """Poll with the keyword model (labels known by hand) into the app's database."""
    mon = client.app.state.monitor

    async def run():
        async with httpx.AsyncClient() as http:
            return await poll_feed(PollContext(mon.db, mon.settings, KeywordModel(), http), feed_id)

    return asyncio.run(run())


def test_feed_crud_and_auth(client, server):
    body = {"name": "wire", "outlet": "Wire", "url": server.url("/wire.xml")}
    assert client.post("/v1/feeds", json=body).status_code == 401
    assert client.post("/v1/feeds", json=body, headers={"Authorization": "Bearer nope"}).status_code == 403
    feed = add_feed(client, server, "wire", "Wire", "/wire.xml")
    assert feed["interval_s"] == 60 and feed["enabled"] and feed["articles"] == 0
    assert client.post("/v1/feeds", json={**body, "name": "other"}, headers=AUTH).status_code == 409
    assert (
        client.post("/v1/feeds", json={**body, "name": "wire", "url": server.url("/x")}, headers=AUTH).status_code
        == 409
    )
    bad = client.post("/v1/feeds", json={**body, "name": "x", "url": "ftp://x"}, headers=AUTH)
    assert bad.status_code == 422 and bad.json()["problems"][0]["field"] == "url"
    short = client.post("/v1/feeds", json={**body, "name": "y", "url": server.url("/y"), "interval_s": 1}, headers=AUTH)
    assert short.status_code == 422 and "interval_s" in short.text
    huge = client.post(
        "/v1/feeds", json={**body, "name": "z", "url": server.url("/z"), "interval_s": 10**20}, headers=AUTH
    )
    assert huge.status_code == 422 and "interval_s" in huge.text
    assert client.patch(f"/v1/feeds/{feed['id']}", json={"interval_s": 120}).status_code == 401
    patched = client.patch(f"/v1/feeds/{feed['id']}", json={"interval_s": 120, "enabled": False}, headers=AUTH)
    assert patched.json()["interval_s"] == 120 and patched.json()["enabled"] is False
    assert [f["name"] for f in client.get("/v1/feeds").json()] == ["wire"]
    assert client.get("/v1/feeds/999").status_code == 404

    poll = client.post(f"/v1/feeds/{feed['id']}/poll", headers=AUTH).json()
    assert poll["status"] == "ok" and poll["new"] == 3 and poll["model_version"] == "vtest-a"
    assert client.get(f"/v1/feeds/{feed['id']}").json()["articles"] == 3
    assert client.get(f"/v1/feeds/{feed['id']}/polls").json()[0]["id"] == poll["id"]
    arts = client.get("/v1/articles", params={"outlet": "Wire"}).json()
    assert arts["total"] == 3
    one = client.get(f"/v1/articles/{arts['items'][0]['id']}").json()
    flagged = [st for st in one["statements"] if st["boilerplate"]]
    assert all(st["scores"] is None for st in flagged)
    assert all(st["scores"] and st["model_version"] == "vtest-a" for st in one["statements"] if not st["boilerplate"])

    assert client.delete(f"/v1/feeds/{feed['id']}", headers=AUTH).status_code == 204
    assert client.get(f"/v1/feeds/{feed['id']}").status_code == 404
    assert client.get("/v1/articles", params={"outlet": "Wire"}).json()["total"] == 3  # history kept


def hand_counts(client, outlet: str):
    """Per ISO week: (articles, statements, stance statements, per-label statements),
    counted from the stored statements with the keyword rule, not from the daily table."""
    weeks: dict[date, dict] = defaultdict(
        lambda: {"articles": set(), "statements": 0, "stance": 0, "labels": defaultdict(int)}
    )
    for art in client.get("/v1/articles", params={"outlet": outlet, "page_size": 500}).json()["items"]:
        day = date.fromisoformat(art["published_at"][:10])
        w = weeks[day - timedelta(days=day.weekday())]
        for st in client.get(f"/v1/articles/{art['id']}").json()["statements"]:
            if st["boilerplate"]:
                continue
            w["articles"].add(art["id"])
            w["statements"] += 1
            labels = keyword_labels(st["text"])
            w["stance"] += bool(labels)
            for lab in labels:
                w["labels"][lab] += 1
    return weeks


def test_trends_match_hand_counts(client, server):
    wire = add_feed(client, server, "wire", "Wire", "/wire.xml")
    daily = add_feed(client, server, "daily", "Daily", "/daily.atom")
    keyword_poll(client, wire["id"])
    keyword_poll(client, daily["id"])
    server.serve_file("/wire.xml", "wire_v2.xml")
    keyword_poll(client, wire["id"])

    r = client.get("/v1/trends", params={"bucket": "week", "outlet": ["Wire", "Daily"]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model_versions"] == [
        {"version": "vkeyword", "statements": sum(row["statements"] for row in body["rows"])}
    ]
    rows = {(row["outlet"], row["bucket_start"]): row for row in body["rows"]}
    for outlet in ("Wire", "Daily"):
        for week, hand in hand_counts(client, outlet).items():
            row = rows.pop((outlet, week.isoformat()))
            assert row["articles"] == len(hand["articles"])
            assert row["statements"] == hand["statements"]
            assert row["stance_statements"] == hand["stance"]
            for lab in LABELS:
                k, n = hand["labels"][lab], hand["stance"]
                cell = row["labels"][lab]
                assert cell["statements"] == k
                if n:
                    low, high = wilson(k, n)
                    assert cell["share"] == pytest.approx(k / n, abs=1e-6)
                    assert (cell["low"], cell["high"]) == (pytest.approx(low, abs=1e-6), pytest.approx(high, abs=1e-6))
    assert rows == {}  # no bucket without statements
    # Explicit figures, by reading wire_v1/v2.xml: week of 1 July = articles wire-1 and
    # wire-2; of 8 July = wire-3, wire-4, wire-6 (wire-1 re-published is not counted).
    w1 = next(r for r in body["rows"] if r["outlet"] == "Wire" and r["bucket_start"] == "2024-07-01")
    w2 = next(r for r in body["rows"] if r["outlet"] == "Wire" and r["bucket_start"] == "2024-07-08")
    assert (w1["articles"], w1["labels"]["fast_track_membership"]["statements"]) == (2, 1)
    assert (w2["articles"], w2["labels"]["fast_track_membership"]["statements"]) == (3, 2)
    assert w2["labels"]["opposition"]["statements"] == 1  # "Moscow said ... never join"; the title has no keyword

    month = client.get("/v1/trends", params={"bucket": "month", "outlet": "Wire", "label": "opposition"}).json()
    assert [r["bucket_start"] for r in month["rows"]] == ["2024-07-01"] and month["labels"] == ["opposition"]
    assert month["rows"][0]["articles"] == w1["articles"] + w2["articles"]
    days = client.get(
        "/v1/trends", params={"bucket": "day", "outlet": "Wire", "from": "2024-07-09", "to": "2024-07-09"}
    ).json()
    assert [r["bucket_start"] for r in days["rows"]] == ["2024-07-09"]

    as_csv = client.get("/v1/trends", params={"bucket": "week", "format": "csv"})
    assert as_csv.headers["content-type"].startswith("text/csv") and as_csv.headers["x-model-versions"] == "vkeyword"
    lines = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert len(lines) == len(body["rows"]) * len(LABELS)
    accept = client.get("/v1/trends", params={"bucket": "week"}, headers={"Accept": "text/csv"})
    assert accept.text == as_csv.text
    assert client.get("/v1/trends", params={"label": "nope"}).status_code == 422
    assert client.get("/v1/trends", params={"bucket": "year"}).status_code == 422
    empty = client.get("/v1/trends", params={"from": "2024-08-01", "to": "2024-07-01"})
    assert empty.status_code == 200 and empty.json()["rows"] == []  # an empty range holds nothing


def test_rescore_after_promotion(client, server):
    wire = add_feed(client, server, "wire", "Wire", "/wire.xml")
    assert client.post(f"/v1/feeds/{wire['id']}/poll", headers=AUTH).json()["new"] == 3
    before = client.get("/v1/trends", params={"bucket": "month"}).json()
    assert [v["version"] for v in before["model_versions"]] == ["vtest-a"]
    assert client.post("/v1/rescore").status_code == 401
    assert client.post("/v1/models/vtest-b/promote", headers=AUTH).status_code == 200
    job = client.post("/v1/rescore", headers=AUTH)
    assert job.status_code == 202 and job.json()["kind"] == "rescore"
    deadline = time.time() + 60
    while (state := client.get(f"/v1/jobs/{job.json()['id']}").json())["state"] == "running":
        assert time.time() < deadline
        time.sleep(0.2)
    assert state["state"] == "succeeded" and state["version"] == "vtest-b"
    assert state["metrics"]["rescored"] == state["metrics"]["total"] == before["rows"][0]["statements"]
    after = client.get("/v1/trends", params={"bucket": "month"}).json()
    assert [v["version"] for v in after["model_versions"]] == ["vtest-b"]
    assert after["rows"][0]["statements"] == before["rows"][0]["statements"]
    # The daily counts match a recount of the re-scored statements.
    arts = client.get("/v1/articles").json()["items"]
    sts = [st for a in arts for st in client.get(f"/v1/articles/{a['id']}").json()["statements"] if st["scores"]]
    assert all(st["model_version"] == "vtest-b" for st in sts)
    assert after["rows"][0]["stance_statements"] == sum(bool(st["labels"]) for st in sts)
    for lab in LABELS:
        assert after["rows"][0]["labels"][lab]["statements"] == sum(lab in st["labels"] for st in sts)


def test_review_queue_excludes_annotated_skipped_and_boilerplate(client, server):
    wire = add_feed(client, server, "wire", "Wire", "/wire.xml")
    keyword_poll(client, wire["id"])
    server.serve_file("/wire.xml", "wire_v2.xml")
    keyword_poll(client, wire["id"])
    arts = client.get("/v1/articles").json()["items"]
    stored = {st["id"]: st for a in arts for st in client.get(f"/v1/articles/{a['id']}").json()["statements"]}
    content = {i for i, st in stored.items() if not st["boilerplate"]}
    assert any(st["boilerplate"] for st in stored.values())

    first = client.get("/v1/review/next", params={"n": 50}).json()
    ids = [it["id"] for it in first["items"]]
    assert set(ids) <= content
    texts = [stored[i]["text"] for i in ids]
    assert len(texts) == len(set(texts))  # one proposal per distinct text
    # The most uncertain (0.55 on "Lithuania ...") comes first.
    assert "Lithuania" in first["items"][0]["text"] and first["items"][0]["uncertainty"] > 0.8

    # Annotate one from the queue, another through /v1/annotations, skip a third.
    a, b, c = ids[0], ids[1], ids[2]
    ok = client.post(f"/v1/review/{a}", json={"labels": ["fast_track_membership"], "annotator": "maria"}, headers=AUTH)
    assert ok.status_code == 200, ok.text
    assert ok.json()["batch"].startswith("review-") and ok.json()["status"] == "annotated"
    listed = client.get("/v1/annotations", params={"batch": ok.json()["batch"]}).json()
    assert listed["total"] == 1 and listed["items"][0]["text"] == stored[a]["text"]
    client.post("/v1/annotations", json={"text": stored[b]["text"], "labels": [], "source": "elsewhere"}, headers=AUTH)
    assert client.post(f"/v1/review/{c}", json={"skip": True}, headers=AUTH).json()["status"] == "skipped"

    again = [it["id"] for it in client.get("/v1/review/next", params={"n": 50}).json()["items"]]
    excluded = {stored[i]["text"] for i in (a, b, c)}
    assert not excluded & {stored[i]["text"] for i in again}
    assert set(again) <= content and len(again) == len(ids) - 3

    assert client.post(f"/v1/review/{a}", json={"labels": ["nope"]}, headers=AUTH).status_code == 422
    assert client.post(f"/v1/review/{a}", json={"labels": [], "skip": True}, headers=AUTH).status_code == 422
    assert client.post("/v1/review/99999", json={"skip": True}, headers=AUTH).status_code == 404
    assert client.post(f"/v1/review/{a}", json={"skip": True}).status_code == 401
    assert client.get("/v1/review/next", params={"n": 1000}).status_code == 422
