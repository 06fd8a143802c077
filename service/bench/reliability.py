"""`stance bench --only fairness|swaps`: the two measurements of issue 9.

* fairness: small single-statement requests from a few clients while one client sends
  large requests (`service.max_statements` statements each) back to back; small-request
  p50/p99 with and without the large traffic, and the large requests' latency.
* swaps: RSS of a process that loads a bundle and hot-swaps it into a scorer N times
  (the service's swap path: load, warm, swap, settle the heap; each load on a fresh thread,
  as promotes run on any of the server's worker threads), scoring between swaps.
"""

from __future__ import annotations

import asyncio
import gc
import json
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from service.settings import Settings

FAIRNESS_SMALL_CLIENTS = 2
SENTENCE = "Allies discussed the next steps for Ukraine's membership bid at the summit."


def large_body(settings: Settings) -> bytes:
    """One /v1/classify request of exactly `max_statements` one-sentence statements,
    spread over as few texts as the text limits allow."""
    limits = settings.service
    per_text = max(1, min(limits.max_text_chars // (len(SENTENCE) + 1), limits.max_statements))
    texts, left = [], limits.max_statements
    while left > 0 and len(texts) < limits.max_texts:
        n = min(per_text, left)
        texts.append(" ".join([SENTENCE] * n))
        left -= n
    return json.dumps({"texts": texts}).encode()


def _percentiles(seconds: list[float]) -> dict[str, float]:
    ms = np.array(seconds or [0.0]) * 1000
    return {
        "n": len(seconds),
        "p50": round(float(np.percentile(ms, 50)), 1),
        "p99": round(float(np.percentile(ms, 99)), 1),
        "max": round(float(ms.max()), 1),
    }


async def _fairness_load(host: str, port: int, texts: list[str], large: bytes | None, seconds: float) -> dict[str, Any]:
    from service.bench.throughput import REQUEST_TIMEOUT_S, _Connection, _request

    small, big, errors = [], [], 0
    deadline = time.perf_counter() + seconds
    requests = [_request(host, "/v1/classify", json.dumps({"text": t}).encode()) for t in texts]

    async def small_client(worker: int) -> None:
        nonlocal errors
        conn, i = _Connection(host, port), worker
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            status = await asyncio.wait_for(conn.post(requests[i % len(requests)]), REQUEST_TIMEOUT_S)
            small.append(time.perf_counter() - start) if status == 200 else None
            errors += status != 200
            i += FAIRNESS_SMALL_CLIENTS
        conn.close()

    async def large_client() -> None:
        nonlocal errors
        assert large is not None
        conn, request = _Connection(host, port), _request(host, "/v1/classify", large)
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            status = await asyncio.wait_for(conn.post(request), 10 * REQUEST_TIMEOUT_S)
            big.append(time.perf_counter() - start) if status == 200 else None
            errors += status != 200
        conn.close()

    await asyncio.gather(
        *(small_client(w) for w in range(FAIRNESS_SMALL_CLIENTS)), *([large_client()] if large else [])
    )
    return {"small_latency_ms": _percentiles(small), "large_latency_ms": _percentiles(big), "errors": errors}


def bench_fairness(settings: Settings, bundle_path: Path, texts: list[str], seconds: float) -> dict[str, Any]:
    """Small-request latency alone, then with a large request always in flight."""
    from service.bench.throughput import _run_async, _served

    large = large_body(settings)
    with _served(settings, bundle_path) as (port, _proc):
        _run_async(_fairness_load("127.0.0.1", port, texts, None, 2.0))  # warm-up
        alone = _run_async(_fairness_load("127.0.0.1", port, texts, None, seconds))
        loaded = _run_async(_fairness_load("127.0.0.1", port, texts, large, seconds))
    return {
        "small_clients": FAIRNESS_SMALL_CLIENTS,
        "large_request": {
            "statements": settings.service.max_statements,
            "bytes": len(large),
            "chunk": settings.service.max_call_size,
        },
        "small_alone": alone["small_latency_ms"],
        "small_with_large_in_flight": loaded["small_latency_ms"],
        "large": loaded["large_latency_ms"],
        "errors": alone["errors"] + loaded["errors"],
    }


def _rss_mb() -> float:
    return round(psutil.Process().memory_info().rss / 2**20, 1)


def bench_swaps(settings: Settings, bundle_path: Path, swaps: int) -> dict[str, Any]:
    """RSS after each of `swaps` hot swaps (each a fresh load of the bundle, as a promote
    or rollback does), with requests scored between swaps."""
    from service.scoring.bundle_loader import open_bundle
    from service.scoring.scorer import Scorer

    scorer = Scorer(
        max_batch=settings.service.microbatch_max_size, max_wait_ms=1, max_call=settings.service.max_call_size
    )
    scorer.start()
    rss: list[float] = []
    started = time.perf_counter()
    try:
        for _ in range(swaps + 1):
            # A fresh thread per load, as a promote runs on any of the server's worker threads.
            loader = threading.Thread(target=lambda: scorer.swap(open_bundle(bundle_path, settings)))
            loader.start()
            loader.join()
            asyncio.run(scorer.score([SENTENCE] * settings.service.max_call_size))
            rss.append(_rss_mb())
    finally:
        scorer.close()
        gc.unfreeze()
    first, rest = rss[0], rss[1:]
    return {
        "swaps": swaps,
        "rss_mb_after_first_load": first,
        "rss_mb_after_each_swap": rest,
        "rss_mb_last": rest[-1],
        "rss_mb_max": max(rest),
        "growth_mb_first_to_last": round(rest[-1] - first, 1),
        "growth_mb_second_half": round(rest[-1] - rest[len(rest) // 2], 1),
        "seconds": round(time.perf_counter() - started, 1),
    }
