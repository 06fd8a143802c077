"""Reading stored articles and their statements (for the console and for checking)."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from sqlalchemy import func, select

from service.monitor.ingest import aware
from service.monitor.tables import Article, StoredStatement
from service.store.engine import Database


def article_json(a: Article) -> dict[str, Any]:
    return {
        "id": a.id,
        "feed_id": a.feed_id,
        "outlet": a.outlet,
        "guid": a.guid,
        "url": a.url,
        "title": a.title,
        "published_at": aware(a.published_at).isoformat(),
        "published_given": a.published_given,
        "fetched_at": aware(a.fetched_at).isoformat() if a.fetched_at else None,
        "model_version": a.model_version,
        "n_statements": a.n_statements,
        "n_boilerplate": a.n_boilerplate,
    }


def statement_json(st: StoredStatement) -> dict[str, Any]:
    return {
        "id": st.id,
        "position": st.position,
        "text": st.text,
        "boilerplate": st.boilerplate,
        "scores": json.loads(st.scores) if st.scores else None,
        "labels": json.loads(st.labels) if st.labels is not None else None,
        "model_version": st.model_version,
    }


def list_articles(
    db: Database,
    outlet: str | None,
    start: date | None,
    end: date | None,
    feed_id: int | None,
    page: int,
    page_size: int,
) -> dict[str, Any]:
    conds = []
    if outlet:
        conds.append(Article.outlet == outlet)
    if start:
        conds.append(Article.day >= start)
    if end:
        conds.append(Article.day <= end)
    if feed_id is not None:
        conds.append(Article.feed_id == feed_id)
    with db.read() as s:
        total = s.scalar(select(func.count()).select_from(Article).where(*conds)) or 0
        rows = s.scalars(
            select(Article)
            .where(*conds)
            .order_by(Article.published_at.desc(), Article.id.desc())
            .offset((page - 1) * page_size)
            .limit(page_size)
        )
        items = [article_json(a) for a in rows]
    return {"total": int(total), "page": page, "page_size": page_size, "items": items}


def get_article(db: Database, article_id: int) -> dict[str, Any] | None:
    with db.read() as s:
        a = s.get(Article, article_id)
        if a is None:
            return None
        sts = s.scalars(
            select(StoredStatement).where(StoredStatement.article_id == article_id).order_by(StoredStatement.position)
        )
        return {**article_json(a), "statements": [statement_json(st) for st in sts]}
