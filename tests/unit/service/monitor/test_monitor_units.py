"""Small pieces of monitoring: the poller lease, one poller across processes, back-off,
dedup helpers, Wilson intervals, MMR diversity, and `Bundle.embed`."""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime

import numpy as np
import pytest
from sqlalchemy import func, select

from service.monitor.fetch import next_poll
from service.monitor.ingest import content_hash, item_guid, margin, parse_published
from service.monitor.poller import Poller, acquire_lease, release_lease
from service.monitor.review import mmr, uncertainty
from service.monitor.subscriptions import Feeds
from service.monitor.tables import Article, Poll
from service.monitor.trends import wilson
from service.monitor.wiring import ensure_tables
from service.scoring.feeds import Article as FeedItem
from service.store.engine import Database
from tests.support import project_settings
from tests.support.monitor import FeedServer, KeywordModel


@pytest.fixture
def settings(tmp_path):
    return project_settings().with_overrides(paths={"data_dir": tmp_path}, monitor={"tick_s": 0.05, "lease_s": 0.5})


def open_db(settings) -> Database:
    db = Database(settings.store_url(), settings.store.busy_timeout_ms)
    ensure_tables(db)
    return db


def test_lease_one_holder_until_expiry(settings):
    db = open_db(settings)
    assert acquire_lease(db, "a", 0.3)
    assert not acquire_lease(db, "b", 0.3)
    assert acquire_lease(db, "a", 0.3)  # renewal
    release_lease(db, "a")
    assert acquire_lease(db, "b", 0.3)  # released: taken at once
    assert not acquire_lease(db, "a", 0.3)
    import time

    time.sleep(0.35)
    assert acquire_lease(db, "a", 0.3)  # expired: taken over


def test_two_pollers_on_one_database_poll_once(settings):
    """Two pollers (as in two service processes, each with its own engine) run together:
    only the lease holder polls, and each article is stored once. (The lease is long here:
    on a loaded machine one poll can outlast a short one, and expiry is tested above.)"""
    settings = settings.with_overrides(monitor={"lease_s": 30})
    server = FeedServer().start()
    try:
        server.serve_file("/wire.xml", "wire_v1.xml")
        db1, db2 = open_db(settings), open_db(settings)
        Feeds(db1, settings.monitor).create("wire", "Wire", server.url("/wire.xml"), 10)
        p1, p2 = Poller(settings, db1, KeywordModel()), Poller(settings, db2, KeywordModel())

        async def run():
            stop = asyncio.Event()
            tasks = [asyncio.create_task(p.run(stop)) for p in (p1, p2)]
            for _ in range(200):  # until the first poll is recorded
                await asyncio.sleep(0.05)
                if p1.polls + p2.polls:
                    break
            await asyncio.sleep(0.3)
            stop.set()
            await asyncio.gather(*tasks)

        asyncio.run(run())
        assert sorted([p1.polls, p2.polls]) == [0, 1]
        with db1.read() as s:
            assert s.scalar(select(func.count()).select_from(Article)) == 3
            assert s.scalar(select(func.count()).select_from(Poll)) == 1
    finally:
        server.stop()


def test_backoff_grows_and_is_capped(settings):
    mon = settings.monitor.model_copy(update={"backoff_base_s": 60, "backoff_max_s": 600})
    now = datetime(2024, 1, 1, tzinfo=UTC)
    waits = [(next_poll(now, 30, n, mon) - now).total_seconds() for n in range(6)]
    assert waits == [30, 60, 120, 240, 480, 600]
    assert (next_poll(now, 900, 1, mon) - now).total_seconds() == 900  # never sooner than the interval


def test_dedup_helpers():
    assert content_hash("Hello  World\n") == content_hash("hello world")
    assert content_hash("hello world") != content_hash("hello world!")
    assert item_guid(FeedItem(id="item-3", text="x")) is None  # a position, not a guid
    assert item_guid(FeedItem(id="urn:uuid:1", text="x")) == "urn:uuid:1"
    assert parse_published("Tue, 09 Jul 2024 10:00:00 GMT") == datetime(2024, 7, 9, 10, tzinfo=UTC)
    assert parse_published("2024-07-10T12:00:00+02:00") == datetime(2024, 7, 10, 10, tzinfo=UTC)
    assert parse_published("yesterday") is None and parse_published(None) is None
    assert margin({"a": 0.5, "b": 0.99}, {"a": 0.5, "b": 0.5}) == 0
    assert margin({"a": 0.9}, {"a": 0.5}) == pytest.approx(math.log(9))
    assert uncertainty(0) == 1 and uncertainty(10) < uncertainty(1)


def test_wilson_known_values():
    low, high = wilson(2, 3)
    assert (round(low, 4), round(high, 4)) == (0.2077, 0.9385)
    low, high = wilson(0, 10)
    assert low == 0 and round(high, 4) == 0.2775
    assert wilson(0, 0) == (0.0, 1.0)


def test_mmr_never_picks_near_duplicates_together():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(3, 16))
    # 10 near-copies of statement 0 (the most uncertain), and 2 other, less uncertain ones.
    emb = np.vstack([base[0] + rng.normal(scale=1e-3, size=(10, 16)), base[1:]])
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    scores = np.array([0.99] * 10 + [0.6, 0.5])
    picked = mmr(scores, emb, 3, lam=0.6)
    assert picked[0] < 10 and set(picked[1:]) == {10, 11}
    assert mmr(scores, emb, 3, lam=1.0) == [0, 1, 2]  # uncertainty only: the copies


def test_bundle_embed(tiny_registry):
    from training.bundle import load_bundle

    bundle = load_bundle(tiny_registry / "vtest-a", project_settings().inference)
    texts = ["Ukraine should join NATO now.", "The summit starts at nine.", "Ukraine should join NATO now."]
    before = bundle.predict_proba(texts)
    emb = bundle.embed(texts)
    assert emb.shape == (3, 32)
    assert np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
    assert np.allclose(emb[0], emb[2]) and not np.allclose(emb[0], emb[1])
    assert np.allclose(bundle.embed(texts[:1]), emb[:1], atol=1e-5)  # batch-independent
    assert np.array_equal(bundle.predict_proba(texts), before)  # scoring untouched


def test_a_running_rescore_reports_progress_in_the_job_shape():
    from service.api.schemas_admin import JobOut
    from service.monitor.rescore import job_json
    from service.retrain.job_states import RUNNING
    from service.store.tables import Job

    job = Job(
        id="r1", kind="rescore", state=RUNNING, config="rescore", job_dir="", metrics={"rescored": 30, "total": 120}
    )
    shown = JobOut.model_validate(job_json(job))
    assert shown.progress is not None and (shown.progress.step, shown.progress.steps) == (30, 120)
    assert shown.progress.percent == 25.0
