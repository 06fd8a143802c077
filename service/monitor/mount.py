"""Mounting monitoring on the app: its routes, its state and the poller's lifespan. Apart
from wiring.py so the routes can use the Monitor without an import cycle."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from service.lifespan import Lifespan
from service.monitor import routes
from service.monitor.model import ServiceModel
from service.monitor.wiring import Monitor, ensure_tables
from service.settings import Settings
from service.store.engine import open_database
from service.store.repository import AnnotationStore

log = logging.getLogger(__name__)


def install(app: FastAPI, settings: Settings) -> Lifespan:
    """Mount /v1/feeds, /v1/articles, /v1/trends, /v1/rescore, /v1/review; start the poller
    with the app (after the model is loaded) when `monitor.poller` is on."""
    db = open_database(settings)
    ensure_tables(db)
    store = getattr(app.state, "store", None) or AnnotationStore(settings, db)
    monitor = Monitor(settings, db, store, ServiceModel(app.state.scorer))
    app.state.monitor = monitor
    app.include_router(routes.router)

    @asynccontextmanager
    async def running(a: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(monitor.rescorer.recover)
        stop = asyncio.Event()
        task = None
        if settings.monitor.poller:
            task = asyncio.create_task(monitor.poller.run(stop, ready=lambda: a.state.scorer.ready))
        try:
            yield
        finally:
            stop.set()
            if task is not None:  # a poll in progress gets a moment to finish its chunk
                try:
                    await asyncio.wait_for(task, timeout=settings.monitor.tick_s * 2)
                except TimeoutError:
                    log.warning("poller stopped in the middle of a poll (its stored chunks are complete)")
            await monitor.rescorer.shutdown()

    return running
