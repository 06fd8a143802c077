"""Threshold selection and metrics."""

import numpy as np
import pytest

from tests.support import project_settings
from training.crossval import cross_fitted
from training.metrics import apply_thresholds, choose_thresholds, full_metrics

LABELS = ["a", "b"]


def test_threshold_separates_perfectly_separable_scores():
    cfg = project_settings().thresholds
    y = np.array([[1, 0], [1, 0], [0, 1], [0, 0], [0, 0]])
    p = np.array([[0.8, 0.1], [0.7, 0.2], [0.3, 0.6], [0.2, 0.3], [0.1, 0.4]])
    cut = choose_thresholds(y, p, LABELS, cfg)
    assert 0.3 < cut["a"] <= 0.7 and 0.4 < cut["b"] <= 0.6
    assert (apply_thresholds(p, cut, LABELS) == y).all()


def test_threshold_respects_bounds_and_fallback():
    cfg = project_settings().thresholds
    y = np.array([[1, 0], [0, 0]])
    p = np.array([[0.99, 0.2], [0.98, 0.1]])  # best cut for 'a' is above cfg.max
    cut = choose_thresholds(y, p, LABELS, cfg)
    assert cfg.min <= cut["a"] <= cfg.max
    assert cut["b"] == cfg.fallback  # no positive example of 'b'


def test_cross_fitted_thresholds_do_not_use_the_scored_fold():
    settings = project_settings().with_overrides(thresholds={"policy": "tuned"})
    labels = list(settings.labels)
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, size=(40, len(labels)))
    p = rng.random((40, len(labels)))
    fold_of = np.repeat([0, 1], 20)
    preds = cross_fitted(y, p, fold_of, settings)
    cut_from_1 = choose_thresholds(y[fold_of == 1], p[fold_of == 1], labels, settings.thresholds)
    assert (preds[fold_of == 0] == apply_thresholds(p[fold_of == 0], cut_from_1, labels)).all()


def test_full_metrics_point_values_and_interval():
    cfg = project_settings().evaluation
    y = np.array([[1, 0], [0, 1], [1, 1], [0, 0]] * 5)
    pred = np.array([[1, 0], [0, 0], [1, 1], [0, 0]] * 5)
    m = full_metrics(y, pred, LABELS, cfg, groups=[f"d{i // 4}" for i in range(20)])
    assert m["per_label"]["a"]["f1"] == pytest.approx(1.0)
    assert m["per_label"]["b"]["recall"] == pytest.approx(0.5)
    assert m["macro_f1"] == pytest.approx((1.0 + 2 / 3) / 2)
    lo, hi = m["macro_f1_ci"]
    assert lo <= m["macro_f1"] <= hi and m["bootstrap_unit"] == "source document"
