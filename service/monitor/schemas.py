"""Request and response bodies of the monitoring API (also the OpenAPI schema at /docs)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


FeedFormatName = Literal["auto", "rss", "atom", "xml", "jsonl", "ndjson", "text"]
# A feed polled less often than yearly is not being monitored; the bound also keeps the value
# inside a 64-bit column and a datetime (schemathesis found a 20-digit interval -> 500).
INTERVAL_MAX_S = 366 * 24 * 3600
URL_PATTERN = r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[!-~]*)?$"  # ASCII: what an HTTP client can fetch


class FeedIn(_In):
    name: str = Field(min_length=1, max_length=200, description="unique name of the subscription")
    outlet: str = Field(min_length=1, max_length=200, description="the outlet trends are grouped by")
    url: str = Field(
        max_length=2000, pattern=URL_PATTERN, description="http(s) URL of an RSS 2.0 / Atom / JSON Lines feed"
    )
    interval_s: int | None = Field(
        None, ge=1, le=INTERVAL_MAX_S, description="seconds between polls (default monitor.default_interval_s)"
    )
    format: FeedFormatName = Field(
        "auto", description="how to read the feed (auto: from its content type and first bytes)"
    )
    enabled: StrictBool = True


class FeedPatch(_In):
    name: str | None = Field(None, min_length=1, max_length=200)
    outlet: str | None = Field(None, min_length=1, max_length=200)
    url: str | None = Field(None, max_length=2000, pattern=URL_PATTERN)
    interval_s: int | None = Field(None, ge=1, le=INTERVAL_MAX_S)
    format: FeedFormatName | None = None
    enabled: StrictBool | None = None


class FeedOut(BaseModel):
    id: int
    name: str
    outlet: str
    url: str
    format: str
    interval_s: int
    enabled: bool
    failures: int = Field(description="errors in a row (back-off grows with it)")
    next_poll_at: str | None
    last_polled_at: str | None
    last_status: str | None = Field(description="ok | not_modified | error | running")
    last_error: str | None
    articles: int = Field(description="articles stored from this feed")
    created_at: str | None


class PollOut(BaseModel):
    id: int
    feed_id: int
    started_at: str | None
    finished_at: str | None
    status: str = Field(description="ok | not_modified | error | running")
    http_status: int | None
    items: int = Field(description="items in the fetched document")
    new: int = Field(description="articles stored by this poll")
    seen: int = Field(description="items already stored (guid, URL or same text)")
    failed: int = Field(description="items that could not be read, scored or stored")
    statements: int = Field(description="statements scored and stored")
    model_version: str | None
    error: str | None = Field(description="why the poll failed, or the failed items' messages")


class StatementOut(BaseModel):
    id: int
    position: int
    text: str
    boilerplate: str | None = Field(description="why it is boilerplate (not scored), or null")
    scores: dict[str, float] | None
    labels: list[str] | None
    model_version: str | None


class ArticleOut(BaseModel):
    id: int
    feed_id: int | None
    outlet: str
    guid: str | None
    url: str | None
    title: str | None
    published_at: str
    published_given: bool = Field(description="false: the feed gave no date and the fetch time is used")
    fetched_at: str | None
    model_version: str | None
    n_statements: int
    n_boilerplate: int
    statements: list[StatementOut] | None = None


class ArticlePage(BaseModel):
    total: int
    page: int
    page_size: int
    items: list[ArticleOut]


class LabelTrend(BaseModel):
    statements: int = Field(description="statements carrying the label")
    articles: int = Field(description="articles with at least one such statement")
    share: float | None = Field(description="statements / stance_statements (null when none)")
    low: float | None = Field(description="Wilson 95% interval of the share, lower bound")
    high: float | None


class TrendRow(BaseModel):
    outlet: str
    bucket_start: str = Field(description="first day of the bucket (weeks start on Monday)")
    articles: int = Field(description="articles with at least one scored statement")
    statements: int = Field(description="content statements scored")
    stance_articles: int
    stance_statements: int = Field(description="statements with at least one label")
    labels: dict[str, LabelTrend]


class ModelVersionCount(BaseModel):
    version: str
    statements: int = Field(description="statements in the figures scored by this version")


class TrendsOut(BaseModel):
    bucket: Literal["day", "week", "month"]
    from_: str | None = Field(alias="from")
    to: str | None
    labels: list[str]
    interval: str
    share_of: str
    model_versions: list[ModelVersionCount]
    rows: list[TrendRow]

    model_config = ConfigDict(populate_by_name=True)


class ReviewItem(BaseModel):
    id: int = Field(description="statement id: answer with POST /v1/review/{id}")
    text: str
    outlet: str
    article_id: int
    title: str | None
    url: str | None
    published_at: str
    scores: dict[str, float]
    labels: list[str] = Field(description="the model's labels")
    uncertainty: float = Field(description="1 at a label's threshold, towards 0 far from all")
    model_version: str | None


class ReviewNext(BaseModel):
    model_version: str
    strategy: str
    items: list[ReviewItem]


class ReviewAnswer(_In):
    """Either `labels` (possibly empty: no stance) or `skip: true`, not both."""

    model_config = ConfigDict(
        json_schema_extra={
            "oneOf": [
                {"required": ["labels"], "properties": {"labels": {"type": "array"}, "skip": {"const": False}}},
                {"required": ["skip"], "properties": {"skip": {"const": True}}, "not": {"required": ["labels"]}},
            ]
        }
    )

    labels: list[str] | None = None
    skip: bool = False
    annotator: str = Field("review", min_length=1, max_length=200, pattern=r"^[\w.@:+-]+$")

    @model_validator(mode="after")
    def _one_of(self) -> ReviewAnswer:
        if self.skip == (self.labels is not None):
            raise ValueError("give either 'labels' (a list, [] for no stance) or 'skip': true")
        return self


class ReviewResult(BaseModel):
    id: int
    status: Literal["annotated", "skipped"]
    annotation_id: int | None
    created: bool = Field(description="false: identical to this annotator's latest answer in the batch")
    batch: str | None
    labels: list[str] | None
