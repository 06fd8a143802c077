"""The real server: `stance serve` as a subprocess on 127.0.0.1, spoken to over HTTP."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import TINY_A

STARTUP_TIMEOUT_S = 180


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.timeout(STARTUP_TIMEOUT_S + 60)
def test_stance_serve_subprocess(tmp_path: Path, tiny_registry: Path) -> None:
    config = tmp_path / "serve.yaml"
    config.write_text(f"paths:\n  models_dir: {tiny_registry}\n  data_dir: {tmp_path / 'data'}\n")
    port = _free_port()
    log = (tmp_path / "serve.log").open("wb")
    stance = Path(sys.executable).parent / "stance"
    proc = subprocess.Popen(
        [str(stance), "serve", "--port", str(port), "--host", "127.0.0.1"],
        env={**os.environ, "STANCE_CONFIG": str(config)},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "server not ready in time"
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        assert httpx.get(f"{base}/readyz").json()["model_version"] == TINY_A
        r = httpx.post(f"{base}/v1/classify", json={"texts": ["Ukraine should join NATO.", "Not yet."]})
        assert r.status_code == 200 and len(r.json()["results"]) == 2
        r = httpx.post(f"{base}/v1/classify", json={"text": ""})
        assert r.status_code == 422
        with httpx.stream(
            "POST",
            f"{base}/v1/feeds/score",
            content=b'{"id": "a", "text": "NATO. Ukraine wants in."}\n',
            headers={"content-type": "application/x-ndjson"},
        ) as resp:
            lines = [line for line in resp.iter_lines() if line]
        assert resp.status_code == 200 and len(lines) == 1
        assert "stance_statements_scored_total" in httpx.get(f"{base}/metrics").text
        # The benchmark's lean keep-alive client against the real server: answers counted,
        # error statuses counted by kind (the blank text gets 422s), nothing lost.
        import asyncio

        from service.bench.throughput import _load

        load = asyncio.run(_load("127.0.0.1", port, ["Ukraine should join NATO.", " "], clients=4, seconds=1.0))
        assert load["requests"] > 0 and load["error_kinds"].keys() == {"422"}
        assert load["errors"] == load["error_kinds"]["422"] > 0
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
    # uvicorn shuts down gracefully, then re-raises SIGTERM so the exit status shows it
    log_text = (tmp_path / "serve.log").read_text()
    assert proc.returncode in (0, -signal.SIGTERM), log_text[-3000:]
    assert "Application shutdown complete" in log_text and "Traceback" not in log_text


def test_serve_trains_first_when_registry_is_empty(tmp_path: Path, monkeypatch) -> None:
    """No current model -> `stance serve` trains one (faked here), then serves it."""
    import uvicorn
    from typer.testing import CliRunner

    import training.train
    from service.cli.main import app
    from tests.support.tiny import make_tiny_bundle
    from training.registry import Registry

    models = tmp_path / "models"
    config = tmp_path / "serve.yaml"
    config.write_text(f"paths:\n  models_dir: {models}\n  data_dir: {tmp_path / 'data'}\n")
    trained: list[str] = []

    def fake_train(settings) -> str:
        assert settings.paths.models_dir == models
        make_tiny_bundle(models / "vtrained", version="vtrained")
        Registry(models).set_current("vtrained")
        trained.append("vtrained")
        return "vtrained"

    served = {}
    monkeypatch.setattr(training.train, "train_default", fake_train)
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: served.update(kw, app=app))
    monkeypatch.setenv("STANCE_CONFIG", str(config))
    result = CliRunner().invoke(app, ["serve", "--config", str(config), "--port", "8123"])
    assert result.exit_code == 0, result.output
    assert trained == ["vtrained"] and "training one first" in result.stderr
    assert served["port"] == 8123 and served["host"] == "127.0.0.1"
