"""The app factory: settings -> FastAPI app with the scorer, routes, metrics and errors.

The model is loaded and warmed up in the lifespan (in a worker thread), so the process
answers /healthz at once and /readyz turns 200 when it can score.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from prometheus_fastapi_instrumentator import Instrumentator, metrics
from starlette.concurrency import run_in_threadpool

from service import admin, web
from service.limits import install_error_handling
from service.routes import FEEDS_PATH, router
from service.scoring import Scorer, ScoringMetrics
from training.bundle import Bundle, load_bundle
from training.registry import Registry
from training.settings import Settings, get_settings

log = logging.getLogger(__name__)


def load_served_bundle(settings: Settings, version: str | None = None) -> Bundle:
    """The registry's current bundle (or `version`), with the configured thread count.

    The backend is the bundle's own default (int8 ONNX when it agreed with fp32 at
    training time) unless the config forces `inference.backend: torch`."""
    return open_bundle(Registry(settings.paths.models_dir).resolve(version), settings)


def open_bundle(path: Path, settings: Settings) -> Bundle:
    """Load a bundle folder the way the service runs it (threads, batch size, spinning)."""
    inference = settings.inference
    return load_bundle(
        path,
        backend="torch" if inference.backend == "torch" else None,
        threads=inference.threads,
        batch_size=inference.batch_size,
        spin_wait=settings.service.spin_wait,
    )


def create_app(settings: Settings | None = None, model_version: str | None = None) -> FastAPI:
    """A FastAPI app serving `model_version` (default: the registry's current model)."""
    settings = settings or get_settings()
    registry = CollectorRegistry()
    scorer = Scorer(
        max_batch=settings.service.microbatch_max_size,
        max_wait_ms=settings.service.microbatch_max_wait_ms,
        metrics=ScoringMetrics(registry, settings.service.max_call_size),
        max_call=settings.service.max_call_size,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        scorer.start()
        bundle = await run_in_threadpool(load_served_bundle, settings, model_version)
        await run_in_threadpool(scorer.swap, bundle)  # loads and warms up
        log.info("ready: model %s (%s backend)", bundle.version, bundle.backend_name)
        try:
            yield
        finally:
            scorer.close()

    app = FastAPI(
        title="Stance classification service",
        summary="Stance of statements on Ukraine's path into NATO",
        version="1",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.scorer = scorer
    app.state.metrics_registry = registry
    app.include_router(router)
    install_error_handling(app, settings.service, feed_paths=[FEEDS_PATH])
    instrumentator = Instrumentator(registry=registry, excluded_handlers=["/metrics"])
    instrumentator.add(metrics.requests(registry=registry), metrics.latency(registry=registry))
    instrumentator.instrument(app).expose(app, include_in_schema=True, tags=["health"])
    admin.install(app, settings)
    web.install(app, settings)
    return app
