"""Read, validate and merge annotation files (JSON Lines: {"text", "labels", "source"}).

Nothing is dropped silently: every problem is collected with its file and line, and
loading fails with all of them listed. Exact duplicates (same text, same labels) are
merged and counted; the same text with different labels is a conflict, an error.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from training.labels import UnknownLabelError, check_labels


@dataclass(frozen=True)
class Annotation:
    text: str
    labels: tuple[str, ...]
    source: str

    def to_json(self) -> dict[str, Any]:
        return {"text": self.text, "labels": list(self.labels), "source": self.source}


@dataclass(frozen=True)
class Problem:
    where: str  # "file:line" or "record N"
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


class AnnotationError(ValueError):
    """One or more records are invalid; `problems` lists every one of them."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        shown = "\n".join(f"  {p}" for p in self.problems[:50])
        more = f"\n  ... and {len(self.problems) - 50} more" if len(self.problems) > 50 else ""
        super().__init__(f"{len(self.problems)} invalid annotation record(s):\n{shown}{more}")


@dataclass
class LoadReport:
    annotations: list[Annotation]
    duplicates_merged: int = 0
    files: list[str] = field(default_factory=list)


def normalise_text(text: str) -> str:
    return " ".join(text.split())


def statement_identity(text: str) -> str:
    """When two texts are the same statement: equal after NFC normalisation, whitespace
    collapsed, and `str.lower()`. Not `casefold()`, which folds "Straße" into "strasse" and
    so merges distinct words (and their labels); NFC makes a composed and a decomposed
    "é" one statement. docs/RETRAINING.md states the rule."""
    return " ".join(unicodedata.normalize("NFC", text).split()).lower()


def validate_record(record: Any, schema: Sequence[str]) -> Annotation:
    """One record -> Annotation, or ValueError with a message naming the field."""
    if not isinstance(record, dict):
        raise ValueError(f"expected a JSON object, got {type(record).__name__}")
    text = record.get("text")
    if not isinstance(text, str) or not text.strip():
        raise ValueError("missing or empty 'text'")
    labels = record.get("labels")
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise ValueError("'labels' must be a list of label names ([] for none)")
    try:
        checked = check_labels(labels, schema)
    except UnknownLabelError as exc:
        raise ValueError(str(exc)) from None
    source = record.get("source")
    if not isinstance(source, str) or not source.strip():
        raise ValueError("missing or empty 'source' (the document id that groups the folds)")
    return Annotation(text=normalise_text(text), labels=tuple(checked), source=source.strip())


def parse_jsonl(path: Path, schema: Sequence[str]) -> tuple[list[tuple[str, Annotation]], list[Problem]]:
    """(where, annotation) pairs and problems of one file; blank lines are allowed."""
    good: list[tuple[str, Annotation]] = []
    problems: list[Problem] = []
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        return [], [Problem(str(path), f"cannot read: {exc.strerror or exc}")]
    try:
        content = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return [], [Problem(str(path), f"not UTF-8 (byte {exc.start})")]
    for lineno, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(Problem(where, f"bad JSON: {exc.msg} (column {exc.colno})"))
            continue
        try:
            good.append((where, validate_record(record, schema)))
        except ValueError as exc:
            problems.append(Problem(where, str(exc)))
    return good, problems


def merge(items: Iterable[tuple[str, Annotation]]) -> tuple[list[Annotation], int, list[Problem]]:
    """Merge exact duplicates; report conflicting ones (same text, different labels)."""
    seen: dict[str, tuple[str, Annotation]] = {}
    out: list[Annotation] = []
    duplicates = 0
    problems: list[Problem] = []
    for where, ann in items:
        key = statement_identity(ann.text)
        if key in seen:
            first_where, first = seen[key]
            if first.labels != ann.labels:
                problems.append(
                    Problem(
                        where,
                        f"conflicting labels for the same text: {list(ann.labels)} here, "
                        f"{list(first.labels)} at {first_where}",
                    )
                )
            else:
                duplicates += 1
            continue
        seen[key] = (where, ann)
        out.append(ann)
    return out, duplicates, problems


def annotation_files(directory: Path) -> list[Path]:
    return sorted(Path(directory).glob("*.jsonl"))


def load_annotations(paths: Sequence[Path], schema: Sequence[str]) -> LoadReport:
    """Load and merge files; raise AnnotationError listing every problem in all of them."""
    if not paths:
        raise AnnotationError([Problem("(no files)", "no annotation files given")])
    items: list[tuple[str, Annotation]] = []
    problems: list[Problem] = []
    for path in paths:
        good, bad = parse_jsonl(Path(path), schema)
        items.extend(good)
        problems.extend(bad)
    merged, duplicates, conflicts = merge(items)
    problems.extend(conflicts)
    if problems:
        raise AnnotationError(problems)
    return LoadReport(merged, duplicates, [str(p) for p in paths])


def write_jsonl(path: Path, annotations: Iterable[Annotation]) -> int:
    n = 0
    with Path(path).open("w", encoding="utf-8") as fh:
        for ann in annotations:
            fh.write(json.dumps(ann.to_json(), ensure_ascii=False) + "\n")
            n += 1
    return n
