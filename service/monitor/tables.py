"""Tables of feed monitoring, on the annotation store's `Base` (same database, same engine).

- `monitor_feeds`: subscriptions; `etag`/`last_modified` for conditional GET, `failures`
  (in a row) and `next_poll_at` for back-off.
- `monitor_polls`: one row per poll (status, items new / seen / failed, error).
- `monitor_articles`: one row per distinct article of an outlet. Unique (outlet, guid) and
  (outlet, content_hash) make "never counted twice" a database fact, even across
  restarts or two processes; `day`/`week`/`month` are the published date's buckets.
- `monitor_statements`: every statement of an article, in order, with its boilerplate
  flag; content statements carry scores, labels (also as a bit mask), the model version
  and `margin` (logit distance of the closest label to its threshold: the review queue's
  uncertainty, indexed so the most uncertain are found without a scan).
- `monitor_daily`: pre-aggregated counts per outlet, day, model version and label (label
  '' = all scored statements, '*' = stance-bearing ones), rebuilt for an (outlet, day)
  whenever its statements change; trend queries read only this table.
- `monitor_review_skips`: statements an analyst skipped (by statement key).
- `monitor_lease`: the poller lease (one poller across processes on one database).
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, DateTime, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from service.store.tables import Base, utcnow

ALL = ""  # monitor_daily.label of the row counting every scored statement / article
STANCE = "*"  # ... of the row counting stance-bearing statements / articles


class Feed(Base):
    __tablename__ = "monitor_feeds"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    outlet: Mapped[str] = mapped_column(String(200), index=True)
    url: Mapped[str] = mapped_column(String(2000))
    format: Mapped[str] = mapped_column(String(20), default="auto")
    interval_s: Mapped[int] = mapped_column(Integer)
    enabled: Mapped[bool] = mapped_column(default=True)
    etag: Mapped[str | None] = mapped_column(String(500), nullable=True)
    last_modified: Mapped[str | None] = mapped_column(String(200), nullable=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    next_poll_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    last_polled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_status: Mapped[str | None] = mapped_column(String(20), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Poll(Base):
    __tablename__ = "monitor_polls"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    feed_id: Mapped[int] = mapped_column(ForeignKey("monitor_feeds.id", ondelete="CASCADE"), index=True)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    status: Mapped[str] = mapped_column(String(20))  # ok | not_modified | error
    http_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    items: Mapped[int] = mapped_column(Integer, default=0)
    new: Mapped[int] = mapped_column(Integer, default=0)
    seen: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    statements: Mapped[int] = mapped_column(Integer, default=0)
    model_version: Mapped[str | None] = mapped_column(String(100), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)


class Article(Base):
    __tablename__ = "monitor_articles"
    __table_args__ = (
        UniqueConstraint("outlet", "guid", name="uq_monitor_articles_outlet_guid"),
        UniqueConstraint("outlet", "content_hash", name="uq_monitor_articles_outlet_hash"),
        Index("ix_monitor_articles_outlet_url", "outlet", "url"),
        Index("ix_monitor_articles_outlet_day", "outlet", "day"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    feed_id: Mapped[int | None] = mapped_column(
        ForeignKey("monitor_feeds.id", ondelete="SET NULL"), nullable=True, index=True
    )
    outlet: Mapped[str] = mapped_column(String(200))
    guid: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    url: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    content_hash: Mapped[str] = mapped_column(String(64))
    title: Mapped[str | None] = mapped_column(Text, nullable=True)
    published_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    published_given: Mapped[bool] = mapped_column(default=True)  # False: the feed gave no date; fetch time used
    day: Mapped[date] = mapped_column(Date)
    fetched_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    model_version: Mapped[str | None] = mapped_column(String(100), nullable=True)
    n_statements: Mapped[int] = mapped_column(Integer, default=0)
    n_boilerplate: Mapped[int] = mapped_column(Integer, default=0)


class StoredStatement(Base):
    __tablename__ = "monitor_statements"
    __table_args__ = (
        Index("ix_monitor_statements_article", "article_id", "position"),
        Index("ix_monitor_statements_margin", "margin"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    article_id: Mapped[int] = mapped_column(ForeignKey("monitor_articles.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    key: Mapped[str] = mapped_column(String(64), index=True)  # = statements.key of the annotation store
    boilerplate: Mapped[str | None] = mapped_column(String(100), nullable=True)
    scores: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON {label: probability}
    labels: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON list, schema order
    label_mask: Mapped[int] = mapped_column(Integer, default=0)  # bit i = label i of the schema
    margin: Mapped[float | None] = mapped_column(Float, nullable=True)
    model_version: Mapped[str | None] = mapped_column(String(100), nullable=True, index=True)


class DailyCount(Base):
    __tablename__ = "monitor_daily"
    __table_args__ = (Index("ix_monitor_daily_day", "day"),)
    outlet: Mapped[str] = mapped_column(String(200), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    model_version: Mapped[str] = mapped_column(String(100), primary_key=True)
    label: Mapped[str] = mapped_column(String(100), primary_key=True)
    week: Mapped[date] = mapped_column(Date)  # Monday of the ISO week
    month: Mapped[date] = mapped_column(Date)  # first day of the month
    statements: Mapped[int] = mapped_column(Integer)
    articles: Mapped[int] = mapped_column(Integer)


class ReviewSkip(Base):
    __tablename__ = "monitor_review_skips"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    statement_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    annotator: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Lease(Base):
    __tablename__ = "monitor_lease"
    name: Mapped[str] = mapped_column(String(50), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
