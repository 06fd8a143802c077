"""Annotation store, retraining and registry routes (issue 4), installed into the app.

`install` wires the objects (store, model admin, job manager) into `app.state`, mounts
the routers, and returns its part of the app's lifespan (service.lifespan): import new seed batches
(so the store is the one source of training data), pick up jobs that were running when
the service stopped, and follow the registry's CURRENT pointer when the CLI moves it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI

from service.api.routes import annotations as routes_annotations
from service.api.routes import audit as routes_audit
from service.api.routes import models as routes_models
from service.lifespan import Lifespan
from service.retrain.jobs import JobManager
from service.retrain.promotion import ModelAdmin
from service.settings import Settings
from service.store.engine import open_database
from service.store.repository import AnnotationStore

log = logging.getLogger("stance.admin")


def _watch_registry(models: ModelAdmin, stop: threading.Event, interval: float) -> None:
    while not stop.wait(interval):
        try:
            swapped = models.follow_pointer()
            if swapped:
                log.info("registry CURRENT moved; now serving %s", swapped)
        except Exception:  # keep watching; the current bundle keeps serving
            log.exception("could not follow the registry pointer")


def startup(app: FastAPI) -> None:
    """Blocking start-up work (run in a worker thread by the lifespan)."""
    store: AnnotationStore = app.state.store
    rekeyed = store.rekey()
    if rekeyed:
        log.info("re-keyed %d statements to the current identity rule (NFC, whitespace, lower-case)", rekeyed)
    for report in store.ensure_seeds():
        if report.skipped and not report.added:
            log.error("seed file %s rejected:\n%s", report.file, "\n".join(map(str, report.skipped)))
        elif report.added or report.unchanged:
            log.info("seed batch %s: %d added, %d unchanged", report.batch, report.added, report.unchanged)
    recovered = app.state.jobs.recover()
    if recovered:
        log.info("recovered jobs: %s", recovered)


def install(app: FastAPI, settings: Settings) -> Lifespan:
    """Add the write/admin API to `app`; returns its part of the app's lifespan (store
    creation, seed import, job recovery, the registry watch), entered after the model loads."""
    if getattr(app.state, "settings", None) is None:
        app.state.settings = settings
    db = open_database(settings)
    store = AnnotationStore(settings, db)
    models = ModelAdmin(settings, scorer=lambda: getattr(app.state, "scorer", None), db=db)
    app.state.store = store
    app.state.models = models
    app.state.jobs = JobManager(settings, models, store, db)
    app.include_router(routes_audit.router)  # before /annotations/{...} routes could shadow it
    app.include_router(routes_annotations.router)
    app.include_router(routes_models.router)

    @asynccontextmanager
    async def running(a: FastAPI) -> AsyncIterator[None]:
        await anyio.to_thread.run_sync(startup, a)
        fallback = getattr(a.state, "fallback", None)
        models.applied = fallback["serving"] if fallback else models.registry.current()
        models.bad_pointer = fallback["requested"] if fallback else None
        stop = threading.Event()
        watcher = None
        if settings.jobs.watch_registry_s > 0:
            watcher = threading.Thread(
                target=_watch_registry,
                name="registry-watch",
                daemon=True,
                args=(models, stop, settings.jobs.watch_registry_s),
            )
            watcher.start()
        try:
            yield
        finally:
            stop.set()
            app.state.jobs.shutdown()
            if watcher is not None:
                watcher.join(timeout=settings.jobs.watch_registry_s * 2)

    return running
