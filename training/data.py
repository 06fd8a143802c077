"""Datasets and splits grouped by source document, so no document straddles a split.

Two splits matter:
- the *held-out gate set*: a stable fraction of source documents (chosen by hashing the
  source id with a salt) that no model ever trains on. New documents fall in or out of it
  by the same rule, so it grows with the data but never leaks: the promotion gate compares
  models on it, and metrics.json reports it as the held-out figure.
- *grouped k-fold* over the remaining documents, for out-of-fold thresholds and the CV
  estimate of quality on unseen articles.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from training.annotations import Annotation
from training.labels import encode


@dataclass(frozen=True)
class Fold:
    train: np.ndarray  # indices
    valid: np.ndarray


def is_held_out(source: str, fraction: float, salt: str) -> bool:
    if fraction <= 0:
        return False
    digest = hashlib.sha256(f"{salt}:{source}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def split_holdout(
    annotations: Sequence[Annotation], fraction: float, salt: str
) -> tuple[list[Annotation], list[Annotation]]:
    """(train, held_out) by source document."""
    train, held = [], []
    for ann in annotations:
        (held if is_held_out(ann.source, fraction, salt) else train).append(ann)
    return train, held


def _strata(y: np.ndarray) -> np.ndarray:
    """One stratum per statement for StratifiedGroupKFold: its rarest label, or none."""
    freq = y.sum(axis=0)
    strata = np.full(len(y), y.shape[1])  # none
    for i, row in enumerate(y):
        on = np.flatnonzero(row)
        if on.size:
            strata[i] = on[np.argmin(freq[on])]
    return strata


def folds_from_columns(groups: Sequence[str], y: np.ndarray, n_folds: int, seed: int) -> list[Fold]:
    """k folds with whole documents (`groups`) on one side; label mix (multi-hot `y`)
    balanced across folds. The one fold rule: annotations and `datasets` columns both use it."""
    groups = np.asarray(groups)
    n_groups = len(set(groups.tolist()))
    if n_groups < n_folds:
        raise ValueError(f"grouped {n_folds}-fold CV needs at least {n_folds} source documents; got {n_groups}")
    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    return [Fold(train=tr, valid=va) for tr, va in splitter.split(np.zeros(len(groups)), _strata(y), groups)]


def grouped_folds(annotations: Sequence[Annotation], n_folds: int, seed: int, schema: Sequence[str]) -> list[Fold]:
    """k folds with whole documents on one side; label mix balanced across folds."""
    y = encode([a.labels for a in annotations], schema)
    return folds_from_columns([a.source for a in annotations], y, n_folds, seed)


def texts_and_targets(annotations: Sequence[Annotation], schema: Sequence[str]) -> tuple[list[str], np.ndarray]:
    return [a.text for a in annotations], encode([a.labels for a in annotations], schema)
