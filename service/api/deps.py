"""What routes receive: the objects the app factory put in `app.state`, as `Annotated`
dependencies, so a route declares what it needs by type and tests can override one.

Dependencies are `async def` on purpose: FastAPI runs plain `def` ones in the thread pool,
a thread hop per request on the hot path."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from service.api.auth import require_token
from service.api.errors import ApiError
from service.retrain.jobs import JobManager
from service.retrain.promotion import ModelAdmin
from service.scoring.scorer import Scorer
from service.settings import Settings
from service.store.repository import AnnotationStore


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def ready_scorer(request: Request) -> Scorer:
    scorer: Scorer = request.app.state.scorer
    if not scorer.ready:
        raise ApiError(503, "the model is not loaded yet; retry shortly")
    return scorer


async def get_store(request: Request) -> AnnotationStore:
    return request.app.state.store


async def get_jobs(request: Request) -> JobManager:
    return request.app.state.jobs


async def get_models(request: Request) -> ModelAdmin:
    return request.app.state.models


SettingsDep = Annotated[Settings, Depends(get_settings)]
ScorerDep = Annotated[Scorer, Depends(ready_scorer)]
StoreDep = Annotated[AnnotationStore, Depends(get_store)]
JobsDep = Annotated[JobManager, Depends(get_jobs)]
ModelsDep = Annotated[ModelAdmin, Depends(get_models)]
TOKEN_REQUIRED = [Depends(require_token)]  # a route's `dependencies=`: writes need the token
