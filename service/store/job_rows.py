"""Job rows (retrain and re-score jobs share the `jobs` table): one way to change them."""

from __future__ import annotations

from typing import Any

from service.store.engine import Database
from service.store.tables import Job


def update_job(db: Database, job_id: str, **values: Any) -> None:
    """Set columns of one job in its own transaction (a vanished row is left alone: the
    job was deleted with its store, and the worker reporting on it has nothing to say)."""
    with db.write() as s:
        job = s.get(Job, job_id)
        if job is not None:
            for key, value in values.items():
                setattr(job, key, value)
