"""Decision policies: how a label's sigmoid output becomes a calibrated score and a yes/no.

Every policy ships the same two things in the bundle: a per-label Platt calibration of the
logit (so the reported scores are probabilities, whatever the policy) and a per-label
threshold on that calibrated score. They differ in where the threshold comes from:

- `fixed`: 0.5 on the raw sigmoid (no tuning at all);
- `tuned`: the raw threshold that maximises F-beta out of fold;
- `shrunk`: the tuned threshold pulled halfway (`shrink`) toward 0.5, tuning's variance cut;
- `calibrated`: 0.5 on the calibrated probability (the Bayes decision for accuracy).

Calibration is monotone per label, so a threshold on the raw scale maps to exactly one on
the calibrated scale and the decisions do not change. Which policy ships is chosen by
grouped CV (`stance experiments`): every policy is fitted on the other folds' out-of-fold
scores and judged on the held-out fold.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from sklearn.linear_model import LogisticRegression

from training.metrics import choose_thresholds
from training.settings import ThresholdSettings

PolicyName = Literal["fixed", "tuned", "shrunk", "calibrated"]
POLICIES: tuple[PolicyName, ...] = ("fixed", "tuned", "shrunk", "calibrated")
_EPS = 1e-6


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, _EPS, 1 - _EPS)
    return np.log(p / (1 - p))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


@dataclass(frozen=True)
class Decision:
    """Per label: calibration (a, b) of the logit and a threshold on the calibrated score."""

    labels: tuple[str, ...]
    calibration: dict[str, tuple[float, float]]
    thresholds: dict[str, float]

    def scores(self, probs: np.ndarray) -> np.ndarray:
        return calibrate(probs, self.calibration, self.labels)

    def decide(self, probs: np.ndarray) -> np.ndarray:
        cut = np.array([self.thresholds[n] for n in self.labels])
        return (self.scores(probs) >= cut).astype(int)


def calibrate(probs: np.ndarray, calibration: dict[str, tuple[float, float]], labels: Sequence[str]) -> np.ndarray:
    """Raw sigmoid outputs -> calibrated probabilities (identity for a label with no entry)."""
    if not calibration:
        return probs
    z = logit(probs)
    out = probs.astype(np.float64).copy()
    for j, name in enumerate(labels):
        if name in calibration:
            a, b = calibration[name]
            out[:, j] = _sigmoid(a * z[:, j] + b)
    return out.astype(np.float32)


def fit_platt(y: np.ndarray, probs: np.ndarray, labels: Sequence[str]) -> dict[str, tuple[float, float]]:
    """Per-label logistic regression of the gold label on the logit (Platt scaling). A label
    with one class only, or a fit that would invert the ranking, keeps the identity."""
    out: dict[str, tuple[float, float]] = {}
    z = logit(probs)
    for j, name in enumerate(labels):
        if len(np.unique(y[:, j])) < 2:
            out[name] = (1.0, 0.0)
            continue
        lr = LogisticRegression(C=1e4, max_iter=1000).fit(z[:, j : j + 1], y[:, j].astype(int))
        a, b = float(lr.coef_[0, 0]), float(lr.intercept_[0])
        out[name] = (round(a, 6), round(b, 6)) if a > 0 else (1.0, 0.0)
    return out


def fit_policy(
    name: PolicyName, y: np.ndarray, probs: np.ndarray, labels: Sequence[str], cfg: ThresholdSettings
) -> Decision:
    """The policy fitted on (gold, out-of-fold raw probabilities)."""
    labels = tuple(labels)
    calibration = fit_platt(y, probs, labels)
    if name == "calibrated":
        return Decision(labels, calibration, {n: 0.5 for n in labels})
    if name == "fixed":
        raw = {n: 0.5 for n in labels}
    else:
        raw = choose_thresholds(y, probs, labels, cfg)
        if name == "shrunk":
            raw = {n: 0.5 + cfg.shrink * (t - 0.5) for n, t in raw.items()}
    cut = calibrate(np.array([[raw[n] for n in labels]], dtype=np.float32), calibration, labels)[0]
    return Decision(labels, calibration, {n: round(float(c), 6) for n, c in zip(labels, cut, strict=False)})


def cross_fit(
    name: PolicyName,
    y: np.ndarray,
    probs: np.ndarray,
    fold_of: np.ndarray,
    labels: Sequence[str],
    cfg: ThresholdSettings,
) -> tuple[np.ndarray, np.ndarray]:
    """(calibrated scores, decisions) where fold k's come from the policy fitted on the other folds."""
    scores = np.zeros(probs.shape, dtype=np.float32)
    preds = np.zeros(probs.shape, dtype=int)
    for k in np.unique(fold_of):
        other, here = fold_of != k, fold_of == k
        decision = fit_policy(name, y[other], probs[other], labels, cfg)
        scores[here] = decision.scores(probs[here])
        preds[here] = decision.decide(probs[here])
    return scores, preds


def expected_calibration_error(y: np.ndarray, scores: np.ndarray, bins: int) -> float:
    """ECE of one label: mean |observed rate - mean score| over equal-width bins, weighted by size."""
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(scores, edges[1:-1]), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        sel = which == b
        if sel.any():
            total += sel.mean() * abs(y[sel].mean() - scores[sel].mean())
    return float(total)


def reliability(y: np.ndarray, scores: np.ndarray, bins: int) -> list[dict[str, float]]:
    """Per bin: mean score, observed rate, count (the points of a reliability diagram)."""
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(scores, edges[1:-1]), 0, bins - 1)
    out = []
    for b in range(bins):
        sel = which == b
        if sel.any():
            out.append({"score": float(scores[sel].mean()), "rate": float(y[sel].mean()), "n": int(sel.sum())})
    return out


def choose_policy(table: dict[str, dict], within: float) -> tuple[str, str]:
    """The guide's rule for picking among policies measured on the same folds: a false stance
    costs more than a missed one, so among the policies whose CV macro-F1 is within `within`
    of the best, take the one that gives the fewest `none` statements of whole articles a
    stance (then the fewest `none` statements overall)."""
    best = max(m["macro_f1"] for m in table.values())
    close = [n for n, m in table.items() if m["macro_f1"] >= best - within]

    def false_stances(name: str) -> tuple[float, float]:
        m = table[name]
        art = m.get("article_none_false_stance_rate")
        return (art if art is not None else 1.0, m.get("none_false_stance_rate") or 1.0)

    pick = min(close, key=false_stances)
    m = table[pick]
    return pick, (
        f"`{pick}`: macro-F1 {m['macro_f1']:.3f} (best {best:.3f}, within {within}) with the fewest "
        f"false stances on none statements of whole articles ({false_stances(pick)[0]:.1%})"
    )
