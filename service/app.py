"""The app factory: settings -> FastAPI app with the scorer, routes, metrics and errors.

The model is loaded and warmed up in the lifespan (in a worker thread), so the process
answers /healthz at once and /readyz turns 200 when it can score.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from prometheus_fastapi_instrumentator import Instrumentator, metrics
from starlette.concurrency import run_in_threadpool

from service import web
from service.api import admin
from service.api.limits import install_error_handling
from service.api.openapi_doc import document_limits
from service.api.routes.classify import FEEDS_PATH, router
from service.lifespan import Lifespan, run_parts
from service.monitor import mount as monitor
from service.scoring.bundle_loader import load_served_bundle, open_bundle  # noqa: F401 - re-exported for callers
from service.scoring.scorer import Scorer, ScoringMetrics
from service.settings import Settings
from training.bundle import Bundle, BundleError, read_meta
from training.registry import Registry

log = logging.getLogger(__name__)


def _describe(exc: Exception) -> str:
    return str(exc) if isinstance(exc, BundleError) else f"{type(exc).__name__}: {exc}"


def load_at_start(settings: Settings, version: str | None = None) -> tuple[Bundle, dict[str, Any] | None]:
    """The bundle to serve at start, and the fallback note when models/CURRENT is broken.

    A named `version` is served or the start fails. Otherwise CURRENT is tried first; if it
    cannot be loaded (checksum mismatch, garbage weights, missing folder), the newest other
    bundle that verifies and loads is served instead, loudly (log, /readyz, /v1/model),
    rather than refusing to start while good versions exist."""
    if version is not None:
        return load_served_bundle(settings, version), None
    registry = Registry(settings.paths.models_dir)
    current = registry.current()
    try:
        return load_served_bundle(settings), None
    except Exception as exc:  # noqa: BLE001 - any load failure: try the others
        reason = _describe(exc)
    log.error("models/CURRENT names %s, which cannot be served: %s", current, reason)
    for candidate in sorted(
        (v for v in registry.versions() if v != current),
        key=lambda v: (str(read_meta(registry.path(v)).get("created") or ""), v),
        reverse=True,
    ):
        try:
            bundle = load_served_bundle(settings, candidate)
        except Exception as exc:  # noqa: BLE001
            log.error("fallback candidate %s cannot be served either: %s", candidate, _describe(exc))
            continue
        log.error("serving %s instead of %s: the newest bundle that verifies", candidate, current)
        return bundle, {"requested": current, "reason": reason, "serving": candidate}
    raise BundleError(f"no servable model: CURRENT ({current}) {reason}; no other bundle in {registry.root} loads")


def create_app(settings: Settings, model_version: str | None = None) -> FastAPI:
    """A FastAPI app serving `model_version` (default: the registry's current model).
    `settings` are built by the caller (`stance serve`, tests) and reach every part from here."""
    registry = CollectorRegistry()
    scorer = Scorer(
        max_batch=settings.service.microbatch_max_size,
        max_wait_ms=settings.service.microbatch_max_wait_ms,
        metrics=ScoringMetrics(registry, settings.service.max_call_size),
        max_call=settings.service.max_call_size,
    )

    parts: list[Lifespan] = []

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        scorer.start()
        bundle, app.state.fallback = await run_in_threadpool(load_at_start, settings, model_version)
        await run_in_threadpool(scorer.swap, bundle)  # loads and warms up
        log.info("ready: model %s (%s backend)", bundle.version, bundle.backend_name)
        del bundle  # the scorer holds it; a local reference would outlive a swap
        try:
            async with run_parts(app, parts):  # admin, then monitoring: start-up work, watchers, poller
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
    app.state.fallback = None
    app.include_router(router)
    install_error_handling(app, settings.service, feed_paths=[FEEDS_PATH])
    instrumentator = Instrumentator(registry=registry, excluded_handlers=["/metrics"])
    instrumentator.add(metrics.requests(registry=registry), metrics.latency(registry=registry))
    instrumentator.instrument(app)  # /metrics itself is a documented route in service.api.routes.classify
    parts.append(admin.install(app, settings))
    document_limits(app, settings)
    parts.append(monitor.install(app, settings))
    web.install(app, settings)
    return app
