"""The promotion gate: a new model replaces the current one only if it is not worse.

Both bundles are scored on the same statements: the held-out gate documents
(`training.data.split_holdout`) of the snapshot the candidate was trained from. No model
ever trains on those documents, so the comparison is fair to both, and because it uses the
newest snapshot, the yardstick grows with the data. The candidate is promoted when
`candidate >= current - tolerance` on `gate.metric`; otherwise it stays in the registry,
rejected with the reason recorded. Without a current model there is nothing to protect,
so the candidate is promoted. Without held-out statements nothing can be judged, so the
candidate is not promoted automatically (an operator can still promote it by hand).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from training.annotations import Annotation
from training.bundle import Bundle, BundleError, load_bundle
from training.data import split_holdout
from service.settings import Settings


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    reason: str
    metric: str
    tolerance: float
    candidate_version: str
    current_version: str | None
    candidate_score: float | None = None
    current_score: float | None = None
    n_heldout: int = 0
    candidate_metrics: dict[str, Any] = field(default_factory=dict)
    current_metrics: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def evaluate(bundle: Bundle, annotations: Sequence[Annotation], settings: Settings) -> dict[str, Any]:
    """Metrics of a bundle on annotations: the same yardstick as `stance evaluate`."""
    from training.evaluate import evaluate_bundle

    return evaluate_bundle(bundle, list(annotations), settings)


def compare(metric: str, tolerance: float, candidate: float, current: float) -> tuple[bool, str]:
    """The rule, on its own so it is obvious and testable."""
    if candidate >= current - tolerance:
        return True, (f"candidate {metric} {candidate:.4f} >= current {current:.4f} - tolerance "
                      f"{tolerance:g}")
    return False, (f"candidate {metric} {candidate:.4f} < current {current:.4f} - tolerance "
                   f"{tolerance:g}; kept as a candidate")


def judge(
    candidate_path: Path,
    current_path: Path | None,
    snapshot: Sequence[Annotation],
    settings: Settings,
) -> GateDecision:
    """Evaluate candidate and current bundle on the held-out statements of `snapshot`."""
    gate, tr = settings.gate, settings.training
    _, held = split_holdout(snapshot, tr.holdout_fraction, tr.holdout_salt)
    candidate = load_bundle(candidate_path, settings.inference)
    base = dict(metric=gate.metric, tolerance=gate.tolerance, candidate_version=candidate.version,
                n_heldout=len(held))
    current: Bundle | None = None
    if current_path is not None:
        try:
            current = load_bundle(current_path, settings.inference)
        except BundleError as exc:
            return GateDecision(False, f"current bundle cannot be loaded ({exc}); promote by hand",
                                current_version=current_path.name, **base)
    if current is None:
        return GateDecision(True, "no current model; the first model is promoted", current_version=None, **base)
    if not held:
        return GateDecision(False, "no held-out gate statements in the snapshot; cannot compare",
                            current_version=current.version, **base)
    cand_m, cur_m = evaluate(candidate, held, settings), evaluate(current, held, settings)
    c, p = float(cand_m[gate.metric]), float(cur_m[gate.metric])
    ok, reason = compare(gate.metric, gate.tolerance, c, p)
    return GateDecision(ok, reason, current_version=current.version, candidate_score=c, current_score=p,
                        candidate_metrics=cand_m, current_metrics=cur_m, **base)
