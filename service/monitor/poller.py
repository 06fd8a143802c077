"""Polling: one feed at a time (`poll_feed`), and the service's background `Poller`.

One poller across processes: a lease row in the database (`monitor_lease`) names the
process that polls, until `expires_at`. The holder renews it every tick and between
chunks of a long poll; another process takes over only when it has expired (the holder
died or hung). Works the same on SQLite (the write transaction is `BEGIN IMMEDIATE`) and
PostgreSQL (`SELECT ... FOR UPDATE`; a racing first insert loses on the primary key).
"""

from __future__ import annotations

import asyncio
import io
import itertools
import logging
import os
import secrets
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy.exc import IntegrityError, OperationalError

from service.monitor.fetch import fetch, next_poll
from service.monitor.ingest import ChunkOutcome, ModelPort, aware, ingest_chunk
from service.monitor.subscriptions import Feeds, poll_json
from service.monitor.tables import Feed, Lease, Poll
from service.scoring.feeds import (
    Article as FeedItem,
)
from service.scoring.feeds import (
    FeedError,
    detect_format,
    iter_text,
    jsonl_article,
    parse_json_object,
    parse_xml,
)
from service.scoring.formats import SNIFF_BYTES
from service.settings import Settings
from service.store.engine import Database

log = logging.getLogger("stance.monitor")

LEASE_NAME = "poller"
OK, NOT_MODIFIED, ERROR, RUNNING = "ok", "not_modified", "error", "running"


def holder_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


# ------------------------------------------------------------------ lease


def acquire_lease(db: Database, holder: str, ttl_s: float, name: str = LEASE_NAME) -> bool:
    """Take or renew the lease; False while another live holder has it."""
    now = datetime.now(UTC)
    try:
        with db.write() as s:
            row = s.get(Lease, name, with_for_update=True)
            if row is None:
                s.add(Lease(name=name, holder=holder, expires_at=now + timedelta(seconds=ttl_s)))
                return True
            if row.holder != holder and aware(row.expires_at) > now:
                return False
            row.holder, row.expires_at = holder, now + timedelta(seconds=ttl_s)
            return True
    except (IntegrityError, OperationalError):  # another process inserted first / holds the lock
        return False


def release_lease(db: Database, holder: str, name: str = LEASE_NAME) -> None:
    with db.write() as s:
        row = s.get(Lease, name, with_for_update=True)
        if row is not None and row.holder == holder:
            row.expires_at = datetime.now(UTC) - timedelta(seconds=1)


# ------------------------------------------------------------------ items of a document


@dataclass(frozen=True)
class ItemError:
    number: int
    message: str


def iter_items(fmt: str, body: bytes) -> Iterator[FeedItem | ItemError]:
    """Items of a fetched document. Malformed XML fails the whole document (FeedError);
    in JSON Lines a bad line is one failed item and the rest go on."""
    if fmt == "xml":
        yield from parse_xml(body)
        return
    if fmt == "text":
        yield from iter_text(io.BytesIO(body))
        return
    for number, raw in enumerate(io.BytesIO(body), start=1):
        try:
            obj = parse_json_object(raw, number)
            if obj is not None:
                yield jsonl_article(obj, number)
        except FeedError as exc:
            yield ItemError(number, str(exc))


# ------------------------------------------------------------------ one poll


@dataclass
class PollContext:
    db: Database
    settings: Settings
    model: ModelPort
    client: httpx.AsyncClient
    renew: Callable[[], Any] = lambda: None  # called between chunks (keeps the lease alive)


def _start_poll(db: Database, feed_id: int) -> tuple[Feed, int]:
    with db.write() as s:
        feed = s.get(Feed, feed_id)
        if feed is None:
            raise KeyError(feed_id)
        now = datetime.now(UTC)
        # Claimed until the poll ends (which sets the real next time): a poller that took
        # over an expired lease meanwhile does not poll the same feed again.
        feed.next_poll_at = now + timedelta(seconds=feed.interval_s)
        poll = Poll(feed_id=feed_id, status=RUNNING, started_at=now)
        s.add(poll)
        s.flush()
        return feed, poll.id


def _finish_poll(
    ctx: PollContext,
    feed: Feed,
    poll_id: int,
    status: str,
    http_status: int | None,
    out: ChunkOutcome,
    items: int,
    error: str | None,
    validators: tuple[str | None, str | None] | None,
) -> dict[str, Any]:
    now = datetime.now(UTC)
    with ctx.db.write() as s:
        row = s.get(Feed, feed.id)
        poll = s.get(Poll, poll_id)
        assert poll is not None
        poll.finished_at, poll.status, poll.http_status = now, status, http_status
        poll.items, poll.new, poll.seen, poll.failed = items, out.new, out.seen, out.failed
        poll.statements, poll.model_version = out.statements, out.version
        poll.error = error
        if row is not None:  # the feed may have been deleted meanwhile
            row.failures = row.failures + 1 if status == ERROR else 0
            row.last_polled_at, row.last_status, row.last_error = now, status, error
            row.next_poll_at = next_poll(now, row.interval_s, row.failures, ctx.settings.monitor)
            if validators is not None:
                row.etag, row.last_modified = validators
        return poll_json(poll)


async def poll_feed(ctx: PollContext, feed_id: int) -> dict[str, Any]:
    """Fetch one feed, store its new articles, record the poll; returns the poll record.
    Never raises for the feed's own faults (network, HTTP, malformed document, bad items)."""
    feed, poll_id = await asyncio.to_thread(_start_poll, ctx.db, feed_id)
    mon = ctx.settings.monitor
    out, items = ChunkOutcome(), 0
    try:
        res = await fetch(ctx.client, feed.url, mon, feed.etag, feed.last_modified)
    except Exception as exc:  # noqa: BLE001 - e.g. a URL httpx cannot even build: recorded, never a 500
        log.warning("fetch of feed %s failed: %s", feed.id, exc)
        return await asyncio.to_thread(
            _finish_poll, ctx, feed, poll_id, ERROR, None, out, 0, f"{type(exc).__name__}: {exc}", None
        )
    if res.error:
        return await asyncio.to_thread(_finish_poll, ctx, feed, poll_id, ERROR, res.status, out, 0, res.error, None)
    if res.not_modified:
        return await asyncio.to_thread(_finish_poll, ctx, feed, poll_id, NOT_MODIFIED, res.status, out, 0, None, None)
    error: str | None = None
    try:
        fmt = detect_format(res.content_type, res.body[:SNIFF_BYTES], None if feed.format == "auto" else feed.format)
        stream = enumerate(await asyncio.to_thread(lambda: list(iter_items(fmt, res.body))), start=1)
        seen_in_poll: set[str] = set()
        while chunk := list(itertools.islice(stream, mon.ingest_chunk)):
            items += len(chunk)
            good = []
            for number, item in chunk:
                if isinstance(item, ItemError):
                    out.failed += 1
                    if len(out.errors) < mon.max_poll_errors_kept:
                        out.errors.append(item.message)
                else:
                    good.append((number, item))
            part = await ingest_chunk(
                ctx.db,
                ctx.model,
                good,
                feed.id,
                feed.outlet,
                ctx.settings.labels,
                ctx.settings.segmentation,
                mon.max_poll_errors_kept,
                seen_in_poll,
            )
            out.new += part.new
            out.seen += part.seen
            out.failed += part.failed
            out.statements += part.statements
            out.version = part.version or out.version
            out.errors.extend(part.errors[: max(0, mon.max_poll_errors_kept - len(out.errors))])
            await asyncio.to_thread(ctx.renew)
    except FeedError as exc:
        error = f"unreadable feed: {exc}"
    except Exception as exc:  # noqa: BLE001 - recorded on the poll; the poller goes on
        log.exception("poll of feed %s failed", feed.id)
        error = f"{type(exc).__name__}: {exc}"
    if error is not None:
        return await asyncio.to_thread(_finish_poll, ctx, feed, poll_id, ERROR, res.status, out, items, error, None)
    item_errors = "; ".join(out.errors) if out.errors else None
    return await asyncio.to_thread(
        _finish_poll, ctx, feed, poll_id, OK, res.status, out, items, item_errors, (res.etag, res.last_modified)
    )


# ------------------------------------------------------------------ the background poller


class Poller:
    """Polls due feeds while this process holds the lease (see the module docstring)."""

    def __init__(self, settings: Settings, db: Database, model: ModelPort) -> None:
        self.settings = settings
        self.db = db
        self.model = model
        self.feeds = Feeds(db, settings.monitor)
        self.holder = holder_id()
        self.polls = 0

    def _renew(self) -> bool:
        return acquire_lease(self.db, self.holder, self.settings.monitor.lease_s)

    async def run(self, stop: asyncio.Event, ready: Callable[[], bool] = lambda: True) -> None:
        mon = self.settings.monitor
        async with httpx.AsyncClient() as client:
            ctx = PollContext(self.db, self.settings, self.model, client, self._renew)
            try:
                while not stop.is_set():
                    try:
                        if ready() and await asyncio.to_thread(self._renew):
                            for feed_id in await asyncio.to_thread(self.feeds.due, datetime.now(UTC)):
                                if stop.is_set():
                                    break
                                try:
                                    result = await poll_feed(ctx, feed_id)
                                except KeyError:  # deleted since it was found due
                                    continue
                                self.polls += 1
                                log.info("polled feed %s: %s", feed_id, result)
                    except Exception:  # the poller must outlive any one failure
                        log.exception("poller tick failed")
                    try:
                        await asyncio.wait_for(stop.wait(), timeout=mon.tick_s)
                    except TimeoutError:
                        pass
            finally:
                await asyncio.to_thread(release_lease, self.db, self.holder)
