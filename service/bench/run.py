"""`stance bench`: every part of the benchmark in one JSON result, checked against the targets.
Above both benchmark modules (throughput and latency: bench.py; fairness and swaps:
bench_reliability.py), so neither imports the other's caller."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from service.bench.reliability import bench_fairness, bench_swaps
from service.bench.throughput import SWAP_RSS_SLACK_MB, TARGETS, bench_http, bench_offline, seed_statements
from service.settings import Settings
from training.bundle import read_meta


def run_bench(
    settings: Settings, bundle_path: Path, clients: int, seconds: float, only: str = "all", swaps: int = 50
) -> dict[str, Any]:
    texts = seed_statements(settings)
    out: dict[str, Any] = {
        "model_version": str(read_meta(bundle_path)["version"]),
        "inputs": f"{len(texts)} statements from {settings.paths.annotations_dir}",
    }
    met: dict[str, bool] = {}
    if only in ("all", "offline"):
        offline = out["offline"] = bench_offline(bundle_path, texts, settings)
        met["batch_vs_naive"] = offline["speedup"] >= TARGETS["batch_vs_naive"]
        met["batch_statements_per_s"] = offline["project"]["statements_per_s"] >= TARGETS["batch_statements_per_s"]
    if only in ("all", "http"):
        http = out["http"] = bench_http(settings, bundle_path, texts, clients, seconds)
        met["http_p99_ms"] = http["latency_ms"]["p99"] < TARGETS["http_p99_ms"]
        met["http_zero_errors"] = http["errors"] == 0
    if only in ("all", "fairness"):
        fair = out["fairness"] = bench_fairness(settings, bundle_path, texts, seconds)
        met["fairness_small_p99_under_1s"] = fair["small_with_large_in_flight"]["p99"] < 1000
    if only in ("all", "swaps"):
        swapped = out["swaps"] = bench_swaps(settings, bundle_path, swaps)
        met["swaps_rss_flat"] = swapped["growth_mb_second_half"] < SWAP_RSS_SLACK_MB
    out["machine"] = {"cpus": os.cpu_count(), "load_avg_1m_at_end": round(os.getloadavg()[0], 2)}
    out["targets"] = TARGETS
    out["met"] = met
    return out
