"""Promotion, rollback and the registry view (versions + status), shared by API, jobs and CLI.

Order of a promotion: load and verify the bundle first (a broken bundle fails here and
nothing changes), then move the registry's CURRENT pointer (atomic rename, so a restart
comes back with this version), then hot-swap the running scorer (in-flight requests finish
on the old bundle). Promotions are serialised by a lock so two cannot interleave.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, Protocol

from sqlalchemy import select

from service.settings import Settings
from service.store.engine import Database, open_database
from service.store.tables import ModelStatus
from training.bundle import ONNX_FILE, Bundle, BundleError
from training.registry import Registry
from training.runtimes import RUNTIMES, runtime_files

ROLLBACK = "rollback"
CANDIDATE, PROMOTED, REJECTED, ROLLED_BACK = "candidate", "promoted", "rejected", "rolled_back"


class Swappable(Protocol):
    def swap(self, bundle: Bundle) -> Any: ...


log = logging.getLogger("stance.promotion")


class PromotionError(ValueError):
    """The requested promotion or rollback is impossible; the message says why."""


class UnknownVersion(PromotionError):
    """No bundle of that version in the registry (the API answers 404)."""


def load_error(version: str, exc: Exception) -> PromotionError:
    """A bundle that verifies but cannot be loaded (e.g. a garbage ONNX file whose
    manifest was rewritten to match): name the version and the file."""
    text = str(exc)
    named = [f for n in RUNTIMES for f in runtime_files(n) if f in text]  # any runtime's file (OpenVINO too)
    culprit = named[0] if named else ONNX_FILE if "onnx" in type(exc).__module__.lower() else None
    where = f"its {culprit} " if culprit else ""
    return PromotionError(f"model {version} cannot be loaded: {where}failed with {type(exc).__name__}: {text}")


_lock = threading.Lock()


class ModelAdmin:
    def __init__(
        self,
        settings: Settings,
        scorer: Callable[[], Swappable | None] = lambda: None,
        db: Database | None = None,
    ) -> None:
        self.settings = settings
        self.registry = Registry(settings.paths.models_dir)
        self.db = db or open_database(settings)
        self._scorer = scorer
        self.applied: str | None = self.registry.current()  # the version the scorer was given
        self.bad_pointer: str | None = None  # a CURRENT that failed to load, reported once

    # ------------------------------------------------------------ status

    def set_status(
        self, version: str, status: str, reason: str = "", job_id: str | None = None, gate: dict[str, Any] | None = None
    ) -> None:
        with self.db.write() as s:
            row = s.get(ModelStatus, version)
            if row is None:
                row = ModelStatus(version=version, status=status)
                s.add(row)
            row.status, row.reason = status, reason
            if job_id is not None:
                row.job_id = job_id
            if gate is not None:
                row.gate = gate

    def statuses(self) -> dict[str, ModelStatus]:
        with self.db.read() as s:
            return {row.version: row for row in s.scalars(select(ModelStatus))}

    def list(self) -> dict[str, Any]:
        """Every complete bundle with its metrics, data, status and which one is current."""
        current = self.registry.current()
        known = self.statuses()
        ever_current = {h["current"] for h in self.registry.history()}
        models = []
        for version in self.registry.versions():
            try:
                info = self.registry.describe(version)
            except BundleError as exc:
                info = {"version": version, "error": str(exc)}
            row = known.get(version)
            if row is not None:
                info.update(status=row.status, reason=row.reason, job_id=row.job_id, gate=row.gate)
            else:
                info.update(
                    status=PROMOTED if version in ever_current or version == current else CANDIDATE,
                    reason="",
                    job_id=None,
                    gate=None,
                )
            info["current"] = version == current
            models.append(info)
        return {"current": current, "models": models, "history": self.registry.history()}

    # ------------------------------------------------------------ moves

    def load(self, version: str) -> Bundle:
        """Load a version the way the service serves it (its backend and thread settings).
        UnknownVersion when there is no such bundle, PromotionError when it is broken."""
        from service.scoring.bundle_loader import load_served_bundle

        if version not in self.registry.versions():
            raise UnknownVersion(f"unknown model version {version[:100]!r}")
        try:
            return load_served_bundle(self.settings, version)
        except BundleError as exc:
            raise PromotionError(str(exc)) from None
        except Exception as exc:  # noqa: BLE001 - any loader failure means "broken bundle"
            raise load_error(version, exc) from None

    def promote(
        self,
        version: str,
        reason: str = "manual promotion",
        bundle: Bundle | None = None,
        job_id: str | None = None,
        gate: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """`bundle`: the version already loaded by the caller (a retrain's gate judged that
        very object), so it is not loaded and hashed again; `job_id` and `gate` go on its status."""
        with _lock:
            return self._switch(version, reason, PROMOTED, bundle, job_id, gate)

    def _switch(
        self,
        version: str,
        reason: str,
        status: str,
        bundle: Bundle | None = None,
        job_id: str | None = None,
        gate: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        previous = self.registry.current()
        if bundle is None:
            bundle = self.load(version)  # verifies and loads; fails before anything changes
        self.registry.set_current(version, reason, verified=True)
        self._serve(version, bundle)
        self.set_status(version, PROMOTED, reason, job_id=job_id, gate=gate)
        if status == ROLLED_BACK and previous and previous != version:
            self.set_status(previous, ROLLED_BACK, f"rolled back to {version}")
        return {"current": version, "previous": previous, "reason": reason}

    def previous_version(self) -> str | None:
        """Replay the CURRENT history as a stack (promotions push, rollbacks pop) so
        repeated rollbacks walk back A <- B <- C instead of toggling."""
        stack: list[str] = []
        for entry in self.registry.history():
            version = entry["current"]
            if str(entry.get("reason", "")).startswith(ROLLBACK) and version in stack:
                del stack[len(stack) - 1 - stack[::-1].index(version) + 1 :]
            elif not stack or stack[-1] != version:
                stack.append(version)
        current = self.registry.current()
        if stack and stack[-1] != current and current is not None:
            stack.append(current)
        existing = set(self.registry.versions())
        for version in reversed(stack[:-1]):
            if version in existing and version != current:
                return version
        return None

    def rollback(self, version: str | None = None) -> dict[str, Any]:
        with _lock:
            current = self.registry.current()
            target = version or self.previous_version()
            if target is None:
                raise PromotionError("no earlier version to roll back to")
            if target == current:
                raise PromotionError(f"{target} is already the current version")
            return self._switch(target, f"{ROLLBACK} from {current} to {target}", ROLLED_BACK)

    def follow_pointer(self) -> str | None:
        """Swap to CURRENT if someone else (the CLI, another replica) moved it; returns the
        version swapped to, or None when nothing changed."""
        with _lock:
            current = self.registry.current()
            if current is None or current == self.applied or current == self.bad_pointer:
                return None
            try:
                bundle = self.load(current)
            except PromotionError as exc:  # once per bad pointer, not every poll
                self.bad_pointer = current
                log.error(
                    "registry CURRENT names %s, which cannot be served (%s); still serving %s",
                    current,
                    exc,
                    self.applied,
                )
                return None
            self.bad_pointer = None
            self._serve(current, bundle)
            return current

    def _serve(self, version: str, bundle: Bundle) -> None:
        """The one load-and-swap step (after a promotion, a rollback, or CURRENT moved by
        someone else): the scorer swaps without dropping a request."""
        scorer = self._scorer()
        if scorer is not None:
            scorer.swap(bundle)
        self.applied = version
