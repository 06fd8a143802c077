"""The service's settings: training's `Settings` plus the sections only the service reads
(`service`, `store`, `auth`, `gate`, `jobs`), from the same configs/default.yaml.

Training ignores these sections; here the whole file is validated (an unknown top-level
section is an error), so a typo in any section stops `stance serve` with the file and field.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import ConfigDict, Field, model_validator

from training.settings import Section, load_settings
from training.settings import Settings as TrainingSettingsModel


class ServiceSettings(Section):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    max_text_chars: int = Field(20000, ge=1)
    max_texts: int = Field(64, ge=1)
    max_body_bytes: int = Field(1_000_000, ge=1)
    max_feed_bytes: int = Field(50_000_000, ge=1)
    microbatch_max_size: int = Field(8, ge=1)  # small concurrent requests merged per model call
    max_call_size: int = Field(64, ge=1)  # statements per model call for a large request or a feed chunk
    # Predictions of repeated statements kept per served model (service/scoring/cache.py); 0 = off.
    statement_cache_size: int = Field(50_000, ge=0)
    microbatch_max_wait_ms: float = Field(4, ge=0)
    spin_wait: bool = (
        False  # inference threads busy-wait between calls (ONNX Runtime, OpenMP); steals CPU on small machines
    )
    max_statements: int = Field(1000, ge=1)  # statements per /v1/classify request (413 above: use the feed endpoint)
    keep_alive_s: float = Field(5, gt=0)  # an idle keep-alive connection is closed after this
    header_timeout_s: float = Field(10, gt=0)  # a connection that has not sent complete headers by then is closed


class StoreSettings(Section):
    url: str | None = None
    busy_timeout_ms: int = Field(30000, ge=0)  # SQLite: how long a writer waits for the lock
    seed_annotator: str = "seed"  # annotator recorded for files of paths.annotations_dir
    page_size: int = Field(100, ge=1)  # GET /v1/annotations default page
    max_page_size: int = Field(1000, ge=1)
    max_post_records: int = Field(1000, ge=1)  # records per POST /v1/annotations


class JobsSettings(Section):
    """Retraining jobs (service/retrain/jobs.py): a subprocess per job, one at a time."""

    default_config: str = "retrain"  # configs/<name>.yaml layered over the service's settings (retrain: no CV)
    train_module: str = "training.cli"  # run as `python -m <module> train ...`
    poll_interval_s: float = Field(1.0, gt=0)
    timeout_s: float = Field(6 * 3600, gt=0)  # a job running longer is killed and failed
    log_tail_lines: int = Field(40, ge=1)
    watch_registry_s: float = Field(2.0, ge=0)  # follow CURRENT moved by the CLI or another replica; 0 = off
    heartbeat_s: float = Field(5.0, gt=0)  # renew job leases and look for jobs of dead replicas this often
    lease_s: float = Field(30.0, gt=0)  # a replica silent this long loses its active jobs to another one

    @model_validator(mode="after")
    def _lease_outlives_heartbeats(self) -> JobsSettings:
        if self.lease_s < 2 * self.heartbeat_s:
            raise ValueError(f"jobs.lease_s ({self.lease_s:g}) must be >= 2 x jobs.heartbeat_s ({self.heartbeat_s:g})")
        return self


class AuthSettings(Section):
    token_env: str = "STANCE_API_TOKEN"
    token: str | None = None

    def resolved_token(self) -> str | None:
        """The environment wins over the file so secrets need not be committed."""
        return os.environ.get(self.token_env) or self.token


class GateSettings(Section):
    metric: Literal["macro_f1", "micro_f1"] = "macro_f1"
    # paired: promote unless the candidate is worse beyond noise (docs/RETRAINING.md):
    #   the upper end of the paired-bootstrap interval of (candidate - current) >= 0, and
    #   the point difference >= -tolerance. point: candidate >= current - tolerance only.
    rule: Literal["paired", "point"] = "paired"
    tolerance: float = Field(0.01, ge=0)


class MonitorSettings(Section):
    """Feed monitoring (service/monitor): poller, fetch limits, ingest, review queue."""

    poller: bool = True  # run the poller inside the service (one process polls: a lease row)
    tick_s: float = Field(5.0, gt=0)  # how often the poller looks for due feeds
    lease_s: float = Field(60.0, gt=0)  # a poller silent this long loses the lease to another process
    default_interval_s: int = Field(900, ge=1)
    min_interval_s: int = Field(10, ge=1)
    fetch_timeout_s: float = Field(20.0, gt=0)
    max_fetch_bytes: int = Field(20_000_000, ge=1)  # larger feed documents are refused
    user_agent: str = "stance-monitor/1"
    backoff_base_s: float = Field(60.0, gt=0)  # after n failures in a row: base * 2^(n-1), capped
    backoff_max_s: float = Field(6 * 3600, gt=0)
    ingest_chunk: int = Field(200, ge=1)  # articles stored per transaction
    max_poll_errors_kept: int = Field(20, ge=1)  # item errors listed on a poll record
    rescore_chunk: int = Field(512, ge=1)  # statements re-scored per transaction
    review_pool: int = Field(200, ge=1)  # most uncertain candidates the diversity step picks from
    review_max_n: int = Field(100, ge=1)
    review_lambda: float = Field(0.6, ge=0, le=1)  # MMR: weight of uncertainty vs diversity
    trends_max_rows: int = Field(500_000, ge=1)  # a trend query over more buckets is refused


class ConsoleSettings(Section):
    """The analyst console (service/web): knobs its pages read from the HTML."""

    poll_interval_ms: int = Field(1000, ge=100)  # how often the models page polls a running job
    render_chunk: int = Field(200, ge=10)  # statements rendered per animation frame on long documents
    review_batch: int = Field(20, ge=1)  # statements fetched per review-queue request
    review_session_max: int = Field(2000, ge=10)  # statements of pasted documents kept for the fallback queue


class BatchSettings(Section):
    """`stance score` (offline batch scoring): which engine, and Ray Data's knobs for `ray`."""

    engine: Literal["local", "ray"] = "local"  # local needs no Ray; ray: Ray Data actor pools
    ray_address: str | None = None  # None: start a local Ray; "auto" / "ray://head:10001": a cluster
    workers: int = Field(2, ge=1)  # actors, each loading the bundle once
    cpus_per_worker: int = Field(1, ge=1)  # Ray CPUs reserved per actor = its inference threads
    batch_rows: int = Field(256, ge=1)  # input rows per map_batches call (an article row is many statements)
    read_cpus: float = Field(0.0, ge=0)  # CPUs a read task reserves (0: reads never wait for busy actors)
    max_restarts: int = Field(3, ge=-1)  # a dead actor is restarted this often (-1: always)
    max_task_retries: int = Field(3, ge=-1)  # a batch whose actor died is re-run this often (-1: always)


class Settings(TrainingSettingsModel):
    """Everything the service reads; a training `Settings` too, so it can be handed to
    training's functions unchanged."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    service: ServiceSettings = ServiceSettings()
    store: StoreSettings = StoreSettings()
    auth: AuthSettings = AuthSettings()
    gate: GateSettings = GateSettings()
    jobs: JobsSettings = JobsSettings()
    monitor: MonitorSettings = MonitorSettings()
    console: ConsoleSettings = ConsoleSettings()
    batch: BatchSettings = BatchSettings()

    def store_url(self) -> str:
        return self.store.url or f"sqlite:///{self.paths.data_dir / 'annotations.db'}"


def load_service_settings(path: str | Path | None = None, root: str | Path | None = None) -> Settings:
    """`training.settings.load_settings` (the one layering rule) into the service's model."""
    return load_settings(path, root, model=Settings)
