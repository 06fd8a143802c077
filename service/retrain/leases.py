"""Job leases: which service replica owns an active job, until when.

Why: several `stance serve` processes share one database. A job row alone cannot say
whether the replica running it is alive, so each active job has a lease row
(`job_leases`): the owning replica renews `expires_at` every heartbeat; a lease that
expired means its owner died or hung, and another replica may take the job over
(adopt the training process, judge its result, or fail it with a reason). One row per
job; the unique `jobs.active` slot remains the lock that allows one retrain at a time.

Works on SQLite (`Database.write()` is `BEGIN IMMEDIATE`) and PostgreSQL
(`SELECT ... FOR UPDATE`; a racing first insert loses on the primary key).
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import DateTime, String, delete, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Mapped, Session, mapped_column

from service.store.engine import Database
from service.store.tables import Base, Job


class JobLease(Base):
    __tablename__ = "job_leases"
    job_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))  # replica id: host:pid:random
    host: Mapped[str] = mapped_column(String(200))  # where the job's process runs (kept on takeover)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


@dataclass(frozen=True)
class Takeover:
    """A job whose owner stopped heartbeating, now held by this replica."""

    job_id: str
    previous: str | None  # the replica that held it (None: no lease row, e.g. an older version)
    expired_at: datetime | None
    host: str | None  # where its process ran

    def describe(self) -> str:
        if self.previous is None:
            return "the replica that ran it is gone (no lease recorded)"
        when = self.expired_at.isoformat(timespec="seconds") if self.expired_at else "?"
        return f"the replica that ran it ({self.previous}) stopped (its lease expired at {when})"


def replica_id() -> str:
    """Unique per process and object: host, pid and a random part."""
    return f"{hostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def hostname() -> str:
    return socket.gethostname()


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)  # SQLite drops the zone


def _now() -> datetime:
    return datetime.now(UTC)


def ensure_table(db: Database) -> None:
    """Create `job_leases` in a database made before it existed."""
    try:
        JobLease.__table__.create(db.engine, checkfirst=True)  # type: ignore[attr-defined]
    except (OperationalError, IntegrityError):  # another process created it meanwhile
        pass


def add_lease(session: Session, job_id: str, holder: str, ttl_s: float) -> None:
    """In the transaction that inserts the job: it is born owned."""
    session.add(JobLease(job_id=job_id, holder=holder, host=hostname(), expires_at=_now() + timedelta(seconds=ttl_s)))


def renew(db: Database, job_ids: list[str], holder: str, ttl_s: float) -> set[str]:
    """Extend this replica's leases; returns the ids whose lease it lost (another replica
    took it after an expiry, or it was dropped because the job ended)."""
    if not job_ids:
        return set()
    lost: set[str] = set()
    until = _now() + timedelta(seconds=ttl_s)
    with db.write() as s:
        rows = {r.job_id: r for r in s.scalars(select(JobLease).where(JobLease.job_id.in_(job_ids)).with_for_update())}
        for job_id in job_ids:
            row = rows.get(job_id)
            if row is not None and row.holder == holder:
                row.expires_at = until
            else:
                lost.add(job_id)
    return lost


def release(db: Database, job_ids: list[str], holder: str, drop: bool = False) -> None:
    """Expire (clean shutdown: another replica may take over at once) or `drop` (job done)."""
    if not job_ids:
        return
    with db.write() as s:
        mine = (JobLease.job_id.in_(job_ids), JobLease.holder == holder)
        if drop:
            s.execute(delete(JobLease).where(*mine))
            return
        for row in s.scalars(select(JobLease).where(*mine).with_for_update()):
            row.expires_at = _now() - timedelta(seconds=1)


def drop(db: Database, job_id: str) -> None:
    """Forget a finished job's lease, whoever held it (a cancel through another replica)."""
    with db.write() as s:
        s.execute(delete(JobLease).where(JobLease.job_id == job_id))


def _candidates(db: Database, slot: int, now: datetime) -> bool:
    """A plain read first: the write transaction (SQLite: the database's write lock) is
    taken only when some active job's lease looks expired or missing."""
    with db.read() as s:
        rows = s.execute(
            select(Job.id, JobLease.expires_at).outerjoin(JobLease, JobLease.job_id == Job.id).where(Job.active == slot)
        ).all()
    return any(expires is None or _aware(expires) <= now for _id, expires in rows)


def take_orphans(db: Database, slot: int, holder: str, ttl_s: float) -> list[Takeover]:
    """Active jobs of `slot` whose lease expired (or is missing), now leased to `holder`."""
    now = _now()
    taken: list[Takeover] = []
    if not _candidates(db, slot, now):
        return taken
    try:
        with db.write() as s:
            ids = list(s.scalars(select(Job.id).where(Job.active == slot)))
            for job_id in ids:
                row = s.get(JobLease, job_id, with_for_update=True)
                if row is None:
                    until = now + timedelta(seconds=ttl_s)
                    s.add(JobLease(job_id=job_id, holder=holder, host=hostname(), expires_at=until))
                    taken.append(Takeover(job_id, None, None, None))
                elif row.holder != holder and _aware(row.expires_at) <= now:
                    taken.append(Takeover(job_id, row.holder, _aware(row.expires_at), row.host))
                    row.holder, row.expires_at = holder, now + timedelta(seconds=ttl_s)
    except (IntegrityError, OperationalError):  # another replica took it in the same instant
        return []
    return taken


def holder_of(db: Database, job_id: str) -> str | None:
    with db.read() as s:
        row = s.get(JobLease, job_id)
    return row.holder if row is not None else None
