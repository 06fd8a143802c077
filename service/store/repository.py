"""The annotation store: the one source of training data (SQLite by default, any SQLAlchemy URL).

Why it looks like this:
- History is append-only (`annotations`), and `statements.latest_id` names the row that wins
  for training, so a correction never destroys what was there before, and conflicts between
  annotators can be listed.
- Writes are idempotent: a record equal to the latest one *by the same annotator in the same
  batch* is a no-op that returns the existing id, so a client retrying a timed-out POST, or
  a seed file imported twice, never duplicates anything, while A -> B -> A corrections still
  count. The check and the insert run in one transaction that holds the statement's lock
  (SQLite: `BEGIN IMMEDIATE`, one writer at a time; PostgreSQL: `SELECT ... FOR UPDATE`,
  statements locked in key order so concurrent requests cannot deadlock).
- A whole request or file is one transaction: it is stored completely or not at all.
- SQLite runs in WAL mode with `synchronous=FULL`: a 2xx answer means the rows are on disk.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.settings import Settings
from service.store.engine import Database, open_database
from service.store.tables import AnnotationRow, Batch, BatchFile, Statement
from training.annotation_formats import read_annotation_file
from training.annotations import (
    Annotation,
    AnnotationError,
    Problem,
    annotation_files,
    statement_identity,
    write_jsonl,
)

_Row = TypeVar("_Row", Statement, Batch)

API_BATCH_PREFIX = "api-"


def statement_key(text: str) -> str:
    """Identity of a statement (`training.annotations.statement_identity`, as in `merge`)."""
    return hashlib.sha256(statement_identity(text).encode("utf-8")).hexdigest()


def default_api_batch(now: datetime | None = None) -> str:
    """API posts without a batch name are grouped per UTC day."""
    return API_BATCH_PREFIX + (now or datetime.now(UTC)).strftime("%Y-%m-%d")


@dataclass(frozen=True)
class NewAnnotation:
    annotation: Annotation
    annotator: str


@dataclass(frozen=True)
class AddResult:
    id: int
    created: bool  # False: identical to the annotator's latest in this batch (idempotent no-op)


@dataclass
class ImportReport:
    file: str
    batch: str
    format: str
    added: int = 0
    unchanged: int = 0
    skipped: list[Problem] = field(default_factory=list)
    already_imported: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "batch": self.batch,
            "format": self.format,
            "added": self.added,
            "unchanged": self.unchanged,
            "already_imported": self.already_imported,
            "skipped": [{"where": p.where, "message": p.message} for p in self.skipped],
        }


@dataclass(frozen=True)
class _FileInfo:
    sha256: str
    filename: str
    format: str
    n_records: int


def _labels_json(labels: Sequence[str]) -> str:
    return json.dumps(list(labels))


class AnnotationStore:
    def __init__(self, settings: Settings, db: Database | None = None) -> None:
        self.settings = settings
        self.db = db or open_database(settings)
        self.schema: tuple[str, ...] = tuple(settings.labels)

    # ------------------------------------------------------------ writes

    def add(
        self,
        items: Sequence[NewAnnotation],
        batch: str,
        kind: str = "api",
        file: _FileInfo | None = None,
    ) -> list[AddResult] | None:
        """Store records in one transaction; results in input order. With `file`, returns
        None when that exact file content was already imported into this batch."""
        keys = [statement_key(it.annotation.text) for it in items]
        results: list[AddResult | None] = [None] * len(items)
        with self.db.write() as s:
            b = self._batch(s, batch, kind)
            if file is not None:
                seen = s.scalar(select(BatchFile.id).where(BatchFile.batch_id == b.id, BatchFile.sha256 == file.sha256))
                if seen is not None:
                    return None
            # Lock statements in key order (stable, so a request's own order per key holds).
            for i in sorted(range(len(items)), key=lambda j: keys[j]):
                results[i] = self._add_one(s, b, keys[i], items[i])
            if file is not None:
                s.add(
                    BatchFile(
                        batch_id=b.id,
                        sha256=file.sha256,
                        filename=file.filename,
                        format=file.format,
                        n_records=file.n_records,
                    )
                )
        return [r for r in results if r is not None]

    def rekey(self) -> int:
        """Re-key statements stored under an older identity rule (case-folded keys before
        NFC + lower-casing), so re-posting such a statement finds its row. Idempotent;
        runs at start-up. A key already taken by another row is left alone."""
        changed = 0
        with self.db.write() as s:
            rows = s.execute(select(Statement.id, Statement.key, Statement.text)).all()
            taken = {key for _, key, _ in rows}
            for row_id, key, text in rows:
                new = statement_key(text)
                if new != key and new not in taken:
                    s.execute(update(Statement).where(Statement.id == row_id).values(key=new))
                    taken.add(new)
                    changed += 1
        return changed

    def _add_one(self, s: Session, b: Batch, key: str, item: NewAnnotation) -> AddResult:
        ann = item.annotation
        st = self._statement(s, key, ann.text)
        labels = _labels_json(ann.labels)
        prev = s.scalars(
            select(AnnotationRow)
            .where(
                AnnotationRow.statement_id == st.id,
                AnnotationRow.annotator == item.annotator,
                AnnotationRow.batch_id == b.id,
            )
            .order_by(AnnotationRow.id.desc())
            .limit(1)
        ).first()
        if prev is not None and prev.labels == labels and prev.source == ann.source:
            return AddResult(prev.id, created=False)
        row = AnnotationRow(
            statement_id=st.id, labels=labels, source=ann.source, annotator=item.annotator, batch_id=b.id
        )
        s.add(row)
        s.flush()
        st.latest_id = row.id
        return AddResult(row.id, created=True)

    @staticmethod
    def _get_or_create(s: Session, model: type[_Row], lookup: dict[str, Any], **values: Any) -> _Row:
        """The row matching `lookup`, inserted if missing; safe against a concurrent writer
        inserting it first (the unique constraint wins, we re-read)."""
        query = select(model).filter_by(**lookup)
        if model is Statement:
            query = query.with_for_update()
        row = s.scalars(query).first()
        if row is not None:
            return row
        try:
            with s.begin_nested():
                row = model(**lookup, **values)
                s.add(row)
                s.flush()
            return row
        except IntegrityError:
            return s.scalars(query).one()

    @classmethod
    def _statement(cls, s: Session, key: str, text: str) -> Statement:
        return cls._get_or_create(s, Statement, {"key": key}, text=text)

    @classmethod
    def _batch(cls, s: Session, name: str, kind: str) -> Batch:
        return cls._get_or_create(s, Batch, {"name": name}, kind=kind)

    def import_file(
        self,
        path: Path,
        fmt: str = "auto",
        batch: str | None = None,
        annotator: str = "import",
        skip_invalid: bool = False,
        question: str | None = None,
        kind: str = "import",
    ) -> ImportReport:
        """Import a file as one transaction. Invalid records reject the whole file
        (AnnotationError listing each by record number) unless `skip_invalid`."""
        path = Path(path)
        parsed = read_annotation_file(path, fmt, self.schema, question)
        problems = list(parsed.problems)
        # The same statement labelled two ways by one annotator in one file is ambiguous.
        first: dict[tuple[str, str], tuple[str, tuple[str, ...]]] = {}
        good: list[NewAnnotation] = []
        for rec in parsed.records:
            who = rec.annotator or annotator
            k = (statement_key(rec.annotation.text), who)
            if k in first and first[k][1] != rec.annotation.labels:
                problems.append(
                    Problem(
                        rec.where,
                        f"conflicting labels for the same text by {who!r}: "
                        f"{list(rec.annotation.labels)} here, {list(first[k][1])} at {first[k][0]}",
                    )
                )
                continue
            first.setdefault(k, (rec.where, rec.annotation.labels))
            good.append(NewAnnotation(rec.annotation, who))
        problems = [
            Problem(f"{path.name}: {p.where}" if p.where != str(path) else p.where, p.message) for p in problems
        ]
        if problems and not skip_invalid:
            raise AnnotationError(problems)
        if not good:
            raise AnnotationError(problems or [Problem(str(path), "no valid records")])
        batch_name = batch or path.stem
        info = _FileInfo(hashlib.sha256(path.read_bytes()).hexdigest(), path.name, parsed.format, len(good))
        report = ImportReport(str(path), batch_name, parsed.format, skipped=problems)
        results = self.add(good, batch_name, kind, file=info)
        if results is None:
            report.already_imported = True
            return report
        report.added = sum(r.created for r in results)
        report.unchanged = len(results) - report.added
        return report

    def ensure_seeds(self) -> list[ImportReport]:
        """Import every `paths.annotations_dir/*.jsonl` (batch = file stem) not imported yet.
        Idempotent by batch + content, so it runs on every start; a bad file is reported
        and left out, never half-imported."""
        reports = []
        for path in annotation_files(self.settings.paths.annotations_dir):
            try:
                reports.append(
                    self.import_file(path, "jsonl", path.stem, self.settings.store.seed_annotator, kind="seed")
                )
            except AnnotationError as exc:
                reports.append(ImportReport(str(path), path.stem, "jsonl", skipped=exc.problems))
        return reports

    # ------------------------------------------------------------ reads

    def snapshot(self) -> list[Annotation]:
        """The training data: the latest annotation of every statement."""
        with self.db.read() as s:
            rows = s.execute(
                select(Statement.text, AnnotationRow.labels, AnnotationRow.source)
                .join(AnnotationRow, AnnotationRow.id == Statement.latest_id)
                .order_by(Statement.id)
            ).all()
        return [Annotation(text, tuple(json.loads(labels)), source) for text, labels, source in rows]

    def export_jsonl(self, path: Path) -> int:
        return write_jsonl(path, self.snapshot())

    def list(
        self,
        *,
        view: str = "latest",
        batch: str | None = None,
        label: str | None = None,
        source: str | None = None,
        annotator: str | None = None,
        text: str | None = None,
        statement_id: int | None = None,
        page: int = 1,
        page_size: int | None = None,
    ) -> dict[str, Any]:
        """A page of annotations. view=latest: the row that wins per statement (training
        view); view=history: every row. `label=none` selects statements without a label;
        `text` matches a substring of the statement (case-insensitive); `statement_id` picks
        one statement (with view=history: its whole history)."""
        size = min(page_size or self.settings.store.page_size, self.settings.store.max_page_size)
        q = (
            select(AnnotationRow, Statement.text, Batch.name)
            .join(Statement, Statement.id == AnnotationRow.statement_id)
            .join(Batch, Batch.id == AnnotationRow.batch_id)
        )
        if view == "latest":
            q = q.where(AnnotationRow.id == Statement.latest_id)
        elif view != "history":
            raise ValueError("view must be 'latest' or 'history'")
        if batch:
            q = q.where(Batch.name == batch)
        if source:
            q = q.where(AnnotationRow.source == source)
        if annotator:
            q = q.where(AnnotationRow.annotator == annotator)
        if text:
            q = q.where(Statement.text.icontains(text, autoescape=True))
        if statement_id is not None:
            q = q.where(AnnotationRow.statement_id == statement_id)
        if label is not None:  # "" is not a label either: refused, not ignored
            if label == "none":
                q = q.where(AnnotationRow.labels == "[]")
            elif label in self.schema:
                q = q.where(AnnotationRow.labels.contains(json.dumps(label)))
            else:
                raise ValueError(f"unknown label {label!r}; allowed: {list(self.schema)} or none")
        with self.db.read() as s:
            total = s.scalar(select(func.count()).select_from(q.subquery()))
            rows = s.execute(q.order_by(AnnotationRow.id).offset((page - 1) * size).limit(size)).all()
        items = [
            {
                "id": r.id,
                "statement_id": r.statement_id,
                "text": text,
                "labels": json.loads(r.labels),
                "source": r.source,
                "annotator": r.annotator,
                "batch": bname,
                "created_at": r.created_at.isoformat() if r.created_at else None,
            }
            for r, text, bname in rows
        ]
        return {"total": total, "page": page, "page_size": size, "view": view, "items": items}

    def conflicts(self) -> list[dict[str, Any]]:
        """Statements whose annotators disagree (each annotator's latest label set)."""
        latest_per_annotator = select(func.max(AnnotationRow.id)).group_by(
            AnnotationRow.statement_id, AnnotationRow.annotator
        )
        several = (
            select(AnnotationRow.statement_id)
            .group_by(AnnotationRow.statement_id)
            .having(func.count(AnnotationRow.annotator.distinct()) > 1)
        )
        with self.db.read() as s:
            rows = s.execute(
                select(AnnotationRow, Statement.text, Statement.latest_id)
                .join(Statement, Statement.id == AnnotationRow.statement_id)
                .where(AnnotationRow.id.in_(latest_per_annotator), AnnotationRow.statement_id.in_(several))
                .order_by(AnnotationRow.statement_id, AnnotationRow.id)
            ).all()
        grouped: dict[int, dict[str, Any]] = {}
        for row, text, latest_id in rows:
            g = grouped.setdefault(
                row.statement_id, {"statement_id": row.statement_id, "text": text, "by_annotator": {}, "latest": None}
            )
            g["by_annotator"][row.annotator] = json.loads(row.labels)
            if row.id == latest_id:
                g["latest"] = json.loads(row.labels)
        return [g for g in grouped.values() if len({json.dumps(v) for v in g["by_annotator"].values()}) > 1]

    def stats(self) -> dict[str, Any]:
        snapshot_labels: Counter[str] = Counter()
        with self.db.read() as s:
            latest = s.execute(
                select(AnnotationRow.labels, Batch.name)
                .join(Statement, Statement.latest_id == AnnotationRow.id)
                .join(Batch, Batch.id == AnnotationRow.batch_id)
            ).all()
            per_batch_rows = dict(
                s.execute(
                    select(Batch.name, func.count(AnnotationRow.id))
                    .join(AnnotationRow, AnnotationRow.batch_id == Batch.id, isouter=True)
                    .group_by(Batch.name)
                ).all()
            )
            batches = s.execute(select(Batch.name, Batch.kind, Batch.created_at).order_by(Batch.id)).all()
            annotators = dict(
                s.execute(select(AnnotationRow.annotator, func.count()).group_by(AnnotationRow.annotator)).all()
            )
            history = s.scalar(select(func.count(AnnotationRow.id)))
        latest_per_batch: Counter[str] = Counter()
        none = 0
        for labels, bname in latest:
            parsed = json.loads(labels)
            snapshot_labels.update(parsed)
            none += not parsed
            latest_per_batch[bname] += 1
        conflicts = self.conflicts()
        return {
            "statements": len(latest),
            "annotations": history,
            "labels": {**{name: snapshot_labels.get(name, 0) for name in self.schema}, "none": none},
            "batches": [
                {
                    "name": name,
                    "kind": kind,
                    "created_at": created.isoformat() if created else None,
                    "annotations": per_batch_rows.get(name, 0),
                    "latest": latest_per_batch.get(name, 0),
                }
                for name, kind, created in batches
            ],
            "annotators": annotators,
            "conflicts": len(conflicts),
            "conflict_list": conflicts,
        }
