"""Loading annotations: every problem named with file and line, nothing dropped silently."""

import json
from pathlib import Path

import pytest

from tests.support import project_settings
from training.annotations import AnnotationError, annotation_files, load_annotations, validate_record

LABELS = project_settings().labels


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_project_annotations_load_cleanly():
    report = load_annotations(annotation_files(project_settings().paths.annotations_dir), LABELS)
    names = {Path(f).name for f in report.files}
    assert {"corpus.jsonl", "annotations_batch2.jsonl", "annotations_batch3.jsonl"} <= names
    assert len(report.annotations) > 500
    assert all(set(a.labels) <= set(LABELS) for a in report.annotations)
    assert sum(1 for a in report.annotations if not a.labels) > 100  # none is kept


def test_every_problem_is_reported_with_file_and_line(tmp_path):
    bad = _write(
        tmp_path / "bad.jsonl",
        [
            json.dumps({"text": "ok", "labels": ["opposition"], "source": "d1"}),
            "{not json",
            json.dumps({"text": "x", "labels": ["maybe"], "source": "d1"}),
            json.dumps({"labels": [], "source": "d1"}),
            json.dumps({"text": "y", "labels": "opposition", "source": "d1"}),
            json.dumps({"text": "z", "labels": []}),
        ],
    )
    with pytest.raises(AnnotationError) as err:
        load_annotations([bad], LABELS)
    where = [p.where for p in err.value.problems]
    assert where == [f"{bad}:{n}" for n in (2, 3, 4, 5, 6)]
    message = str(err.value)
    assert "bad JSON" in message and "unknown label(s) ['maybe']" in message
    assert "missing or empty 'text'" in message and "'source'" in message


def test_conflicting_duplicates_are_an_error_exact_duplicates_merge(tmp_path):
    a = _write(tmp_path / "a.jsonl", [json.dumps({"text": "Same  text.", "labels": ["opposition"], "source": "d1"})])
    b = _write(tmp_path / "b.jsonl", [json.dumps({"text": "Same text.", "labels": [], "source": "d2"})])
    c = _write(tmp_path / "c.jsonl", [json.dumps({"text": "same text.", "labels": ["opposition"], "source": "d3"})])
    with pytest.raises(AnnotationError, match=r"conflicting labels.*a.jsonl:1"):
        load_annotations([a, b], LABELS)
    report = load_annotations([a, c], LABELS)
    assert len(report.annotations) == 1 and report.duplicates_merged == 1


def test_non_utf8_file_is_rejected(tmp_path):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes('{"text": "caf\xe9", "labels": [], "source": "d"}\n'.encode("latin-1"))
    with pytest.raises(AnnotationError, match="not UTF-8"):
        load_annotations([path], LABELS)


def test_labels_come_back_in_schema_order():
    ann = validate_record({"text": " a\n b ", "labels": ["opposition", "fast_track_membership"], "source": "s"}, LABELS)
    assert ann.labels == ("fast_track_membership", "opposition") and ann.text == "a b"
