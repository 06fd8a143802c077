"""Tabular inputs of `stance score` (local engine) read through HF `datasets`.

JSON Lines, JSON, CSV and Parquet files (or a folder of one of them) are loaded with
`datasets.load_dataset` into an Arrow-backed `Dataset` (memory-mapped from a cache in a
temporary folder, so a large file is not held in memory) and iterated in batches.
`datasets` types each column once for the whole file: a JSON Lines file it cannot read
(a line that is not JSON, a field whose type changes between lines) raises
`TableError`, and the caller falls back to the line reader, which names the bad lines.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from service.scoring.formats import SUFFIXES, format_of_name

TABLE_BUILDERS = {"jsonl": "json", "json": "json", "csv": "csv", "parquet": "parquet"}


class TableError(ValueError):
    """`datasets` could not read the file as the format it claims to be."""


def data_files(path: Path, fmt: str) -> list[str]:
    """The file itself, or the folder's files of that format (sorted: a stable row order)."""
    if not path.is_dir():
        return [str(path)]
    files = sorted(str(p) for p in path.iterdir() if format_of_name(p.name) == fmt)
    if not files:
        raise TableError(f"{path}: no {'/'.join(SUFFIXES[fmt])} files in the folder")
    return files


@contextmanager
def open_table(path: Path, fmt: str) -> Iterator[Any]:
    """The file as a `datasets.Dataset` (valid while the context is open)."""
    import datasets

    datasets.disable_progress_bars()  # the caller shows one bar for the whole run
    with tempfile.TemporaryDirectory(prefix="stance-score-") as cache:
        try:
            table = datasets.load_dataset(
                TABLE_BUILDERS[fmt], data_files=data_files(path, fmt), split="train", cache_dir=cache
            )
        except (datasets.exceptions.DatasetGenerationError, ValueError) as exc:  # ValueError: pandas JSON reader
            cause = exc.__cause__ or exc
            raise TableError(f"{path}: not readable as {fmt}: {str(cause).splitlines()[0]}") from None
        yield table


def iter_records(table: Any, batch_size: int) -> Iterator[list[dict[str, Any]]]:
    """The rows as dicts, `batch_size` at a time."""
    columns = table.column_names
    for batch in table.iter(batch_size=batch_size):
        yield [dict(zip(columns, values, strict=True)) for values in zip(*(batch[c] for c in columns), strict=True)]
