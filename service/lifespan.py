"""The app's one lifespan is built from parts: each component that needs start-up or
shut-down work (the admin API, monitoring) returns a part when it is installed, and the
app factory enters them in order after the model is loaded (and leaves them in reverse)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager

from fastapi import FastAPI

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


@asynccontextmanager
async def run_parts(app: FastAPI, parts: list[Lifespan]) -> AsyncIterator[None]:
    async with AsyncExitStack() as stack:
        for part in parts:
            await stack.enter_async_context(part(app))
        yield
