"""One error shape for every error the API returns, and its OpenAPI documentation.

Every error body is `{"error": code, "detail": message, "problems": [{record, field,
message}], ...}`: `error` is a stable code a client can branch on, `detail` a sentence for
people, `problems` the individual faults of a rejected request (a field, or a record of a
batch). A few errors add a field of their own (`active_job` on a busy retrain).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

# Stable codes per HTTP status; clients branch on these, never on `detail`.
CODES: dict[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    422: "invalid_request",
    500: "internal_error",
    503: "unavailable",
}

DESCRIPTIONS: dict[int, str] = {
    400: "malformed input (says what and where)",
    401: "missing or malformed `Authorization: Bearer <token>` header",
    403: "wrong API token",
    404: "no such resource",
    409: "conflict with the current state (says why)",
    413: "request over a size limit (body bytes, statements or records)",
    422: "invalid request: `problems` names each field or record and its fault",
    503: "not available now: model not loaded yet, or write API without a configured token",
}


class Problem(BaseModel):
    """One fault of a rejected request."""

    record: int | None = Field(None, description="1-based record number in a batch, when it applies")
    field: str | None = Field(None, description="the field at fault, e.g. `texts[3]` or `labels`")
    message: str


class ErrorBody(BaseModel):
    """The body of every error answer."""

    error: str = Field(description="stable code: " + ", ".join(sorted(set(CODES.values()))))
    detail: str = Field(description="what went wrong, for people")
    problems: list[Problem] = Field(default_factory=list, description="each fault, when there are several")
    active_job: str | None = Field(None, description="409 on retrain: the job that is already active")


class ApiError(StarletteHTTPException):
    """An error with the API's shape; raise it from services or routes."""

    def __init__(
        self,
        status: int,
        detail: str,
        problems: Sequence[dict[str, Any]] = (),
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(status, detail, headers)
        self.problems = [Problem(**p).model_dump() for p in problems]
        self.extra = extra


def error_body(status: int, detail: str, problems: Sequence[dict[str, Any]] = (), **extra: Any) -> dict[str, Any]:
    """The JSON of an error answer (validated against `ErrorBody`, so it never drifts)."""
    body = ErrorBody(error=CODES.get(status, "error"), detail=detail, problems=list(problems), **extra)
    return body.model_dump(exclude_none=True)


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for the error statuses an operation can return."""
    return {status: {"model": ErrorBody, "description": DESCRIPTIONS[status]} for status in statuses}
