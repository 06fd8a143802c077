"""`stance score --engine ray` on a local Ray (`ray.init(num_cpus=2)`): the same rows as
the local engine (statements and articles), bad rows reported while the rest is scored,
and a worker that dies mid-run retried without losing or duplicating a row."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from typer.testing import CliRunner  # noqa: E402

from service.cli.main import app  # noqa: E402
from service.scoring import ray_engine  # noqa: E402
from service.scoring.score_table import score_input  # noqa: E402
from service.settings import Settings  # noqa: E402
from tests.conftest import TINY_A  # noqa: E402
from tests.support import PROJECT, project_settings  # noqa: E402
from tests.support.ray_faults import MARKER_ENV, DiesOnce  # noqa: E402
from training.bundle import load_bundle  # noqa: E402
from training.settings import CONFIG_ENV  # noqa: E402

SCORE_TOL = 1e-5  # fp32 torch: a statement's scores may move in the last digits with its batch's padding
BAD_LINES = [
    json.dumps({"id": "empty", "text": ""}),
    json.dumps({"id": "no-text"}),
    json.dumps({"id": "num", "text": 5}),
    "{not json",
]


def _statements(n: int) -> list[str]:
    """`n` real statements of the seed corpus (varied lengths), as JSON lines."""
    files = sorted((PROJECT / "seeds/annotations").glob("*.jsonl"))
    texts = [json.loads(line)["text"] for path in files for line in path.read_text().splitlines()][:n]
    assert len(texts) == n
    return [json.dumps({"id": f"s{i}", "text": t}) for i, t in enumerate(texts)]


def _settings(tiny_registry: Path, tmp: Path, **batch) -> Settings:
    return project_settings().with_overrides(
        paths={"models_dir": tiny_registry, "data_dir": tmp},
        inference={"backend": "torch"},  # fp32: the two engines' batches differ, int8 activations would too
        batch={"workers": 2, "batch_rows": 64, **batch},
    )


def _local(src: Path, out: Path, settings: Settings, bundle_path: Path) -> list[dict]:
    bundle = load_bundle(bundle_path, settings.inference, backend="torch")
    score_input(src, out, "auto", bundle, settings)
    return [json.loads(line) for line in out.read_text().splitlines()]


def _ray_rows(folder: Path) -> list[dict]:
    if any(folder.glob("*.parquet")):
        import pyarrow.parquet as pq

        return pq.read_table(folder).to_pylist()
    return [json.loads(line) for part in sorted(folder.glob("*.jsonl")) for line in part.read_text().splitlines()]


def _assert_same_rows(got: list[dict], want: list[dict]) -> None:
    """Row for row: the same keys and values; scores within SCORE_TOL, and labels equal
    except where a score sits within SCORE_TOL of the tiny bundle's 0.5 threshold."""
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert set(g) == set(w), (g, w)
        for key in w:
            if key == "scores":
                assert g[key].keys() == w[key].keys()
                assert all(abs(g[key][k] - w[key][k]) <= SCORE_TOL for k in w[key]), (g, w)
            elif key == "labels" and "scores" in w and any(abs(v - 0.5) <= SCORE_TOL for v in w["scores"].values()):
                continue
            elif key == "id":
                assert str(g[key]) == str(w[key])  # the Ray engine writes ids as strings
            else:
                assert g[key] == w[key], (key, g, w)


@pytest.fixture(scope="module")
def local_ray(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A local Ray of 2 CPUs; workers import the tests' helpers through PYTHONPATH. Yields
    the fault marker's path (absent until an actor of DiesOnce has died)."""
    marker = tmp_path_factory.mktemp("ray") / "died"
    env = {"PYTHONPATH": str(PROJECT), MARKER_ENV: str(marker), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": env})
    yield marker
    ray.shutdown()


def test_statements_equal_local_and_bad_rows_reported(local_ray: Path, tiny_registry: Path, tmp_path: Path) -> None:
    good = _statements(300)
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(good[:100] + BAD_LINES[:2] + good[100:200] + BAD_LINES[2:] + good[200:]) + "\n")
    settings = _settings(tiny_registry, tmp_path)
    want = _local(src, tmp_path / "local.jsonl", settings, tiny_registry / TINY_A)
    assert len(want) == 300

    job = ray_engine.RayJob(source=str(src), output=str(tmp_path / "ray"), bundle_path=str(tiny_registry / TINY_A))
    outcome = ray_engine.run(job, settings.batch, settings.inference, settings.segmentation)

    _assert_same_rows(_ray_rows(tmp_path / "ray"), want)
    assert outcome.written == 300 and outcome.failures == len(BAD_LINES)
    errors = _ray_rows(Path(outcome.errors_path))
    assert [e["id"] for e in errors] == ["empty", "no-text", "num", None]
    assert errors[-1]["input"] == "{not json" and "invalid JSON" in errors[-1]["error"]
    assert all(e["error"] for e in errors)


def test_articles_equal_local_as_parquet(local_ray: Path, tiny_registry: Path, tmp_path: Path) -> None:
    folder = tmp_path / "articles"
    folder.mkdir()
    for src in sorted((PROJECT / "seeds/articles").glob("*.txt"))[:3]:
        shutil.copy(src, folder / src.name)
    (folder / "zz_empty.txt").write_text("  \n")  # an article without text: an error row in both engines
    settings = _settings(tiny_registry, tmp_path, batch_rows=1)
    want = _local(folder, tmp_path / "local.jsonl", settings, tiny_registry / TINY_A)
    assert sum(r["type"] == "article" for r in want) == 4 and sum(r["type"] == "statement" for r in want) > 50

    job = ray_engine.RayJob(
        source=str(folder),
        output=str(tmp_path / "ray.parquet"),
        bundle_path=str(tiny_registry / TINY_A),
        kind="articles",
        source_format="dir",
        output_format="parquet",
    )
    outcome = ray_engine.run(job, settings.batch, settings.inference, settings.segmentation)

    got = [ray_engine.contract_row(row, "articles") for row in _ray_rows(tmp_path / "ray.parquet")]
    _assert_same_rows(got, want)
    assert outcome.failures == 1 and outcome.written == sum(r["type"] == "statement" for r in want)


def test_a_worker_killed_mid_run_is_retried(local_ray: Path, tiny_registry: Path, tmp_path: Path) -> None:
    good = _statements(240)
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(good) + "\n")
    settings = _settings(tiny_registry, tmp_path, batch_rows=30, max_restarts=2, max_task_retries=2)
    job = ray_engine.RayJob(source=str(src), output=str(tmp_path / "ray"), bundle_path=str(tiny_registry / TINY_A))

    outcome = ray_engine.run(job, settings.batch, settings.inference, settings.segmentation, actor_cls=DiesOnce)

    assert local_ray.exists(), "no actor died: the test did not test a failure"
    ids = [row["id"] for row in _ray_rows(tmp_path / "ray")]
    assert ids == [f"s{i}" for i in range(240)]  # none lost, none twice, in order
    assert outcome.written == 240 and outcome.failures == 0


def test_cli_ray_engine_and_local_needs_no_ray(
    local_ray: Path, tiny_registry: Path, tmp_path: Path, monkeypatch
) -> None:
    """The command end to end (on the module's Ray: the CLI keeps a Ray it finds
    connected), and the local engine in a fresh process that must never import ray."""
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(_statements(40) + BAD_LINES[:1]) + "\n")
    config = tmp_path / "cfg.yaml"
    config.write_text(f"paths:\n  models_dir: {tiny_registry}\n  data_dir: {tmp_path / 'data'}\n")
    monkeypatch.setenv(CONFIG_ENV, str(config))
    out = tmp_path / "ray.parquet"
    result = CliRunner().invoke(app, ["score", str(src), "-o", str(out), "--engine", "ray", "--workers", "1"])
    assert result.exit_code == 1, result.output  # one bad row: exit 1, the rest scored
    summary = json.loads(result.stderr.strip().splitlines()[-1])
    assert summary["engine"] == "ray" and summary["rows"] == 40 and summary["failed"] == 1
    assert summary["model_version"] == TINY_A and "'empty'" in result.stderr
    assert [r["id"] for r in _ray_rows(out)] == [f"s{i}" for i in range(40)]
    assert ray.is_initialized()  # the module's Ray is still there

    env = {**os.environ, "PYTHONPATH": str(PROJECT)}
    probe = (
        "import sys; from service.cli.main import app; from typer.testing import CliRunner; "
        f"r = CliRunner().invoke(app, ['score', {str(src)!r}, '-o', {str(tmp_path / 'local.jsonl')!r}]); "
        "assert r.exit_code == 1, r.output; assert 'ray' not in sys.modules, 'the local engine imported ray'"
    )
    local = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=240)
    assert local.returncode == 0, local.stderr[-2000:]
    assert len((tmp_path / "local.jsonl").read_text().splitlines()) == 40


def test_cli_rejects_unknown_engine_and_nonempty_output(tmp_path: Path, tiny_registry: Path, monkeypatch) -> None:
    config = tmp_path / "cfg.yaml"
    config.write_text(f"paths:\n  models_dir: {tiny_registry}\n  data_dir: {tmp_path / 'data'}\n")
    monkeypatch.setenv(CONFIG_ENV, str(config))
    src = tmp_path / "in.jsonl"
    src.write_text(_statements(1)[0] + "\n")
    bad = CliRunner().invoke(app, ["score", str(src), "-o", str(tmp_path / "o"), "--engine", "spark"])
    assert bad.exit_code == 2 and "--engine must be local or ray" in bad.stderr
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "part.jsonl").write_text("{}\n")
    busy = CliRunner().invoke(app, ["score", str(src), "-o", str(tmp_path / "full"), "--engine", "ray"])
    assert busy.exit_code == 2 and "not empty" in busy.stderr
    missing = CliRunner().invoke(
        app, ["score", str(tmp_path / "nope.jsonl"), "-o", str(tmp_path / "o"), "--engine", "ray"]
    )
    assert missing.exit_code == 2 and "no such file or folder" in missing.stderr
    unknown = CliRunner().invoke(app, ["score", "s3://bucket/prefix/", "-o", str(tmp_path / "o2"), "--engine", "ray"])
    assert unknown.exit_code == 2 and "--format" in unknown.stderr
