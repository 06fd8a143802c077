"""Annotation files from labelling tools -> validated records.

Three formats, each turned into plain `{"text", "labels", "source"}` dicts and checked by
`training.annotations.validate_record`, so validation lives in one place:

- ``jsonl``: the project format, one statement a line (optional ``annotator`` field).
- ``labelstudio``: a Label Studio JSON export (a list of tasks; ``data.text``,
  ``data.source``; each non-cancelled annotation's ``choices`` results are the labels, one
  record per annotator). The legacy ``completions`` key is accepted too.
- ``argilla``: an Argilla export of a multi-label question, either Argilla 2 records
  (``fields`` / ``metadata`` / ``responses``), their Hugging Face datasets flattening
  (``<question>.responses`` + ``<question>.responses.users`` + ``.status`` columns), or an
  Argilla 1 FeedbackDataset in datasets form (``<question>``: ``[{user_id, value,
  status}]``). Only ``submitted`` responses count; one record per annotator. The file may be
  a JSON list or JSON Lines (what ``datasets.Dataset.to_json`` writes).

A choice named ``none`` means no label (``[]``). Every problem is returned with its record
number, nothing is dropped silently: the caller decides to reject the file or skip them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from training.annotations import Annotation, Problem, validate_record
from training.labels import NONE

Format = Literal["jsonl", "labelstudio", "argilla"]
FORMATS: tuple[str, ...] = ("auto", "jsonl", "labelstudio", "argilla")
SUBMITTED = "submitted"


@dataclass(frozen=True)
class ImportedRecord:
    where: str  # "record N" (1-based, in file order) or "line N"
    annotation: Annotation
    annotator: str | None  # from the tool (Label Studio completed_by, Argilla user_id)


@dataclass
class ParsedFile:
    format: str
    records: list[ImportedRecord]
    problems: list[Problem]


# ---------------------------------------------------------------- raw items


def _load_items(path: Path) -> tuple[list[tuple[str, Any]], list[Problem], bool]:
    """(where, item) pairs from a JSON document (list, or {"records"/"data"/"tasks": [...]})
    or from JSON Lines; the flag says whether it was JSON Lines."""
    try:
        content = Path(path).read_bytes().decode("utf-8-sig")
    except OSError as exc:
        return [], [Problem(str(path), f"cannot read: {exc.strerror or exc}")], False
    except UnicodeDecodeError as exc:
        return [], [Problem(str(path), f"not UTF-8 (byte {exc.start})")], False
    stripped = content.lstrip()
    if stripped.startswith("["):
        try:
            doc = json.loads(content)
        except json.JSONDecodeError as exc:
            return [], [Problem(str(path), f"bad JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})")], False
        return [(f"record {i}", item) for i, item in enumerate(doc, start=1)], [], False
    if stripped.startswith("{"):
        try:
            doc = json.loads(content)
        except json.JSONDecodeError:
            doc = None  # JSON Lines: several objects
        if isinstance(doc, dict):
            for key in ("records", "tasks", "data"):
                if isinstance(doc.get(key), list):
                    return [(f"record {i}", item) for i, item in enumerate(doc[key], start=1)], [], False
            return [("record 1", doc)], [], True
    items: list[tuple[str, Any]] = []
    problems: list[Problem] = []
    for lineno, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            items.append((f"line {lineno}", json.loads(line)))
        except json.JSONDecodeError as exc:
            problems.append(Problem(f"line {lineno}", f"bad JSON: {exc.msg} (column {exc.colno})"))
    return items, problems, True


def _is_argilla(item: dict[str, Any]) -> bool:
    if isinstance(item.get("responses"), dict) or isinstance(item.get("fields"), dict):
        return True
    if any(k.endswith(".responses") for k in item):
        return True
    return bool(_argilla_v1_questions(item))


def detect_format(items: Sequence[tuple[str, Any]]) -> Format | None:
    """The format of the first object item, or None when it cannot be told."""
    for _, item in items:
        if not isinstance(item, dict):
            continue
        if isinstance(item.get("data"), dict) and ("annotations" in item or "completions" in item):
            return "labelstudio"
        if _is_argilla(item):
            return "argilla"
        if "text" in item and "labels" in item:
            return "jsonl"
        return None
    return None


# ---------------------------------------------------------------- per format


def _labels_from_choices(choices: Sequence[Any]) -> Any:
    """Choices -> label list; a `none` choice means no label. Non-lists pass through so
    validate_record reports them."""
    if not isinstance(choices, list):
        return choices
    return [c for c in choices if not (isinstance(c, str) and c.strip().lower() == NONE)]


def _annotator_name(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, dict):
        value = value.get("email") or value.get("username") or value.get("id")
    text = str(value).strip()
    return text or None


def _project_jsonl(where: str, item: Any) -> list[tuple[str, dict[str, Any], str | None]]:
    annotator = _annotator_name(item.get("annotator")) if isinstance(item, dict) else None
    return [(where, item, annotator)]


def _labelstudio(where: str, task: Any, question: str | None) -> list[tuple[str, dict[str, Any], str | None]]:
    if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
        raise ValueError("not a Label Studio task (no 'data' object)")
    data = task["data"]
    meta = data.get("meta") if isinstance(data.get("meta"), dict) else task.get("meta") or {}
    base = {"text": data.get("text"), "source": data.get("source") or meta.get("source")}
    annotations = task.get("annotations") or task.get("completions") or []
    out = []
    for k, ann in enumerate(annotations, start=1):
        if not isinstance(ann, dict) or ann.get("was_cancelled") or ann.get("skipped"):
            continue
        results = ann.get("result") or []
        choices: list[Any] = []
        for res in results:
            if not isinstance(res, dict) or res.get("type") != "choices":
                continue
            if question and res.get("from_name") != question:
                continue
            choices.extend((res.get("value") or {}).get("choices") or [])
        record = {**base, "labels": _labels_from_choices(choices)}
        out.append((f"{where} (annotation {k})", record, _annotator_name(ann.get("completed_by"))))
    if not out:
        raise ValueError("no submitted (non-cancelled) annotation in this task")
    return out


def _argilla_v1_questions(item: dict[str, Any]) -> list[str]:
    """Argilla 1 datasets columns holding responses: [{user_id, value, status}] or the
    columnar {user_id: [...], value: [...], status: [...]}."""
    names = []
    for key, value in item.items():
        if isinstance(value, list) and value and all(isinstance(v, dict) and "value" in v for v in value):
            names.append(key)
        elif isinstance(value, dict) and isinstance(value.get("value"), list) and "status" in value:
            names.append(key)
    return names


def _pick(names: Sequence[str], question: str | None) -> str:
    if question:
        if question not in names:
            raise ValueError(f"question {question!r} not found (have: {sorted(names)})")
        return question
    if len(names) != 1:
        raise ValueError(
            f"expected one multi-label question, found {sorted(names) or 'none'}; choose one with --question"
        )
    return names[0]


def _argilla(where: str, item: Any, question: str | None) -> list[tuple[str, dict[str, Any], str | None]]:
    if not isinstance(item, dict):
        raise ValueError(f"expected a JSON object, got {type(item).__name__}")
    fields = item.get("fields") if isinstance(item.get("fields"), dict) else item
    metadata = item.get("metadata")
    if isinstance(metadata, str):  # Argilla 1 stores metadata as a JSON string
        try:
            metadata = json.loads(metadata)
        except json.JSONDecodeError:
            metadata = {}
    metadata = metadata if isinstance(metadata, dict) else {}
    text = fields.get("text")
    source = metadata.get("source") or fields.get("source") or item.get("source")
    responses: list[tuple[Any, Any, Any]] = []  # (value, user, status)
    if isinstance(item.get("responses"), dict):  # Argilla 2 record
        q = _pick(list(item["responses"]), question)
        for r in item["responses"][q] or []:
            if isinstance(r, dict):
                responses.append((r.get("value"), r.get("user_id"), r.get("status", SUBMITTED)))
    elif any(k.endswith(".responses") for k in item):  # Argilla 2 -> datasets (flattened)
        q = _pick([k[: -len(".responses")] for k in item if k.endswith(".responses")], question)
        values = item.get(f"{q}.responses") or []
        users = item.get(f"{q}.responses.users") or [None] * len(values)
        statuses = item.get(f"{q}.responses.status") or [SUBMITTED] * len(values)
        responses = list(zip(values, users, statuses, strict=False))  # as ever: the shortest list wins
    else:  # Argilla 1 FeedbackDataset -> datasets
        q = _pick(_argilla_v1_questions(item), question)
        col = item[q]
        if isinstance(col, dict):
            n = len(col["value"])
            col = [
                {
                    "value": col["value"][i],
                    "user_id": (col.get("user_id") or [None] * n)[i],
                    "status": (col.get("status") or [SUBMITTED] * n)[i],
                }
                for i in range(n)
            ]
        responses = [(r.get("value"), r.get("user_id"), r.get("status", SUBMITTED)) for r in col]
    out = []
    for k, (value, user, status) in enumerate(responses, start=1):
        if status != SUBMITTED:
            continue
        record = {"text": text, "source": source, "labels": _labels_from_choices(value)}
        out.append((f"{where} (response {k})", record, _annotator_name(user)))
    if not out:
        raise ValueError(f"no submitted response to question {q!r}")
    return out


# ---------------------------------------------------------------- entry point


def read_annotation_file(path: Path, fmt: str, schema: Sequence[str], question: str | None = None) -> ParsedFile:
    """Parse and validate a whole file; every invalid record becomes a Problem (where =
    record or line number) so the caller can reject the file or skip them."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {list(FORMATS)}")
    items, problems, _ = _load_items(Path(path))
    chosen = detect_format(items) if fmt == "auto" else fmt
    if chosen is None:
        if not items and not problems:
            problems.append(Problem(str(path), "no records in the file"))
        elif items:
            problems.append(Problem(str(path), "cannot tell the format; pass --format jsonl|labelstudio|argilla"))
        return ParsedFile(fmt if fmt != "auto" else "unknown", [], problems)
    records: list[ImportedRecord] = []
    for where, item in items:
        try:
            if chosen == "labelstudio":
                raw = _labelstudio(where, item, question)
            elif chosen == "argilla":
                raw = _argilla(where, item, question)
            else:
                raw = _project_jsonl(where, item)
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            problems.append(Problem(where, str(exc)))
            continue
        for sub_where, record, annotator in raw:
            try:
                records.append(ImportedRecord(sub_where, validate_record(record, schema), annotator))
            except ValueError as exc:
                problems.append(Problem(sub_where, str(exc)))
    problems.sort(key=_position)
    return ParsedFile(chosen, records, problems)


def _position(problem: Problem) -> tuple[int, ...]:
    """File order for problems: "line 3" before "record 4 (annotation 2)"."""
    return tuple(int(n) for n in re.findall(r"\d+", problem.where)) or (0,)
