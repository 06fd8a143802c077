"""Bad input -> a clear JSON answer (never a traceback), and the service keeps serving.

* request bodies over the limit -> 413, from Content-Length up front or while streaming;
* limits on texts (empty, invisible-only, not valid Unicode, too long, too many) and type
  errors -> 422 naming the field;
* a JSON body that is not UTF-8 -> 400;
* on write endpoints the token is checked first, before the body is read or validated;
* anything unexpected -> 500 with a JSON body; the traceback goes to the log only.

Every answer has the one error shape of `service.api.errors`.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.auth import check_token, require_token
from service.api.errors import CODES, ApiError, error_body
from service.settings import ServiceSettings
from service.text_hygiene import text_problem

log = logging.getLogger(__name__)

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Discriminator tags of union bodies (routes_annotations): not fields, dropped from `field`.
RECORD_FORM, LIST_FORM, BATCH_FORM = "record-form", "list-form", "batch-form"
RECORD_LISTS = frozenset({LIST_FORM, "annotations"})  # an index after these is a record number


class BodyTooLarge(ApiError):
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
            await _send_json(send, 413, error_body(413, BodyTooLarge(limit).detail))
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
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": payload})


def is_json(content_type: str) -> bool:
    """application/json or a +json type; not JSON Lines (a feed, streamed, never read whole)."""
    mime = content_type.split(";")[0].strip().lower()
    return mime == "application/json" or mime.endswith("+json")


class ApiRoute(APIRoute):
    """Every route of the API. Before FastAPI reads the body:
    * write endpoints guarded by `require_token` check the token (401/403/503 come before
      any 400/413/422 about the body: an unauthenticated caller learns nothing);
    * a JSON body that is not UTF-8 gets a clear 400 (FastAPI would say only 'There was an
      error parsing the body')."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        guarded = bool(self.methods & WRITE_METHODS) and any(d.dependency is require_token for d in self.dependencies)

        async def checked(request: Request) -> Response:
            if guarded:
                check_token(request)
            if is_json(request.headers.get("content-type", "")):
                body = await request.body()  # cached: the real handler reuses it
                try:
                    body.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise ApiError(
                        400, f"request body is not valid UTF-8 (byte {exc.start}); send UTF-8 JSON"
                    ) from None
            return await handler(request)

        return checked


# ------------------------------------------------------------------ 422 on limits


def _problem(loc: Sequence[Any], message: str) -> dict[str, Any]:
    """('body', 'texts', 3) -> field 'texts[3]'; ('body', 'annotations', 1, 'labels') ->
    record 2, field 'labels'; ('query', 'page') -> field 'page'."""
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    record: int | None = None
    out = ""
    i = 0
    while i < len(parts):
        part = parts[i]
        if part == RECORD_FORM:
            record = 1
        elif part in RECORD_LISTS and i + 1 < len(parts) and isinstance(parts[i + 1], int):
            record, out = parts[i + 1] + 1, ""
            i += 1
        elif part != BATCH_FORM:
            out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
        i += 1
    return {"record": record, "field": out or ("record" if record else "body"), "message": message}


def invalid(errors: list[tuple[tuple[Any, ...], str]]) -> RequestValidationError:
    return RequestValidationError([{"loc": ("body", *loc), "msg": msg, "type": "value_error"} for loc, msg in errors])


def check_texts(texts: list[str], field: str, limits: ServiceSettings) -> None:
    """Raise a 422 naming each offending text and the rule it breaks."""
    errors: list[tuple[tuple[Any, ...], str]] = []
    if not texts:
        errors.append(((field,), "must contain at least one text"))
    if len(texts) > limits.max_texts:
        errors.append(((field,), f"too many texts: {len(texts)} given, the limit is {limits.max_texts}"))
    for i, text in enumerate(texts):
        problem = text_problem(text, limits.max_text_chars)
        if problem:
            errors.append(((field,) if field == "text" else (field, i), problem))
    if errors:
        raise invalid(errors)


# ------------------------------------------------------------------ handlers


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    problems = []
    for err in exc.errors():
        message = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
        loc = err.get("loc", ())
        if err.get("type") == "json_invalid":
            position = loc[-1] if loc else "?"
            loc = ("body",)
            message = f"invalid JSON at character {position}: {err.get('ctx', {}).get('error', message)}"
        problems.append(_problem(loc, message))
    summary = "; ".join(
        f"{'record ' + str(p['record']) + ' ' if p['record'] else ''}{p['field']}: {p['message']}" for p in problems
    )
    return JSONResponse(status_code=422, content=error_body(422, f"invalid request: {summary}", problems))


def _allowed_methods(request: Request) -> str:
    """Every documented method at this path (Starlette's 405 names only the first
    route's), as the Allow header must list them all."""
    paths = request.app.openapi().get("paths", {})
    if request.url.path in paths:  # a literal path wins over a template it also fits (/v1/feeds/score)
        return ", ".join(sorted(method.upper() for method in paths[request.url.path]))
    methods: set[str] = set()
    for template, operations in paths.items():
        if re.fullmatch(re.sub(r"\{[^/]+\}", "[^/]+", template), request.url.path):
            methods |= {method.upper() for method in operations}
    return ", ".join(sorted(methods))


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    if isinstance(exc, ApiError):
        content = error_body(exc.status_code, str(exc.detail), exc.problems, **exc.extra)
    else:  # FastAPI/Starlette's own (404 unknown path, 405, HTTPException from a library)
        content = error_body(exc.status_code, str(exc.detail))
    headers = dict(getattr(exc, "headers", None) or {})
    if exc.status_code == 405:
        headers["Allow"] = _allowed_methods(request)
    return JSONResponse(status_code=exc.status_code, content=content, headers=headers or None)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return JSONResponse(status_code=500, content=error_body(500, "internal server error; see the service log"))


def install_error_handling(app: FastAPI, limits: ServiceSettings, feed_paths: Sequence[str]) -> None:
    app.add_middleware(
        BodyLimitMiddleware,
        default_limit=limits.max_body_bytes,
        limits={path: limits.max_feed_bytes for path in feed_paths},
    )
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected)


__all__ = ["CODES", "ApiError", "ApiRoute", "check_texts", "install_error_handling", "invalid", "is_json"]
