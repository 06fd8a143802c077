"""Bearer-token guard for write endpoints; read endpoints stay open.

The token is read on every request (`auth.resolved_token()`: env STANCE_API_TOKEN wins over
the config file), so rotating it needs no code change. With no token configured the write
API is closed (503) rather than open: forgetting to configure a secret must not publish
a write endpoint.

`check_token` runs before the body is read (`service.api.limits.ApiRoute`), so a caller
without the token gets 401/403 whatever it sends; `require_token` marks a route as
guarded and documents the bearer scheme in OpenAPI.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from service.api.errors import ApiError
from service.settings import Settings

bearer = HTTPBearer(auto_error=False, description="the service's API token (STANCE_API_TOKEN)")


def _settings(request: Request) -> Settings:
    return request.app.state.settings


def check_token(request: Request) -> None:
    """503 if no token is configured, 401 if the header is missing or malformed, 403 if
    the token is wrong."""
    auth = _settings(request).auth
    expected = auth.resolved_token()
    if not expected:
        raise ApiError(
            503,
            f"write endpoints are disabled: no API token is configured; set the "
            f"{auth.token_env} environment variable (or auth.token in the config) and restart",
        )
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(
            401,
            "missing or malformed Authorization header; send 'Authorization: Bearer <token>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not secrets.compare_digest(token.strip().encode(), expected.encode()):
        raise ApiError(403, "invalid API token")


async def require_token(
    request: Request, _: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)] = None
) -> None:
    """FastAPI dependency of every write endpoint (see `check_token`)."""
    check_token(request)
