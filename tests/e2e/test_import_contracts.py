"""The import contracts in pyproject.toml can fail: `lint-imports` on a copy of the code
passes as it is, and fails once training imports the service or a cycle appears."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import PROJECT

LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def _copy(tmp: Path) -> Path:
    for name in ("training", "service"):
        shutil.copytree(PROJECT / name, tmp / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(PROJECT / "pyproject.toml", tmp / "pyproject.toml")
    return tmp


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    # The copy comes first on the path, ahead of the editable install's finder.
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=root, env=env, capture_output=True, text=True, timeout=120
    )


def test_contracts_hold_on_the_code_as_it_is(tmp_path: Path) -> None:
    done = _lint(_copy(tmp_path))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


@pytest.mark.parametrize(
    "module, line, broken",
    [
        ("training/labels.py", "import service.settings  # a back-import", "training never imports service"),
        (
            "training/settings.py",
            "import training.segment  # a cycle: segment imports settings",
            "no import cycles inside training or inside service",
        ),
        (
            "service/store/repository.py",
            "import service.retrain.jobs  # the store reaching up into retraining",
            "service layers",
        ),
        (
            "service/scoring/pipeline.py",
            "import service.api.errors  # scoring reaching up into the HTTP layer",
            "service layers",
        ),
    ],
)
def test_a_deliberate_violation_fails_lint_imports(tmp_path: Path, module: str, line: str, broken: str) -> None:
    root = _copy(tmp_path)
    target = root / module
    target.write_text(target.read_text(encoding="utf-8") + f"\n{line}\n", encoding="utf-8")
    done = _lint(root)
    assert done.returncode != 0
    report = done.stdout[done.stdout.index("Broken contracts") :]
    assert broken in report
