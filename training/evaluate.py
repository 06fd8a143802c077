"""Score a bundle on any annotation file: per-label P/R/F1, micro/macro F1 with bootstrap
intervals (resampling source documents). Also the promotion gate's measuring stick."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from training.annotations import Annotation
from training.bundle import Bundle
from training.data import texts_and_targets
from training.metrics import apply_thresholds, full_metrics
from training.settings import Settings


def evaluate_bundle(bundle: Bundle, annotations: Sequence[Annotation], settings: Settings) -> dict[str, Any]:
    """Metrics of `bundle` (its own labels and thresholds) on `annotations`."""
    if not annotations:
        raise ValueError("no annotations to evaluate on")
    texts, targets = texts_and_targets(annotations, bundle.labels)
    preds = apply_thresholds(bundle.predict_proba(texts), bundle.thresholds, bundle.labels)
    out = full_metrics(targets, preds, bundle.labels, settings.evaluation, groups=[a.source for a in annotations])
    out["model_version"] = bundle.version
    out["backend"] = bundle.backend_name
    return out


def format_report(metrics: dict[str, Any]) -> str:
    lines = [
        f"model {metrics['model_version']} ({metrics['backend']}) on {metrics['n']} statements",
        f"macro-F1 {metrics['macro_f1']:.3f} [{metrics['macro_f1_ci'][0]:.3f}, {metrics['macro_f1_ci'][1]:.3f}]   "
        f"micro-F1 {metrics['micro_f1']:.3f} [{metrics['micro_f1_ci'][0]:.3f}, {metrics['micro_f1_ci'][1]:.3f}]   "
        f"({int(metrics['confidence'] * 100)}% bootstrap by {metrics['bootstrap_unit']})",
        f"{'label':<24}{'precision':>10}{'recall':>8}{'F1':>7}  {'F1 CI':<16}{'support':>8}",
    ]
    for name, m in metrics["per_label"].items():
        lo, hi = m["f1_ci"]
        lines.append(
            f"{name:<24}{m['precision']:>10.3f}{m['recall']:>8.3f}{m['f1']:>7.3f}  "
            f"[{lo:.3f}, {hi:.3f}]  {m['support']:>6}"
        )
    return "\n".join(lines)
