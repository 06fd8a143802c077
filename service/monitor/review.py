"""The active-learning queue: which stored statements to annotate next, and the answers.

Choosing (`next`): candidates are stored content statements (never boilerplate) whose
text has no annotation in the store and was not skipped, the most uncertain first (the
indexed `margin`: logit distance of the label closest to its threshold). From the
`monitor.review_pool` most uncertain, maximal marginal relevance picks `n`: each step
takes the statement maximising  lambda * uncertainty - (1 - lambda) * max cosine
similarity to those already picked, on the encoder's mean-pooled embedding, so twenty
near-identical statements are never proposed together. The same text met in several
articles is one candidate.

Answering: labels become an annotation in the store (batch `review-YYYY-MM-DD`, source =
the article's URL, so folds stay grouped by article); `skip` records the statement's key.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import exists, select
from sqlalchemy.exc import IntegrityError

from service.monitor.ingest import aware
from service.monitor.tables import Article, ReviewSkip, StoredStatement
from service.store.repository import AnnotationStore, NewAnnotation
from service.store.tables import Statement
from training.annotations import validate_record

REVIEW_BATCH_PREFIX = "review-"
REVIEW_KIND = "review"
Embed = Callable[[list[str]], np.ndarray]


class ReviewNotFound(KeyError):
    pass


class ReviewInvalid(ValueError):
    pass


def review_batch(now: datetime | None = None) -> str:
    return REVIEW_BATCH_PREFIX + (now or datetime.now(UTC)).strftime("%Y-%m-%d")


def uncertainty(margin: float) -> float:
    """1 at a threshold, towards 0 far from every threshold."""
    return 1.0 / (1.0 + max(margin, 0.0))


def mmr(scores: np.ndarray, emb: np.ndarray, n: int, lam: float) -> list[int]:
    """Greedy maximal marginal relevance: indices of `n` items trading `scores` (higher is
    better, any scale) against cosine similarity to the items already chosen."""
    if len(scores) == 0 or n <= 0:
        return []
    rel = scores / (scores.max() or 1.0)
    sim = emb @ emb.T
    chosen: list[int] = []
    closest = np.full(len(scores), -np.inf)
    available = np.ones(len(scores), dtype=bool)
    for _ in range(min(n, len(scores))):
        penalty = np.where(np.isfinite(closest), closest, 0.0)
        value = lam * rel - (1 - lam) * penalty
        value[~available] = -np.inf
        i = int(np.argmax(value))
        chosen.append(i)
        available[i] = False
        closest = np.maximum(closest, sim[i])
    return chosen


@dataclass(frozen=True)
class Candidate:
    id: int
    text: str
    key: str
    scores: dict[str, float]
    labels: list[str]
    margin: float
    model_version: str | None
    article_id: int
    outlet: str
    title: str | None
    url: str | None
    published_at: datetime

    def to_json(self, unc: float) -> dict[str, Any]:
        return {
            "id": self.id,
            "text": self.text,
            "outlet": self.outlet,
            "article_id": self.article_id,
            "title": self.title,
            "url": self.url,
            "published_at": aware(self.published_at).isoformat(),
            "scores": self.scores,
            "labels": self.labels,
            "uncertainty": round(unc, 6),
            "model_version": self.model_version,
        }


class EmbeddingCache:
    """Embeddings of recently proposed statements, per model version (the pool changes
    slowly, so most of a request's pool was embedded by the previous request)."""

    def __init__(self, size: int = 20000) -> None:
        self.size = size
        self._data: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()  # requests run in worker threads

    def get(self, version: str, keys: Sequence[str], texts: Sequence[str], embed: Embed) -> np.ndarray:
        with self._lock:
            missing = [i for i, k in enumerate(keys) if (version, k) not in self._data]
        vecs = embed([texts[i] for i in missing]) if missing else []
        with self._lock:
            for i, vec in zip(missing, vecs, strict=False):
                self._data[(version, keys[i])] = vec
            out = np.stack([self._data[(version, k)] for k in keys]) if keys else np.zeros((0, 1), np.float32)
            for k in keys:
                self._data.move_to_end((version, k))
            while len(self._data) > self.size:
                self._data.popitem(last=False)
        return out


class ReviewQueue:
    def __init__(self, store: AnnotationStore, pool: int, lam: float) -> None:
        self.store = store
        self.db = store.db
        self.pool = pool
        self.lam = lam
        self.cache = EmbeddingCache()

    def candidates(self, limit: int, outlet: str | None = None) -> list[Candidate]:
        """The `limit` most uncertain reviewable statements, one per distinct text."""
        annotated = exists().where(Statement.key == StoredStatement.key, Statement.latest_id.is_not(None))
        skipped = exists().where(ReviewSkip.key == StoredStatement.key)
        q = (
            select(StoredStatement, Article.outlet, Article.title, Article.url, Article.published_at)
            .join(Article, Article.id == StoredStatement.article_id)
            .where(StoredStatement.boilerplate.is_(None), StoredStatement.margin.is_not(None), ~annotated, ~skipped)
            .order_by(StoredStatement.margin, StoredStatement.id)
        )
        if outlet:
            q = q.where(Article.outlet == outlet)
        out: list[Candidate] = []
        keys: set[str] = set()
        offset, page = 0, limit * 2
        with self.db.read() as s:
            while len(out) < limit:
                rows = s.execute(q.offset(offset).limit(page)).all()
                for st, outlet_, title, url, published in rows:
                    if st.key in keys:
                        continue
                    keys.add(st.key)
                    out.append(
                        Candidate(
                            st.id,
                            st.text,
                            st.key,
                            json.loads(st.scores or "{}"),
                            json.loads(st.labels or "[]"),
                            float(st.margin),
                            st.model_version,
                            st.article_id,
                            outlet_,
                            title,
                            url,
                            published,
                        )
                    )
                    if len(out) == limit:
                        break
                if len(rows) < page:
                    break
                offset += page
        return out

    def next(self, n: int, embed: Embed, version: str, outlet: str | None = None) -> list[dict[str, Any]]:
        pool = self.candidates(max(self.pool, n), outlet)
        if not pool:
            return []
        unc = np.array([uncertainty(c.margin) for c in pool])
        emb = self.cache.get(version, [c.key for c in pool], [c.text for c in pool], embed)
        return [pool[i].to_json(float(unc[i])) for i in mmr(unc, emb, n, self.lam)]

    def _statement(self, statement_id: int) -> tuple[StoredStatement, Article]:
        with self.db.read() as s:
            row = s.execute(
                select(StoredStatement, Article)
                .join(Article, Article.id == StoredStatement.article_id)
                .where(StoredStatement.id == statement_id)
            ).first()
        if row is None:
            raise ReviewNotFound(statement_id)
        return row[0], row[1]

    def annotate(self, statement_id: int, labels: list[str], annotator: str) -> dict[str, Any]:
        st, art = self._statement(statement_id)
        source = art.url or f"monitor-article-{art.id}"
        try:
            ann = validate_record({"text": st.text, "labels": labels, "source": source}, self.store.schema)
        except ValueError as exc:
            raise ReviewInvalid(str(exc)) from None
        batch = review_batch()
        result = self.store.add([NewAnnotation(ann, annotator)], batch, kind=REVIEW_KIND)
        assert result is not None
        return {
            "id": statement_id,
            "status": "annotated",
            "annotation_id": result[0].id,
            "created": result[0].created,
            "batch": batch,
            "labels": list(ann.labels),
        }

    def skip(self, statement_id: int, annotator: str) -> dict[str, Any]:
        st, _art = self._statement(statement_id)
        try:
            with self.db.write() as s:
                if s.scalar(select(ReviewSkip.id).where(ReviewSkip.key == st.key)) is None:
                    s.add(ReviewSkip(key=st.key, statement_id=st.id, annotator=annotator))
        except IntegrityError:  # skipped concurrently: the same outcome
            pass
        return {
            "id": statement_id,
            "status": "skipped",
            "annotation_id": None,
            "created": False,
            "batch": None,
            "labels": None,
        }
