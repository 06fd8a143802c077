"""The rows `stance score` writes, built by one set of functions for both engines.

The local engine (`score_file.py`, `score_table.py`) and the Ray engine (`ray_engine.py`)
call these on their batches, so the two outputs agree row for row: a statement row keeps
`id` and `text` and adds `labels` and `scores`; an article gives one `type: "statement"`
row per scored statement and one `type: "article"` summary row (or that row with `error`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from service.scoring.feeds import Article, FeedError, jsonl_article
from service.scoring.scorer import score_batches
from service.scoring.statements import Prepared, WindowSplitter, prepare_article, summarize
from training.bundle import Bundle, Prediction
from training.settings import SegmentationSettings

TEXT_ERROR = "field 'text' must be a non-empty string"


def statement_error(record: Mapping[str, Any]) -> str | None:
    """Why a statement record cannot be scored, or None."""
    text = record.get("text")
    return None if isinstance(text, str) and text.strip() else TEXT_ERROR


def statement_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """`id` (when given) and `text`: what a statement row keeps of its input."""
    text = record["text"]
    return {"id": record["id"], "text": text} if record.get("id") is not None else {"text": text}


def statement_rows(bundle: Bundle, records: Sequence[Mapping[str, Any]], batch_size: int) -> list[dict[str, Any]]:
    """Valid statement records (see `statement_error`) -> output rows, in order."""
    preds = score_batches(bundle, [r["text"] for r in records], batch_size)
    return [
        {**statement_record(r), "labels": p.labels, "scores": p.scores} for r, p in zip(records, preds, strict=True)
    ]


def record_article(record: Mapping[str, Any], number: int) -> Article:
    """A tabular row (id, title, text, url, published) as an article; a field of the wrong
    type makes an article with `error` set, reported in its own row."""
    try:
        return jsonl_article(dict(record), number)
    except FeedError as exc:
        ident = record.get("id")
        return Article(id=str(ident) if ident is not None else f"line-{number}", text="", error=str(exc))


def prepare_articles(
    articles: Sequence[Article], seg: SegmentationSettings, splitter: WindowSplitter
) -> list[tuple[Article, Prepared | None]]:
    """Each article segmented (None for an article with `error` set)."""
    return [(a, None if a.error else prepare_article(a.full_text, seg, splitter)) for a in articles]


def article_rows(
    article: Article, prepared: Prepared | None, preds: Sequence[Prediction], bundle: Bundle
) -> list[dict[str, Any]]:
    """One article's statement rows and its summary row (or its error row)."""
    if prepared is None:
        return [{"type": "article", **article.meta(), "error": article.error}]
    rows: list[dict[str, Any]] = [
        {
            "type": "statement",
            "article_id": article.id,
            "index": unit.index,
            "text": unit.text,
            "labels": pred.labels,
            "scores": pred.scores,
        }
        for unit, pred in zip(prepared.units, preds, strict=True)
    ]
    summary = {"type": "article", **article.meta(), "model_version": bundle.version}
    rows.append({**summary, **summarize(prepared, preds, bundle.labels)})
    return rows


def score_prepared(bundle: Bundle, chunk: Sequence[tuple[Article, Prepared | None]]) -> list[dict[str, Any]]:
    """All rows of a chunk of segmented articles, scored in one call."""
    texts = [u.text for _, p in chunk if p for u in p.units]
    preds = list(score_batches(bundle, texts, len(texts) or 1))
    rows: list[dict[str, Any]] = []
    offset = 0
    for article, prepared in chunk:
        n = len(prepared.units) if prepared else 0
        rows += article_rows(article, prepared, preds[offset : offset + n], bundle)
        offset += n
    return rows
