"""`/v1/annotations`: add (token) and list (open). Thin: the body is checked by
`service.api.annotation_intake`, storage is `service.store.repository.AnnotationStore`."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Body, Query, status
from starlette.concurrency import run_in_threadpool

from service.api.annotation_intake import intake
from service.api.deps import TOKEN_REQUIRED, StoreDep
from service.api.errors import ApiError, responses
from service.api.limits import ApiRoute
from service.api.schemas_admin import AnnotationPage, AnnotationsBody, AnnotationsPosted, AnnotationStats

router = APIRouter(prefix="/v1", tags=["annotations"], route_class=ApiRoute)
# SQL OFFSET is a signed 64-bit integer: pages beyond this would overflow it.
MAX_PAGE = 2**31

EXAMPLE = {
    "batch": "analyst-2024-06-12",
    "annotator": "maria",
    "annotations": [
        {"text": "Allies must invite Ukraine now.", "labels": ["fast_track_membership"], "source": "doc-17"},
        {"text": "The summit starts at nine.", "labels": [], "source": "doc-17"},
    ],
}


@router.post(
    "/annotations",
    status_code=status.HTTP_201_CREATED,
    dependencies=TOKEN_REQUIRED,
    response_model=AnnotationsPosted,
    responses=responses(400, 401, 403, 413, 422, 503),
    summary="Add one or many annotations (all stored or none)",
)
def post_annotations(store: StoreDep, body: Annotated[AnnotationsBody, Body(examples=[EXAMPLE])]) -> AnnotationsPosted:
    """Body: `{"annotations": [{text, labels, source, annotator?}, ...], "batch"?, "annotator"?}`,
    a single record, or a list of records. Invalid records reject the whole request (422)
    with every problem listed by record number. Re-posting an identical record is a no-op
    that returns the same id (safe retries)."""
    items, batch = intake(body, store.settings, store.schema)
    results = store.add(items, batch, kind="api") or []
    created = sum(r.created for r in results)
    return AnnotationsPosted(
        ids=[r.id for r in results], created=created, unchanged=len(results) - created, batch=batch
    )


@router.get(
    "/annotations",
    response_model=AnnotationPage,
    responses=responses(422),
    summary="List annotations (latest per statement, or the full history)",
)
async def list_annotations(
    store: StoreDep,
    view: Literal["latest", "history"] = "latest",
    batch: str | None = None,
    label: Annotated[str | None, Query(description="a label name, or 'none'")] = None,
    source: str | None = None,
    annotator: str | None = None,
    text: Annotated[str | None, Query(description="a substring of the statement (case-insensitive)")] = None,
    statement_id: Annotated[
        int | None, Query(ge=1, le=MAX_PAGE, description="one statement (with view=history: its history)")
    ] = None,
    page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
    page_size: Annotated[int | None, Query(ge=1)] = None,
) -> AnnotationPage:
    try:
        listed = await run_in_threadpool(
            store.list,
            view=view,
            batch=batch,
            label=label,
            source=source,
            annotator=annotator,
            text=text,
            statement_id=statement_id,
            page=page,
            page_size=page_size,
        )
    except ValueError as exc:
        raise ApiError(422, str(exc), [{"field": "label", "message": str(exc)}]) from None
    return AnnotationPage.model_validate(listed)


@router.get(
    "/annotations/stats",
    response_model=AnnotationStats,
    summary="Per-label and per-batch counts, conflicts between annotators",
)
async def annotation_stats(store: StoreDep) -> AnnotationStats:
    return AnnotationStats.model_validate(await run_in_threadpool(store.stats))
