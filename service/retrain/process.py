"""The training subprocess of a retrain, seen from the service: its private files, its
log tail and result line, whether it is alive (pid reuse included) and how it is stopped."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import psutil

_PRIVATE_FILE = 0o600  # job folders hold the training data snapshot
_LOG_READ_BYTES = 1 << 16  # enough for any tail we show
_KILL_GRACE_S = 5.0


def private_file(path: Path) -> Path:
    """Create `path` empty, readable by the owner only (before anything is written to it)."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, _PRIVATE_FILE))
    os.chmod(path, _PRIVATE_FILE)
    return path


def read_tail(path: Path, lines: int) -> list[str]:
    """Last lines of a log; a tqdm line rewritten with \\r shows its latest state only."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - _LOG_READ_BYTES))
            text = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return []
    out = [line.rsplit("\r", 1)[-1] if "\r" in line.rstrip("\r") else line.rstrip("\r") for line in text.split("\n")]
    return [line for line in out if line.strip()][-lines:]


def result_line(stdout: Path) -> dict[str, Any] | None:
    """Training's last stdout line: {"version", "path", "metrics"}."""
    for line in reversed(read_tail(stdout, 5)):
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if isinstance(data, dict) and data.get("version"):
            return data
    return None


def alive(pid: int | None, started: float | None) -> bool:
    if not pid:
        return False
    try:
        proc = psutil.Process(pid)
        if started is not None and abs(proc.create_time() - started) > 1.0:
            return False  # the pid was reused by another process
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def kill_group(pid: int) -> None:
    """Stop the training process group (training may have workers): TERM, then KILL."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + _KILL_GRACE_S
        while time.monotonic() < deadline:
            if not alive(pid, None):
                return
            time.sleep(0.1)
