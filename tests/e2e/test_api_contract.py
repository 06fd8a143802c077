"""The API keeps its documented contract: schemathesis with every check, with and without
the token, against `stance serve` on loopback (tests/support/api_contract.py). A short budget here
(every `make test`, so every CI run); the full-budget figures are in docs/SERVICE.md."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.api_contract import run_contract

SHORT_BUDGET = 10  # examples per operation and phase: about a minute on 2 cores


@pytest.mark.timeout(600)
def test_schemathesis_finds_no_5xx_and_no_schema_violation(tmp_path: Path) -> None:
    results = run_contract(tmp_path, SHORT_BUDGET)
    for key in ("without_token", "with_token"):
        run = results[key]
        assert run["test_cases"], f"{key}: schemathesis generated nothing:\n{run['output_tail']}"
        assert run["exit_code"] == 0 and run["failures"] == 0, f"{key}:\n{run['output_tail']}"
        assert run["server_errors"] == 0, run["output_tail"]
