"""Retraining jobs and the model registry: `/v1/retrain`, `/v1/jobs`, `/v1/models`.
Thin: logic lives in service.retrain.jobs and service.retrain.promotion."""

from __future__ import annotations

from pathlib import Path as FilePath
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, status
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from service.api.deps import TOKEN_REQUIRED, JobsDep, ModelsDep
from service.api.errors import ApiError, responses
from service.api.limits import ApiRoute
from service.api.schemas_admin import JobOut, Registry, RetrainIn, RollbackIn, Switched
from service.retrain.configs import ConfigNotFound
from service.retrain.jobs import JobConflict, JobNotFound
from service.retrain.promotion import ModelAdmin, PromotionError, UnknownVersion
from training.bundle import CARD_FILE, PLOTS_DIR

router = APIRouter(prefix="/v1", tags=["models"], route_class=ApiRoute)
JOBS_LISTED = 50
MAX_JOBS_LISTED = 1000
JOB_ID_MAX = 32  # the jobs table's id column


JobId = Annotated[str, Path(max_length=JOB_ID_MAX)]


@router.post(
    "/retrain",
    status_code=status.HTTP_202_ACCEPTED,
    dependencies=TOKEN_REQUIRED,
    response_model=JobOut,
    responses=responses(400, 401, 403, 409, 422, 503),
    summary="Start a retraining job (one at a time)",
)
def retrain(jobs: JobsDep, body: Annotated[RetrainIn | None, Body()] = None) -> JobOut:
    """409 with `active_job` while another job is active."""
    try:
        return JobOut.model_validate(jobs.start(body.config if body else None))
    except JobConflict as exc:
        raise ApiError(409, str(exc), active_job=exc.active_id) from None
    except ConfigNotFound as exc:
        raise ApiError(422, str(exc), [{"field": "config", "message": str(exc)}]) from None


@router.get("/jobs", response_model=list[JobOut], responses=responses(422), summary="Recent jobs, newest first")
async def list_jobs(
    jobs: JobsDep, limit: Annotated[int, Query(ge=1, le=MAX_JOBS_LISTED)] = JOBS_LISTED
) -> list[JobOut]:
    return [JobOut.model_validate(j) for j in await run_in_threadpool(jobs.list, limit)]


@router.get(
    "/jobs/{job_id}",
    response_model=JobOut,
    responses=responses(404, 422),
    summary="State, progress, log tail, metrics and gate decision of a job",
)
async def get_job(jobs: JobsDep, job_id: JobId) -> JobOut:
    try:
        return JobOut.model_validate(await run_in_threadpool(jobs.get, job_id))
    except JobNotFound:
        raise ApiError(404, f"no job {job_id!r}") from None


@router.post(
    "/jobs/{job_id}/cancel",
    dependencies=TOKEN_REQUIRED,
    response_model=JobOut,
    responses=responses(401, 403, 404, 422, 503),
    summary="Stop a running job",
)
def cancel_job(jobs: JobsDep, job_id: JobId) -> JobOut:
    try:
        return JobOut.model_validate(jobs.cancel(job_id))
    except JobNotFound:
        raise ApiError(404, f"no job {job_id!r}") from None


@router.get("/models", response_model=Registry, summary="The registry: versions, data, metrics, status, current")
async def list_models(models: ModelsDep) -> Registry:
    return Registry.model_validate(await run_in_threadpool(models.list))


@router.post(
    "/models/rollback",
    dependencies=TOKEN_REQUIRED,
    response_model=Switched,
    responses=responses(400, 401, 403, 404, 409, 422, 503),
    summary="Serve the previous (or a named earlier) version; hot swap",
)
def rollback(models: ModelsDep, body: Annotated[RollbackIn | None, Body()] = None) -> Switched:
    try:
        return Switched.model_validate(models.rollback(body.version if body else None))
    except UnknownVersion as exc:
        raise ApiError(404, str(exc)) from None
    except PromotionError as exc:
        raise ApiError(409, str(exc)) from None


@router.post(
    "/models/{version}/promote",
    dependencies=TOKEN_REQUIRED,
    response_model=Switched,
    responses=responses(401, 403, 404, 409, 422, 503),
    summary="Make a version current; hot swap",
)
def promote(models: ModelsDep, version: str) -> Switched:
    try:
        return Switched.model_validate(models.promote(version, "manual promotion via API"))
    except UnknownVersion as exc:
        raise ApiError(404, str(exc)) from None
    except PromotionError as exc:
        raise ApiError(409, str(exc)) from None


class ModelCard(BaseModel):
    version: str
    card: str | None = Field(description="the bundle's model card (markdown), None if it has none")
    plots: list[str] = Field(description="plot file names, for GET /v1/models/{version}/plots/{name}")


def _bundle_dir(models: ModelAdmin, version: str) -> FilePath:
    if version not in models.registry.versions():
        raise ApiError(404, f"unknown model version {version!r}")
    return models.registry.path(version)


def card_of(path: FilePath) -> dict[str, Any]:
    """A bundle's model card (markdown) and the names of its plots."""
    card = path / CARD_FILE
    plots = sorted(p.name for p in (path / PLOTS_DIR).glob("*.png")) if (path / PLOTS_DIR).is_dir() else []
    return {"card": card.read_text(encoding="utf-8") if card.is_file() else None, "plots": plots}


@router.get(
    "/models/{version}/card",
    summary="A version's model card (markdown) and its plot names",
    responses=responses(404, 422),
)
async def model_card(models: ModelsDep, version: Annotated[str, Path(max_length=200)]) -> ModelCard:
    return ModelCard(version=version, **card_of(_bundle_dir(models, version)))


@router.get(
    "/models/{version}/plots/{name}",
    summary="One plot of a version's model card (PNG)",
    response_class=FileResponse,
    responses={
        200: {"content": {"image/png": {"schema": {"type": "string", "format": "binary"}}}, "description": "the plot"},
        **responses(404, 422),
    },
)
async def model_plot(
    models: ModelsDep, version: Annotated[str, Path(max_length=200)], name: Annotated[str, Path(max_length=200)]
) -> FileResponse:
    path = _bundle_dir(models, version)
    if name not in card_of(path)["plots"]:  # only listed files: no path from the request is opened
        raise ApiError(404, f"{version} has no plot {name!r}")
    return FileResponse(path / PLOTS_DIR / name, media_type="image/png")
