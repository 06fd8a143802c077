"""Retraining jobs and the model registry: `/v1/retrain`, `/v1/jobs`, `/v1/models`.
Thin: logic lives in service.jobs and service.promotion."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Body, Depends, HTTPException, Query, Request, status
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field

from service.auth import require_token
from service.jobs import ConfigNotFound, JobConflict, JobManager, JobNotFound
from service.promotion import ModelAdmin, PromotionError
from training.bundle import CARD_FILE, PLOTS_DIR

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
        raise HTTPException(status.HTTP_409_CONFLICT, detail={"message": str(exc), "active_job": exc.active_id})
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


def _bundle_dir(request: Request, version: str) -> Path:
    models = _models(request)
    if version not in models.registry.versions():
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"unknown model version {version!r}")
    return models.registry.path(version)


def card_of(path: Path) -> dict[str, Any]:
    """A bundle's model card (markdown) and the names of its plots."""
    card = path / CARD_FILE
    plots = sorted(p.name for p in (path / PLOTS_DIR).glob("*.png")) if (path / PLOTS_DIR).is_dir() else []
    return {"card": card.read_text(encoding="utf-8") if card.is_file() else None, "plots": plots}


@router.get("/models/{version}/card", summary="A version's model card (markdown) and its plot names")
def model_card(request: Request, version: str) -> dict[str, Any]:
    return {"version": version, **card_of(_bundle_dir(request, version))}


@router.get("/models/{version}/plots/{name}", summary="One plot of a version's model card (PNG)",
            response_class=FileResponse)
def model_plot(request: Request, version: str, name: str) -> FileResponse:
    path = _bundle_dir(request, version)
    if name not in card_of(path)["plots"]:  # only listed files: no path from the request is opened
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"{version} has no plot {name!r}")
    return FileResponse(path / PLOTS_DIR / name, media_type="image/png")
