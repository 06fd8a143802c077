"""`stance score`: files in, JSONL out, on one machine without the HTTP service.

Statements (JSONL with `text`, optional `id`) are scored as given, so the output equals
`load_bundle(path).predict(texts)`. Feeds (RSS/Atom, plain text) and folders of `.txt`
articles are segmented like the service does, giving `type: "statement"` rows and one
`type: "article"` summary row per article. A bad line is reported on stderr with its line
number and the rest still runs; the caller turns `failures > 0` into exit code 1.
"""

from __future__ import annotations

import itertools
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

from tqdm import tqdm

from service.scoring.feeds import Article, FeedError, iter_articles, parse_json_object
from service.scoring.formats import SNIFF_BYTES, format_of_name, sniff
from service.scoring.pipeline import take_chunk
from service.scoring.score_rows import article_rows
from service.scoring.scorer import score_batches
from service.scoring.statements import regroup, splitter_for
from service.settings import Settings
from training.bundle import Bundle

InputFormat = Literal["auto", "jsonl", "rss", "atom", "text", "dir"]
PROGRESS_DELAY_S = 1.0  # the bar appears only on inputs that take longer than this


@dataclass
class Outcome:
    written: int = 0
    failures: int = 0


def resolve_format(path: Path, requested: InputFormat) -> str:
    if requested != "auto":
        return requested
    if path.is_dir():
        return "dir"
    named = format_of_name(path.name)
    if named in ("jsonl", "rss", "atom", "text"):
        return named
    with path.open("rb") as fh:
        sniffed = sniff(fh.read(SNIFF_BYTES))
    return "rss" if sniffed == "xml" else sniffed


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def _write(out: IO[str], row: dict[str, Any]) -> None:
    out.write(json.dumps(row, ensure_ascii=False) + "\n")


def _statement_rows(fh: IO[bytes], outcome: Outcome, bar: tqdm) -> Iterator[dict[str, Any]]:
    """Valid statement rows; a bad line goes to stderr (with its number) and is skipped."""
    for line_no, raw in enumerate(fh, start=1):
        bar.update(len(raw))
        try:
            obj = parse_json_object(raw, line_no)
            if obj is None:
                continue
            text = obj.get("text")
            if not isinstance(text, str) or not text.strip():
                raise FeedError(f"line {line_no}: field 'text' must be a non-empty string")
        except FeedError as exc:
            outcome.failures += 1
            bar.clear()
            print(f"error: {exc}", file=sys.stderr)
            continue
        yield {"id": obj["id"], "text": text} if "id" in obj else {"text": text}


def score_statements(path: Path, out: IO[str], bundle: Bundle, window: int) -> Outcome:
    outcome = Outcome()
    with path.open("rb") as fh, _bar(path.stat().st_size) as bar:
        rows = _statement_rows(fh, outcome, bar)
        while chunk := list(itertools.islice(rows, window)):
            preds = score_batches(bundle, [r["text"] for r in chunk], window)
            for row, pred in zip(chunk, preds, strict=True):
                _write(out, {**row, "labels": pred.labels, "scores": pred.scores})
                outcome.written += 1
    return outcome


def _dir_articles(folder: Path, outcome: Outcome) -> Iterator[Article]:
    for path in sorted(folder.glob("*.txt")):
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            outcome.failures += 1
            print(f"error: {path}: not valid UTF-8 (byte {exc.start})", file=sys.stderr)
            continue
        yield Article(id=path.stem, text=text.strip(), error=None if text.strip() else "item has no text")


def _articles(path: Path, fmt: str, outcome: Outcome) -> Iterator[Article]:
    if fmt == "dir":
        yield from _dir_articles(path, outcome)
        return
    with path.open("rb") as fh:
        yield from iter_articles({"rss": "xml", "atom": "xml", "jsonl": "jsonl"}.get(fmt, "text"), fh)


def score_articles(path: Path, fmt: str, out: IO[str], bundle: Bundle, settings: Settings) -> Outcome:
    """Per-statement rows and one summary row per article, article by article."""
    outcome = Outcome()
    splitter = splitter_for(bundle)
    articles = _articles(path, fmt, outcome)
    window = settings.inference.window
    with _bar(None, unit="article") as bar:
        while chunk := take_chunk(articles, settings.segmentation, splitter, window):
            texts = [u.text for _, p in chunk if p for u in p.units]
            preds = list(score_batches(bundle, texts, len(texts) or 1))
            parts = regroup(preds, (len(p.units) if p else 0 for _, p in chunk))
            for (article, prepared), part in zip(chunk, parts, strict=True):
                bar.update(1)
                if prepared is None:
                    outcome.failures += 1
                    bar.clear()
                    print(f"error: article {article.id!r}: {article.error}", file=sys.stderr)
                for row in article_rows(article, prepared, part, bundle):
                    _write(out, row)
                outcome.written += len(part)
    return outcome


def _bar(total: int | None, unit: str = "B") -> tqdm:
    return tqdm(
        total=total,
        unit=unit,
        unit_scale=unit == "B",
        delay=PROGRESS_DELAY_S,
        file=sys.stderr,
        leave=False,
        dynamic_ncols=True,
    )


def score_file(path: Path, output: Path, fmt: InputFormat, bundle: Bundle, settings: Settings) -> Outcome:
    """Score `path` into `output` (JSONL). Raises FeedError if a feed cannot be read at all."""
    chosen = resolve_format(path, fmt)
    with output.open("w", encoding="utf-8") as out:
        if chosen == "jsonl":
            return score_statements(path, out, bundle, settings.inference.window)
        return score_articles(path, chosen, out, bundle, settings)
