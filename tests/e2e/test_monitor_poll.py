"""Polling real HTTP feeds on loopback: exactly the new articles are stored, nothing is
counted twice across polls and restarts, and every kind of failure is recorded and
retried without stopping the rest."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import func, select

from service.monitor.ingest import aware
from service.monitor.poller import ERROR, NOT_MODIFIED, OK, PollContext, poll_feed
from service.monitor.subscriptions import Feeds
from service.monitor.tables import Article, DailyCount, Feed, StoredStatement
from service.monitor.wiring import ensure_tables
from service.store.engine import Database
from tests.support import project_settings
from tests.support.monitor import FeedServer, KeywordModel, Route, big_rss


@pytest.fixture
def server():
    s = FeedServer().start()
    yield s
    s.stop()


@pytest.fixture
def settings(tmp_path):
    return project_settings().with_overrides(
        paths={"data_dir": tmp_path},
        monitor={"fetch_timeout_s": 0.5, "backoff_base_s": 30, "backoff_max_s": 120, "ingest_chunk": 50},
    )


def open_db(settings) -> Database:
    db = Database(settings.store_url(), settings.store.busy_timeout_ms)
    ensure_tables(db)
    return db


def poll(db, settings, model, feed_id):
    async def run():
        async with httpx.AsyncClient() as client:
            return await poll_feed(PollContext(db, settings, model, client), feed_id)

    return asyncio.run(run())


def count(db, table) -> int:
    with db.read() as s:
        return s.scalar(select(func.count()).select_from(table))


def test_polls_store_exactly_the_new_articles_across_polls_and_restarts(server, settings):
    server.serve_file("/wire.xml", "wire_v1.xml")
    db, model = open_db(settings), KeywordModel()
    feed = Feeds(db, settings.monitor).create("wire", "Wire", server.url("/wire.xml"), 60)

    first = poll(db, settings, model, feed["id"])
    assert (first["status"], first["items"], first["new"], first["seen"], first["failed"]) == (OK, 3, 3, 0, 0)
    assert first["statements"] == count(db, StoredStatement) - 3  # 3 "Read also" / boilerplate rows are not scored
    # Unchanged document: the ETag makes it a 304, nothing parsed.
    second = poll(db, settings, model, feed["id"])
    assert second["status"] == NOT_MODIFIED and second["new"] == 0
    assert server.requests[-1][1].get("If-None-Match")

    # New version: 2 new items, 1 re-published (new guid and URL, same text), 1 without
    # text, 1 unchanged.
    server.serve_file("/wire.xml", "wire_v2.xml")
    third = poll(db, settings, model, feed["id"])
    assert (third["items"], third["new"], third["seen"], third["failed"]) == (5, 2, 2, 1)
    assert "item has no text" in third["error"]
    articles, statements, daily = count(db, Article), count(db, StoredStatement), count(db, DailyCount)
    assert articles == 5

    # A restart (new engine) and a server that forgets validators: all seen, none stored.
    db.dispose()
    server.routes["/wire.xml"].etag = False
    db2 = open_db(settings)
    with db2.write() as s:
        s.get(Feed, feed["id"]).etag = None
    again = poll(db2, settings, model, feed["id"])
    assert (again["status"], again["new"], again["seen"]) == (OK, 0, 4)
    assert (count(db2, Article), count(db2, StoredStatement), count(db2, DailyCount)) == (articles, statements, daily)


def test_last_modified_is_sent_back(server, settings):
    stamp = "Wed, 10 Jul 2024 12:00:00 GMT"
    server.serve_file("/daily.atom", "daily.atom", "application/atom+xml", etag=False, last_modified=stamp)
    db, model = open_db(settings), KeywordModel()
    feed = Feeds(db, settings.monitor).create("daily", "Daily", server.url("/daily.atom"))
    assert poll(db, settings, model, feed["id"])["new"] == 2
    assert poll(db, settings, model, feed["id"])["status"] == NOT_MODIFIED
    assert server.requests[-1][1].get("If-Modified-Since") == stamp


def test_failures_are_recorded_backed_off_and_retried(server, settings):
    server.routes["/slow.xml"] = Route(b"<rss/>", delay_s=2.0)
    server.routes["/down.xml"] = Route(status=500)
    server.serve_file("/bad.xml", "../feed_bad.xml")
    db, model = open_db(settings), KeywordModel()
    feeds = Feeds(db, settings.monitor)
    slow = feeds.create("slow", "Slow", server.url("/slow.xml"), 10)
    down = feeds.create("down", "Down", server.url("/down.xml"), 10)
    bad = feeds.create("bad", "Bad", server.url("/bad.xml"), 10)

    r = poll(db, settings, model, slow["id"])
    assert r["status"] == ERROR and "timed out" in r["error"]
    r = poll(db, settings, model, down["id"])
    assert r["status"] == ERROR and r["http_status"] == 500 and "HTTP 500" in r["error"]
    r = poll(db, settings, model, bad["id"])
    assert r["status"] == ERROR and "malformed XML at line" in r["error"]

    # Back-off: 30 s after one failure, 60 s after two (interval 10 s), capped at 120 s.
    before = datetime.now(UTC)
    poll(db, settings, model, down["id"])
    row = feeds.get_row(down["id"])
    assert row.failures == 2
    wait = (aware(row.next_poll_at) - before).total_seconds()
    assert 55 <= wait <= 65
    for _ in range(3):
        poll(db, settings, model, down["id"])
    row = feeds.get_row(down["id"])
    assert row.failures == 5 and (aware(row.next_poll_at) - datetime.now(UTC)).total_seconds() <= 120

    # The feed recovers: the next poll succeeds, failures reset, the history is kept.
    server.serve_file("/down.xml", "wire_v1.xml")
    r = poll(db, settings, model, down["id"])
    assert r["status"] == OK and r["new"] == 3
    assert feeds.get_row(down["id"]).failures == 0
    history = feeds.polls(down["id"], 20)
    assert [p["status"] for p in history] == [OK] + [ERROR] * 5


def test_one_bad_line_never_stops_the_rest(server, settings):
    server.serve_file("/items.jsonl", "items.jsonl", "application/x-ndjson")
    db, model = open_db(settings), KeywordModel()
    feed = Feeds(db, settings.monitor).create("jsonl", "Lines", server.url("/items.jsonl"))
    r = poll(db, settings, model, feed["id"])
    assert (r["status"], r["new"], r["failed"]) == (OK, 2, 1)
    assert "line 2: invalid JSON" in r["error"]


def test_a_feed_over_the_size_limit_is_refused(server, settings):
    server.serve_file("/wire.xml", "wire_v1.xml")
    small = settings.with_overrides(monitor={"max_fetch_bytes": 500})
    db = open_db(small)
    feed = Feeds(db, small.monitor).create("wire", "Wire", server.url("/wire.xml"))
    r = poll(db, small, KeywordModel(), feed["id"])
    assert r["status"] == ERROR and "too large" in r["error"] and count(db, Article) == 0


def test_ten_thousand_items(server, settings):
    server.routes["/big.xml"] = Route(big_rss(10_000))
    db, model = open_db(settings.with_overrides(monitor={"ingest_chunk": 1000})), KeywordModel()
    big = settings.with_overrides(monitor={"ingest_chunk": 1000})
    feed = Feeds(db, big.monitor).create("big", "Big", server.url("/big.xml"))
    r = poll(db, big, model, feed["id"])
    assert (r["status"], r["items"], r["new"], r["failed"]) == (OK, 10_000, 10_000, 0)
    assert count(db, Article) == 10_000
    server.routes["/big.xml"].etag = False
    r = poll(db, big, model, feed["id"])
    assert (r["new"], r["seen"]) == (0, 10_000)
    with db.read() as s:
        total = s.scalar(select(func.sum(DailyCount.articles)).where(DailyCount.label == ""))
    assert total == 10_000
