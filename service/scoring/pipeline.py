"""What the routes do: texts -> units -> micro-batched scores -> per-text results, and
feed articles -> streamed NDJSON. Routes stay thin; this is where the work happens."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

from starlette.concurrency import run_in_threadpool

from service.scoring.feeds import Article
from service.scoring.scorer import Cancelled, Scorer
from service.scoring.statements import (
    Prepared,
    WindowSplitter,
    aggregate,
    prepare_article,
    prepare_text,
    regroup,
    splitter_for,
    summarize,
)
from training.settings import SegmentationSettings

FEEDS_PATH = "/v1/feeds/score"


class TooManyStatements(ValueError):
    """A request holds more statements than one response should carry (the API answers 413)."""


async def classify(
    scorer: Scorer,
    texts: list[str],
    seg: SegmentationSettings,
    max_statements: int | None = None,
    cancelled: Cancelled | None = None,
) -> dict[str, Any]:
    """All texts' statements go to the scorer in one call (one micro-batch when small).
    More than `max_statements` statements is a 413 pointing to the feed endpoint (bulk
    work streams there); `cancelled` stops the scoring of a request whose client left."""
    splitter = splitter_for(scorer.bundle)

    def prepare() -> list[Prepared]:
        return [prepare_text(t, seg, splitter) for t in texts]

    # Segmenting long texts is CPU work; keep it off the event loop.
    long_input = sum(len(t) for t in texts) > seg.max_statement_chars
    prepared = await run_in_threadpool(prepare) if long_input else prepare()
    units = [u.text for p in prepared for u in p.units]
    if max_statements is not None and len(units) > max_statements:
        raise TooManyStatements(
            f"{len(units)} statements in one request; the limit is {max_statements}. "
            f"Send bulk text to POST {FEEDS_PATH} (streamed, scored a chunk at a time)",
        )
    preds, version = await scorer.score_versioned(units, cancelled)
    labels = list(preds[0].scores) if preds else scorer.bundle.labels
    results = []
    for p, part in zip(prepared, regroup(preds, (len(p.units) for p in prepared)), strict=True):
        results.append(
            {
                **aggregate(p.units, part, labels),
                "model_version": version,
                "statements": p.statements,
                "boilerplate": p.boilerplate,
            }
        )
    return {"model_version": version, "results": results}


def take_chunk(
    articles: Iterator[Article], seg: SegmentationSettings, splitter: WindowSplitter, min_units: int
) -> list[tuple[Article, Prepared | None]]:
    """The next few articles, segmented, holding at least `min_units` statements (or the
    rest of the feed): enough to fill a model call, few enough to keep memory flat.
    Articles with `error` set (no text) pass through unsegmented."""
    chunk: list[tuple[Article, Prepared | None]] = []
    units = 0
    for article in articles:
        prepared = None if article.error else prepare_article(article.full_text, seg, splitter)
        chunk.append((article, prepared))
        units += len(prepared.units) if prepared else 0
        if units >= min_units:
            break
    return chunk


def _line(obj: dict[str, Any]) -> bytes:
    try:
        return (json.dumps(obj, ensure_ascii=False) + "\n").encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate in an echoed field: escape it, stay valid JSON
        return (json.dumps(obj, ensure_ascii=True) + "\n").encode("ascii")


def article_result(
    article: Article,
    prepared: Prepared | None,
    preds: list[Any],
    version: str,
    labels: list[str],
    boilerplate: bool = False,
) -> dict[str, Any]:
    """One article's NDJSON object: statement rows and the summary (or the item's error).
    With `boilerplate`, the skipped statements are rows too (`boilerplate`: the reason,
    no scores), in reading order, so a reader can show the whole article."""
    if prepared is None:
        return {**article.meta(), "error": article.error}
    rows: list[dict[str, Any]] = [
        {"index": u.index, "text": u.text, "labels": p.labels, "scores": p.scores}
        for u, p in zip(prepared.units, preds, strict=True)
    ]
    if boilerplate and prepared.skipped:
        rows += [{"index": s.index, "text": s.text, "boilerplate": s.reason} for s in prepared.skipped]
        rows.sort(key=lambda row: row["index"])  # stable: window pieces keep their order
    return {
        **article.meta(),
        "model_version": version,
        "summary": summarize(prepared, preds, labels),
        "statements": rows,
    }


async def stream_feed(
    scorer: Scorer,
    articles: Iterator[Article],
    seg: SegmentationSettings,
    chunk_units: int,
    boilerplate: bool = False,
) -> AsyncIterator[bytes]:
    """NDJSON, one line per article, in feed order. Segmentation of the next chunk (a
    worker thread) overlaps the model call on the current one."""

    def take() -> list[tuple[Article, Prepared | None]]:
        return take_chunk(articles, seg, splitter_for(scorer.bundle), chunk_units)

    pending = asyncio.ensure_future(run_in_threadpool(take))
    try:
        while chunk := await pending:
            pending = asyncio.ensure_future(run_in_threadpool(take))
            for line in await score_chunk(scorer, chunk, boilerplate):
                yield line
    except Exception as exc:  # the response has started: report in the stream, then stop
        yield _line({"error": f"scoring stopped: {type(exc).__name__}: {exc}"})
    finally:
        pending.cancel()


async def score_chunk(
    scorer: Scorer, chunk: list[tuple[Article, Prepared | None]], boilerplate: bool = False
) -> list[bytes]:
    """NDJSON lines of a chunk of articles, scored in one call. If that call fails, each
    article is scored alone, so one bad article is reported in its own line and the
    others are still scored."""
    labels = scorer.bundle.labels
    try:
        texts = [u.text for _, p in chunk if p for u in p.units]
        preds, version = await scorer.score_versioned(texts)
    except Exception:  # noqa: BLE001 - isolate the culprit below
        return [line for one in chunk for line in await _score_alone(scorer, one, labels, boilerplate)]
    parts = regroup(preds, (len(p.units) if p else 0 for _, p in chunk))
    return [
        _line(article_result(article, prepared, part, version, labels, boilerplate))
        for (article, prepared), part in zip(chunk, parts, strict=True)
    ]


async def _score_alone(
    scorer: Scorer, item: tuple[Article, Prepared | None], labels: list[str], boilerplate: bool = False
) -> list[bytes]:
    article, prepared = item
    try:
        preds, version = await scorer.score_versioned([u.text for u in prepared.units] if prepared else [])
    except Exception as exc:  # noqa: BLE001 - reported on the article's own line
        return [_line({**article.meta(), "error": f"scoring failed: {type(exc).__name__}: {exc}"})]
    return [_line(article_result(article, prepared, preds, version, labels, boilerplate))]
