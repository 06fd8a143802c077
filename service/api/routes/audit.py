"""GET /v1/annotations/audit: the label audit as JSON, JSON Lines or a Label Studio task file."""

from __future__ import annotations

import json
from typing import Literal

import anyio
from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from service.api.deps import SettingsDep, StoreDep
from service.api.errors import ApiError, responses
from service.api.limits import ApiRoute
from service.store.audit import AuditUnavailable, run_audit
from training.audit import label_studio_tasks

router = APIRouter(prefix="/v1", tags=["annotations"], route_class=ApiRoute)


class SuspectOut(BaseModel):
    rank: int
    text: str
    source: str
    labels: list[str] = Field(description="the current labels ([] = none)")
    suggested_labels: list[str] = Field(description="what the out-of-fold scores say")
    scores: dict[str, float]
    quality: float = Field(description="cleanlab's label quality score: low = likely wrong")
    flagged: bool = Field(description="in cleanlab's set of likely label issues")


class AuditOut(BaseModel):
    scores_from: str
    model_version: str | None
    n_annotations: int
    n_audited: int
    n_flagged: int
    note: str
    suspects: list[SuspectOut]


@router.get(
    "/annotations/audit",
    summary="Likely label errors, likeliest first (cleanlab on out-of-fold scores)",
    response_model=AuditOut,
    responses={
        200: {"content": {"application/x-ndjson": {"schema": {"type": "string"}}}},
        **responses(409, 422),
    },
)
async def annotations_audit(
    settings: SettingsDep,
    store: StoreDep,
    scores: Literal["bundle", "tfidf"] = "bundle",
    limit: int = Query(50, ge=1, le=100_000),
    format: Literal["json", "jsonl", "labelstudio"] = "json",
) -> Response:
    """Nothing is changed: each suspect shows its labels, the out-of-fold scores and the
    suggested labels, for a person to confirm or correct through POST /v1/annotations."""
    try:
        report = await anyio.to_thread.run_sync(run_audit, settings, store, scores)
    except AuditUnavailable as exc:
        raise ApiError(409, str(exc)) from None
    if format == "jsonl":
        body = "".join(json.dumps(s.to_json(), ensure_ascii=False) + "\n" for s in report.suspects[:limit])
        return Response(body, media_type="application/x-ndjson")
    if format == "labelstudio":
        return JSONResponse(label_studio_tasks(report.suspects[:limit], report.model_version or "tfidf"))
    return JSONResponse(report.to_json(limit))
