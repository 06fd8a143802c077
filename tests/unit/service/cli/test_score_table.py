"""`stance score` (local engine) on tables read through `datasets`: CSV, Parquet, JSON
Lines, a folder of Parquet parts; `--articles` rows; a bad row reported with its number;
a table without a `text` column refused with a clear message."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from service.cli.main import app
from tests.conftest import TINY_A
from tests.support import PROJECT, project_settings
from training.bundle import load_bundle
from training.settings import CONFIG_ENV

TEXTS = [
    "Ukraine should join NATO now.",
    "Membership must wait until the war is over.",
    "Russia rejects any enlargement of the alliance.",
]


@pytest.fixture()
def cli_config(tmp_path: Path, tiny_registry: Path, monkeypatch) -> Path:
    config = tmp_path / "cfg.yaml"
    config.write_text(f"paths:\n  models_dir: {tiny_registry}\n  data_dir: {tmp_path / 'data'}\n")
    monkeypatch.setenv(CONFIG_ENV, str(config))
    return config


def _score(*args: str):
    return CliRunner().invoke(app, ["score", *args])


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _expected(tiny_registry: Path, texts: list[str]) -> list[tuple[list[str], dict]]:
    bundle = load_bundle(tiny_registry / TINY_A, project_settings().inference)
    return [(p.labels, p.scores) for p in bundle.predict(texts)]


def test_csv_with_a_bad_row(tmp_path: Path, cli_config: Path, tiny_registry: Path) -> None:
    import pandas as pd

    src = tmp_path / "in.csv"
    pd.DataFrame({"id": ["a", "b", "c", "d"], "text": [TEXTS[0], "", TEXTS[1], TEXTS[2]]}).to_csv(src, index=False)
    out = tmp_path / "out.jsonl"
    result = _score(str(src), "-o", str(out))
    assert result.exit_code == 1, result.output
    assert "row 2: field 'text' must be a non-empty string" in result.stderr
    rows = _rows(out)
    assert [r["id"] for r in rows] == ["a", "c", "d"]
    assert [(r["labels"], r["scores"]) for r in rows] == _expected(tiny_registry, TEXTS)


def test_folder_of_parquet_parts_keeps_typed_ids(tmp_path: Path, cli_config: Path, tiny_registry: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path / "parts"
    folder.mkdir()
    pq.write_table(pa.table({"id": [1, 2], "text": TEXTS[:2]}), folder / "part-0.parquet")
    pq.write_table(pa.table({"id": [3], "text": TEXTS[2:]}), folder / "part-1.parquet")
    out = tmp_path / "out.jsonl"
    result = _score(str(folder), "-o", str(out))
    assert result.exit_code == 0, result.output
    rows = _rows(out)
    assert [r["id"] for r in rows] == [1, 2, 3]
    assert [(r["labels"], r["scores"]) for r in rows] == _expected(tiny_registry, TEXTS)


def test_article_rows_from_jsonl(tmp_path: Path, cli_config: Path) -> None:
    articles = sorted((PROJECT / "seeds/articles").glob("*.txt"))[:2]
    src = tmp_path / "articles.jsonl"
    lines = [json.dumps({"id": p.stem, "text": p.read_text()}) for p in articles]
    src.write_text("\n".join([*lines, json.dumps({"id": "blank", "text": " "})]) + "\n")
    out = tmp_path / "out.jsonl"
    result = _score(str(src), "-o", str(out), "--articles")
    assert result.exit_code == 1, result.output  # the blank article
    rows = _rows(out)
    summaries = [r for r in rows if r["type"] == "article"]
    assert [r["id"] for r in summaries] == [p.stem for p in articles] + ["blank"]
    assert summaries[-1]["error"] == "item has no text"
    statements = [r for r in rows if r["type"] == "statement"]
    assert {r["article_id"] for r in statements} == {p.stem for p in articles}
    assert sum(r["statements"] for r in summaries[:2]) == len({(r["article_id"], r["index"]) for r in statements})


def test_table_without_text_column_is_refused(tmp_path: Path, cli_config: Path) -> None:
    src = tmp_path / "in.csv"
    src.write_text("id,body\n1,hello\n")
    result = _score(str(src), "-o", str(tmp_path / "out.jsonl"))
    assert result.exit_code == 2
    assert "no 'text' column (columns: id, body)" in result.stderr
    missing = _score(str(tmp_path / "nope.parquet"), "-o", str(tmp_path / "o.jsonl"))
    assert missing.exit_code == 2 and "no such file or folder" in missing.stderr
