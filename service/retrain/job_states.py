"""Job states and the one shape of a job in the API (retrain or re-score)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from service.store.tables import Job

QUEUED, RUNNING, JUDGING = "queued", "running", "judging"
SUCCEEDED, REJECTED_STATE, FAILED, CANCELLED = "succeeded", "rejected", "failed", "cancelled"
ACTIVE = (QUEUED, RUNNING, JUDGING)


def job_dict(job: Job, progress: dict[str, Any] | None, log_tail: list[str]) -> dict[str, Any]:
    """The one shape of a job in the API (schemas_admin.JobOut), retrain or re-score."""
    return {
        "id": job.id,
        "kind": job.kind,
        "state": job.state,
        "config": job.config,
        "created_at": _iso(job.created_at),
        "started_at": _iso(job.started_at),
        "finished_at": _iso(job.finished_at),
        "pid": job.pid,
        "n_annotations": job.n_annotations,
        "progress": progress,
        "log_last_line": log_tail[-1] if log_tail and job.state == RUNNING else None,
        "log_tail": log_tail,
        "exit_code": job.exit_code,
        "version": job.version,
        "metrics": job.metrics,
        "gate": job.gate,
        "error": job.error,
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
