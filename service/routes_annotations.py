"""`/v1/annotations`: add (token) and list (open). Thin: validation is
`training.annotations.validate_record`, storage is `service.store.AnnotationStore`."""

from __future__ import annotations

import re
from typing import Any, Literal

from fastapi import APIRouter, Body, Depends, HTTPException, Query, Request, status

from service.auth import require_token
from service.store import AnnotationStore, NewAnnotation, default_api_batch
from training.annotations import validate_record

router = APIRouter(prefix="/v1", tags=["annotations"])
DEFAULT_ANNOTATOR = "api"
_NAME = re.compile(r"^[\w.@:+-]{1,200}$")

EXAMPLE = {
    "batch": "analyst-2024-06-12",
    "annotator": "maria",
    "annotations": [
        {"text": "Allies must invite Ukraine now.", "labels": ["fast_track_membership"], "source": "doc-17"},
        {"text": "The summit starts at nine.", "labels": [], "source": "doc-17"},
    ],
}


def _store(request: Request) -> AnnotationStore:
    return request.app.state.store


def _name(value: Any, what: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _NAME.match(value):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            detail=f"'{what}' must be 1-200 letters, digits or . _ - @ : +")
    return value


@router.post("/annotations", status_code=status.HTTP_201_CREATED, dependencies=[Depends(require_token)],
             summary="Add one or many annotations (all stored or none)")
def post_annotations(
    request: Request,
    payload: Any = Body(..., examples=[EXAMPLE]),
) -> dict[str, Any]:
    """Body: `{"annotations": [{text, labels, source, annotator?}, ...], "batch"?, "annotator"?}`,
    or a single record. Invalid records reject the whole request (422) with every problem
    listed by record number. Re-posting an identical record is a no-op that returns the
    same id (safe retries)."""
    if isinstance(payload, dict) and "annotations" in payload:
        records, batch, annotator = payload["annotations"], payload.get("batch"), payload.get("annotator")
    elif isinstance(payload, dict):
        records, batch, annotator = [payload], None, None
    elif isinstance(payload, list):
        records, batch, annotator = payload, None, None
    else:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail="expected a JSON object or list")
    store = _store(request)
    limit = store.settings.store.max_post_records
    if not isinstance(records, list) or not records:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail="'annotations' must be a non-empty list")
    if len(records) > limit:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE,
                            detail=f"{len(records)} records; at most {limit} per request")
    batch = _name(batch, "batch") or default_api_batch()
    annotator = _name(annotator, "annotator") or DEFAULT_ANNOTATOR
    items, problems = [], []
    for i, record in enumerate(records, start=1):
        try:
            ann = validate_record(record, store.schema)
            who = _name(record.get("annotator"), "annotator") or annotator
            items.append(NewAnnotation(ann, who))
        except ValueError as exc:
            problems.append({"record": i, "message": str(exc)})
        except HTTPException as exc:
            problems.append({"record": i, "message": str(exc.detail)})
    if problems:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail={"message": f"{len(problems)} invalid record(s); nothing was stored", "problems": problems},
        )
    results = store.add(items, batch, kind="api") or []
    created = sum(r.created for r in results)
    return {"ids": [r.id for r in results], "created": created, "unchanged": len(results) - created,
            "batch": batch}


@router.get("/annotations", summary="List annotations (latest per statement, or the full history)")
def list_annotations(
    request: Request,
    view: Literal["latest", "history"] = "latest",
    batch: str | None = None,
    label: str | None = Query(None, description="a label name, or 'none'"),
    source: str | None = None,
    annotator: str | None = None,
    text: str | None = Query(None, description="a substring of the statement (case-insensitive)"),
    statement_id: int | None = Query(None, ge=1, description="one statement (with view=history: its history)"),
    page: int = Query(1, ge=1),
    page_size: int | None = Query(None, ge=1),
) -> dict[str, Any]:
    store = _store(request)
    try:
        return store.list(view=view, batch=batch, label=label, source=source, annotator=annotator,
                          text=text, statement_id=statement_id, page=page, page_size=page_size)
    except ValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(exc)) from None


@router.get("/annotations/stats", summary="Per-label and per-batch counts, conflicts between annotators")
def annotation_stats(request: Request) -> dict[str, Any]:
    return _store(request).stats()
