"""Grouped cross-validation shared by the transformer, the baselines and the experiments.

Thresholds are *cross-fitted*: the predictions for fold k use thresholds chosen on the
out-of-fold probabilities of the other folds only, so the CV figures are not flattered
by tuning thresholds on the very statements they are scored on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from training.annotations import Annotation
from training.data import Fold, grouped_folds, texts_and_targets
from training.metrics import full_metrics
from training.policy import cross_fit
from training.settings import Settings

# (train_texts, train_targets, valid_texts, fold_number) -> valid probabilities
FitPredict = Callable[[list[str], np.ndarray, list[str], int], np.ndarray]


@dataclass
class CVOutcome:
    probs: np.ndarray  # out-of-fold raw probabilities
    preds: np.ndarray  # 0/1 decisions of the configured policy, cross-fitted
    fold_of: np.ndarray
    metrics: dict[str, Any]


def out_of_fold(
    texts: Sequence[str], targets: np.ndarray, folds: Sequence[Fold], fit_predict: FitPredict, desc: str
) -> tuple[np.ndarray, np.ndarray]:
    probs = np.zeros(targets.shape, dtype=np.float32)
    fold_of = np.zeros(len(texts), dtype=int)
    for k, fold in enumerate(tqdm(folds, desc=desc, unit="fold", leave=False)):
        tr = [texts[i] for i in fold.train]
        va = [texts[i] for i in fold.valid]
        probs[fold.valid] = fit_predict(tr, targets[fold.train], va, k)
        fold_of[fold.valid] = k
    return probs, fold_of


def cross_fitted(
    targets: np.ndarray, probs: np.ndarray, fold_of: np.ndarray, settings: Settings, binary: bool = False
) -> np.ndarray:
    if binary:  # rules output 0/1 already
        return (probs >= 0.5).astype(int)
    return cross_fit(settings.thresholds.policy, targets, probs, fold_of, settings.labels, settings.thresholds)[1]


def outcome(
    annotations: Sequence[Annotation], probs: np.ndarray, fold_of: np.ndarray, settings: Settings, binary: bool = False
) -> CVOutcome:
    """Out-of-fold probabilities -> the configured policy's cross-fitted decisions and metrics."""
    _, targets = texts_and_targets(annotations, settings.labels)
    preds = cross_fitted(targets, probs, fold_of, settings, binary)
    metrics = full_metrics(targets, preds, settings.labels, settings.evaluation, groups=[a.source for a in annotations])
    return CVOutcome(probs=probs, preds=preds, fold_of=fold_of, metrics=metrics)


def run_cv(
    annotations: Sequence[Annotation],
    fit_predict: FitPredict,
    settings: Settings,
    desc: str,
    binary: bool = False,
    folds: Sequence[Fold] | None = None,
) -> CVOutcome:
    texts, targets = texts_and_targets(annotations, settings.labels)
    folds = folds or grouped_folds(annotations, settings.training.n_folds, settings.training.seed, settings.labels)
    probs, fold_of = out_of_fold(texts, targets, folds, fit_predict, desc)
    return outcome(annotations, probs, fold_of, settings, binary)
