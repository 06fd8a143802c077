"""A non-editable `pip install .` works: the installed package finds configs/ and the data
folders through `--root` / STANCE_ROOT, never through the location of its own code.

Fast and offline: the package alone is built into a fresh venv (`--no-deps
--no-build-isolation`); its dependencies come from the test's own environment through a
.pth file (a plain path entry: the editable install's finder there is not activated)."""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import PROJECT

SOURCES = ("pyproject.toml", "README.md", "training", "service")


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv holding a wheel-installed copy of the project (built from a copy of its
    sources, so the checkout gets no build/ or egg-info)."""
    tmp = tmp_path_factory.mktemp("install")
    src = tmp / "src"
    src.mkdir()
    for name in SOURCES:
        item = PROJECT / name
        if item.is_dir():
            shutil.copytree(item, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(item, src / name)
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    [site_dir] = (venv / "lib").glob("python*/site-packages")
    (site_dir / "deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    done = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            str(src),
        ],
        capture_output=True,
        text=True,
        cwd=tmp,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return venv


def _run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("STANCE_ROOT", "STANCE_CONFIG", "PYTHONPATH")}
    return subprocess.run(args, capture_output=True, text=True, cwd=cwd, env={**clean, **env}, timeout=300)


def test_stance_help_runs_from_the_installed_package(installed: Path, tmp_path: Path) -> None:
    done = _run([str(installed / "bin" / "stance"), "--help"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "--root" in done.stdout and "serve" in done.stdout and "train" in done.stdout


def test_installed_package_finds_the_project_through_stance_root(installed: Path, tmp_path: Path) -> None:
    probe = (
        "import json, training, service.settings as s; "
        "cfg = s.load_service_settings(); "
        "print(json.dumps({'code': training.__file__, 'root': str(cfg.root), "
        "'models': str(cfg.paths.models_dir), 'labels': list(cfg.labels)}))"
    )
    done = _run([str(installed / "bin" / "python"), "-c", probe], cwd=tmp_path, STANCE_ROOT=str(PROJECT))
    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads(done.stdout)
    assert Path(found["code"]).is_relative_to(installed)  # the installed copy, not the checkout
    assert found["root"] == str(PROJECT) and found["models"] == str(PROJECT / "models")
    assert len(found["labels"]) >= 2


def test_installed_cli_takes_root_option_and_fails_clearly_without_one(installed: Path, tmp_path: Path) -> None:
    stance = str(installed / "bin" / "stance")
    article = sorted((PROJECT / "seeds" / "articles").glob("*.txt"))[0]
    done = _run([stance, "--root", str(PROJECT), "segment", str(article)], cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert rows and all(row["source"] == article.stem for row in rows)
    lost = _run([stance, "segment", str(article)], cwd=tmp_path)
    assert lost.returncode == 2
    assert "configs/default.yaml" in lost.stderr and "STANCE_ROOT" in lost.stderr
    assert "Traceback" not in lost.stderr
