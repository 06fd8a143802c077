"""`POST /v1/rescore`: re-score stored statements with the model being served, so trends
stay comparable after a promotion. A job in the `jobs` table (kind `rescore`), with the
states of a retraining job (running -> succeeded | failed | cancelled) and visible in
`GET /v1/jobs`. `active = 2` is unique, so one re-scoring runs at a time (besides at most
one retraining, `active = 1`).

The job walks statements not scored by the current version in id order (keyset paging,
so the walk is linear), `monitor.rescore_chunk` at a time; each chunk's scores, labels and
daily counts change in one transaction, so trends are consistent at every moment and a
stopped job can simply be started again. A promotion during the job is followed: the
walk continues with the new version.

Several replicas: the job is leased to the replica running it (service/retrain/leases.py,
renewed every chunk); only a job whose lease expired (its replica died) is failed by
another replica, at its start-up or when a new re-scoring finds the slot taken.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from service.monitor.ingest import label_mask, margin, rebuild_daily
from service.monitor.model import ServiceModel
from service.monitor.tables import Article, StoredStatement
from service.retrain import leases
from service.retrain.job_states import CANCELLED, FAILED, RUNNING, SUCCEEDED, job_dict
from service.settings import Settings
from service.store.engine import Database
from service.store.job_rows import update_job
from service.store.tables import Job

log = logging.getLogger("stance.monitor")
KIND = "rescore"
ACTIVE_SLOT = 2


class RescoreConflict(RuntimeError):
    def __init__(self, active_id: str) -> None:
        self.active_id = active_id
        super().__init__(f"a re-scoring job is already active: {active_id}")


def _now() -> datetime:
    return datetime.now(UTC)


def job_json(job: Job) -> dict[str, Any]:
    """`GET /v1/jobs/{id}`'s shape (service.retrain.jobs.job_dict); progress counts re-scored statements."""
    m = job.metrics or {}
    done, total = int(m.get("rescored", 0)), int(m.get("total", 0))
    progress = None
    if job.state == RUNNING:
        progress = {
            "state": "running",
            "phase": "re-scoring stored statements",
            "phase_number": 1,
            "phases": 1,
            "step": done,
            "steps": total,
            "percent": round(100 * done / total, 1) if total else 0.0,
            "elapsed_s": 0.0,
            "eta_s": None,
        }
    return job_dict(job, progress, [])


class Rescorer:
    def __init__(self, settings: Settings, db: Database, model: ServiceModel) -> None:
        self.settings = settings
        self.db = db
        self.model = model
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.holder = leases.replica_id()
        leases.ensure_table(db)

    def _update(self, job_id: str, **values: Any) -> None:
        update_job(self.db, job_id, **values)

    def get(self, job_id: str) -> dict[str, Any]:
        with self.db.read() as s:
            job = s.get(Job, job_id)
        if job is None or job.kind != KIND:
            raise KeyError(job_id)
        return job_json(job)

    def recover(self) -> None:
        """A re-scoring job left active by a stopped process (its lease expired) is failed
        (starting it again resumes the work: only statements not yet on the current version
        are scored). A job another live replica runs is left alone."""
        for takeover in leases.take_orphans(self.db, ACTIVE_SLOT, self.holder, self.settings.jobs.lease_s):
            with self.db.write() as s:
                job = s.get(Job, takeover.job_id)
                if job is not None and job.id not in self.tasks:
                    job.state, job.active, job.finished_at = FAILED, None, _now()
                    job.error = f"the service stopped during the job ({takeover.describe()}); start it again to finish"
            leases.release(self.db, [takeover.job_id], self.holder, drop=True)

    async def start(self) -> dict[str, Any]:
        job_id = f"{_now():%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"
        job_dir = self.settings.paths.data_dir / "jobs" / job_id
        try:
            await asyncio.to_thread(self._insert, job_id, str(job_dir))
        except IntegrityError:
            await asyncio.to_thread(self.recover)  # the slot may be held by a dead replica's job
            try:
                await asyncio.to_thread(self._insert, job_id, str(job_dir))
            except IntegrityError:
                with self.db.read() as s:
                    active = s.scalar(select(Job.id).where(Job.active == ACTIVE_SLOT))
                raise RescoreConflict(active or "?") from None
        self.tasks[job_id] = asyncio.create_task(self._run(job_id))
        return await asyncio.to_thread(self.get, job_id)

    def _insert(self, job_id: str, job_dir: str) -> None:
        with self.db.write() as s:
            s.add(
                Job(
                    id=job_id,
                    kind=KIND,
                    state=RUNNING,
                    active=ACTIVE_SLOT,
                    config="-",
                    job_dir=job_dir,
                    started_at=_now(),
                    version=self.model.version,
                    metrics={"rescored": 0, "total": self._remaining(s, self.model.version)},
                )
            )
            leases.add_lease(s, job_id, self.holder, self.settings.jobs.lease_s)

    @staticmethod
    def _remaining(s: Any, version: str) -> int:
        return int(
            s.scalar(
                select(func.count())
                .select_from(StoredStatement)
                .where(StoredStatement.model_version.is_not(None), StoredStatement.model_version != version)
            )
            or 0
        )

    def _state(self, job_id: str) -> str | None:
        with self.db.read() as s:
            return s.scalar(select(Job.state).where(Job.id == job_id))

    def _page(self, after: int, version: str) -> list[tuple[int, str]]:
        with self.db.read() as s:
            return [
                tuple(r)
                for r in s.execute(
                    select(StoredStatement.id, StoredStatement.text)
                    .where(
                        StoredStatement.id > after,
                        StoredStatement.model_version.is_not(None),
                        StoredStatement.model_version != version,
                    )
                    .order_by(StoredStatement.id)
                    .limit(self.settings.monitor.rescore_chunk)
                ).all()
            ]

    def _apply(
        self, rows: list[tuple[int, dict[str, float], list[str]]], version: str, thresholds: dict[str, float]
    ) -> None:
        schema = self.settings.labels
        with self.db.write() as s:
            for sid, scores, labels in rows:
                s.execute(
                    update(StoredStatement)
                    .where(StoredStatement.id == sid)
                    .values(
                        scores=json.dumps(scores),
                        labels=json.dumps(labels),
                        label_mask=label_mask(labels, schema),
                        margin=margin(scores, thresholds),
                        model_version=version,
                    )
                )
            ids = [r[0] for r in rows]
            arts = s.execute(
                select(Article.id, Article.outlet, Article.day)
                .join(StoredStatement, StoredStatement.article_id == Article.id)
                .where(StoredStatement.id.in_(ids))
                .distinct()
            ).all()
            s.execute(update(Article).where(Article.id.in_({a[0] for a in arts})).values(model_version=version))
            rebuild_daily(s, {(a[1], a[2]) for a in arts}, schema)

    async def _run(self, job_id: str) -> None:
        done, after, version = 0, 0, self.model.version
        total = (await asyncio.to_thread(self.get, job_id))["metrics"]["total"]
        try:
            splitter = self.model.splitter()
            while True:
                if await asyncio.to_thread(self._state, job_id) == CANCELLED:
                    return
                if self.model.version != version:  # promoted meanwhile: walk again for the new one
                    version, after, done = self.model.version, 0, 0
                    total = await asyncio.to_thread(self._total, version)
                page = await asyncio.to_thread(self._page, after, version)
                if not page:
                    break
                units = [(i, piece) for i, (_sid, text) in enumerate(page) for piece in splitter.split(text)]
                scored = await self.model.score([u for _i, u in units])
                merged: dict[int, tuple[dict[str, float], set[str]]] = {}
                for (i, _u), pred in zip(units, scored.predictions, strict=False):
                    if i in merged:
                        old, labs = merged[i]
                        merged[i] = ({k: max(v, pred.scores[k]) for k, v in old.items()}, labs | set(pred.labels))
                    else:
                        merged[i] = (dict(pred.scores), set(pred.labels))
                order = list(scored.thresholds)
                rows = [(page[i][0], sc, [n for n in order if n in labs]) for i, (sc, labs) in merged.items()]
                await asyncio.to_thread(self._apply, rows, scored.version, scored.thresholds)
                done += len(page)
                after = page[-1][0]
                await asyncio.to_thread(
                    self._update, job_id, version=scored.version, metrics={"rescored": done, "total": total}
                )
                await asyncio.to_thread(leases.renew, self.db, [job_id], self.holder, self.settings.jobs.lease_s)
            await asyncio.to_thread(self._update, job_id, state=SUCCEEDED, active=None, finished_at=_now())
        except asyncio.CancelledError:
            self._update(
                job_id,
                state=FAILED,
                active=None,
                finished_at=_now(),
                error="the service stopped during the job; start it again to finish",
            )
            raise
        except Exception as exc:  # noqa: BLE001 - recorded on the job
            log.exception("re-scoring job %s failed", job_id)
            await asyncio.to_thread(
                self._update,
                job_id,
                state=FAILED,
                active=None,
                finished_at=_now(),
                error=f"{type(exc).__name__}: {exc}",
            )
        finally:
            if self._state(job_id) == CANCELLED:
                self._update(job_id, active=None)
            leases.release(self.db, [job_id], self.holder, drop=True)

    def _total(self, version: str) -> int:
        with self.db.read() as s:
            return self._remaining(s, version)

    async def shutdown(self) -> None:
        for task in list(self.tasks.values()):
            if not task.done():
                task.cancel()
        for task in list(self.tasks.values()):
            try:
                await task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - already recorded
                pass
