"""Helpers for the store / import / jobs / gate / admin / retrain tests (no tests here).

- `tiny_base_model(dir)`: a random 1-layer BERT + the real tokenizer, so `stance train`
  runs in seconds.
- `write_config(...)`: a YAML layered over default.yaml with every path in a temp dir.
- `make_app(settings)`: a bare FastAPI app with a fake scorer and `service.api.admin.install`,
  to test the admin API without the scoring service.
- `LiveServer`: that app (or `stance serve`) in a subprocess on a free loopback port.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.support import PROJECT, project_settings

TOKEN = "test-token-123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SEED_FILE = PROJECT / "seeds" / "annotations" / "annotations_batch2.jsonl"


def tiny_base_model(target: Path) -> Path:
    """A random tiny BERT encoder + the real tokenizer (training takes seconds)."""
    if (target / "config.json").is_file():
        return target
    from transformers import AutoTokenizer, BertConfig, BertModel

    from training.base_model import base_model_dir

    tok = AutoTokenizer.from_pretrained(base_model_dir(project_settings().base_model), local_files_only=True)
    cfg = BertConfig(
        vocab_size=tok.vocab_size,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    BertModel(cfg).save_pretrained(target)
    tok.save_pretrained(target)
    return target


def seed_dir(target: Path, n_lines: int = 120) -> Path:
    """A small seed corpus: the first lines of batch 2."""
    target.mkdir(parents=True, exist_ok=True)
    lines = SEED_FILE.read_text(encoding="utf-8").splitlines()[:n_lines]
    (target / "seed_small.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return target


def write_config(tmp: Path, base_model: Path | None = None, **sections: dict[str, Any]) -> Path:
    data: dict[str, Any] = {
        "paths": {
            "data_dir": str(tmp / "data"),
            "models_dir": str(tmp / "models"),
            "annotations_dir": str(tmp / "seeds"),
        },
        "training": {"epochs": 1, "n_folds": 2, "batch_size": 32, "bf16": False},
        "evaluation": {"bootstrap_samples": 20},
        "jobs": {"poll_interval_s": 0.2, "watch_registry_s": 0.5, "heartbeat_s": 0.5, "lease_s": 2.0},
        "auth": {"token": TOKEN},
    }
    if base_model is not None:
        data["base_model"] = {"path": str(base_model), "max_length": 64}
    for name, values in sections.items():
        data[name] = {**data.get(name, {}), **values}
    (tmp / "seeds").mkdir(parents=True, exist_ok=True)
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def tiny_bundle(models_dir: Path, version: str, threshold: float | None = None, seed: int = 0) -> Path:
    """A tiny registered bundle; `threshold` overrides every label's threshold (0.01 says
    yes to everything, 0.999 to nothing: a deterministic good/bad pair for the gate)."""
    from tests.support.tiny import make_tiny_bundle
    from training.bundle import BUNDLE_META, add_to_bundle

    path = make_tiny_bundle(models_dir / version, version=version, with_onnx=False, seed=seed)
    if threshold is not None:
        meta = json.loads((path / BUNDLE_META).read_text())
        meta["thresholds"] = {k: threshold for k in meta["thresholds"]}
        add_to_bundle(path, {BUNDLE_META: json.dumps(meta, indent=2, sort_keys=True)})
    return path


class FakeScorer:
    """Stands in for service.scoring.scorer's scorer: records swaps."""

    def __init__(self) -> None:
        self.bundle: Any = None
        self.swaps: list[str] = []

    @property
    def version(self) -> str | None:
        return self.bundle.version if self.bundle is not None else None

    def swap(self, bundle: Any) -> None:
        self.bundle = bundle
        self.swaps.append(bundle.version)


def make_app(settings: Any) -> Any:
    from fastapi import FastAPI

    from service.api import admin
    from service.api.limits import install_error_handling
    from service.lifespan import run_parts

    parts: list[Any] = []
    app = FastAPI(lifespan=lambda a: run_parts(a, parts))
    app.state.settings = settings
    app.state.scorer = FakeScorer()
    parts.append(admin.install(app, settings))
    install_error_handling(app, settings.service, feed_paths=[])
    return app


def serve_admin_app(config: str, port: int) -> None:
    """Entry point of LiveServer: the admin app alone under uvicorn."""
    import uvicorn

    from service.settings import load_service_settings

    uvicorn.run(make_app(load_service_settings(config, PROJECT)), host="127.0.0.1", port=port, log_level="warning")


def serve_command(config: Path) -> list[str]:
    """`stance serve` with `config` on loopback; LiveServer fills in `{port}`."""
    return [sys.executable, "-m", "service.cli.main", "serve", "--config", str(config), "--host", "127.0.0.1"] + [
        "--port",
        "{port}",
        "--log-level",
        "warning",
    ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """A service subprocess on loopback; `kill()` is SIGKILL (no clean shutdown)."""

    def __init__(
        self,
        config: Path,
        command: list[str] | None = None,
        ready_path: str = "/v1/models",
        log: Path | None = None,
        env: dict[str, str] | None = None,
        ready_timeout: float = 120.0,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = command or [
            sys.executable,
            "-c",
            f"import tests.support.admin as s; s.serve_admin_app({str(config)!r}, {self.port})",
        ]
        cmd = [c.replace("{port}", str(self.port)) for c in cmd]
        self.log = log or config.parent / f"server-{self.port}.log"
        full_env = {**os.environ, "STANCE_CONFIG": str(config), **(env or {})}
        with self.log.open("wb") as fh:
            self.proc = subprocess.Popen(
                cmd, cwd=PROJECT, env=full_env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True
            )
        self._wait_ready(ready_path, ready_timeout)

    def _wait_ready(self, path: str, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited ({self.proc.returncode}):\n{self.log.read_text()[-4000:]}")
            try:
                if httpx.get(self.url + path, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"server not ready in {timeout}s:\n{self.log.read_text()[-4000:]}")

    def kill(self) -> None:
        """SIGKILL the server (not its process group: a running training must survive)."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> LiveServer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def copy_tree(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst
