"""Feeds as a resource: create, read, update, delete, and the polls recorded for each.
Shared by the HTTP routes and the CLI; input is checked here so both give the same errors."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlparse

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from service.monitor.ingest import aware
from service.monitor.schemas import INTERVAL_MAX_S
from service.monitor.tables import Article, Feed, Poll
from service.scoring.feeds import FORMAT_ALIASES
from service.settings import MonitorSettings
from service.store.engine import Database

FORMATS = ("auto", *FORMAT_ALIASES)
EDITABLE = ("name", "outlet", "url", "interval_s", "format", "enabled")


class FeedNotFound(KeyError):
    pass


class FeedConflict(ValueError):
    pass


class FeedInvalid(ValueError):
    pass


def check_fields(values: dict[str, Any], settings: MonitorSettings) -> None:
    """FeedInvalid naming the field for a bad URL, interval, format or empty name."""
    for key in ("name", "outlet"):
        if key in values and (not isinstance(values[key], str) or not values[key].strip() or len(values[key]) > 200):
            raise FeedInvalid(f"'{key}' must be 1-200 characters")
    if "url" in values:
        parts = urlparse(str(values["url"]))
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise FeedInvalid(f"'url' must be an http(s) URL, got {values['url']!r}")
    interval = values.get("interval_s")
    if interval is not None and not settings.min_interval_s <= interval <= INTERVAL_MAX_S:
        raise FeedInvalid(
            f"'interval_s' must be from {settings.min_interval_s} (monitor.min_interval_s) to {INTERVAL_MAX_S} (a year)"
        )
    if "format" in values and values["format"] not in FORMATS:
        raise FeedInvalid(f"'format' must be one of {', '.join(FORMATS)}")


def _iso(value: datetime | None) -> str | None:
    return aware(value).isoformat() if value else None


def feed_json(feed: Feed, articles: int = 0) -> dict[str, Any]:
    return {
        "id": feed.id,
        "name": feed.name,
        "outlet": feed.outlet,
        "url": feed.url,
        "format": feed.format,
        "interval_s": feed.interval_s,
        "enabled": feed.enabled,
        "failures": feed.failures,
        "next_poll_at": _iso(feed.next_poll_at),
        "last_polled_at": _iso(feed.last_polled_at),
        "last_status": feed.last_status,
        "last_error": feed.last_error,
        "articles": articles,
        "created_at": _iso(feed.created_at),
    }


def poll_json(poll: Poll) -> dict[str, Any]:
    return {
        "id": poll.id,
        "feed_id": poll.feed_id,
        "started_at": _iso(poll.started_at),
        "finished_at": _iso(poll.finished_at),
        "status": poll.status,
        "http_status": poll.http_status,
        "items": poll.items,
        "new": poll.new,
        "seen": poll.seen,
        "failed": poll.failed,
        "statements": poll.statements,
        "model_version": poll.model_version,
        "error": poll.error,
    }


@dataclass
class Feeds:
    db: Database
    settings: MonitorSettings

    def create(
        self, name: str, outlet: str, url: str, interval_s: int | None = None, fmt: str = "auto", enabled: bool = True
    ) -> dict[str, Any]:
        values = {"name": name, "outlet": outlet, "url": url, "interval_s": interval_s, "format": fmt}
        check_fields(values, self.settings)
        try:
            with self.db.write() as s:
                if s.scalar(select(Feed.id).where(Feed.url == url, Feed.outlet == outlet)) is not None:
                    raise FeedConflict(f"outlet {outlet!r} already has a feed with URL {url}")
                feed = Feed(
                    name=name.strip(),
                    outlet=outlet.strip(),
                    url=url,
                    format=fmt,
                    enabled=enabled,
                    interval_s=interval_s or self.settings.default_interval_s,
                    next_poll_at=datetime.now(UTC),
                )
                s.add(feed)
                s.flush()
                return feed_json(feed)
        except IntegrityError:
            raise FeedConflict(f"a feed named {name!r} exists already") from None

    def get_row(self, feed_id: int) -> Feed:
        with self.db.read() as s:
            feed = s.get(Feed, feed_id)
        if feed is None:
            raise FeedNotFound(feed_id)
        return feed

    def by_name(self, name: str) -> Feed:
        with self.db.read() as s:
            feed = s.scalars(select(Feed).where(Feed.name == name)).first()
        if feed is None:
            raise FeedNotFound(name)
        return feed

    def _counts(self, ids: list[int]) -> dict[int, int]:
        with self.db.read() as s:
            rows = s.execute(
                select(Article.feed_id, func.count()).where(Article.feed_id.in_(ids)).group_by(Article.feed_id)
            ).all()
        return {fid: n for fid, n in rows}

    def get(self, feed_id: int) -> dict[str, Any]:
        feed = self.get_row(feed_id)
        return feed_json(feed, self._counts([feed.id]).get(feed.id, 0))

    def list(self) -> list[dict[str, Any]]:
        with self.db.read() as s:
            feeds = list(s.scalars(select(Feed).order_by(Feed.id)))
        counts = self._counts([f.id for f in feeds])
        return [feed_json(f, counts.get(f.id, 0)) for f in feeds]

    def update(self, feed_id: int, **values: Any) -> dict[str, Any]:
        values = {k: v for k, v in values.items() if k in EDITABLE and v is not None}
        check_fields(values, self.settings)
        try:
            with self.db.write() as s:
                feed = s.get(Feed, feed_id)
                if feed is None:
                    raise FeedNotFound(feed_id)
                for key, value in values.items():
                    setattr(feed, key, value.strip() if key in ("name", "outlet") else value)
                if "url" in values or "interval_s" in values or values.get("enabled"):
                    feed.next_poll_at = datetime.now(UTC)  # poll the changed feed soon
                    feed.failures = 0
                if "url" in values:
                    feed.etag = feed.last_modified = None
        except IntegrityError:
            raise FeedConflict(f"a feed named {values.get('name')!r} exists already") from None
        return self.get(feed_id)

    def delete(self, feed_id: int) -> None:
        """The feed and its poll records go; its articles stay (the outlet's trends keep
        their history), detached from the feed."""
        with self.db.write() as s:
            feed = s.get(Feed, feed_id)
            if feed is None:
                raise FeedNotFound(feed_id)
            s.query(Article).filter(Article.feed_id == feed_id).update({Article.feed_id: None})
            s.query(Poll).filter(Poll.feed_id == feed_id).delete()
            s.delete(feed)

    def polls(self, feed_id: int, limit: int) -> list[dict[str, Any]]:
        self.get_row(feed_id)
        with self.db.read() as s:
            rows = s.scalars(select(Poll).where(Poll.feed_id == feed_id).order_by(Poll.id.desc()).limit(limit))
            return [poll_json(p) for p in rows]

    def due(self, now: datetime) -> list[int]:
        with self.db.read() as s:
            return list(
                s.scalars(
                    select(Feed.id).where(Feed.enabled.is_(True), Feed.next_poll_at <= now).order_by(Feed.next_poll_at)
                )
            )
