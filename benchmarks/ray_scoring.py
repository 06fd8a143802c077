"""`stance score` throughput: the local engine vs the Ray engine with 1 and 2 workers, on
this machine, with the registry's current bundle (or --model), on the seed statements
repeated to --statements rows (JSON Lines in, JSON Lines out).

Each engine runs the whole command path (read, score, write). Reported per engine: the
wall time and statements/s of the run; for the local engine the bundle load apart; for Ray
the `ray.init` of a local Ray apart (a cluster is started once, not per job), while the run
includes the actors' start and bundle load. One machine only: no cluster figures.
Usage: .venv/bin/python benchmarks/ray_scoring.py [--statements 4000] [--model V] [-o benchmarks/ray_scoring.json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from service.bench.throughput import seed_statements
from service.scoring.bundle_loader import open_bundle
from service.scoring.score_table import score_input
from service.settings import Settings, load_service_settings
from training.registry import Registry


def _write_input(folder: Path, texts: list[str], n: int) -> Path:
    path = folder / "statements.jsonl"
    rows = itertools.islice(itertools.cycle(texts), n)
    path.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(rows)))
    return path


def bench_local(settings: Settings, bundle_path: Path, src: Path, out: Path, n: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    bundle = open_bundle(bundle_path, settings)
    loaded = time.perf_counter()
    outcome = score_input(src, out, "auto", bundle, settings)
    done = time.perf_counter()
    assert outcome.written == n, outcome
    return {
        "threads": settings.inference.threads,
        "load_s": round(loaded - t0, 2),
        "score_s": round(done - loaded, 2),
        "statements_per_s": round(n / (done - loaded), 1),
        "statements_per_s_with_load": round(n / (done - t0), 1),
    }


def bench_ray(settings: Settings, bundle_path: Path, src: Path, out: Path, n: int, workers: int) -> dict[str, Any]:
    import ray

    from service.scoring import ray_engine

    t0 = time.perf_counter()
    ray.init(include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    started = time.perf_counter()
    batch = settings.batch.model_copy(update={"workers": workers})
    job = ray_engine.RayJob(source=str(src), output=str(out), bundle_path=str(bundle_path))
    try:
        outcome = ray_engine.run(job, batch, settings.inference, settings.segmentation)
    finally:
        done = time.perf_counter()
        ray.shutdown()
    assert outcome.written == n and outcome.failures == 0, outcome
    return {
        "workers": workers,
        "cpus_per_worker": batch.cpus_per_worker,
        "ray_init_s": round(started - t0, 2),
        "run_s": round(done - started, 2),
        "statements_per_s": round(n / (done - started), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--statements", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=2, help="each engine this often, interleaved; medians reported")
    parser.add_argument("--model", default=None)
    parser.add_argument("-o", "--output", type=Path, default=None)
    args = parser.parse_args()
    settings = load_service_settings()
    bundle_path = Registry(settings.paths.models_dir).resolve(args.model)
    texts = seed_statements(settings)
    result: dict[str, Any] = {
        "model": bundle_path.name,
        "statements": args.statements,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_avg_1m_before": None},
        "engines": {},
    }
    with tempfile.TemporaryDirectory(prefix="ray-bench-") as tmp:
        folder = Path(tmp)
        src = _write_input(folder, texts, args.statements)
        result["machine"]["load_avg_1m_before"] = round(os.getloadavg()[0], 2)
        runs = [("local", None), ("ray_1_worker", 1), ("ray_2_workers", 2)]
        rounds: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in runs}
        for r in range(args.rounds):  # interleaved, so a busy spell of the shared machine hits every engine
            for name, workers in runs:
                out = folder / f"out-{name}-{r}"
                if workers is None:
                    figures = bench_local(settings, bundle_path, src, out.with_suffix(".jsonl"), args.statements)
                else:
                    figures = bench_ray(settings, bundle_path, src, out, args.statements, workers)
                figures["load_avg_1m"] = round(os.getloadavg()[0], 2)
                rounds[name].append(figures)
                print(json.dumps({name: figures}), file=sys.stderr)
        for name, figures in rounds.items():
            result["engines"][name] = {
                "median_statements_per_s": statistics.median(f["statements_per_s"] for f in figures),
                "rounds": figures,
            }
    text = json.dumps(result, indent=2)
    print(text)
    if args.output:
        args.output.write_text(text + "\n")


if __name__ == "__main__":
    main()
