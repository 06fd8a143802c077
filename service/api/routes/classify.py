"""HTTP routes, kept thin: check input, call `service.scoring.pipeline`, shape the answer."""

from __future__ import annotations

import tempfile
from typing import IO, Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from service.api.deps import ScorerDep, SettingsDep
from service.api.errors import ApiError, responses
from service.api.limits import ApiRoute, check_texts
from service.api.schemas import ClassifyRequest, ClassifyResponse, Health, ModelInfo
from service.scoring import pipeline
from service.scoring.feeds import FORMAT_ALIASES, FeedError, detect_format, open_feed
from service.scoring.formats import SNIFF_BYTES
from service.scoring.pipeline import FEEDS_PATH
from service.scoring.scorer import Abandoned, Scorer

SPOOL_IN_MEMORY_BYTES = 1 << 20  # feed bodies above this spill to a temp file
CLIENT_CLOSED = 499  # nginx's code for "client closed the request"; nobody reads it

router = APIRouter(route_class=ApiRoute)
__all__ = ["FEEDS_PATH", "router"]


def _fallback_note(request: Request) -> str | None:
    fallback = getattr(request.app.state, "fallback", None)
    if not fallback:
        return None
    return (
        f"serving {fallback['serving']} instead of {fallback['requested']} (models/CURRENT), "
        f"which cannot be served: {fallback['reason']}"
    )


@router.get("/healthz", response_model=Health, tags=["health"])
async def healthz() -> Health:
    """The process is up (liveness)."""
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Health,
    tags=["health"],
    responses={503: {"model": Health, "description": "no model loaded yet"}},
)
async def readyz(request: Request) -> Any:
    """A model is loaded and warmed up (readiness); 503 until then. `detail` says when
    the service serves a fallback because models/CURRENT is broken."""
    scorer: Scorer = request.app.state.scorer
    if not scorer.ready:
        return JSONResponse(status_code=503, content={"status": "loading", "model_version": None})
    return Health(status="ready", model_version=scorer.version, detail=_fallback_note(request))


@router.get(
    "/metrics",
    tags=["health"],
    response_class=Response,
    responses={
        200: {
            "content": {"text/plain": {"schema": {"type": "string"}}},
            "description": "Prometheus text exposition format",
        }
    },
)
async def metrics(request: Request) -> Response:
    """Prometheus metrics (request counts and latency, statements scored, batch sizes)."""
    return Response(generate_latest(request.app.state.metrics_registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/v1/model", response_model=ModelInfo, tags=["model"], responses=responses(503))
async def model_info(request: Request, scorer: ScorerDep) -> dict[str, Any]:
    """The model being served: version, labels, thresholds, metrics, backend, and
    `fallback` when models/CURRENT was broken at start (which version, why)."""
    bundle = scorer.bundle
    return {
        "version": bundle.version,
        "labels": bundle.labels,
        "thresholds": bundle.thresholds,
        "metrics": bundle.metrics,
        "backend": bundle.backend_name,
        "backend_reason": bundle.meta.get("backend_reason"),
        "policy": bundle.meta.get("policy"),
        "calibration": bundle.meta.get("calibration"),
        "max_length": int(bundle.meta.get("max_length", 0)),
        "created": bundle.meta.get("created"),
        "serving": {
            "batches": scorer.stats.batches,
            "statements": scorer.stats.statements,
            "max_batch": scorer.stats.max_batch,
        },
        "fallback": getattr(request.app.state, "fallback", None),
    }


@router.post(
    "/v1/classify",
    response_model=None,  # documented below; results are built by our code, not re-validated
    tags=["scoring"],
    responses={200: {"model": ClassifyResponse, "description": "labels per text"}, **responses(400, 413, 422, 503)},
)
async def classify(request: Request, body: ClassifyRequest, scorer: ScorerDep, settings: SettingsDep) -> Response:
    """Stance labels for one text or several. A text of several sentences is segmented;
    a label is on if any statement carries it, its score is the max over statements, and
    `evidence` lists the statements that carry it. More than `service.max_statements`
    statements is a 413: send bulk text to the feed endpoint."""
    check_texts(body.items(), "text" if body.text is not None else "texts", settings.service)
    try:
        result = await pipeline.classify(
            scorer,
            body.items(),
            settings.segmentation,
            settings.service.max_statements,
            cancelled=request.is_disconnected,
        )
    except pipeline.TooManyStatements as exc:
        raise ApiError(413, str(exc)) from None
    except Abandoned:
        return Response(status_code=CLIENT_CLOSED)
    return JSONResponse(result)


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
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"application/x-ndjson": {"schema": {"type": "string"}}},
            "description": "one JSON object per article",
        },
        **responses(400, 413, 422, 503),
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/rss+xml": {"schema": {"type": "string"}},
                "application/atom+xml": {"schema": {"type": "string"}},
                "application/x-ndjson": {"schema": {"type": "string"}},
                "text/plain": {"schema": {"type": "string"}},
            },
        }
    },
)
async def score_feed(
    request: Request,
    scorer: ScorerDep,
    settings: SettingsDep,
    fmt: Annotated[str, Query(alias="format", description=f"auto | {' | '.join(FORMAT_ALIASES)}")] = "auto",
    boilerplate: Annotated[
        bool, Query(description="also return the skipped boilerplate statements (rows with `boilerplate`: why)")
    ] = False,
) -> StreamingResponse:
    """Score a feed: RSS 2.0, Atom, JSON Lines of articles ({"id","title","text","url",
    "published"}) or plain text (articles separated by a line `---`). The format comes from
    `format`, else Content-Type, else the first bytes. Streams NDJSON, one object per
    article: statement rows (text, labels, scores) and a summary (statements per label,
    the article's labels); items that cannot be scored come back with an `error` field."""
    spool = await _spool(request)
    if spool.tell() == 0 and not spool.read(1):
        spool.close()
        raise ApiError(400, "empty body: send a feed (RSS, Atom, JSON Lines or text)")
    spool.seek(0)
    try:
        fmt = detect_format(request.headers.get("content-type"), spool.read(SNIFF_BYTES), fmt)
        spool.seek(0)
        articles = await run_in_threadpool(open_feed, fmt, spool)
    except FeedError as exc:
        spool.close()
        raise ApiError(400, f"malformed feed: {exc}") from None
    except BaseException:
        spool.close()
        raise
    stream = pipeline.stream_feed(scorer, articles, settings.segmentation, settings.service.max_call_size, boilerplate)
    return StreamingResponse(stream, media_type="application/x-ndjson", background=BackgroundTask(spool.close))
