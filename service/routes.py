"""HTTP routes, kept thin: check input, call `service.pipeline`, shape the answer."""

from __future__ import annotations

import tempfile
from typing import IO, Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from service import pipeline
from service.feeds import FORMAT_ALIASES, FeedError, detect_format, open_feed
from service.limits import Utf8JsonRoute, check_texts
from service.schemas import ClassifyRequest, ClassifyResponse, ErrorBody, Health, ModelInfo
from service.scoring import Scorer
from training.settings import Settings

FEEDS_PATH = "/v1/feeds/score"
SPOOL_IN_MEMORY_BYTES = 1 << 20  # feed bodies above this spill to a temp file
SNIFF_BYTES = 512

router = APIRouter(route_class=Utf8JsonRoute)
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text}
    for code, text in {
        400: "malformed input (says what and where)",
        413: "request body over the limit",
        422: "invalid field (names the field and the limit)",
        503: "model not loaded yet",
    }.items()
}


# Dependencies are `async def` on purpose: FastAPI runs plain `def` ones in the thread
# pool, a thread hop per request on the hot path.
async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def ready_scorer(request: Request) -> Scorer:
    scorer: Scorer = request.app.state.scorer
    if not scorer.ready:
        raise HTTPException(503, "the model is not loaded yet; retry shortly")
    return scorer


ScorerDep = Annotated[Scorer, Depends(ready_scorer)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


@router.get("/healthz", response_model=Health, tags=["health"])
async def healthz() -> dict[str, Any]:
    """The process is up (liveness)."""
    return {"status": "ok"}


@router.get("/readyz", response_model=Health, tags=["health"], responses={503: ERRORS[503]})
async def readyz(request: Request) -> Any:
    """A model is loaded and warmed up (readiness); 503 until then."""
    scorer: Scorer = request.app.state.scorer
    if not scorer.ready:
        return JSONResponse(status_code=503, content={"status": "loading", "model_version": None})
    return {"status": "ready", "model_version": scorer.version}


@router.get("/v1/model", response_model=ModelInfo, tags=["model"], responses={503: ERRORS[503]})
async def model_info(scorer: ScorerDep) -> dict[str, Any]:
    """The model being served: version, labels, thresholds, metrics, backend."""
    bundle = scorer.bundle
    return {
        "version": bundle.version,
        "labels": bundle.labels,
        "thresholds": bundle.thresholds,
        "metrics": bundle.metrics,
        "backend": bundle.backend_name,
        "max_length": int(bundle.meta.get("max_length", 0)),
        "created": bundle.meta.get("created"),
        "serving": {
            "batches": scorer.stats.batches,
            "statements": scorer.stats.statements,
            "max_batch": scorer.stats.max_batch,
        },
    }


@router.post(
    "/v1/classify",
    response_model=None,  # documented below; results are built by our code, not re-validated
    tags=["scoring"],
    responses={200: {"model": ClassifyResponse}, **{k: ERRORS[k] for k in (400, 413, 422, 503)}},
)
async def classify(body: ClassifyRequest, scorer: ScorerDep, settings: SettingsDep) -> JSONResponse:
    """Stance labels for one text or several. A text of several sentences is segmented;
    a label is on if any statement carries it, its score is the max over statements, and
    `evidence` lists the statements that carry it."""
    check_texts(body.items(), "text" if body.text is not None else "texts", settings.service)
    return JSONResponse(await pipeline.classify(scorer, body.items(), settings.segmentation))


async def _spool(request: Request) -> IO[bytes]:
    """The request body in a temp file (in memory while small): the size limit is enforced
    while reading (413) and the feed is checked whole (400) before any result is sent."""
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY_BYTES)
    try:
        async for chunk in request.stream():
            spool.write(chunk)
    except BaseException:
        spool.close()
        raise
    spool.seek(0)
    return spool


@router.post(
    FEEDS_PATH,
    tags=["scoring"],
    responses={
        200: {"content": {"application/x-ndjson": {}}, "description": "one JSON object per article"},
        **{k: ERRORS[k] for k in (400, 413, 422, 503)},
    },
    openapi_extra={"requestBody": {"required": True, "content": {
        "application/rss+xml": {"schema": {"type": "string"}},
        "application/atom+xml": {"schema": {"type": "string"}},
        "application/x-ndjson": {"schema": {"type": "string"}},
        "text/plain": {"schema": {"type": "string"}},
    }}},
)
async def score_feed(
    request: Request,
    scorer: ScorerDep,
    settings: SettingsDep,
    fmt: Annotated[
        str, Query(alias="format", description=f"auto | {' | '.join(FORMAT_ALIASES)}")
    ] = "auto",
    boilerplate: Annotated[
        bool, Query(description="also return the skipped boilerplate statements (rows with `boilerplate`: why)")
    ] = False,
) -> StreamingResponse:
    """Score a feed: RSS 2.0, Atom, JSON Lines of articles ({"id","title","text","url",
    "published"}) or plain text (articles separated by a line `---`). The format comes from
    `format`, else Content-Type, else the first bytes. Streams NDJSON, one object per
    article: statement rows (text, labels, scores) and a summary (statements per label,
    the article's labels); items without text come back with an `error` field."""
    spool = await _spool(request)
    try:
        fmt = detect_format(request.headers.get("content-type"), spool.read(SNIFF_BYTES), fmt)
        spool.seek(0)
        articles = await run_in_threadpool(open_feed, fmt, spool)
    except FeedError as exc:
        spool.close()
        raise HTTPException(400, f"malformed feed: {exc}") from None
    except BaseException:
        spool.close()
        raise
    stream = pipeline.stream_feed(
        scorer, articles, settings.segmentation, settings.service.max_call_size, boilerplate
    )
    return StreamingResponse(
        stream, media_type="application/x-ndjson", background=BackgroundTask(spool.close)
    )
