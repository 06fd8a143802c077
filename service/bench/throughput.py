"""`stance bench`: one run, same inputs (the seed statements), JSON out.

(a) offline throughput of the project's batch scoring vs a plain
    `transformers.pipeline("text-classification", top_k=None)` on the same weights;
(b) the HTTP service, started as a subprocess on 127.0.0.1, under N concurrent clients
    sending single-statement requests for T seconds: requests/s, p50/p99 latency, errors;
(c) the service process's peak RSS;
(d) fairness: small-request latency with a large request always in flight
    (service/bench/reliability.py);
(e) swaps: RSS over N hot swaps of a freshly loaded bundle (service/bench/reliability.py).
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import yaml

from service.scoring.bundle_loader import open_bundle
from service.scoring.scorer import score_batches
from service.settings import Settings
from training.annotations import annotation_files
from training.bundle import MODEL_DIR, read_meta
from training.registry import Registry
from training.settings import CONFIG_ENV, ROOT_ENV

READY_TIMEOUT_S = 300.0  # the service also imports the seed annotations into its store on start
REQUEST_TIMEOUT_S = 10.0
WARMUP_LOAD_S = 3.0  # the same load, unmeasured, first: steady state is what is reported
RSS_SAMPLE_S = 0.05
OFFLINE_REPEATS = 3  # passes of the project scorer over the inputs; the median pass is reported
NAIVE_PROBE = 48  # inputs used to pick the naive pipeline's best torch thread count
NAIVE_REPEATS = 1  # the naive pipeline is slow enough that one pass is a long, stable sample
SWAP_RSS_SLACK_MB = 50.0  # allocator noise; a leak of one bundle per swap is far above it
TARGETS = {"batch_vs_naive": 5.0, "batch_statements_per_s": 700.0, "http_p99_ms": 100.0}


def seed_statements(settings: Settings) -> list[str]:
    texts = []
    for path in annotation_files(settings.paths.annotations_dir):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                texts.append(json.loads(line)["text"])
    return texts


def _rate(n: int, seconds: list[float]) -> float:
    return round(n / statistics.median(seconds), 1)


def bench_offline(bundle_path: Path, texts: list[str], settings: Settings) -> dict[str, Any]:
    import torch
    from transformers import pipeline

    inference = settings.inference
    bundle = open_bundle(bundle_path, settings)  # as the service and `stance score` load it
    window = inference.window  # as `stance score` does
    list(score_batches(bundle, texts[:window], window))  # warm-up
    ours = []
    for _ in range(OFFLINE_REPEATS):
        start = time.perf_counter()
        list(score_batches(bundle, texts, window))
        ours.append(time.perf_counter() - start)

    try:  # bundles with the project's own classification head register it with transformers
        importlib.import_module("training.modeling")
    except ImportError:
        pass
    pipe = pipeline("text-classification", model=str(bundle_path / MODEL_DIR), top_k=None, device="cpu")
    # The naive side gets its best thread count (picked on a probe of the first inputs):
    # torch's OpenMP threads busy-wait, and on a shared 2-core machine 2 threads can be
    # 10x slower than 1. Then one full pass on all inputs. A fair, conservative ratio.
    probe = texts[:NAIVE_PROBE]
    probe_rates: dict[int, float] = {}
    for threads in sorted({1, inference.threads}):
        torch.set_num_threads(threads)
        pipe(probe[:4])  # warm-up
        start = time.perf_counter()
        pipe(probe)
        probe_rates[threads] = _rate(len(probe), [time.perf_counter() - start])
    best_threads = max(probe_rates, key=probe_rates.__getitem__)
    torch.set_num_threads(best_threads)
    naive = []
    for _ in range(NAIVE_REPEATS):
        start = time.perf_counter()
        pipe(texts)
        naive.append(time.perf_counter() - start)
    project_rate, naive_rate = _rate(len(texts), ours), _rate(len(texts), naive)
    return {
        "statements": len(texts),
        "passes": {"project": OFFLINE_REPEATS, "naive_pipeline": NAIVE_REPEATS},
        "project": {
            "statements_per_s": project_rate,
            "backend": bundle.backend_name,
            "batch_size": inference.batch_size,
            "window": inference.window,
            "threads": inference.threads,
            "streams": inference.streams,
            "spin_wait": settings.service.spin_wait,
        },
        "naive_pipeline": {
            "statements_per_s": naive_rate,
            "device": "cpu",
            "torch_threads": best_threads,
            "probe_statements_per_s_by_torch_threads": probe_rates,
        },
        "speedup": round(project_rate / naive_rate, 2),
    }


# ------------------------------------------------------------------ HTTP


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _temp_config(settings: Settings, bundle_path: Path, root: Path) -> Path:
    """A registry holding only the benchmarked bundle, and a full config pointing at it."""
    version = str(read_meta(bundle_path)["version"])
    models = root / "models"
    shutil.copytree(bundle_path, models / version)
    Registry(models).set_current(version, reason="bench")
    data = settings.model_dump(mode="json")
    data["paths"] = {**data["paths"], "models_dir": str(models), "data_dir": str(root / "data")}
    config = root / "bench.yaml"
    config.write_text(yaml.safe_dump(data))
    return config


def _peak_rss_mb(pid: int, sampled: int) -> float:
    """The kernel's high-water mark (VmHWM) when readable, else the sampled maximum."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return round(sampled / 2**20, 1)


class _Connection:
    """One keep-alive HTTP/1.1 connection speaking just enough of the protocol for the
    benchmark (POST a JSON body, read a Content-Length response). The load generator
    shares the 2 cores with the service; httpx spends milliseconds of CPU per request, which
    the service would then be measured without, so the client is kept this lean."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, request: bytes) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, v in (h.split(":", 1) for h in header_lines if ":" in h)}
        length = headers.get("content-length")
        if length is None:
            raise ConnectionError("response without Content-Length")
        await self.reader.readexactly(int(length))
        return int(status_line.split()[1])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def _request(host: str, path: str, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body


async def _load(host: str, port: int, texts: list[str], clients: int, seconds: float) -> dict[str, Any]:
    """Closed loop: each of `clients` connections sends its next request as soon as the
    previous answer arrives, for `seconds`."""
    latencies: list[float] = []
    errors: dict[str, int] = {}
    requests = [_request(host, "/v1/classify", json.dumps({"text": t}).encode()) for t in texts]
    deadline = time.perf_counter() + seconds

    def error(kind: str) -> None:
        errors[kind] = errors.get(kind, 0) + 1

    async def client(worker: int) -> None:
        conn, i = _Connection(host, port), worker
        try:
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                try:
                    status = await asyncio.wait_for(conn.post(requests[i % len(requests)]), REQUEST_TIMEOUT_S)
                    if status == 200:
                        latencies.append(time.perf_counter() - start)
                    else:
                        error(str(status))
                except (TimeoutError, OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
                    error(type(exc).__name__)
                    conn.close()  # a fresh connection for the next request
                i += clients
        finally:
            conn.close()

    started = time.perf_counter()
    await asyncio.gather(*(client(w) for w in range(clients)))
    elapsed = time.perf_counter() - started
    ms = np.array(latencies) * 1000 if latencies else np.zeros(1)
    return {
        "clients": clients,
        "seconds": round(elapsed, 2),
        "requests": len(latencies),
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "latency_ms": {
            "p50": round(float(np.percentile(ms, 50)), 1),
            "p90": round(float(np.percentile(ms, 90)), 1),
            "p99": round(float(np.percentile(ms, 99)), 1),
            "max": round(float(ms.max()), 1),
        },
        "errors": sum(errors.values()),
        "error_kinds": errors,
    }


def _run_async(coro: Any) -> Any:
    """uvloop when installed: the load generator shares the CPU with the service."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def _batch_stats(metrics_text: str) -> dict[str, float]:
    values = {}
    for line in metrics_text.splitlines():
        for name in ("stance_inference_batch_size_sum", "stance_inference_batch_size_count"):
            if line.startswith(name + " "):
                values[name] = float(line.split()[1])
    count = values.get("stance_inference_batch_size_count", 0.0)
    return {
        "model_calls": count,
        "mean_batch_size": round(values.get("stance_inference_batch_size_sum", 0.0) / count, 2) if count else 0.0,
    }


def _serve_command(config: Path, port: int) -> list[str]:
    """`stance serve` on loopback, as a subprocess (the benchmark measures a real server)."""
    return [sys.executable, "-m", "service.cli.main", "serve", "--host", "127.0.0.1", "--port", str(port)] + [
        "--config",
        str(config),
        "--log-level",
        "warning",
    ]


@contextmanager
def _served(settings: Settings, bundle_path: Path) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """`stance serve` of the bundle alone on a free loopback port, until the block ends:
    yields the port once the server is ready, and the process (to sample its memory)."""
    with tempfile.TemporaryDirectory(prefix="stance-bench-") as tmp:
        config = _temp_config(settings, bundle_path, Path(tmp))
        port = _free_port()
        env = {**os.environ, CONFIG_ENV: str(config), ROOT_ENV: str(settings.root)}
        with (Path(tmp) / "service.log").open("wb") as log:
            proc = subprocess.Popen(_serve_command(config, port), env=env, stdout=log, stderr=subprocess.STDOUT)
            try:
                _wait_ready(f"http://127.0.0.1:{port}", proc, Path(tmp) / "service.log")
                yield port, proc
            finally:
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def bench_http(settings: Settings, bundle_path: Path, texts: list[str], clients: int, seconds: float) -> dict[str, Any]:
    import httpx

    with _served(settings, bundle_path) as (port, proc):
        url = f"http://127.0.0.1:{port}"
        peak = 0
        stop = threading.Event()

        def sample() -> None:
            nonlocal peak
            ps = psutil.Process(proc.pid)
            while not stop.wait(RSS_SAMPLE_S):
                try:
                    peak = max(peak, ps.memory_info().rss)
                except psutil.Error:
                    return

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            _run_async(_load("127.0.0.1", port, texts, clients, WARMUP_LOAD_S))
            before = _batch_stats(httpx.get(f"{url}/metrics").text)
            server, client = psutil.Process(proc.pid), psutil.Process()
            cpu0 = (sum(server.cpu_times()[:2]), sum(client.cpu_times()[:2]))
            result = _run_async(_load("127.0.0.1", port, texts, clients, seconds))
            cpu1 = (sum(server.cpu_times()[:2]), sum(client.cpu_times()[:2]))
            after = _batch_stats(httpx.get(f"{url}/metrics").text)
            n = max(result["requests"], 1)
            result["cpu_ms_per_request"] = {
                "service": round((cpu1[0] - cpu0[0]) * 1000 / n, 2),
                "load_generator": round((cpu1[1] - cpu0[1]) * 1000 / n, 2),
            }
            calls = after["model_calls"] - before["model_calls"]
            result["model_calls"] = int(calls)
            result["mean_batch_size"] = round(result["requests"] / calls, 2) if calls else 0.0
            result["peak_rss_mb"] = _peak_rss_mb(proc.pid, peak)
            result["service"] = {
                "microbatch_max_size": settings.service.microbatch_max_size,
                "max_call_size": settings.service.max_call_size,
                "inference_streams": settings.inference.streams,
                "microbatch_max_wait_ms": settings.service.microbatch_max_wait_ms,
                "inference_threads": settings.inference.threads,
            }
            return result
        finally:
            stop.set()


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    import httpx

    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = log.read_text(errors="replace")
            raise RuntimeError(f"the service exited with code {proc.returncode}:\n{err[-2000:]}")
        try:
            if httpx.get(f"{url}/readyz", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the service was not ready after {READY_TIMEOUT_S:.0f} s")
