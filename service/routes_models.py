"""Retraining jobs and the model registry: `/v1/retrain`, `/v1/jobs`, `/v1/models`.
Thin: logic lives in service.jobs and service.promotion."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, HTTPException, Query, Request, status
from pydantic import BaseModel, ConfigDict, Field

from service.auth import require_token
from service.jobs import ConfigNotFound, JobConflict, JobManager, JobNotFound
from service.promotion import ModelAdmin, PromotionError

router = APIRouter(prefix="/v1", tags=["models"])
JOBS_LISTED = 50


class RetrainIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    config: str | None = Field(None, description="configs/<name>.yaml to layer on the service's config, e.g. 'fast'")


class RollbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: str | None = Field(None, description="any earlier version; default: the previous one")


def _jobs(request: Request) -> JobManager:
    return request.app.state.jobs


def _models(request: Request) -> ModelAdmin:
    return request.app.state.models


@router.post("/retrain", status_code=status.HTTP_202_ACCEPTED, dependencies=[Depends(require_token)],
             summary="Start a retraining job (one at a time)")
def retrain(request: Request, body: RetrainIn | None = Body(None)) -> dict[str, Any]:
    try:
        return _jobs(request).start(body.config if body else None)
    except JobConflict as exc:
        raise HTTPException(
            status.HTTP_409_CONFLICT, detail={"message": str(exc), "active_job": exc.active_id}
        ) from None
    except ConfigNotFound as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(exc)) from None


@router.get("/jobs", summary="Recent jobs, newest first")
def list_jobs(request: Request, limit: int = Query(JOBS_LISTED, ge=1, le=1000)) -> list[dict[str, Any]]:
    return _jobs(request).list(limit)


@router.get("/jobs/{job_id}", summary="State, progress, log tail, metrics and gate decision of a job")
def get_job(request: Request, job_id: str) -> dict[str, Any]:
    try:
        return _jobs(request).get(job_id)
    except JobNotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no job {job_id!r}") from None


@router.post("/jobs/{job_id}/cancel", dependencies=[Depends(require_token)], summary="Stop a running job")
def cancel_job(request: Request, job_id: str) -> dict[str, Any]:
    try:
        return _jobs(request).cancel(job_id)
    except JobNotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no job {job_id!r}") from None


@router.get("/models", summary="The registry: versions, data, metrics, status, current")
def list_models(request: Request) -> dict[str, Any]:
    return _models(request).list()


@router.post("/models/rollback", dependencies=[Depends(require_token)],
             summary="Serve the previous (or a named earlier) version; hot swap")
def rollback(request: Request, body: RollbackIn | None = Body(None)) -> dict[str, Any]:
    try:
        return _models(request).rollback(body.version if body else None)
    except PromotionError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from None


@router.post("/models/{version}/promote", dependencies=[Depends(require_token)],
             summary="Make a version current; hot swap")
def promote(request: Request, version: str) -> dict[str, Any]:
    models = _models(request)
    if version not in models.registry.versions():
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"unknown model version {version!r}")
    try:
        return models.promote(version, "manual promotion via API")
    except PromotionError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from None
