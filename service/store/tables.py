"""Tables of the annotation store (SQLAlchemy 2 declarative; SQLite and PostgreSQL).

- `batches`: a named delivery of annotations (a seed file, an import, a day of API posts).
- `batch_files`: the content hash of every file imported into a batch, so re-importing the
  same file is a no-op (idempotency by batch name + content).
- `statements`: one row per distinct statement (key = sha256 of the NFC-normalised,
  whitespace-collapsed, lower-cased text: `training.annotations.statement_identity`, the
  identity `merge` uses);
  `latest_id` points at the annotation that wins for training.
- `annotations`: append-only history; re-annotating a statement adds a row.
- `jobs`: retraining jobs; `active` is 1 while queued/running and NULL otherwise, and is
  unique, so the database itself guarantees one retrain at a time.
- `model_status`: promotion status of registry versions (bundles are immutable).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class Batch(Base):
    __tablename__ = "batches"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(20))  # seed | import | api
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class BatchFile(Base):
    __tablename__ = "batch_files"
    __table_args__ = (UniqueConstraint("batch_id", "sha256"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("batches.id"))
    sha256: Mapped[str] = mapped_column(String(64))
    filename: Mapped[str] = mapped_column(String(500))
    format: Mapped[str] = mapped_column(String(20))
    n_records: Mapped[int] = mapped_column(Integer)
    imported_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Statement(Base):
    __tablename__ = "statements"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    text: Mapped[str] = mapped_column(Text)
    latest_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class AnnotationRow(Base):
    __tablename__ = "annotations"
    __table_args__ = (Index("ix_annotations_stmt_annotator_batch", "statement_id", "annotator", "batch_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    statement_id: Mapped[int] = mapped_column(ForeignKey("statements.id"), index=True)
    labels: Mapped[str] = mapped_column(Text)  # JSON list in schema order, e.g. '["opposition"]'
    source: Mapped[str] = mapped_column(String(500), index=True)
    annotator: Mapped[str] = mapped_column(String(200))
    batch_id: Mapped[int] = mapped_column(ForeignKey("batches.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Job(Base):
    __tablename__ = "jobs"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(20), default="retrain")
    state: Mapped[str] = mapped_column(String(20))
    active: Mapped[int | None] = mapped_column(Integer, unique=True, nullable=True)
    config: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    pid_started: Mapped[float | None] = mapped_column(Float, nullable=True)  # guards against pid reuse
    job_dir: Mapped[str] = mapped_column(Text)
    n_annotations: Mapped[int | None] = mapped_column(Integer, nullable=True)
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    version: Mapped[str | None] = mapped_column(String(100), nullable=True)
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    gate: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)


class ModelStatus(Base):
    __tablename__ = "model_status"
    version: Mapped[str] = mapped_column(String(100), primary_key=True)
    status: Mapped[str] = mapped_column(String(20))  # candidate | promoted | rejected | rolled_back
    reason: Mapped[str] = mapped_column(Text, default="")
    job_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    gate: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)
