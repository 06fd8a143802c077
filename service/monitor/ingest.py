"""Feed items -> stored articles and statements: dedup, segmentation, scoring, storage.

Dedup, per outlet: an item is already known if its guid, its URL, or the hash of its
normalised text (title + body, case-folded, whitespace collapsed) matches a stored
article, so a re-published article (new guid, same text) is not counted twice. The
unique constraints on (outlet, guid) and (outlet, content_hash) back this up when two
writers race; the loser's article counts as seen.

Articles are scored and stored a chunk at a time (`monitor.ingest_chunk`), one
transaction per chunk that also rebuilds the daily counts of the days it touched. A chunk
that fails to store is retried article by article, so one bad item never stops the rest.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import json
import math
import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Protocol

from sqlalchemy import delete, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.monitor.tables import ALL, STANCE, Article, DailyCount, StoredStatement
from service.scoring.feeds import Article as FeedItem
from service.scoring.statements import WindowSplitter
from service.store.engine import Database
from service.store.repository import statement_key
from training.bundle import Prediction
from training.segment import segment
from training.settings import SegmentationSettings

# feeds.py names items without an id by position; such a name is not a guid.
_SYNTHETIC_ID = re.compile(r"^(item|line|article)-\d+$")
_EPS = 1e-6


# ------------------------------------------------------------------ model adapter


@dataclass(frozen=True)
class Scored:
    predictions: list[Prediction]
    version: str
    thresholds: dict[str, float]


class ModelPort(Protocol):
    """What ingest needs from a model: scores (async: the service's micro-batching Scorer,
    or a bundle in a worker thread for the CLI) and the window splitter."""

    async def score(self, texts: Sequence[str]) -> Scored: ...

    def splitter(self) -> WindowSplitter: ...


# ------------------------------------------------------------------ small pure helpers


def aware(value: datetime) -> datetime:
    """SQLite hands back naive datetimes (stored as UTC)."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def content_hash(text: str) -> str:
    flat = " ".join(unicodedata.normalize("NFKC", text).casefold().split())
    return hashlib.sha256(flat.encode("utf-8")).hexdigest()


def item_guid(item: FeedItem) -> str | None:
    return None if _SYNTHETIC_ID.match(item.id or "") else (item.id or None)


def parse_published(value: str | None) -> datetime | None:
    """RFC 822 (RSS) or ISO 8601 (Atom, JSON Lines) -> aware UTC datetime; None if absent
    or unreadable."""
    if not value or not value.strip():
        return None
    parsed: datetime | None = None
    try:
        parsed = email.utils.parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    if parsed is None:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def week_start(day: date) -> date:
    return day - timedelta(days=day.weekday())


def month_start(day: date) -> date:
    return day.replace(day=1)


def margin(scores: dict[str, float], thresholds: dict[str, float]) -> float:
    """Distance, in logits, of the label closest to its threshold (small = uncertain)."""

    def logit(p: float) -> float:
        p = min(max(p, _EPS), 1 - _EPS)
        return math.log(p / (1 - p))

    return min((abs(logit(scores[n]) - logit(t)) for n, t in thresholds.items() if n in scores), default=math.inf)


def label_mask(labels: Iterable[str], schema: Sequence[str]) -> int:
    return sum(1 << schema.index(n) for n in labels if n in schema)


# ------------------------------------------------------------------ prepared rows


@dataclass
class StatementRow:
    position: int
    text: str
    boilerplate: str | None
    scores: dict[str, float] | None = None
    labels: list[str] | None = None


@dataclass
class NewArticle:
    number: int  # position of the item in the feed document (1-based), for error messages
    guid: str | None
    url: str | None
    hash: str
    title: str | None
    published_at: datetime
    published_given: bool
    statements: list[StatementRow] = field(default_factory=list)
    units: list[tuple[int, str]] = field(default_factory=list)  # (statement position, model window text)

    @property
    def day(self) -> date:
        return self.published_at.date()


@dataclass
class ChunkOutcome:
    new: int = 0
    seen: int = 0
    failed: int = 0
    statements: int = 0
    errors: list[str] = field(default_factory=list)
    version: str | None = None


def prepare(
    item: FeedItem, number: int, now: datetime, seg: SegmentationSettings, splitter: WindowSplitter
) -> NewArticle:
    """Segment an item (no model call yet); boilerplate is kept, flagged, and not scored."""
    published = parse_published(item.published)
    full = item.full_text
    art = NewArticle(
        number,
        item_guid(item),
        item.url or None,
        content_hash(full),
        item.title,
        published or now,
        published is not None,
    )
    for st in segment(full, seg):
        art.statements.append(StatementRow(st.index, st.text, st.boilerplate))
        if st.boilerplate is None:
            art.units.extend((st.index, piece) for piece in splitter.split(st.text))
    return art


def attach_scores(articles: Sequence[NewArticle], preds: Sequence[Prediction]) -> None:
    """Unit predictions -> statement scores (max over a long statement's windows) and labels
    (any window)."""
    it = iter(preds)
    for art in articles:
        by_pos = {st.position: st for st in art.statements}
        for pos, _text in art.units:
            pred = next(it)
            st = by_pos[pos]
            if st.scores is None:
                st.scores, st.labels = dict(pred.scores), list(pred.labels)
            else:
                st.scores = {k: max(v, pred.scores[k]) for k, v in st.scores.items()}
                st.labels = sorted(set(st.labels or []) | set(pred.labels), key=list(pred.scores).index)


# ------------------------------------------------------------------ dedup


def known(s: Session, outlet: str, items: Sequence[NewArticle]) -> set[int]:
    """Indices of `items` already stored for `outlet` (by guid, URL or content hash)."""
    guids = {a.guid for a in items if a.guid}
    urls = {a.url for a in items if a.url}
    hashes = {a.hash for a in items}
    conds = [Article.content_hash.in_(hashes)]
    if guids:
        conds.append(Article.guid.in_(guids))
    if urls:
        conds.append(Article.url.in_(urls))
    rows = s.execute(
        select(Article.guid, Article.url, Article.content_hash).where(Article.outlet == outlet, or_(*conds))
    ).all()
    g = {r[0] for r in rows if r[0]}
    u = {r[1] for r in rows if r[1]}
    h = {r[2] for r in rows}
    return {i for i, a in enumerate(items) if a.hash in h or (a.guid and a.guid in g) or (a.url and a.url in u)}


# ------------------------------------------------------------------ storage


def _insert(
    s: Session, art: NewArticle, feed_id: int | None, outlet: str, scored: Scored, schema: Sequence[str]
) -> int:
    row = Article(
        feed_id=feed_id,
        outlet=outlet,
        guid=art.guid,
        url=art.url,
        content_hash=art.hash,
        title=art.title,
        published_at=art.published_at,
        published_given=art.published_given,
        day=art.day,
        model_version=scored.version,
        n_statements=sum(st.boilerplate is None for st in art.statements),
        n_boilerplate=sum(st.boilerplate is not None for st in art.statements),
    )
    s.add(row)
    s.flush()
    s.add_all(
        [
            StoredStatement(
                article_id=row.id,
                position=st.position,
                text=st.text,
                key=statement_key(st.text),
                boilerplate=st.boilerplate,
                scores=json.dumps(st.scores) if st.scores is not None else None,
                labels=json.dumps(st.labels) if st.labels is not None else None,
                label_mask=label_mask(st.labels or [], schema),
                margin=margin(st.scores, scored.thresholds) if st.scores is not None else None,
                model_version=scored.version if st.scores is not None else None,
            )
            for st in art.statements
        ]
    )
    return sum(st.scores is not None for st in art.statements)


def store(
    db: Database,
    articles: Sequence[NewArticle],
    feed_id: int | None,
    outlet: str,
    scored: Scored,
    schema: Sequence[str],
    out: ChunkOutcome,
    max_errors: int,
) -> None:
    """Store scored articles in one transaction; on failure, one by one (a duplicate that a
    concurrent writer stored first counts as seen; any other failure as failed)."""
    try:
        with db.write() as s:
            n = sum(_insert(s, a, feed_id, outlet, scored, schema) for a in articles)
            rebuild_daily(s, {(outlet, a.day) for a in articles}, schema)
        out.new += len(articles)
        out.statements += n
        return
    except IntegrityError:
        pass
    except Exception as exc:  # noqa: BLE001 - retried one by one below, errors reported per item
        if len(articles) == 1:
            _fail(out, articles[0].number, f"could not store: {exc}", max_errors)
            return
    for art in articles:
        try:
            with db.write() as s:
                n = _insert(s, art, feed_id, outlet, scored, schema)
                rebuild_daily(s, {(outlet, art.day)}, schema)
            out.new += 1
            out.statements += n
        except IntegrityError:
            out.seen += 1
        except Exception as exc:  # noqa: BLE001
            _fail(out, art.number, f"could not store: {exc}", max_errors)


def _fail(out: ChunkOutcome, number: int, message: str, max_errors: int) -> None:
    out.failed += 1
    if len(out.errors) < max_errors:
        out.errors.append(f"item {number}: {message}")


def rebuild_daily(s: Session, pairs: set[tuple[str, date]], schema: Sequence[str]) -> None:
    """Recompute `monitor_daily` for each (outlet, day) from its stored statements. Called
    in the transaction that changed them, so the counts never drift from the rows."""
    for outlet, day in sorted(pairs):
        s.execute(delete(DailyCount).where(DailyCount.outlet == outlet, DailyCount.day == day))
        rows = s.execute(
            select(StoredStatement.article_id, StoredStatement.model_version, StoredStatement.label_mask)
            .join(Article, Article.id == StoredStatement.article_id)
            .where(Article.outlet == outlet, Article.day == day, StoredStatement.model_version.is_not(None))
        ).all()
        stmts: dict[tuple[str, str], int] = defaultdict(int)
        arts: dict[tuple[str, str], set[int]] = defaultdict(set)
        for article_id, version, mask in rows:
            names = [ALL] + ([STANCE] if mask else []) + [n for i, n in enumerate(schema) if mask >> i & 1]
            for name in names:
                stmts[(version, name)] += 1
                arts[(version, name)].add(article_id)
        s.add_all(
            [
                DailyCount(
                    outlet=outlet,
                    day=day,
                    model_version=version,
                    label=name,
                    week=week_start(day),
                    month=month_start(day),
                    statements=n,
                    articles=len(arts[(version, name)]),
                )
                for (version, name), n in stmts.items()
            ]
        )


# ------------------------------------------------------------------ one chunk


def _marks(art: NewArticle) -> set[str]:
    """The identities an article is deduplicated by (hash always; guid, URL when given)."""
    return {f"h:{art.hash}"} | ({f"g:{art.guid}"} if art.guid else set()) | ({f"u:{art.url}"} if art.url else set())


async def ingest_chunk(
    db: Database,
    model: ModelPort,
    items: Sequence[tuple[int, FeedItem]],
    feed_id: int | None,
    outlet: str,
    schema: Sequence[str],
    seg: SegmentationSettings,
    max_errors: int,
    seen_in_poll: set[str],
) -> ChunkOutcome:
    """Dedup, segment, score and store one chunk of (number, item). `seen_in_poll` holds the
    guids/URLs/hashes met earlier in the same document (a feed listing an item twice)."""
    out = ChunkOutcome()
    now = datetime.now(UTC)
    splitter = model.splitter()
    fresh: list[NewArticle] = []
    for number, item in items:
        if item.error:
            _fail(out, number, item.error, max_errors)
            continue
        try:
            art = await asyncio.to_thread(prepare, item, number, now, seg, splitter)
        except Exception as exc:  # noqa: BLE001 - one bad item never stops the rest
            _fail(out, number, f"could not segment: {exc}", max_errors)
            continue
        marks = _marks(art)
        if marks & seen_in_poll:
            out.seen += 1
            continue
        seen_in_poll |= marks
        fresh.append(art)
    if not fresh:
        return out

    def _known() -> set[int]:
        with db.read() as s:
            return known(s, outlet, fresh)

    old = await asyncio.to_thread(_known)
    out.seen += len(old)
    fresh = [a for i, a in enumerate(fresh) if i not in old]
    if not fresh:
        return out
    try:
        scored = await model.score([text for a in fresh for _pos, text in a.units])
    except Exception as exc:  # noqa: BLE001 - the model failed on this chunk: its items fail, the poll goes on
        for art in fresh:
            _fail(out, art.number, f"could not score: {exc}", max_errors)
        return out
    attach_scores(fresh, scored.predictions)
    out.version = scored.version
    await asyncio.to_thread(store, db, fresh, feed_id, outlet, scored, schema, out, max_errors)
    return out
