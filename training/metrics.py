"""Metrics and thresholds for multi-label stance: per-label P/R/F1, micro/macro F1 with
bootstrap intervals, and per-label thresholds chosen on out-of-fold probabilities.

The bootstrap resamples *source documents* when they are known (statements of one article
are not independent), so the intervals are honest about how few documents there are.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import f1_score, precision_recall_curve, precision_recall_fscore_support

from training.settings import EvaluationSettings, ThresholdSettings


def choose_thresholds(
    y_true: np.ndarray, probs: np.ndarray, labels: Sequence[str], cfg: ThresholdSettings
) -> dict[str, float]:
    """Per label, the threshold in [min, max] maximising F-beta on (y_true, probs)."""
    out: dict[str, float] = {}
    b2 = cfg.beta**2
    for j, name in enumerate(labels):
        if y_true[:, j].sum() == 0:
            out[name] = cfg.fallback
            continue
        precision, recall, cuts = precision_recall_curve(y_true[:, j], probs[:, j])
        precision, recall = precision[:-1], recall[:-1]
        fbeta = (1 + b2) * precision * recall / np.maximum(b2 * precision + recall, 1e-12)
        ok = (cuts >= cfg.min) & (cuts <= cfg.max)
        if not ok.any():
            out[name] = cfg.fallback
            continue
        best = np.flatnonzero(ok)[np.argmax(fbeta[ok])]
        out[name] = float(round(cuts[best], 4))
    return out


def apply_thresholds(probs: np.ndarray, thresholds: dict[str, float], labels: Sequence[str]) -> np.ndarray:
    return (probs >= np.array([thresholds[n] for n in labels])).astype(int)


def false_stance_rate(y_true: np.ndarray, y_pred: np.ndarray, mask: np.ndarray | None = None) -> float | None:
    """Share of `none` statements (within `mask`) given at least one stance: the error analysts
    see most in a feed, where 70-85% of statements are none. None if there is no such statement."""
    none = y_true.sum(axis=1) == 0
    if mask is not None:
        none &= mask
    if not none.any():
        return None
    return float((y_pred[none].sum(axis=1) > 0).mean())


def point_metrics(y_true: np.ndarray, y_pred: np.ndarray, labels: Sequence[str]) -> dict[str, Any]:
    p, r, f, support = precision_recall_fscore_support(y_true, y_pred, average=None, zero_division=0)
    return {
        "none_false_stance_rate": false_stance_rate(y_true, y_pred),
        "micro_f1": float(f1_score(y_true, y_pred, average="micro", zero_division=0)),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
        "per_label": {
            name: {"precision": float(p[j]), "recall": float(r[j]), "f1": float(f[j]), "support": int(support[j])}
            for j, name in enumerate(labels)
        },
        "n": int(len(y_true)),
    }


def bootstrap_ci(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    groups: Sequence[str] | None,
    cfg: EvaluationSettings,
    seed: int = 0,
) -> dict[str, list[float]]:
    """Percentile intervals of micro/macro F1 (and per-label F1) under resampling."""
    rng = np.random.default_rng(seed)
    units = _units(len(y_true), groups)
    draws: dict[str, list[float]] = {"micro_f1": [], "macro_f1": []}
    per_label: list[np.ndarray] = []
    for _ in range(cfg.bootstrap_samples):
        pick = rng.integers(0, len(units), len(units))
        idx = np.concatenate([units[k] for k in pick])
        yt, yp = y_true[idx], y_pred[idx]
        draws["micro_f1"].append(f1_score(yt, yp, average="micro", zero_division=0))
        draws["macro_f1"].append(f1_score(yt, yp, average="macro", zero_division=0))
        per_label.append(f1_score(yt, yp, average=None, zero_division=0))
    lo, hi = (1 - cfg.confidence) / 2 * 100, (1 + cfg.confidence) / 2 * 100
    out = {k: [float(np.percentile(v, lo)), float(np.percentile(v, hi))] for k, v in draws.items()}
    stacked = np.stack(per_label)
    out["per_label_f1"] = [
        [float(np.percentile(stacked[:, j], lo)), float(np.percentile(stacked[:, j], hi))]
        for j in range(stacked.shape[1])
    ]
    return out


def paired_bootstrap_delta(
    y_true: np.ndarray,
    pred_a: np.ndarray,
    pred_b: np.ndarray,
    groups: Sequence[str] | None,
    cfg: EvaluationSettings,
    metric: str = "macro",
    seed: int = 0,
) -> list[float]:
    """Percentile interval of F1(a) - F1(b) when both are scored on the same resampled
    documents: the noise of the exam itself cancels, so a small real difference shows."""
    rng = np.random.default_rng(seed)
    units = _units(len(y_true), groups)
    deltas = []
    for _ in range(cfg.bootstrap_samples):
        idx = np.concatenate([units[k] for k in rng.integers(0, len(units), len(units))])
        deltas.append(
            f1_score(y_true[idx], pred_a[idx], average=metric, zero_division=0)
            - f1_score(y_true[idx], pred_b[idx], average=metric, zero_division=0)
        )
    lo, hi = (1 - cfg.confidence) / 2 * 100, (1 + cfg.confidence) / 2 * 100
    return [float(np.percentile(deltas, lo)), float(np.percentile(deltas, hi))]


def _units(n: int, groups: Sequence[str] | None) -> list[np.ndarray]:
    """Resampling units: one per source document (or per statement without groups)."""
    if groups is None:
        return [np.array([i]) for i in range(n)]
    by_group: dict[str, list[int]] = {}
    for i, g in enumerate(groups):
        by_group.setdefault(g, []).append(i)
    return [np.array(v) for v in by_group.values()]


def full_metrics(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    labels: Sequence[str],
    cfg: EvaluationSettings,
    groups: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Point metrics plus bootstrap intervals, in the shape metrics.json and the card use."""
    out = point_metrics(y_true, y_pred, labels)
    ci = bootstrap_ci(y_true, y_pred, groups, cfg)
    out["micro_f1_ci"] = ci["micro_f1"]
    out["macro_f1_ci"] = ci["macro_f1"]
    for j, name in enumerate(labels):
        out["per_label"][name]["f1_ci"] = ci["per_label_f1"][j]
    out["confidence"] = cfg.confidence
    out["bootstrap_unit"] = "source document" if groups is not None else "statement"
    return out
