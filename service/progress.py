"""A training job's log tail -> phase, percent and ETA, for the console's progress bar.

Training reports through tqdm bars (`desc: 45%|####  | 30/66 [00:12<00:15, 2.4it/s]`),
nested ones (folds outside, optimizer steps inside) and plain lines between them
(`final model on all 158 training statements`).
Parsing here (not in the browser) keeps one tested reading of the log for every client.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

_BAR = re.compile(
    r"^(?P<desc>.*?):?\s*(?P<pct>\d{1,3})%\|[^|]*\|\s*(?P<n>[\d.]+[kM]?)/(?P<total>[\d.]+[kM]?)"
    r"(?:\s*\[(?P<elapsed>[\d:]+)<(?P<eta>[\d:?]+)[^\]]*\])?"
)
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")  # tqdm moves the cursor between nested bars
_NOT_A_PHASE = re.compile(r"^\s*(\{|\[|warning|warn|/|File |Traceback)", re.IGNORECASE)
_MAX_PHASE_CHARS = 120


def _seconds(clock: str | None) -> int | None:
    """'01:02:03' / '02:03' -> seconds; '?' or missing -> None."""
    if not clock or "?" in clock:
        return None
    total = 0
    for part in clock.split(":"):
        if not part.isdigit():
            return None
        total = total * 60 + int(part)
    return total


def _bar(line: str) -> re.Match[str] | None:
    return _BAR.search(line)


def parse_progress(tail: Sequence[str]) -> dict[str, Any]:
    """{"phase", "percent", "eta_s", "step", "total"} from the last log lines (None when unknown).

    The phase is the most recent of: an unfinished bar with a description (an outer loop,
    e.g. the cross-validation folds) or a plain message line. With a plain line as the
    phase, percent and ETA come from the latest bar after it (the steps of that phase)."""
    out: dict[str, Any] = {"phase": None, "percent": None, "eta_s": None, "step": None, "total": None}
    lines = [_ANSI.sub("", line).strip() for line in tail]
    latest_bar: re.Match[str] | None = None
    for line in reversed(lines):
        if not line:
            continue
        match = _bar(line)
        if match is None:
            if _NOT_A_PHASE.match(line):
                continue
            out["phase"] = line[:_MAX_PHASE_CHARS]
            break
        latest_bar = latest_bar or match
        desc = match["desc"].strip().rstrip(":").strip()
        if desc and int(match["pct"]) < 100:
            out["phase"] = desc[:_MAX_PHASE_CHARS]
            latest_bar = match
            break
    if latest_bar is not None:
        out["percent"] = min(100, int(latest_bar["pct"]))
        out["eta_s"] = _seconds(latest_bar["eta"])
        out["step"], out["total"] = latest_bar["n"], latest_bar["total"]
    return out
