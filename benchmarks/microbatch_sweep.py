"""Which micro-batch cap serves 16 closed-loop clients best? Runs the HTTP part of
`stance bench` once per `service.microbatch_max_size` on the same inputs and prints JSON
(requests/s, p50/p99 latency, errors, mean batch). Idle machine; about 40 s per size.
Usage: .venv/bin/python benchmarks/microbatch_sweep.py [SECONDS] [SIZES, e.g. 4,8,16,64]
"""

from __future__ import annotations

import json
import sys

from service.bench.throughput import bench_http, seed_statements
from service.settings import load_service_settings
from training.registry import Registry


def main(seconds: float = 15.0, sizes: tuple[int, ...] = (4, 8, 16, 64)) -> None:
    settings = load_service_settings()  # the entry point: configs/ under the current folder or $STANCE_ROOT
    path = Registry(settings.paths.models_dir).resolve(None)
    texts = seed_statements(settings)
    out: dict[str, object] = {"model": path.name, "clients": 16, "seconds": seconds, "by_microbatch_max_size": {}}
    for size in sizes:
        tuned = settings.with_overrides(service={"microbatch_max_size": size})
        http = bench_http(tuned, path, texts, clients=16, seconds=seconds)
        out["by_microbatch_max_size"][size] = {  # type: ignore[index]
            "requests_per_s": http["requests_per_s"],
            "latency_ms": http["latency_ms"],
            "errors": http["errors"],
            "mean_batch_size": http["mean_batch_size"],
        }
        print(json.dumps({size: out["by_microbatch_max_size"][size]}), file=sys.stderr)  # type: ignore[index]
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 15.0
    sizes = tuple(int(s) for s in sys.argv[2].split(",")) if len(sys.argv) > 2 else (4, 8, 16, 64)
    main(seconds, sizes)
