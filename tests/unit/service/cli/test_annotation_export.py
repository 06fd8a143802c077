"""`stance annotations export --format parquet|hf`: the snapshot as Parquet or a `datasets`
folder loads back with the same records as the JSONL export; bad options are refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from service.cli.main import app
from tests.conftest import DATA
from tests.support.admin import write_config


@pytest.fixture()
def store_config(tmp_path: Path) -> Path:
    cfg = write_config(tmp_path)
    imported = CliRunner().invoke(app, ["annotations", "import", str(DATA / "import_good.jsonl"), "-c", str(cfg)])
    assert imported.exit_code == 0, imported.output
    return cfg


def test_parquet_and_hf_exports_load_back_as_the_jsonl_snapshot(tmp_path: Path, store_config: Path) -> None:
    import datasets

    runner = CliRunner()
    jsonl = tmp_path / "snap.jsonl"
    assert runner.invoke(app, ["annotations", "export", "-o", str(jsonl), "-c", str(store_config)]).exit_code == 0
    want = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert len(want) >= 2

    parquet, folder = tmp_path / "snap.parquet", tmp_path / "snap_hf"
    for fmt, path in (("parquet", parquet), ("hf", folder)):
        result = runner.invoke(app, ["annotations", "export", "-f", fmt, "-o", str(path), "-c", str(store_config)])
        assert result.exit_code == 0, result.output
        assert f"{len(want)} statements" in result.stderr
    assert datasets.Dataset.from_parquet(str(parquet)).to_list() == want
    reloaded = datasets.load_from_disk(str(folder))
    assert reloaded.to_list() == want
    assert reloaded.features["labels"].feature.dtype == "string"  # label names, as the JSONL has them


def test_export_refuses_bad_options(tmp_path: Path, store_config: Path) -> None:
    runner = CliRunner()
    unknown = runner.invoke(
        app, ["annotations", "export", "-f", "xlsx", "-o", str(tmp_path / "x"), "-c", str(store_config)]
    )
    assert unknown.exit_code == 2 and "unknown --format" in unknown.stderr
    no_output = runner.invoke(app, ["annotations", "export", "-f", "parquet", "-c", str(store_config)])
    assert no_output.exit_code == 2 and "needs --output" in no_output.stderr
    (tmp_path / "taken").mkdir()
    taken = runner.invoke(
        app, ["annotations", "export", "-f", "hf", "-o", str(tmp_path / "taken"), "-c", str(store_config)]
    )
    assert taken.exit_code == 2 and "exists" in taken.stderr
