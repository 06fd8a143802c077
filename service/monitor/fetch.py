"""HTTP fetch of a feed: conditional GET, timeouts, a size limit, and the back-off rule.

`fetch` never raises for the network or the server: every outcome is a `FetchResult`
whose `error` says what went wrong, so the poller records it on the poll and moves on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx

from service.settings import MonitorSettings

NOT_MODIFIED = 304


@dataclass(frozen=True)
class FetchResult:
    status: int | None  # HTTP status, None when no answer came (timeout, refused, too large)
    body: bytes = b""
    content_type: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    error: str | None = None

    @property
    def not_modified(self) -> bool:
        return self.status == NOT_MODIFIED


def conditional_headers(etag: str | None, last_modified: str | None, user_agent: str) -> dict[str, str]:
    headers = {
        "User-Agent": user_agent,
        "Accept": "application/rss+xml, application/atom+xml, "
        "application/xml;q=0.9, application/x-ndjson;q=0.9, text/plain;q=0.5, */*;q=0.1",
    }
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    return headers


async def fetch(
    client: httpx.AsyncClient,
    url: str,
    settings: MonitorSettings,
    etag: str | None = None,
    last_modified: str | None = None,
) -> FetchResult:
    """GET `url`, sending the validators of the last successful fetch. The body is read in
    chunks and abandoned past `max_fetch_bytes`, so a huge or endless answer cannot fill
    memory; the timeout bounds connect, each read, and the whole download."""
    headers = conditional_headers(etag, last_modified, settings.user_agent)
    limit = settings.max_fetch_bytes
    try:
        async with client.stream(
            "GET", url, headers=headers, timeout=settings.fetch_timeout_s, follow_redirects=True
        ) as resp:
            if resp.status_code == NOT_MODIFIED:
                return FetchResult(NOT_MODIFIED, etag=etag, last_modified=last_modified)
            if resp.status_code >= 400:
                return FetchResult(resp.status_code, error=f"HTTP {resp.status_code} {resp.reason_phrase}")
            declared = resp.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > limit:
                return FetchResult(resp.status_code, error=f"feed too large: {declared} bytes > limit {limit}")
            chunks, size = [], 0
            async for chunk in resp.aiter_bytes():
                size += len(chunk)
                if size > limit:
                    return FetchResult(resp.status_code, error=f"feed too large: over the limit of {limit} bytes")
                chunks.append(chunk)
            return FetchResult(
                resp.status_code,
                b"".join(chunks),
                resp.headers.get("content-type"),
                resp.headers.get("etag"),
                resp.headers.get("last-modified"),
            )
    except httpx.TimeoutException:
        return FetchResult(None, error=f"timed out after {settings.fetch_timeout_s:g} s")
    except httpx.HTTPError as exc:
        return FetchResult(None, error=f"{type(exc).__name__}: {exc}")


def next_poll(now: datetime, interval_s: int, failures: int, settings: MonitorSettings) -> datetime:
    """When to poll again: the interval after a success; after `failures` errors in a row,
    exponential back-off (base * 2^(failures-1), capped), never sooner than the interval."""
    if failures <= 0:
        return now + timedelta(seconds=interval_s)
    backoff = min(settings.backoff_max_s, settings.backoff_base_s * 2 ** min(failures - 1, 30))
    return now + timedelta(seconds=max(interval_s, backoff))
