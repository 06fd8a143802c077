"""Grouped splits: a source document never straddles train and validation."""

from tests.support import project_settings
from training.annotations import Annotation, annotation_files, load_annotations
from training.data import grouped_folds, is_held_out, split_holdout


def _real():
    return load_annotations(
        annotation_files(project_settings().paths.annotations_dir), project_settings().labels
    ).annotations


def test_grouped_folds_never_leak_a_source():
    anns = _real()
    folds = grouped_folds(anns, 5, seed=0, schema=project_settings().labels)
    seen_valid = []
    for fold in folds:
        train_sources = {anns[i].source for i in fold.train}
        valid_sources = {anns[i].source for i in fold.valid}
        assert not train_sources & valid_sources
        assert len(fold.train) + len(fold.valid) == len(anns)
        seen_valid.extend(fold.valid.tolist())
    assert sorted(seen_valid) == list(range(len(anns)))  # every statement validated exactly once


def test_holdout_is_by_document_and_stable():
    anns = _real()
    train, held = split_holdout(anns, 0.15, "gate-v1")
    assert held and train
    assert not {a.source for a in train} & {a.source for a in held}
    again_train, again_held = split_holdout(list(reversed(anns)), 0.15, "gate-v1")
    assert {a.text for a in again_held} == {a.text for a in held}
    assert 0.05 < len({a.source for a in held}) / len({a.source for a in anns}) < 0.3


def test_new_documents_do_not_move_old_ones():
    anns = _real()
    extra = [Annotation(text=f"new statement {i}", labels=(), source=f"new-{i}") for i in range(50)]
    _, held_before = split_holdout(anns, 0.15, "gate-v1")
    _, held_after = split_holdout(anns + extra, 0.15, "gate-v1")
    assert {a.text for a in held_before} <= {a.text for a in held_after}
    assert not is_held_out("anything", 0.0, "gate-v1")
