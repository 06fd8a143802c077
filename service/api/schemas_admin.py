"""Request and response bodies of the annotation, retraining and registry API (OpenAPI).

Types and sizes a schema can say are checked here; rules that need the label schema or a
setting (labels, text limits) are checked in the services, and answer the same 422 shape.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag

from service.api.limits import BATCH_FORM, LIST_FORM, RECORD_FORM

NAME_PATTERN = r"^[A-Za-z0-9_.@:+-]{1,200}$"  # batch and annotator names
VERSION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"  # registry versions (folder names)
CONFIG_PATTERN = r"^[A-Za-z0-9_-]{1,100}$"  # configs/<name>.yaml
SOURCE_MAX_CHARS = 500  # the annotations table's source column
Name = Annotated[str, Field(pattern=NAME_PATTERN, description="1-200 letters, digits or . _ - @ : +")]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------- annotations


class AnnotationIn(_In):
    """`text`, `labels` and `source` are required (the schema says so); a missing one is
    reported by the record checks with the other records' problems, in one 422."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"required": ["text", "labels", "source"]})

    text: str = Field("", description="the statement (limit: service.max_text_chars)")
    labels: list[str] = Field(default_factory=list, description="label names of the schema; [] for none")
    source: str = Field("", description="document id (groups the cross-validation folds)")
    annotator: Name | None = None


class AnnotationBatch(_In):
    annotations: list[AnnotationIn] = Field(min_length=1)
    batch: Name | None = Field(None, description="default: api-<UTC day>")
    annotator: Name | None = Field(None, description="default for records without one: 'api'")


def _form(value: Any) -> str:
    if isinstance(value, list):
        return LIST_FORM
    if isinstance(value, dict) and "annotations" in value:
        return BATCH_FORM
    return RECORD_FORM


AnnotationsBody = Annotated[
    Annotated[AnnotationBatch, Tag(BATCH_FORM)]
    | Annotated[AnnotationIn, Tag(RECORD_FORM)]
    | Annotated[list[AnnotationIn], Field(min_length=1), Tag(LIST_FORM)],
    Discriminator(_form),
]


class AnnotationsPosted(BaseModel):
    ids: list[int] = Field(description="one per record, in order (an identical re-post returns the same id)")
    created: int
    unchanged: int
    batch: str


class AnnotationOut(BaseModel):
    id: int
    statement_id: int
    text: str
    labels: list[str]
    source: str
    annotator: str
    batch: str
    created_at: str | None


class AnnotationPage(BaseModel):
    total: int
    page: int
    page_size: int
    view: Literal["latest", "history"]
    items: list[AnnotationOut]


class BatchStats(BaseModel):
    name: str
    kind: str
    created_at: str | None
    annotations: int
    latest: int


class Conflict(BaseModel):
    statement_id: int
    text: str
    by_annotator: dict[str, list[str]]
    latest: list[str] | None


class AnnotationStats(BaseModel):
    statements: int
    annotations: int | None
    labels: dict[str, int]
    batches: list[BatchStats]
    annotators: dict[str, int]
    conflicts: int
    conflict_list: list[Conflict]


# ---------------------------------------------------------------- jobs and models


class RetrainIn(_In):
    config: str | None = Field(
        None, pattern=CONFIG_PATTERN, description="configs/<name>.yaml to layer on the service's config, e.g. 'fast'"
    )


class RollbackIn(_In):
    version: str | None = Field(
        None, pattern=VERSION_PATTERN, description="any earlier version; default: the previous one"
    )


class JobProgress(BaseModel):
    """Where a training run is (training/progress.py writes it after each optimizer step)."""

    state: Literal["running", "done"]
    phase: str = Field(description="e.g. 'cross-validation fold 2 of 5', 'final model', 'export and checks'")
    phase_number: int
    phases: int
    step: int = Field(description="optimizer steps done in this phase")
    steps: int
    percent: float = Field(description="of the whole run, weighted by planned steps")
    elapsed_s: float
    eta_s: float | None = Field(description="remaining seconds at the pace so far (None at the very start)")


class JobOut(BaseModel):
    id: str
    kind: str
    state: Literal["queued", "running", "judging", "succeeded", "rejected", "failed", "cancelled"]
    config: str
    created_at: str | None
    started_at: str | None
    finished_at: str | None
    pid: int | None
    n_annotations: int | None
    progress: JobProgress | None
    log_last_line: str | None = None
    log_tail: list[str]
    exit_code: int | None
    version: str | None
    metrics: dict[str, Any] | None
    gate: dict[str, Any] | None
    error: str | None


class RegistryEntry(BaseModel):
    model_config = ConfigDict(extra="allow")  # describe() may grow fields

    version: str
    status: str
    current: bool
    created: str | None = None
    data: dict[str, Any] | None = None
    metrics: dict[str, Any] | None = None
    reason: str | None = None
    job_id: str | None = None
    gate: dict[str, Any] | None = None
    error: str | None = Field(None, description="set when the bundle cannot be read")


class Registry(BaseModel):
    current: str | None
    models: list[RegistryEntry]
    history: list[dict[str, Any]]


class Switched(BaseModel):
    current: str
    previous: str | None
    reason: str
