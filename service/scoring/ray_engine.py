"""`stance score --engine ray`: the same scoring on Ray Data, for when one machine is not enough.

Ray Data reads the input (a file, a folder, or any URI Ray's filesystems read, such as
`s3://bucket/prefix/`), `map_batches` hands batches of rows to a pool of actors that each
load the bundle once (`RayScorer`), and a datasink writes the rows as Parquet or JSON Lines
part files into the OUTPUT folder. Rows are built by `service.scoring.score_rows`, the functions
the local engine uses, so both engines write the same rows (the Ray engine writes ids as
strings: one Arrow type per column). Long texts (articles) are segmented on the workers.

A bad row (missing or empty text, a field of the wrong type, a line that is not JSON) does
not stop the run: in statement mode it goes to `OUTPUT.errors/` and is counted; in
article mode it is an article row with `error` (as the local engine writes it). A worker
that dies is restarted and its batch re-run (`batch.max_restarts`,
`batch.max_task_retries`); Ray Data keeps a batch's output only once its task finished,
so a retry neither loses nor duplicates rows.

Only this module and `service/cli/ray_score.py` import Ray, and only `--engine ray` imports them.
"""

from __future__ import annotations

import json
import posixpath
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import pyarrow as pa
import ray
from ray.data import ActorPoolStrategy
from ray.data.block import BlockAccessor
from ray.data.datasource import BlockBasedFileDatasink
from ray.data.expressions import col

from service.scoring.feeds import Article, FeedError, parse_json_object
from service.scoring.formats import format_of_files, format_of_name
from service.scoring.score_rows import (
    prepare_articles,
    record_article,
    score_prepared,
    statement_error,
    statement_rows,
)
from service.scoring.statements import splitter_for
from service.settings import BatchSettings
from training.bundle import load_bundle
from training.settings import InferenceSettings, SegmentationSettings

Kind = Literal["statements", "articles"]
SourceFormat = Literal["jsonl", "csv", "parquet", "dir"]
OutputFormat = Literal["parquet", "jsonl"]
SOURCE_FORMATS: tuple[SourceFormat, ...] = ("jsonl", "csv", "parquet", "dir")
RAW = "text"  # read_text's column: a JSON line as read (parsed on the workers, per line)
EXCERPT_CHARS = 200  # of a bad input line, kept in the errors output
_STATEMENT_KEYS = ("id", "text", "labels", "scores")
_ARTICLE_META = ("id", "title", "url", "published")
_STATEMENT_ROW_KEYS = ("type", "article_id", "index", "text", "labels", "scores")
_SUMMARY_KEYS = (*_ARTICLE_META, "model_version", "statements", "boilerplate", "label_counts", "labels")


class RayEngineError(ValueError):
    """The input cannot be read by the Ray engine as asked (format unknown, nothing there)."""


@dataclass(frozen=True)
class RayJob:
    """What to score and where to: `source` and `output` are paths or URIs."""

    source: str
    output: str
    bundle_path: str
    kind: Kind = "statements"
    source_format: SourceFormat = "jsonl"
    output_format: OutputFormat = "jsonl"


@dataclass(frozen=True)
class RayOutcome:
    written: int
    failures: int
    errors_path: str | None  # where the bad rows went (statement mode), if there were any
    first_errors: list[dict[str, Any]]  # a few of them, for the terminal


def source_format(source: str, requested: str = "auto") -> SourceFormat:
    """The input's format: `requested`, else its suffix; a folder by the suffix of its files."""
    if requested != "auto":
        if requested not in SOURCE_FORMATS:
            raise RayEngineError(f"unknown format {requested!r} for the Ray engine; use jsonl, csv, parquet or dir")
        return requested  # type: ignore[return-value]
    named = format_of_name(source)
    if named is None and "://" not in source:
        named = format_of_files(p.name for p in Path(source).glob("*"))
    if named == "text":
        return "dir"  # .txt files: one article each
    if named in SOURCE_FORMATS:
        return named  # type: ignore[return-value]
    raise RayEngineError(f"{source}: cannot tell the format; name it with --format jsonl|csv|parquet|dir")


def output_schema(kind: Kind, labels: list[str]) -> pa.Schema:
    """One Arrow schema for every batch, so the part files agree (missing values are null)."""
    scores = pa.struct([(name, pa.float64()) for name in labels])
    if kind == "statements":
        return pa.schema(
            [("id", pa.string()), ("text", pa.string()), ("labels", pa.list_(pa.string())), ("scores", scores)]
            + [("error", pa.string())]
        )
    return pa.schema(
        [
            ("type", pa.string()),
            ("article_id", pa.string()),
            ("index", pa.int64()),
            ("text", pa.string()),
            ("labels", pa.list_(pa.string())),
            ("scores", scores),
            *[(name, pa.string()) for name in _ARTICLE_META],
            ("model_version", pa.string()),
            ("statements", pa.int64()),
            ("boilerplate", pa.int64()),
            ("label_counts", pa.struct([(name, pa.int64()) for name in labels])),
            ("error", pa.string()),
        ]
    )


def contract_row(row: Mapping[str, Any], kind: Kind) -> dict[str, Any]:
    """A row as the local engine writes it to JSON Lines: only its own keys (no nulls of
    the other row type); a statement without `id` has none."""
    if kind == "statements":
        return {k: row[k] for k in _STATEMENT_KEYS if k != "id" or row.get("id") is not None}
    if row["type"] == "statement":
        return {k: row[k] for k in _STATEMENT_ROW_KEYS}
    keys = ("type", *_ARTICLE_META, "error") if row.get("error") is not None else ("type", *_SUMMARY_KEYS)
    return {k: row[k] for k in keys}


class RayScorer:
    """One actor of the pool: loads the bundle once, then turns batches of input rows
    (an Arrow table) into output rows (an Arrow table of `output_schema`)."""

    def __init__(
        self,
        bundle_path: str,
        inference: InferenceSettings,
        segmentation: SegmentationSettings,
        kind: Kind,
        source_format: SourceFormat,
    ) -> None:
        backend = "torch" if inference.backend == "torch" else None  # as the local engine loads it
        self.bundle = load_bundle(bundle_path, inference, backend=backend, threads=inference.threads, spin_wait=False)
        self.inference = inference
        self.segmentation = segmentation
        self.kind = kind
        self.source_format = source_format
        self.schema = output_schema(kind, self.bundle.labels)
        self.splitter = splitter_for(self.bundle) if kind == "articles" else None

    def __call__(self, batch: pa.Table) -> pa.Table:
        records = self._records(batch)
        rows = self._statements(records) if self.kind == "statements" else self._articles(records)
        for row in rows:
            if row.get("id") is not None:
                row["id"] = str(row["id"])
        return pa.Table.from_pylist(rows, schema=self.schema)

    def _records(self, batch: pa.Table) -> list[tuple[dict[str, Any] | None, str | None]]:
        """(record, None) per readable row, (None-or-partial, error) per bad one; blank lines dropped."""
        out: list[tuple[dict[str, Any] | None, str | None]] = []
        if self.source_format == "dir":
            for data, path in zip(batch.column("bytes").to_pylist(), batch.column("path").to_pylist(), strict=True):
                out.append(_file_article(data, path))
            return out
        if self.source_format == "jsonl":
            for raw in batch.column(RAW).to_pylist():
                try:
                    obj = parse_json_object(raw, 0)
                except FeedError as exc:
                    out.append(({"text": raw[:EXCERPT_CHARS]}, str(exc).removeprefix("line 0: ")))
                    continue
                if obj is not None:
                    out.append((obj, None))
            return out
        return [(record, None) for record in batch.to_pylist()]

    def _statements(self, records: list[tuple[dict[str, Any] | None, str | None]]) -> list[dict[str, Any]]:
        good: list[dict[str, Any]] = []
        rows: list[dict[str, Any] | None] = []
        for record, error in records:
            error = error or statement_error(record or {})
            if error:
                text = (record or {}).get("text")
                rows.append({"id": (record or {}).get("id"), "text": _excerpt(text), "error": error})
            else:
                good.append(record)  # type: ignore[arg-type]
                rows.append(None)
        # One call for the whole batch: the backend sorts it by length (less padding), as locally.
        scored = iter(statement_rows(self.bundle, good, max(len(good), 1)))
        return [row if row is not None else next(scored) for row in rows]

    def _articles(self, records: list[tuple[dict[str, Any] | None, str | None]]) -> list[dict[str, Any]]:
        articles = [_as_article(record, error) for record, error in records]
        return score_prepared(self.bundle, prepare_articles(articles, self.segmentation, self.splitter))


def _excerpt(value: Any) -> str | None:
    return None if value is None else str(value)[:EXCERPT_CHARS]


def _as_article(record: Any, error: str | None) -> Article:
    """A record as an article: a file's article as is, a bad line as an error article."""
    if isinstance(record, Article):
        return record
    if error:
        return Article(id=f"line: {_excerpt((record or {}).get('text'))}", text="", error=error)
    article = record_article(record, 0)  # a worker does not know the row's line number
    if article.error:
        article.error = article.error.removeprefix("line 0: ")
    return article


def _file_article(data: bytes, path: str) -> tuple[Any, None]:
    """A .txt file as one article named by its stem, as the local engine reads a folder."""
    ident = PurePosixPath(path).stem
    try:
        text = data.decode("utf-8").strip()
    except UnicodeDecodeError as exc:
        return Article(id=ident, text="", error=f"{path}: not valid UTF-8 (byte {exc.start})"), None
    return Article(id=ident, text=text, error=None if text else "item has no text"), None


class JsonLinesDatasink(BlockBasedFileDatasink):
    """JSON Lines part files holding exactly the local engine's rows (`contract_row`)."""

    def __init__(self, path: str, kind: Kind) -> None:
        super().__init__(path, file_format="jsonl")
        self.kind = kind

    def write_block_to_file(self, block: BlockAccessor, file: pa.NativeFile) -> None:
        for row in block.to_arrow().to_pylist():
            file.write((json.dumps(contract_row(row, self.kind), ensure_ascii=False) + "\n").encode("utf-8"))


class ErrorsDatasink(BlockBasedFileDatasink):
    """The bad rows of statement mode: `id` (if any), an excerpt of the input, the reason."""

    def __init__(self, path: str) -> None:
        super().__init__(path, file_format="jsonl")

    def write_block_to_file(self, block: BlockAccessor, file: pa.NativeFile) -> None:
        for row in block.to_arrow().to_pylist():
            line = {"id": row["id"], "input": row["text"], "error": row["error"]}
            file.write((json.dumps(line, ensure_ascii=False) + "\n").encode("utf-8"))


def read_source(job: RayJob, read_cpus: float) -> ray.data.Dataset:
    """The input as a Ray dataset; JSON Lines as raw lines, so one bad line is one bad row.
    Read tasks reserve `read_cpus` (default 0: reading is I/O, and on a small machine the
    actors hold every CPU while reads are still to come)."""
    if job.source_format == "jsonl":
        return ray.data.read_text(job.source, drop_empty_lines=True, num_cpus=read_cpus)
    if job.source_format == "csv":
        return ray.data.read_csv(job.source, num_cpus=read_cpus)
    if job.source_format == "parquet":
        return ray.data.read_parquet(job.source, num_cpus=read_cpus)
    return ray.data.read_binary_files(job.source, include_paths=True, file_extensions=["txt"], num_cpus=read_cpus)


def run(
    job: RayJob,
    batch: BatchSettings,
    inference: InferenceSettings,
    segmentation: SegmentationSettings,
    actor_cls: type = RayScorer,
) -> RayOutcome:
    """Score `job` on the connected Ray (the caller runs `ray.init`). `actor_cls` is the
    actor class (tests pass one that dies once)."""
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True  # output rows in input order
    threads = inference.model_copy(update={"threads": batch.cpus_per_worker, "streams": 1})
    with warnings.catch_warnings():
        # max_restarts / max_task_retries have no named parameter in map_batches yet; Ray
        # reads them from its actor options, and warns that such options are deprecated.
        warnings.simplefilter("ignore", DeprecationWarning)
        scored = read_source(job, batch.read_cpus).map_batches(
            actor_cls,
            fn_constructor_kwargs={
                "bundle_path": job.bundle_path,
                "inference": threads,
                "segmentation": segmentation,
                "kind": job.kind,
                "source_format": job.source_format,
            },
            batch_format="pyarrow",
            batch_size=batch.batch_rows,
            compute=ActorPoolStrategy(size=batch.workers),
            num_cpus=batch.cpus_per_worker,
            max_restarts=batch.max_restarts,
            max_task_retries=batch.max_task_retries,
        )
    # Materialised once: the scored rows are split (rows / errors) and counted without
    # scoring twice. Ray keeps the blocks in its object store and spills them to disk.
    scored = scored.materialize()
    failed = scored.filter(expr=col("error").is_not_null())
    n_failed = failed.count()
    errors_path = None
    if job.kind == "statements":
        rows = scored.filter(expr=col("error").is_null()).drop_columns(["error"])
        if n_failed:
            errors_path = job.output.rstrip("/") + ".errors"
            failed.write_datasink(ErrorsDatasink(errors_path))
    else:
        rows = scored
    if job.output_format == "parquet":
        rows.write_parquet(job.output)
    else:
        rows.write_datasink(JsonLinesDatasink(job.output, job.kind))
    written = rows.filter(expr=col("type") == "statement").count() if job.kind == "articles" else rows.count()
    first = failed.take(10) if n_failed else []
    return RayOutcome(written=written, failures=n_failed, errors_path=errors_path, first_errors=first)


def output_format(output: str, requested: str = "auto") -> OutputFormat:
    """Parquet when asked or when OUTPUT ends in .parquet; JSON Lines otherwise."""
    if requested != "auto":
        if requested not in ("parquet", "jsonl"):
            raise RayEngineError(f"unknown output format {requested!r}; use parquet or jsonl")
        return requested  # type: ignore[return-value]
    return "parquet" if posixpath.splitext(output.rstrip("/"))[1].lower() == ".parquet" else "jsonl"
