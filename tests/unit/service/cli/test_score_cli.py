"""`stance score`: the offline contract (rows keep id/text, add labels/scores; bad lines on
stderr with their number; exit code), feeds and folders of articles."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from service.cli.main import app
from tests.conftest import DATA, TINY_A
from tests.support import project_settings
from training.bundle import load_bundle
from training.settings import CONFIG_ENV


@pytest.fixture()
def cli_config(tmp_path: Path, tiny_registry: Path, monkeypatch) -> Path:
    config = tmp_path / "cfg.yaml"
    config.write_text(f"paths:\n  models_dir: {tiny_registry}\n  data_dir: {tmp_path / 'data'}\n")
    monkeypatch.setenv(CONFIG_ENV, str(config))  # restored after the test
    return config


def _run(*args: str):
    return CliRunner().invoke(app, list(args))


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_statements_with_a_bad_line(tmp_path: Path, cli_config: Path, tiny_registry: Path) -> None:
    lines = [
        json.dumps({"id": "s1", "text": "Ukraine should join NATO now.", "source": "x"}),
        json.dumps({"id": 2, "text": ""}),
        "{not json",
        json.dumps({"text": "Membership must wait until the war is over."}),
        "",
        json.dumps({"id": "s5", "text": "Russia rejects any enlargement of the alliance."}),
    ]
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out.jsonl"
    result = _run("score", str(src), "--output", str(out), "--config", str(cli_config))
    assert result.exit_code == 1, result.output
    assert "line 2:" in result.stderr and "line 3:" in result.stderr and "line 4" not in result.stderr
    rows = _rows(out)
    assert [r.get("id") for r in rows] == ["s1", None, "s5"]
    assert [set(r) for r in rows] == [
        {"id", "text", "labels", "scores"},
        {"text", "labels", "scores"},
        {"id", "text", "labels", "scores"},
    ]
    bundle = load_bundle(tiny_registry / TINY_A, project_settings().inference)
    expected = bundle.predict([r["text"] for r in rows])
    assert [r["labels"] for r in rows] == [p.labels for p in expected]
    assert [r["scores"] for r in rows] == [p.scores for p in expected]  # same call, same numbers


def test_clean_input_exits_zero(tmp_path: Path, cli_config: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"id": i, "text": f"Statement number {i} on NATO."}) + "\n" for i in range(50)))
    out = tmp_path / "out.jsonl"
    result = _run("score", str(src), "-o", str(out), "--model", TINY_A)
    assert result.exit_code == 0, result.output
    assert [r["id"] for r in _rows(out)] == list(range(50))


def test_folder_of_articles(tmp_path: Path, cli_config: Path) -> None:
    folder = tmp_path / "articles"
    folder.mkdir()
    for src in sorted(Path("seeds/articles").glob("*.txt"))[:2]:
        shutil.copy(src, folder / src.name)
    (folder / "bad.txt").write_bytes(b"caf\xe9")
    out = tmp_path / "out.jsonl"
    result = _run("score", str(folder), "-o", str(out), "--format", "dir")
    assert result.exit_code == 1 and "bad.txt" in result.stderr
    rows = _rows(out)
    articles = [r for r in rows if r["type"] == "article"]
    statements = [r for r in rows if r["type"] == "statement"]
    assert [a["id"] for a in articles] == sorted(p.stem for p in folder.glob("*.txt") if p.stem != "bad")
    for article in articles:
        mine = [s for s in statements if s["article_id"] == article["id"]]
        # a statement over the model window comes back as several rows with one index
        assert article["statements"] == len({s["index"] for s in mine}) > 0
        assert article["boilerplate"] >= 0
        for name, count in article["label_counts"].items():
            assert count == len({s["index"] for s in mine if name in s["labels"]})


@pytest.mark.parametrize(
    ("name", "fmt"), [("feed_rss.xml", "auto"), ("feed_atom.xml", "atom"), ("feed_plain.txt", "text")]
)
def test_feeds(tmp_path: Path, cli_config: Path, name: str, fmt: str) -> None:
    out = tmp_path / "out.jsonl"
    result = _run("score", str(DATA / name), "-o", str(out), "--format", fmt)
    rows = _rows(out)
    assert any(r["type"] == "statement" for r in rows) and any(r["type"] == "article" for r in rows)
    empty = [r for r in rows if r.get("error")]
    assert result.exit_code == (1 if empty else 0)
    if name == "feed_rss.xml":
        assert [r["id"] for r in empty] == ["rss-a3"] and "rss-a3" in result.stderr


def test_unreadable_feed_and_unknown_model(tmp_path: Path, cli_config: Path) -> None:
    result = _run("score", str(DATA / "feed_bad.xml"), "-o", str(tmp_path / "o.jsonl"))
    assert result.exit_code == 2 and "line 6" in result.stderr
    result = _run("score", str(DATA / "feed_rss.xml"), "-o", str(tmp_path / "o.jsonl"), "--model", "nope")
    assert result.exit_code == 2 and "unknown model version" in result.stderr


def test_bench_rejects_an_unknown_part(cli_config: Path) -> None:
    result = _run("bench", "--only", "everything")
    assert result.exit_code == 2 and "--only must be one of all, offline, http" in result.stderr
