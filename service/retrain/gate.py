"""The promotion gate: a new model replaces the current one only if it is not worse.

Both bundles are scored on the same statements: the held-out gate documents
(`training.data.split_holdout`) of the snapshot the candidate was trained from. No model
ever trains on those documents, so the comparison is fair to both, and because it uses the
newest snapshot, the yardstick grows with the data.

The rule is honest about noise (`gate.rule: paired`): the two models' difference is
bootstrapped over the same resampled documents (a paired bootstrap, so the difficulty of
the exam cancels out), and the candidate is promoted unless it is worse beyond that noise:
the interval's upper end must be >= 0 *and* the point difference >= -tolerance (a guard
against a slow drift down through many "not significantly worse" steps). Otherwise it
stays in the registry, rejected with the reason recorded. Without a current model there is nothing to protect,
so the candidate is promoted. Without held-out statements nothing can be judged, so the
candidate is not promoted automatically (an operator can still promote it by hand).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from service.settings import GateSettings, Settings
from training.annotations import Annotation
from training.bundle import Bundle, BundleError, load_bundle
from training.data import split_holdout, texts_and_targets
from training.metrics import apply_thresholds, paired_bootstrap_delta


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
    n_heldout_sources: int = 0
    difference_ci: list[float] | None = None
    candidate_metrics: dict[str, Any] = field(default_factory=dict)
    current_metrics: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def evaluate(bundle: Bundle, annotations: Sequence[Annotation], settings: Settings) -> dict[str, Any]:
    """Metrics of a bundle on annotations: the same yardstick as `stance evaluate`."""
    from training.evaluate import evaluate_bundle

    return evaluate_bundle(bundle, list(annotations), settings)


def compare(gate: GateSettings, candidate: float, current: float, ci: list[float] | None = None) -> tuple[bool, str]:
    """The rule, on its own so it is obvious and testable."""
    metric, tol, delta = gate.metric, gate.tolerance, candidate - current
    head = f"candidate {metric} {candidate:.4f} vs current {current:.4f} ({delta:+.4f}"
    if gate.rule == "point" or ci is None:
        if candidate >= current - tol:
            return True, f"{head}) >= -tolerance {tol:g}"
        return False, f"{head}) < -tolerance {tol:g}; kept as a candidate"
    head += f", paired 95% CI [{ci[0]:+.4f}, {ci[1]:+.4f}])"
    if ci[1] < 0:
        return False, f"{head}: worse beyond noise (the whole interval is below 0); kept as a candidate"
    if delta < -tol:
        return False, f"{head}: within noise but the drop exceeds the tolerance {tol:g}; kept as a candidate"
    return True, f"{head}: not worse beyond noise and within the tolerance {tol:g}"


def judge(
    candidate: Bundle | Path,
    current_path: Path | None,
    snapshot: Sequence[Annotation],
    settings: Settings,
) -> GateDecision:
    """Evaluate candidate and current bundle on the held-out statements of `snapshot`.
    `candidate` is best the loaded bundle that will be served if it passes (a retrain
    loads it once for the gate and the promotion); a path is loaded here."""
    gate, tr = settings.gate, settings.training
    _, held = split_holdout(snapshot, tr.holdout_fraction, tr.holdout_salt)
    if isinstance(candidate, Path):
        candidate = load_bundle(candidate, settings.inference)
    base = dict(
        metric=gate.metric,
        tolerance=gate.tolerance,
        candidate_version=candidate.version,
        n_heldout=len(held),
        n_heldout_sources=len({a.source for a in held}),
    )
    current: Bundle | None = None
    if current_path is not None:
        try:
            current = load_bundle(current_path, settings.inference)
        except BundleError as exc:
            return GateDecision(
                False,
                f"current bundle cannot be loaded ({exc}); promote by hand",
                current_version=current_path.name,
                **base,
            )
    if current is None:
        return GateDecision(True, "no current model; the first model is promoted", current_version=None, **base)
    if not held:
        return GateDecision(
            False,
            "no held-out gate statements in the snapshot; cannot compare",
            current_version=current.version,
            **base,
        )
    cand_m, cur_m = evaluate(candidate, held, settings), evaluate(current, held, settings)
    c, p = float(cand_m[gate.metric]), float(cur_m[gate.metric])
    ci = paired_difference(candidate, current, held, settings)
    ok, reason = compare(gate, c, p, ci)
    return GateDecision(
        ok,
        reason,
        current_version=current.version,
        candidate_score=c,
        current_score=p,
        difference_ci=ci,
        candidate_metrics=cand_m,
        current_metrics=cur_m,
        **base,
    )


def paired_difference(
    candidate: Bundle, current: Bundle, held: Sequence[Annotation], settings: Settings
) -> list[float]:
    """Paired-bootstrap interval of candidate minus current, over the held-out documents."""
    texts, y = texts_and_targets(held, candidate.labels)
    preds = [apply_thresholds(b.predict_proba(texts), b.thresholds, b.labels) for b in (candidate, current)]
    average = "macro" if settings.gate.metric == "macro_f1" else "micro"
    return paired_bootstrap_delta(y, preds[0], preds[1], [a.source for a in held], settings.evaluation, average)
