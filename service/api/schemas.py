"""Request and response bodies of the HTTP API (they are also the OpenAPI schema at /docs).

Types are checked here; the size limits come from settings and are checked in
`service.api.limits.check_texts`, so one config file changes them without code.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

EXAMPLE = "Ukraine should be invited to join NATO at the next summit, without waiting for the war to end."


class ClassifyRequest(BaseModel):
    """Exactly one of `text` or `texts`."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"texts": [EXAMPLE]}, {"text": EXAMPLE}]})

    text: str | None = Field(None, description="one statement or a longer text (segmented)")
    texts: list[str] | None = Field(None, description="several texts, scored independently")

    @model_validator(mode="before")
    @classmethod
    def _no_nulls(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for name in ("text", "texts"):
                if name in data and data[name] is None:
                    raise ValueError(f"'{name}' must not be null; leave it out instead")
        return data

    @model_validator(mode="after")
    def _one_of(self) -> ClassifyRequest:
        if (self.text is None) == (self.texts is None):
            raise ValueError("give exactly one of 'text' (a string) or 'texts' (a list of strings)")
        return self

    def items(self) -> list[str]:
        return [self.text] if self.text is not None else list(self.texts or [])


class Evidence(BaseModel):
    text: str = Field(description="the statement (or window of a very long statement)")
    index: int = Field(description="position of the statement in the text, 0-based")
    score: float


class TextResult(BaseModel):
    labels: list[str] = Field(description="labels on for this text (any statement carries it); [] = none")
    scores: dict[str, float] = Field(description="per label, the max probability over statements")
    model_version: str
    statements: int = Field(description="statements the text was cut into")
    boilerplate: int = Field(description="of which skipped as page furniture")
    evidence: dict[str, list[Evidence]] = Field(description="per label on, the statements carrying it")


class ClassifyResponse(BaseModel):
    model_version: str
    results: list[TextResult]


class Fallback(BaseModel):
    """Set when the registry's current bundle could not be loaded at start."""

    requested: str | None = Field(description="the version models/CURRENT names")
    reason: str = Field(description="why it could not be served")
    serving: str = Field(description="the newest version that verified, served instead")


class ModelInfo(BaseModel):
    version: str
    labels: list[str]
    thresholds: dict[str, float]
    metrics: dict[str, Any]
    backend: str
    backend_reason: str | None = Field(None, description="why training chose the bundle's default backend (int8 check)")
    policy: str | None = Field(
        None, description="decision policy: scores are calibrated probabilities, thresholds on them"
    )
    calibration: dict[str, list[float]] | None = Field(
        None, description="per label (a, b): score = sigmoid(a * logit + b)"
    )
    max_length: int
    created: str | None = None
    serving: dict[str, Any] = Field(description="micro-batching counters since start")
    fallback: Fallback | None = Field(None, description="set when CURRENT was broken at start")


class Health(BaseModel):
    status: str
    model_version: str | None = None
    detail: str | None = Field(None, description="e.g. which bundle is served instead of a broken CURRENT, and why")
