"""Does the scorer's cache of repeated statements pay? Its cost on a stream without repeats,
its gain on a feed with them, through the service's own path (Scorer.score_versioned, one
request per article, as feed ingestion sends them).

Streams (deterministic, from the seeds):
- no repeats: every distinct seed statement once, in articles of ARTICLE_STATEMENTS;
- feed with repeats: the seed articles' content statements (training.segment), each
  article carried by WIRE_OUTLETS outlets (wire copy), and the unique seed statements as
  the other news; every article ends with its outlet's furniture lines that pass the
  boilerplate filter (newsletter and follow-us sentences), as scraped pages do.

The cache's own cost (lookup + store without the model) is timed alone as well: under the
shared machine's load, whole-run differences of a few percent are noise.
Configurations are timed interleaved (ROUNDS rounds of: cache off, cache on from empty),
median reported; the cache starts empty each time, so first sightings are paid for.
Usage: .venv/bin/python benchmarks/statement_cache.py [BUNDLE_DIR]; writes benchmarks/statement_cache.json.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from service.scoring.bundle_loader import open_bundle
from service.scoring.cache import StatementCache
from service.scoring.scorer import Scorer
from service.settings import load_service_settings
from training.annotations import annotation_files, load_annotations
from training.segment import content_statements

OUT = Path(__file__).with_name("statement_cache.json")
ARTICLE_STATEMENTS = 12
WIRE_OUTLETS = 3
ROUNDS = 3
OUTLET_FURNITURE = {
    "outlet-a": ["Sign up for our daily briefing on the war in Ukraine.", "Follow us on Telegram for live updates."],
    "outlet-b": [
        "Support independent journalism in Ukraine by becoming a member today.",
        "Read all our NATO coverage.",
    ],
    "outlet-c": ["This article was originally published by our partners and is republished with permission."],
}


def streams(settings: Any) -> dict[str, list[list[str]]]:
    anns = load_annotations(annotation_files(settings.paths.annotations_dir), settings.labels).annotations
    unique = list(dict.fromkeys(a.text for a in anns))
    chunks = [unique[i : i + ARTICLE_STATEMENTS] for i in range(0, len(unique), ARTICLE_STATEMENTS)]
    outlets = list(OUTLET_FURNITURE)
    seeds = [
        [s.text for s in content_statements(p.read_text(encoding="utf-8"), settings.segmentation)]
        for p in sorted(Path(settings.paths.articles_dir).glob("*.txt"))
    ]
    feed = [chunk + OUTLET_FURNITURE[outlets[i % len(outlets)]] for i, chunk in enumerate(chunks)]
    for k, article in enumerate(seeds):  # wire copy, spread through the feed
        for j in range(WIRE_OUTLETS):
            feed.insert((k * 37 + j * 113) % len(feed), article + OUTLET_FURNITURE[outlets[j % len(outlets)]])
    return {"no_repeats": chunks, "feed_with_repeats": feed}


def run(bundle: Any, articles: list[list[str]], cache_size: int, settings: Any) -> tuple[float, dict[str, int]]:
    service = settings.service
    scorer = Scorer(
        max_batch=service.microbatch_max_size,
        max_wait_ms=service.microbatch_max_wait_ms,
        bundle=bundle,
        max_call=service.max_call_size,
        cache=StatementCache(cache_size),
    )
    scorer.start()

    async def go() -> None:
        for article in articles:
            await scorer.score_versioned(article)

    try:
        start = time.perf_counter()
        asyncio.run(go())
        seconds = time.perf_counter() - start
    finally:
        scorer.close()
    return seconds, {"hits": scorer.cache.stats.hits, "model_statements": scorer.stats.statements}


def overhead_us(articles: list[list[str]], version: str, preds: list[Any]) -> float:
    """The cache's own cost per statement (lookup + store, no model), in microseconds: the
    whole price of keeping it on for a stream that never repeats."""
    cache = StatementCache(50_000)
    n = sum(len(a) for a in articles)
    start = time.perf_counter()
    for article in articles:
        cache.lookup(version, article)
        cache.store(version, article, preds[: len(article)])
    return round((time.perf_counter() - start) / n * 1e6, 2)


def main(bundle_dir: str) -> None:
    settings = load_service_settings()
    bundle = open_bundle(Path(bundle_dir).resolve(), settings)
    bundle.predict(["warm-up statement about NATO."] * 16)
    out: dict[str, Any] = {
        "command": f"nice -n 15 .venv/bin/python benchmarks/statement_cache.py {bundle_dir}",
        "bundle": bundle.version,
        "backend": bundle.backend_name,
        "cache_size": settings.service.statement_cache_size,
        "load_avg_start": [round(x, 2) for x in os.getloadavg()],
    }
    for name, articles in streams(settings).items():
        n = sum(len(a) for a in articles)
        distinct = len({t for a in articles for t in a})
        seconds: dict[str, list[float]] = {"off": [], "on": []}
        stats: dict[str, Any] = {}
        for _ in range(ROUNDS):
            for mode, size in (("off", 0), ("on", settings.service.statement_cache_size)):
                s, stats[mode] = run(bundle, articles, size, settings)
                seconds[mode].append(s)
        off, on = statistics.median(seconds["off"]), statistics.median(seconds["on"])
        out[name] = {
            "cache_own_cost_us_per_statement": overhead_us(articles, bundle.version, bundle.predict(articles[0] * 8)),
            "articles": len(articles),
            "statements": n,
            "distinct": distinct,
            "repeat_share": round(1 - distinct / n, 3),
            "statements_per_s_cache_off": round(n / off, 1),
            "statements_per_s_cache_on": round(n / on, 1),
            "change": f"{(off / on - 1):+.1%}",
            "model_statements_cache_on": stats["on"]["model_statements"],
            "cache_hits": stats["on"]["hits"],
        }
        print(name, out[name], flush=True)
    out["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    OUT.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "models/v20261129-210915-2566")
