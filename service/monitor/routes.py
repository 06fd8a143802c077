"""Monitoring routes, kept thin: `/v1/feeds`, `/v1/articles`, `/v1/trends`, `/v1/rescore`,
`/v1/review`. Writes need the API token (service.api.auth); reads are open."""

from __future__ import annotations

import asyncio
import re
from datetime import date
from typing import Annotated, Any, Literal

import httpx
from fastapi import APIRouter, HTTPException, Path, Query, Request, Response, status
from fastapi.responses import PlainTextResponse
from pydantic import BeforeValidator

from service.api.deps import TOKEN_REQUIRED
from service.api.errors import responses
from service.api.limits import ApiRoute
from service.api.schemas_admin import JobOut
from service.monitor import articles as articles_repo
from service.monitor import trends
from service.monitor.poller import PollContext, poll_feed
from service.monitor.rescore import RescoreConflict
from service.monitor.review import ReviewInvalid, ReviewNotFound
from service.monitor.schemas import (
    ArticleOut,
    ArticlePage,
    FeedIn,
    FeedOut,
    FeedPatch,
    PollOut,
    ReviewAnswer,
    ReviewNext,
    ReviewResult,
    TrendsOut,
)
from service.monitor.subscriptions import FeedConflict, FeedInvalid, FeedNotFound
from service.monitor.wiring import Monitor

router = APIRouter(prefix="/v1", tags=["monitoring"], route_class=ApiRoute)
MAX_ID = 2**31  # ids and pages above this cannot exist (and would overflow SQLite's integers)
FeedId = Annotated[int, Path(ge=1, le=MAX_ID)]
ArticleId = Annotated[int, Path(ge=1, le=MAX_ID)]
StatementId = Annotated[int, Path(ge=1, le=MAX_ID)]

_ISO_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _iso_day(value: Any) -> Any:
    """Only YYYY-MM-DD: pydantic would also read '0' as a Unix timestamp (1970-01-01)."""
    if isinstance(value, str) and not _ISO_DAY.match(value):
        raise ValueError("a day as YYYY-MM-DD")
    return value


IsoDate = Annotated[date, BeforeValidator(_iso_day)]

POLLS_LISTED = 20
ARTICLES_PAGE = 50
MAX_ARTICLES_PAGE = 500


def _mon(request: Request) -> Monitor:
    return request.app.state.monitor


def _not_found(feed_id: int) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no feed {feed_id}")


def _ready(request: Request) -> None:
    if not request.app.state.scorer.ready:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "the model is not loaded yet; retry shortly")


# ------------------------------------------------------------------ feeds


@router.post(
    "/feeds",
    status_code=status.HTTP_201_CREATED,
    dependencies=TOKEN_REQUIRED,
    response_model=FeedOut,
    responses=responses(400, 401, 403, 409, 422, 503),
    summary="Subscribe to a feed (polled by the service)",
)
def create_feed(request: Request, body: FeedIn) -> dict[str, Any]:
    try:
        return _mon(request).feeds.create(body.name, body.outlet, body.url, body.interval_s, body.format, body.enabled)
    except FeedInvalid as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(exc)) from None
    except FeedConflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from None


@router.get("/feeds", response_model=list[FeedOut], summary="Subscribed feeds with their poll state")
def list_feeds(request: Request) -> list[dict[str, Any]]:
    return _mon(request).feeds.list()


@router.get("/feeds/{feed_id:int}", response_model=FeedOut, responses=responses(404, 422), summary="One feed")
def get_feed(request: Request, feed_id: FeedId) -> dict[str, Any]:
    try:
        return _mon(request).feeds.get(feed_id)
    except FeedNotFound:
        raise _not_found(feed_id) from None


@router.patch(
    "/feeds/{feed_id:int}",
    response_model=FeedOut,
    dependencies=TOKEN_REQUIRED,
    responses=responses(400, 401, 403, 404, 409, 422, 503),
    summary="Change name, outlet, URL, interval, format or enabled",
)
def patch_feed(request: Request, feed_id: FeedId, body: FeedPatch) -> dict[str, Any]:
    try:
        return _mon(request).feeds.update(feed_id, **body.model_dump(exclude_unset=True))
    except FeedNotFound:
        raise _not_found(feed_id) from None
    except FeedInvalid as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(exc)) from None
    except FeedConflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from None


@router.delete(
    "/feeds/{feed_id:int}",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=TOKEN_REQUIRED,
    responses=responses(401, 403, 404, 422, 503),
    summary="Unsubscribe (stored articles stay, so the outlet's trends keep their history)",
)
def delete_feed(request: Request, feed_id: FeedId) -> Response:
    try:
        _mon(request).feeds.delete(feed_id)
    except FeedNotFound:
        raise _not_found(feed_id) from None
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/feeds/{feed_id:int}/polls",
    response_model=list[PollOut],
    responses=responses(404, 422),
    summary="Recent polls of a feed, newest first",
)
def list_polls(
    request: Request, feed_id: FeedId, limit: int = Query(POLLS_LISTED, ge=1, le=1000)
) -> list[dict[str, Any]]:
    try:
        return _mon(request).feeds.polls(feed_id, limit)
    except FeedNotFound:
        raise _not_found(feed_id) from None


@router.post(
    "/feeds/{feed_id:int}/poll",
    response_model=PollOut,
    dependencies=TOKEN_REQUIRED,
    responses=responses(401, 403, 404, 422, 503),
    summary="Poll a feed now (whatever its schedule); returns the poll record",
)
async def poll_now(request: Request, feed_id: FeedId) -> dict[str, Any]:
    mon = _mon(request)
    _ready(request)
    try:
        await asyncio.to_thread(mon.feeds.get_row, feed_id)
    except FeedNotFound:
        raise _not_found(feed_id) from None
    async with httpx.AsyncClient() as client:
        return await poll_feed(PollContext(mon.db, mon.settings, mon.model, client), feed_id)


# ------------------------------------------------------------------ articles


@router.get("/articles", response_model=ArticlePage, responses=responses(422), summary="Stored articles, newest first")
def list_articles(
    request: Request,
    outlet: str | None = None,
    feed_id: int | None = Query(None, ge=1, le=MAX_ID),
    from_: IsoDate | None = Query(None, alias="from", description="YYYY-MM-DD"),
    to: IsoDate | None = Query(None, description="YYYY-MM-DD"),
    page: int = Query(1, ge=1, le=MAX_ID),
    page_size: int = Query(ARTICLES_PAGE, ge=1, le=MAX_ARTICLES_PAGE),
) -> dict[str, Any]:
    return articles_repo.list_articles(_mon(request).db, outlet, from_, to, feed_id, page, page_size)


@router.get(
    "/articles/{article_id:int}",
    response_model=ArticleOut,
    responses=responses(404, 422),
    summary="An article with every statement (scores, labels, boilerplate flags)",
)
def get_article(request: Request, article_id: ArticleId) -> dict[str, Any]:
    found = articles_repo.get_article(_mon(request).db, article_id)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no article {article_id}")
    return found


# ------------------------------------------------------------------ trends


@router.get(
    "/trends",
    response_model=TrendsOut,
    response_model_by_alias=True,
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}, **responses(422)},
    summary="Stance per outlet and day/week/month, with Wilson 95% intervals (JSON or CSV)",
)
def get_trends(
    request: Request,
    outlet: list[str] = Query([], description="repeat for several; none = every outlet"),
    label: list[str] = Query([], description="repeat for several; none = every label"),
    from_: IsoDate | None = Query(None, alias="from", description="first day (published date, UTC), YYYY-MM-DD"),
    to: IsoDate | None = Query(None, description="last day, inclusive, YYYY-MM-DD"),
    bucket: Literal["day", "week", "month"] = "week",
    format: Literal["json", "csv"] | None = Query(None, description="csv, or send 'Accept: text/csv'"),
) -> Any:
    mon = _mon(request)
    try:
        result = trends.query(
            mon.db,
            trends.TrendQuery(tuple(outlet), tuple(label), from_, to, bucket),
            mon.settings.labels,
            mon.settings.monitor.trends_max_rows,
        )
    except trends.TrendQueryError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(exc)) from None
    wants_csv = format == "csv" or (format is None and "text/csv" in request.headers.get("accept", ""))
    if wants_csv:
        versions = " ".join(v["version"] for v in result["model_versions"])
        return PlainTextResponse(
            trends.to_csv(result),
            media_type="text/csv",
            headers={
                "X-Model-Versions": versions,
                "Content-Disposition": f'attachment; filename="trends-{bucket}.csv"',
            },
        )
    return result


@router.post(
    "/rescore",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobOut,
    dependencies=TOKEN_REQUIRED,
    responses=responses(401, 403, 409, 422, 503),
    summary="Re-score stored statements with the current model (a job; see GET /v1/jobs/{id})",
)
async def rescore(request: Request) -> dict[str, Any]:
    _ready(request)
    try:
        return await _mon(request).rescorer.start()
    except RescoreConflict as exc:
        raise HTTPException(
            status.HTTP_409_CONFLICT, detail={"message": str(exc), "active_job": exc.active_id}
        ) from None


# ------------------------------------------------------------------ review


@router.get(
    "/review/next",
    response_model=ReviewNext,
    responses=responses(422, 503),
    summary="Statements to annotate next: uncertain and mutually diverse",
)
async def review_next(
    request: Request,
    n: int = Query(20, ge=1),
    outlet: str | None = None,
) -> dict[str, Any]:
    mon = _mon(request)
    _ready(request)
    limit = mon.settings.monitor.review_max_n
    if n > limit:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, detail=f"'n' must be at most {limit} (monitor.review_max_n)"
        )
    bundle = request.app.state.scorer.bundle
    items = await asyncio.to_thread(mon.review.next, n, bundle.embed, bundle.version, outlet)
    return {"model_version": bundle.version, "strategy": f"uncertainty+mmr(lambda={mon.review.lam:g})", "items": items}


@router.post(
    "/review/{statement_id:int}",
    response_model=ReviewResult,
    dependencies=TOKEN_REQUIRED,
    responses=responses(400, 401, 403, 404, 422, 503),
    summary="Answer a proposed statement: labels (stored as an annotation) or skip",
)
def review_answer(request: Request, statement_id: StatementId, body: ReviewAnswer) -> dict[str, Any]:
    review = _mon(request).review
    try:
        if body.skip:
            return review.skip(statement_id, body.annotator)
        return review.annotate(statement_id, body.labels or [], body.annotator)
    except ReviewNotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no stored statement {statement_id}") from None
    except ReviewInvalid as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(exc)) from None
