"""Retraining jobs: snapshot the store, train in a separate process, gate, promote.

Why a subprocess: training takes minutes of CPU and gigabytes of memory; in its own
process (and session) it can crash or be killed without touching the service, which keeps
answering on the current bundle. Training registers its bundle with `--no-promote`
(written to a temp folder and renamed, so a killed run leaves no loadable half-bundle);
the service then runs the gate (service.retrain.gate) and promotes or rejects.

Why the database: job state survives a restart, and several replicas share it. A unique
`active` column makes "one retrain at a time" a database fact, so two service processes
cannot both start one. Each active job is leased to the replica that follows it
(service/retrain/leases.py): a heartbeat thread renews the lease every `jobs.heartbeat_s`
and looks for jobs whose lease expired (`recover()`; also at start-up). Such a job's
replica died: a training process still alive on this host is adopted and followed; one
that finished is judged from its result line in the job folder; one that died (or ran on
a host this replica cannot see, without a result) is marked failed with the reason and
its log. docs/REPLICAS.md has the whole story.

States: queued -> running -> judging -> succeeded (promoted) | rejected (gate said no)
| failed | cancelled.
"""

from __future__ import annotations

import logging
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import yaml
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from service.retrain import gate, leases
from service.retrain.configs import effective_config
from service.retrain.job_states import (
    ACTIVE,
    CANCELLED,
    FAILED,
    JUDGING,
    QUEUED,
    REJECTED_STATE,
    RUNNING,
    SUCCEEDED,
    job_dict,
)
from service.retrain.process import alive, kill_group, private_file, read_tail, result_line
from service.retrain.promotion import CANDIDATE, REJECTED, ModelAdmin, PromotionError
from service.settings import Settings
from service.store.engine import Database, open_database
from service.store.job_rows import update_job
from service.store.repository import AnnotationStore
from service.store.tables import Job
from training.annotations import load_annotations
from training.progress import PROGRESS_ENV, read_progress
from training.settings import CONFIG_ENV, ROOT_ENV, load_settings

log = logging.getLogger("stance.jobs")

RETRAIN_SLOT = 1  # value of `jobs.active` for a retrain (re-scoring uses 2)
_PRIVATE_DIR = 0o700  # job folders hold the training data snapshot
PROGRESS_FILE = "progress.json"  # written by the training process (training/progress.py)


class JobConflict(RuntimeError):
    def __init__(self, active_id: str) -> None:
        self.active_id = active_id
        super().__init__(f"a retraining job is already active: {active_id}; wait for it or cancel it")


class JobNotFound(KeyError):
    pass


def _now() -> datetime:
    return datetime.now(UTC)


class JobManager:
    def __init__(
        self, settings: Settings, admin: ModelAdmin, store: AnnotationStore | None = None, db: Database | None = None
    ) -> None:
        self.settings = settings
        self.admin = admin
        self.db = db or open_database(settings)
        self.store = store or AnnotationStore(settings, self.db)
        self.root = settings.paths.data_dir / "jobs"
        self._stop = threading.Event()
        self._threads: dict[str, threading.Thread] = {}
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._cancelled: set[str] = set()
        self.holder = leases.replica_id()
        leases.ensure_table(self.db)
        self._lost: set[str] = set()  # leases another replica took over (this one was too slow)
        self._takeovers: dict[str, leases.Takeover] = {}
        self._keeper: threading.Thread | None = None
        self._keeper_lock = threading.Lock()

    # ------------------------------------------------------------ start

    def start(self, config: str | None = None) -> dict[str, Any]:
        """Create, snapshot and launch a job; JobConflict if one is active."""
        name = config or self.settings.jobs.default_config
        cfg = effective_config(self.settings, name)  # ConfigNotFound before anything is written
        job_id = f"{_now():%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"
        job_dir = self.root / job_id
        try:
            with self.db.write() as s:
                s.add(Job(id=job_id, state=QUEUED, active=RETRAIN_SLOT, config=name, job_dir=str(job_dir)))
                leases.add_lease(s, job_id, self.holder, self.settings.jobs.lease_s)
        except IntegrityError:
            with self.db.read() as s:
                active = s.scalar(select(Job.id).where(Job.active == RETRAIN_SLOT))
            raise JobConflict(active or "?") from None
        self._ensure_keeper()
        try:
            job_dir.mkdir(parents=True, exist_ok=True, mode=_PRIVATE_DIR)
            os.chmod(job_dir, _PRIVATE_DIR)
            cfg_path = private_file(job_dir / "config.yaml")
            cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
            snapshot = private_file(job_dir / "snapshot.jsonl")
            n = self.store.export_jsonl(snapshot)
            proc = self._spawn(job_dir, cfg_path, snapshot)
        except Exception as exc:
            self._update(job_id, state=FAILED, active=None, finished_at=_now(), error=f"could not start: {exc}")
            raise
        started = psutil.Process(proc.pid).create_time() if alive(proc.pid, None) else None
        self._update(job_id, state=RUNNING, started_at=_now(), pid=proc.pid, pid_started=started, n_annotations=n)
        self._procs[job_id] = proc
        self._follow(job_id)
        return self.get(job_id)

    def _spawn(self, job_dir: Path, cfg_path: Path, snapshot: Path) -> subprocess.Popen[bytes]:
        cmd = [
            sys.executable,
            "-m",
            self.settings.jobs.train_module,
            "train",
            "--config",
            str(cfg_path),
            "--data",
            str(snapshot),
            "--no-promote",
        ]
        root = self.settings.root
        env = {
            **os.environ,
            CONFIG_ENV: str(cfg_path),
            ROOT_ENV: str(root),
            "PYTHONUNBUFFERED": "1",
            PROGRESS_ENV: str(job_dir / PROGRESS_FILE),
        }
        private_file(job_dir / "command.txt").write_text(" ".join(cmd) + "\n")
        with (
            private_file(job_dir / "train.out").open("wb") as out,
            private_file(job_dir / "train.log").open("wb") as err,
        ):
            return subprocess.Popen(
                cmd, cwd=root, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True
            )

    # ------------------------------------------------------------ follow

    def _follow(self, job_id: str) -> None:
        t = threading.Thread(target=self._monitor, args=(job_id,), name=f"job-{job_id}", daemon=True)
        self._threads[job_id] = t
        t.start()

    def _monitor(self, job_id: str) -> None:
        try:
            job = self._row(job_id)
            proc = self._procs.get(job_id)
            started = job.started_at or _now()
            if started.tzinfo is None:  # SQLite returns naive datetimes (stored as UTC)
                started = started.replace(tzinfo=UTC)
            deadline = started.timestamp() + self.settings.jobs.timeout_s
            code: int | None = None
            timed_out = False
            takeover = self._takeovers.get(job_id)
            here = takeover is None or takeover.host in (None, leases.hostname())
            if job.state == RUNNING:
                while True:
                    if job_id in self._lost:
                        log.error("job %s: another replica took it over; no longer followed here", job_id)
                        return
                    if self._row(job_id).state not in ACTIVE:  # cancelled through another replica
                        if job.pid and alive(job.pid, job.pid_started):
                            kill_group(job.pid)
                        break
                    if proc is not None:
                        code = proc.poll()
                        if code is not None:
                            break
                    elif not here or not alive(job.pid, job.pid_started):
                        break  # adopted process ended (its exit code is unknown) or runs elsewhere
                    if time.time() > deadline and job.pid and here:
                        timed_out = True
                        kill_group(job.pid)
                        code = proc.wait() if proc is not None else None
                        break
                    if self._stop.wait(self.settings.jobs.poll_interval_s):
                        return  # service stopping: leave the process running; recover() adopts it
            self._finish(job_id, code, timed_out)
        except Exception as exc:  # never leave a job active because the monitor crashed
            log.exception("job %s: monitor failed", job_id)
            self._update(job_id, state=FAILED, active=None, finished_at=_now(), error=f"monitor error: {exc}")
        finally:
            self._procs.pop(job_id, None)
        if job_id not in self._lost:
            leases.release(self.db, [job_id], self.holder, drop=True)

    def _finish(self, job_id: str, code: int | None, timed_out: bool = False) -> None:
        job = self._row(job_id)
        if job.state not in ACTIVE:
            return  # already finished (e.g. cancelled through another replica)
        job_dir = Path(job.job_dir)
        tail = "\n".join(read_tail(job_dir / "train.log", self.settings.jobs.log_tail_lines))
        result = result_line(job_dir / "train.out")
        if job_id in self._cancelled:
            self._update(
                job_id, state=CANCELLED, active=None, finished_at=_now(), exit_code=code, error=f"cancelled\n{tail}"
            )
            return
        if timed_out or (code not in (0, None)) or result is None:
            if timed_out:
                why = f"timed out after {self.settings.jobs.timeout_s:g} s"
            elif code is not None and code < 0:
                why = f"training process killed by signal {-code}"
            elif code not in (0, None):
                why = f"training exited with code {code}"
            else:
                why = "training process ended without a result (died or was killed)"
            takeover = self._takeovers.get(job_id)
            if takeover is not None and not (timed_out or code not in (0, None)):
                host = takeover.host
                if host not in (None, leases.hostname()):
                    why = f"{takeover.describe()}; its training ran on host {host} (not visible here), no result"
                else:
                    why = f"{takeover.describe()}; its training process ended without a result (died or was killed)"
            self._update(
                job_id,
                state=FAILED,
                active=None,
                finished_at=_now(),
                exit_code=code,
                error=f"{why}; the current model keeps serving. Log tail:\n{tail}",
            )
            return
        version = str(result["version"])
        self._update(job_id, state=JUDGING, exit_code=code, version=version, metrics=result.get("metrics"))
        self.admin.set_status(version, CANDIDATE, "trained; awaiting the gate", job_id=job_id)
        try:
            # The snapshot is checked against the labels the job trained with (its own
            # config, which a configs/<name>.yaml may have changed), not the service's.
            job_settings = load_settings(job_dir / "config.yaml", self.settings.root)
            snapshot = load_annotations([job_dir / "snapshot.jsonl"], job_settings.labels).annotations
            current = self.admin.registry.current()
            current_path = self.admin.registry.resolve(current) if current else None
            candidate = self.admin.load(version)  # as it will be served; promoted as is
            decision = gate.judge(candidate, current_path, snapshot, self.settings)
        except Exception as exc:  # noqa: BLE001 - any failure is reported on the job
            log.exception("job %s: gate failed", job_id)
            self._update(
                job_id,
                state=FAILED,
                active=None,
                finished_at=_now(),
                error=f"gate evaluation failed: {exc}; {version} stays a candidate",
            )
            return
        verdict = decision.to_json()
        if decision.promote:
            try:
                self.admin.promote(
                    version, f"gate: {decision.reason} (job {job_id})", bundle=candidate, job_id=job_id, gate=verdict
                )
            except PromotionError as exc:
                self._update(
                    job_id,
                    state=FAILED,
                    active=None,
                    finished_at=_now(),
                    gate=verdict,
                    error=f"promotion failed: {exc}",
                )
                return
            self._update(job_id, state=SUCCEEDED, active=None, finished_at=_now(), gate=verdict)
        else:
            self.admin.set_status(version, REJECTED, decision.reason, job_id=job_id, gate=verdict)
            self._update(job_id, state=REJECTED_STATE, active=None, finished_at=_now(), gate=verdict)

    # ------------------------------------------------------------ lifecycle

    def recover(self) -> list[str]:
        """Take over active jobs whose replica stopped (lease expired or released; see the
        module docstring); returns their ids. Also starts the heartbeat thread."""
        self._ensure_keeper()
        taken = leases.take_orphans(self.db, RETRAIN_SLOT, self.holder, self.settings.jobs.lease_s)
        for takeover in taken:
            job_id = takeover.job_id
            log.warning("job %s: taking over; %s", job_id, takeover.describe())
            self._takeovers[job_id] = takeover
            self._lost.discard(job_id)
            if self._row(job_id).state == QUEUED:
                why = f"the service stopped before the job started: {takeover.describe()}"
                self._update(job_id, state=FAILED, active=None, finished_at=_now(), error=why)
                leases.release(self.db, [job_id], self.holder, drop=True)
            elif job_id not in self._threads or not self._threads[job_id].is_alive():
                self._follow(job_id)
        return [t.job_id for t in taken]

    def heartbeat(self) -> None:
        """Renew the leases of the jobs this replica follows; note the ones it lost."""
        mine = [job_id for job_id, t in list(self._threads.items()) if t.is_alive() and job_id not in self._lost]
        self._lost |= leases.renew(self.db, mine, self.holder, self.settings.jobs.lease_s)

    def _ensure_keeper(self) -> None:
        with self._keeper_lock:
            if self._keeper is None and not self._stop.is_set():
                self._keeper = threading.Thread(target=self._keep, name="job-leases", daemon=True)
                self._keeper.start()

    def _keep(self) -> None:
        while not self._stop.wait(self.settings.jobs.heartbeat_s):
            try:
                self.heartbeat()
                self.recover()
            except Exception:  # keep beating; a database hiccup must not orphan our jobs
                log.exception("job lease heartbeat failed")

    def cancel(self, job_id: str) -> dict[str, Any]:
        job = self._row(job_id)
        if job.state not in ACTIVE:
            return self.get(job_id)
        self._cancelled.add(job_id)
        if job.pid and alive(job.pid, job.pid_started):
            kill_group(job.pid)
        if job_id not in self._threads or not self._threads[job_id].is_alive():
            self._finish(job_id, None)
            leases.drop(self.db, job_id)  # whoever held it: the job is over
        return self.get(job_id)

    def wait(self, job_id: str, timeout: float | None = None) -> dict[str, Any]:
        """Block until the job's monitor is done (tests, CLI)."""
        t = self._threads.get(job_id)
        if t is not None:
            t.join(timeout)
        return self.get(job_id)

    def shutdown(self) -> None:
        """Stop following jobs; training processes keep running and are adopted on restart."""
        self._stop.set()
        for t in list(self._threads.values()):
            t.join(timeout=self.settings.jobs.poll_interval_s * 2)
        if self._keeper is not None:
            self._keeper.join(timeout=self.settings.jobs.heartbeat_s * 2)
        # expire (not drop) our leases: another replica, or this one restarted, takes over at once
        leases.release(self.db, list(self._threads), self.holder)

    # ------------------------------------------------------------ rows

    def _row(self, job_id: str) -> Job:
        with self.db.read() as s:
            job = s.get(Job, job_id)
        if job is None:
            raise JobNotFound(job_id)
        return job

    def _update(self, job_id: str, **values: Any) -> None:
        update_job(self.db, job_id, **values)

    def get(self, job_id: str) -> dict[str, Any]:
        job = self._row(job_id)
        job_dir = Path(job.job_dir)
        tail = read_tail(job_dir / "train.log", self.settings.jobs.log_tail_lines)
        return job_dict(job, read_progress(job_dir / PROGRESS_FILE), tail)

    def list(self, limit: int) -> list[dict[str, Any]]:
        with self.db.read() as s:
            ids: Sequence[str] = s.scalars(select(Job.id).order_by(Job.created_at.desc()).limit(limit)).all()
        return [self.get(i) for i in ids]
