"""A POST /v1/annotations body -> records ready for the store, or one 422 listing every
problem by record number (nothing is stored when any record is bad)."""

from __future__ import annotations

from typing import Any

from service.api.errors import ApiError
from service.api.schemas_admin import SOURCE_MAX_CHARS, AnnotationBatch, AnnotationIn
from service.settings import Settings
from service.store.repository import NewAnnotation, default_api_batch
from service.text_hygiene import has_visible_text, surrogate_at, text_problem
from training.annotations import validate_record

DEFAULT_ANNOTATOR = "api"


def intake(
    body: AnnotationBatch | AnnotationIn | list[AnnotationIn], settings: Settings, schema: tuple[str, ...]
) -> tuple[list[NewAnnotation], str]:
    """(records, batch name). 413 over `store.max_post_records`; 422 with `problems`
    ({record, field, message}) when any record breaks a rule (text, labels, source)."""
    if isinstance(body, AnnotationBatch):
        records, batch, annotator = body.annotations, body.batch, body.annotator
    else:
        records, batch, annotator = (body if isinstance(body, list) else [body]), None, None
    limit = settings.store.max_post_records
    if len(records) > limit:
        raise ApiError(413, f"{len(records)} records; at most {limit} per request")
    if not records:
        raise ApiError(
            422,
            "'annotations' must be a non-empty list",
            [{"field": "annotations", "message": "must contain at least one record"}],
        )
    items: list[NewAnnotation] = []
    problems: list[dict[str, Any]] = []
    for i, record in enumerate(records, start=1):
        problem = text_problem(record.text, settings.service.max_text_chars)
        if problem:
            problems.append({"record": i, "field": "text", "message": problem})
            continue
        if "source" in record.model_fields_set and (
            not has_visible_text(record.source)
            or surrogate_at(record.source) is not None
            or len(record.source) > SOURCE_MAX_CHARS
        ):
            problems.append(
                {
                    "record": i,
                    "field": "source",
                    "message": f"'source' must be 1-{SOURCE_MAX_CHARS} characters of valid, visible text",
                }
            )
            continue
        try:
            ann = validate_record(record.model_dump(exclude_none=True, exclude_unset=True), schema)
        except ValueError as exc:
            problems.append({"record": i, "field": _field_of(str(exc)), "message": str(exc)})
            continue
        items.append(NewAnnotation(ann, record.annotator or annotator or DEFAULT_ANNOTATOR))
    if problems:
        raise ApiError(422, f"{len(problems)} invalid record(s); nothing was stored", problems)
    return items, batch or default_api_batch()


def _field_of(message: str) -> str | None:
    """The field a `validate_record` message is about (it names it in quotes or words)."""
    for name in ("text", "labels", "source"):
        if f"'{name}'" in message:
            return name
    return "labels" if "label" in message else None
