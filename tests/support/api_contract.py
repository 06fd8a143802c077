"""Schemathesis against the real service (`stance serve` on loopback, tiny bundles), with
and without the API token. Used by tests/e2e/test_api_contract.py (a short budget, in every
`make test`) and run by hand for the full budget:

    .venv/bin/python tests/support/api_contract.py --max-examples 100 --output benchmarks/schemathesis.json

Every check is on (`--checks all`): no 5xx, every status, content type and body as
documented, schema-valid requests accepted, schema-violating ones refused. Retraining
jobs use the fake trainer (a crash: no CPU spent), so POST /v1/retrain is exercised too.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parents[2]
if str(PROJECT) not in sys.path:  # run as a script: python tests/support/api_contract.py
    sys.path.insert(0, str(PROJECT))

from tests.support.admin import AUTH, LiveServer, write_config  # noqa: E402

VERSIONS = ("vcontract-a", "vcontract-b")
CLI_TIMEOUT_S = 1800


def prepare(root: Path) -> Path:
    """A registry of two tiny bundles (the first current) and a config using it."""
    from tests.support.tiny import make_tiny_bundle
    from training.registry import Registry

    models = root / "models"
    for seed, version in enumerate(VERSIONS):
        if not (models / version).is_dir():
            make_tiny_bundle(models / version, version=version, seed=seed)
    registry = Registry(models)
    if registry.current() is None:
        registry.set_current(VERSIONS[0], "contract tests")
    return write_config(
        root,
        service={
            "max_text_chars": 3000,
            "max_texts": 8,
            "max_body_bytes": 100_000,
            "max_feed_bytes": 200_000,
            "max_statements": 400,
        },
        jobs={"train_module": "tests.test_jobs_fake_trainer", "poll_interval_s": 0.2, "watch_registry_s": 0.5},
    )


def run_schemathesis(
    url: str, max_examples: int, with_token: bool, workers: int = 1, report: Path | None = None
) -> tuple[int, str]:
    """(exit code, output) of one `schemathesis run --checks all`."""
    cmd = [
        str(Path(sys.executable).with_name("schemathesis")),
        "run",
        f"{url}/openapi.json",
        "--checks",
        "all",
        "--max-examples",
        str(max_examples),
        "--workers",
        str(workers),
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--no-color",
        "--seed",
        "1",
    ]
    if with_token:
        cmd += ["-H", f"Authorization:{AUTH['Authorization']}"]
    if report is not None:
        cmd += ["--report", "junit", "--report-dir", str(report)]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": ""}
    proc = subprocess.run(cmd, cwd=PROJECT, env=env, capture_output=True, text=True, timeout=CLI_TIMEOUT_S)
    return proc.returncode, proc.stdout + proc.stderr


def summary(output: str) -> dict[str, Any]:
    """The figures of the run's closing lines (test cases, failures, 5xx)."""
    cases = re.search(r"(\d+) generated", output)
    failures = re.search(r"(\d+) failures?", output)
    return {
        "test_cases": int(cases.group(1)) if cases else None,
        "failures": int(failures.group(1)) if failures else 0,
        "server_errors": len(re.findall(r"Server error", output)),
    }


def run_contract(root: Path, max_examples: int, workers: int = 1) -> dict[str, Any]:
    config = prepare(root)
    env = {"FAKE_TRAIN_MODE": "crash", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    stance = str(Path(sys.executable).with_name("stance"))
    results: dict[str, Any] = {"max_examples": max_examples}
    with LiveServer(
        config,
        command=[stance, "serve", "-c", str(config), "--port", "{port}", "--log-level", "warning"],
        ready_path="/readyz",
        env=env,
    ) as server:
        for with_token in (False, True):
            started = time.monotonic()
            code, output = run_schemathesis(server.url, max_examples, with_token, workers)
            key = "with_token" if with_token else "without_token"
            results[key] = {
                "exit_code": code,
                "seconds": round(time.monotonic() - started, 1),
                **summary(output),
                "output_tail": output[-6000:],
            }
        results["server_log_tail"] = server.log.read_text(errors="replace")[-3000:]
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-examples", type=int, default=100)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = run_contract(Path(tmp), args.max_examples, args.workers)
    text = json.dumps(results, indent=2)
    print(text)
    if args.output:
        args.output.write_text(text + "\n")
    sys.exit(max(results["with_token"]["exit_code"], results["without_token"]["exit_code"]))


if __name__ == "__main__":
    main()
