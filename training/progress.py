"""Overall progress of a training run: phase, step k of n, percent and ETA.

`stance train` plans its fits up front (each CV fold, the final model) in optimizer steps,
counts steps as the Trainer makes them, and writes a small JSON snapshot after each step
(atomically) to the file named by `STANCE_PROGRESS_FILE` when set. A retrain job sets it,
so `GET /v1/jobs/{id}` and `stance jobs show` read where the run is without parsing logs.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROGRESS_ENV = "STANCE_PROGRESS_FILE"
_WRITE_EVERY_S = 1.0
# Work after the last fit (export, int8 check, plots), in fit-step equivalents per statement.
FINISH_STEPS_PER_1K = 20


def fit_steps(n_statements: int, batch_size: int, epochs: float) -> int:
    return max(1, math.ceil(n_statements / batch_size)) * max(1, math.ceil(epochs))


@dataclass
class Plan:
    """Phases in order with their size in optimizer steps."""

    phases: list[tuple[str, int]]
    done_steps: int = 0
    phase_index: int = -1
    phase_step: int = 0
    started: float = field(default_factory=time.monotonic)
    path: Path | None = field(
        default_factory=lambda: Path(os.environ[PROGRESS_ENV]) if os.environ.get(PROGRESS_ENV) else None
    )
    _last_write: float = 0.0

    @property
    def total(self) -> int:
        return sum(n for _, n in self.phases) or 1

    def start(self, phase: str) -> None:
        """Enter the next phase named `phase` (the previous one counts as finished)."""
        if 0 <= self.phase_index < len(self.phases):
            self.done_steps += self.phases[self.phase_index][1] - self.phase_step
        names = [name for name, _ in self.phases]
        self.phase_index = names.index(phase, max(self.phase_index, 0))
        self.phase_step = 0
        self.write(force=True)

    def step(self, n: int = 1) -> None:
        size = self.phases[self.phase_index][1]
        n = min(n, size - self.phase_step)
        self.phase_step += n
        self.done_steps += n
        self.write()

    def finish(self) -> None:
        self.done_steps = self.total
        self.phase_index = len(self.phases) - 1
        self.phase_step = self.phases[-1][1]
        self.write(force=True, state="done")

    def snapshot(self, state: str = "running") -> dict[str, Any]:
        elapsed = time.monotonic() - self.started
        fraction = min(1.0, self.done_steps / self.total)
        name, size = self.phases[self.phase_index] if self.phase_index >= 0 else ("starting", 0)
        return {
            "state": state,
            "phase": name,
            "phase_number": self.phase_index + 1,
            "phases": len(self.phases),
            "step": self.phase_step,
            "steps": size,
            "percent": round(100 * fraction, 1),
            "elapsed_s": round(elapsed, 1),
            "eta_s": round(elapsed * (1 - fraction) / fraction, 1) if fraction > 0.01 else None,
        }

    def write(self, force: bool = False, state: str = "running") -> None:
        now = time.monotonic()
        if self.path is None or (not force and now - self._last_write < _WRITE_EVERY_S):
            return
        self._last_write = now
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.snapshot(state)))
        os.replace(tmp, self.path)


def read_progress(path: Path) -> dict[str, Any] | None:
    """The last snapshot, or None if the run has not written one (yet)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
