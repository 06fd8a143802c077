"""`stance score` (local engine) on tabular files: JSON Lines, CSV, Parquet read by `datasets`.

Each row is a statement (`text`, optional `id`), or with `--articles` an article (`id`,
`title`, `text`, `url`, `published`) segmented like a feed item. The rows written are
`service.scoring.score_rows`'s, the same as the Ray engine's. A bad row is reported on stderr
with its row number (1-based, blank lines not counted) and the rest is scored.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from service.scoring.feeds import Article, FeedError
from service.scoring.formats import TABLES, format_of_files, format_of_name
from service.scoring.pipeline import take_chunk
from service.scoring.score_file import (
    Outcome,
    _bar,
    _write,
    resolve_format,
    score_articles,
    score_file,
    score_statements,
)
from service.scoring.score_rows import record_article, score_prepared, statement_error, statement_rows
from service.scoring.statements import splitter_for
from service.scoring.table_input import TableError, iter_records, open_table
from service.settings import Settings
from training.bundle import Bundle


def _report(outcome: Outcome, bar: Any, message: str) -> None:
    outcome.failures += 1
    bar.clear()
    print(f"error: {message}", file=sys.stderr)


def score_table(path: Path, fmt: str, out: IO[str], bundle: Bundle, settings: Settings, articles: bool) -> Outcome:
    """Score a table into `out` (JSON Lines). Raises TableError if `datasets` cannot read
    it, FeedError if it has no `text` column."""
    outcome = Outcome()
    window = settings.inference.window
    with open_table(path, fmt) as table, _bar(len(table), unit="row") as bar:
        if "text" not in table.column_names:
            raise FeedError(f"no 'text' column (columns: {', '.join(table.column_names) or 'none'})")
        batches = iter_records(table, window)
        if articles:
            _score_articles(_table_articles(batches, bar), out, bundle, settings, outcome, bar)
            return outcome
        row_no = 0
        for records in batches:
            good = []
            for record in records:
                row_no += 1
                if error := statement_error(record):
                    _report(outcome, bar, f"row {row_no}: {error}")
                else:
                    good.append(record)
            for row in statement_rows(bundle, good, window):
                _write(out, row)
            outcome.written += len(good)
            bar.update(len(records))
    return outcome


def _table_articles(batches: Iterator[list[dict[str, Any]]], bar: Any) -> Iterator[Article]:
    row_no = 0
    for records in batches:
        for record in records:
            row_no += 1
            bar.update(1)
            yield record_article(record, row_no)


def _score_articles(
    articles: Iterator[Article], out: IO[str], bundle: Bundle, settings: Settings, outcome: Outcome, bar: Any
) -> None:
    splitter = splitter_for(bundle)
    while chunk := take_chunk(articles, settings.segmentation, splitter, settings.inference.window):
        for article, prepared in chunk:
            if prepared is None:
                _report(outcome, bar, f"article {article.id!r}: {article.error}")
            else:
                outcome.written += len(prepared.units)
        for row in score_prepared(bundle, chunk):
            _write(out, row)


def table_format(path: Path, requested: str) -> str | None:
    """'jsonl' | 'csv' | 'parquet' when `path` is a table (or a folder of one kind of
    table and no .txt), None for the feed and article formats of `service.score_file`."""
    if requested in TABLES:
        return requested
    if requested != "auto":
        return None
    if path.is_dir():
        names = [p.name for p in path.iterdir() if p.is_file()]
        kind = format_of_files(names)
        return kind if kind in TABLES and all(format_of_name(n) == kind for n in names) else None
    named = format_of_name(path.name)
    if named in TABLES:
        return named
    return "jsonl" if resolve_format(path, "auto") == "jsonl" else None


def score_input(
    path: Path, output: Path, fmt: str, bundle: Bundle, settings: Settings, articles: bool = False
) -> Outcome:
    """`stance score`'s local engine: tables through `datasets`; a JSON Lines file that
    `datasets` cannot type is read line by line instead (bad lines named by number);
    feeds, text and folders of .txt by `service.score_file`."""
    chosen = table_format(path, fmt)
    if chosen is None:
        return score_file(path, output, fmt, bundle, settings)  # type: ignore[arg-type]
    with output.open("w", encoding="utf-8") as out:
        try:
            return score_table(path, chosen, out, bundle, settings, articles)
        except TableError:
            if chosen != "jsonl" or path.is_dir():
                raise
    with output.open("w", encoding="utf-8") as out:  # start over with the line reader
        if articles:
            return score_articles(path, "jsonl", out, bundle, settings)
        return score_statements(path, out, bundle, settings.inference.window)
