"""The promotion gate: the rule, and judging real (tiny) bundles on the held-out documents."""

from __future__ import annotations

import pytest

from service.retrain.gate import compare, judge
from service.settings import load_service_settings
from tests.support import project_settings
from tests.support.admin import SEED_FILE, tiny_bundle, write_config
from training.annotations import load_annotations
from training.data import split_holdout


def test_point_rule_with_tolerance():
    from service.settings import GateSettings

    point = GateSettings(rule="point", tolerance=0.0)
    assert compare(point, 0.50, 0.50)[0]  # not worse -> promote
    assert not compare(point, 0.49, 0.50)[0]
    assert compare(GateSettings(rule="point", tolerance=0.02), 0.49, 0.50)[0]
    ok, reason = compare(point, 0.3, 0.5)
    assert not ok and "0.3000 vs current 0.5000" in reason and "kept as a candidate" in reason


def test_paired_rule_rejects_only_what_is_worse_beyond_noise_or_tolerance():
    from service.settings import GateSettings

    paired = GateSettings(rule="paired", tolerance=0.01)
    assert compare(paired, 0.495, 0.50, [-0.03, 0.02])[0]  # inside the noise, inside the tolerance
    ok, reason = compare(paired, 0.45, 0.50, [-0.08, -0.01])
    assert not ok and "worse beyond noise" in reason
    ok, reason = compare(paired, 0.48, 0.50, [-0.06, 0.01])
    assert not ok and "exceeds the tolerance" in reason
    assert compare(paired, 0.55, 0.50, [0.01, 0.09])[0]


@pytest.fixture
def snapshot():
    return load_annotations([SEED_FILE], project_settings().labels).annotations


@pytest.fixture
def settings(tmp_path):
    return load_service_settings(write_config(tmp_path))


def test_better_candidate_promoted_worse_rejected(settings, snapshot):
    _, held = split_holdout(snapshot, settings.training.holdout_fraction, settings.training.holdout_salt)
    assert held and any(a.labels for a in held)
    models = settings.paths.models_dir
    says_yes = tiny_bundle(models, "yes", threshold=0.001)  # every label -> F1 > 0 where labels exist
    says_no = tiny_bundle(models, "no", threshold=0.999)  # nothing -> F1 = 0
    up = judge(says_yes, says_no, snapshot, settings)
    assert up.promote and up.candidate_score > up.current_score == 0.0
    assert up.n_heldout == len(held) and up.current_version == "no"
    assert (
        up.difference_ci is not None
        and up.difference_ci[0] <= up.candidate_score - up.current_score <= up.difference_ci[1]
    )
    down = judge(says_no, says_yes, snapshot, settings)
    assert not down.promote and "kept as a candidate" in down.reason
    assert down.candidate_metrics["n"] == len(held)


def test_first_model_is_promoted_and_no_holdout_is_not(settings, snapshot, tmp_path):
    cand = tiny_bundle(settings.paths.models_dir, "c1")
    assert judge(cand, None, snapshot, settings).promote
    no_holdout = settings.with_overrides(training={"holdout_fraction": 0.0})
    other = tiny_bundle(settings.paths.models_dir, "c2")
    decision = judge(cand, other, snapshot, no_holdout)
    assert not decision.promote and "no held-out" in decision.reason
