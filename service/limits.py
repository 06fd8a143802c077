"""Bad input -> a clear JSON answer (never a traceback), and the service keeps serving.

* request bodies over the limit -> 413, from Content-Length up front or while streaming;
* limits on texts (empty, too long, too many) and type errors -> 422 naming the field;
* a JSON body that is not UTF-8 -> 400;
* anything unexpected -> 500 with a JSON body; the traceback goes to the log only.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.settings import ServiceSettings

log = logging.getLogger(__name__)


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body too large: the limit is {limit} bytes")


class BodyLimitMiddleware:
    """Pure ASGI (no buffering): rejects by Content-Length before reading, and counts the
    bytes actually received for chunked uploads. `limits` maps a path to its own limit."""

    def __init__(self, app: ASGIApp, default_limit: int, limits: dict[str, int]) -> None:
        self.app = app
        self.default_limit = default_limit
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limits.get(scope["path"], self.default_limit)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _send_json(send, 413, {"error": BodyTooLarge(limit).detail})
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, limited, send)


async def _send_json(send: Send, status: int, body: dict[str, Any]) -> None:
    payload = json.dumps(body).encode()
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())],
    })
    await send({"type": "http.response.body", "body": payload})


class Utf8JsonRoute(APIRoute):
    """Answers a clear 400 for a JSON body that is not UTF-8 (FastAPI would say only
    'There was an error parsing the body')."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def checked(request: Request) -> Response:
            if "json" in request.headers.get("content-type", ""):
                body = await request.body()  # cached: the real handler reuses it
                try:
                    body.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise HTTPException(
                        400, f"request body is not valid UTF-8 (byte {exc.start}); send UTF-8 JSON"
                    ) from None
            return await handler(request)

        return checked


# ------------------------------------------------------------------ 422 on limits


def _field(loc: Sequence[Any]) -> str:
    """('body', 'texts', 3) -> 'texts[3]'."""
    out = ""
    for part in loc:
        if part == "body" and not out:
            continue
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def invalid(errors: list[tuple[tuple[Any, ...], str]]) -> RequestValidationError:
    return RequestValidationError(
        [{"loc": ("body", *loc), "msg": msg, "type": "value_error"} for loc, msg in errors]
    )


def check_texts(texts: list[str], field: str, limits: ServiceSettings) -> None:
    """Raise a 422 naming each offending text and the limit it breaks."""
    errors: list[tuple[tuple[Any, ...], str]] = []
    if not texts:
        errors.append(((field,), "must contain at least one text"))
    if len(texts) > limits.max_texts:
        errors.append(((field,), f"too many texts: {len(texts)} given, the limit is {limits.max_texts}"))
    for i, text in enumerate(texts):
        loc = (field,) if field == "text" else (field, i)
        if not text.strip():
            errors.append((loc, "text is empty or whitespace only"))
        elif len(text) > limits.max_text_chars:
            errors.append((loc, f"text too long: {len(text)} characters, the limit is {limits.max_text_chars}"))
    if errors:
        raise invalid(errors)


# ------------------------------------------------------------------ handlers


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    detail = []
    for err in exc.errors():
        message = str(err.get("msg", "invalid value"))
        message = message.removeprefix("Value error, ")
        field = _field(err.get("loc", ()))
        if err.get("type") == "json_invalid":
            position = field.strip("[]")
            field = "body"
            message = f"invalid JSON at character {position}: {err.get('ctx', {}).get('error', message)}"
        detail.append({"field": field, "message": message})
    summary = "; ".join(f"{d['field']}: {d['message']}" for d in detail)
    return JSONResponse(status_code=422, content={"error": f"invalid request: {summary}", "detail": detail})


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    return JSONResponse(
        status_code=exc.status_code, content={"error": str(exc.detail)}, headers=getattr(exc, "headers", None)
    )


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return JSONResponse(status_code=500, content={"error": "internal server error; see the service log"})


def install_error_handling(app: FastAPI, limits: ServiceSettings, feed_paths: Sequence[str]) -> None:
    app.add_middleware(
        BodyLimitMiddleware,
        default_limit=limits.max_body_bytes,
        limits={path: limits.max_feed_bytes for path in feed_paths},
    )
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected)
