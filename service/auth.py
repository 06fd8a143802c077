"""Bearer-token guard for write endpoints; read endpoints stay open.

The token is read on every request (`auth.resolved_token()`: env STANCE_API_TOKEN wins over
the config file), so rotating it needs no code change. With no token configured the write
API is closed (503) rather than open: forgetting to configure a secret must not publish
a write endpoint.
"""

from __future__ import annotations

import secrets

from fastapi import HTTPException, Request, status

from service.settings import Settings


def _settings(request: Request) -> Settings:
    return request.app.state.settings


def require_token(request: Request) -> None:
    """FastAPI dependency: 503 if no token is configured, 401 if the header is missing or
    malformed, 403 if the token is wrong."""
    auth = _settings(request).auth
    expected = auth.resolved_token()
    if not expected:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail=(
                f"write endpoints are disabled: no API token is configured; set the "
                f"{auth.token_env} environment variable (or auth.token in the config) and restart"
            ),
        )
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="missing or malformed Authorization header; send 'Authorization: Bearer <token>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not secrets.compare_digest(token.strip().encode(), expected.encode()):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="invalid API token")
