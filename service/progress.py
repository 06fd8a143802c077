"""A training job's log tail -> phase, percent and ETA, for the console's progress bar.

Training reports through tqdm bars (`desc: 45%|####  | 30/66 [00:12<00:15, 2.4it/s]`) and
plain lines between them (`cross-validation (3 folds) ...`). The last bar gives percent
and ETA; the phase is the bar's own description, else the last plain line before it.
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


def parse_progress(tail: Sequence[str]) -> dict[str, Any]:
    """{"phase", "percent", "eta_s", "step", "total"} from the last log lines (None when unknown)."""
    out: dict[str, Any] = {"phase": None, "percent": None, "eta_s": None, "step": None, "total": None}
    bar_at = None
    for i in range(len(tail) - 1, -1, -1):
        match = _BAR.search(tail[i].strip())
        if match:
            bar_at = i
            out["percent"] = min(100, int(match["pct"]))
            out["eta_s"] = _seconds(match["eta"])
            out["step"], out["total"] = match["n"], match["total"]
            desc = match["desc"].strip().rstrip(":").strip()
            if desc:
                out["phase"] = desc[:_MAX_PHASE_CHARS]
            break
    if out["phase"] is None:
        stop = bar_at if bar_at is not None else len(tail)
        for line in reversed(tail[:stop]):
            text = line.strip()
            if text and not _BAR.search(text) and not _NOT_A_PHASE.match(text):
                out["phase"] = text[:_MAX_PHASE_CHARS]
                break
    return out
