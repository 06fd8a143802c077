"""Import of every format into the store, transactional rejection, --skip-invalid, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from service.settings import load_service_settings
from tests.support import project_settings
from tests.support.admin import write_config
from training.annotation_formats import read_annotation_file
from training.annotations import AnnotationError, load_annotations

DATA = Path(__file__).parents[2] / "data"
LABELS = project_settings().labels
T1 = "Allies should invite Ukraine now, with a clear timetable for accession."
T3 = "Security guarantees are no substitute for NATO membership, Kyiv said."


@pytest.fixture
def store(tmp_path):
    from service.store.repository import AnnotationStore

    return AnnotationStore(load_service_settings(write_config(tmp_path)))


@pytest.mark.parametrize(
    "name, fmt, expected",
    [
        ("import_good.jsonl", "jsonl", {(T1, ("fast_track_membership",), "lena")}),
        (
            "import_labelstudio.json",
            "labelstudio",
            {
                (T1, ("fast_track_membership",), "anna@example.org"),
                (T1, ("fast_track_membership", "post_war_accession"), "2"),
                (T3, ("interim_guarantees", "opposition"), "3"),
            },
        ),
        ("import_argilla_v2.json", "argilla", {(T1, ("fast_track_membership",), "u-1")}),
        (
            "import_argilla_hf.jsonl",
            "argilla",
            {
                (T1, ("fast_track_membership",), "u-1"),
                (T1, ("fast_track_membership", "post_war_accession"), "u-2"),
                (T3, ("interim_guarantees", "opposition"), "u-1"),
            },
        ),
        ("import_argilla_v1.jsonl", "argilla", {(T1, ("fast_track_membership",), "u-9")}),
    ],
)
def test_formats_are_detected_and_parsed(name, fmt, expected):
    parsed = read_annotation_file(DATA / name, "auto", LABELS)
    assert parsed.format == fmt
    assert parsed.problems == []
    got = {(r.annotation.text, r.annotation.labels, r.annotator) for r in parsed.records}
    assert expected <= got


def test_labelstudio_skips_cancelled_and_maps_none():
    parsed = read_annotation_file(DATA / "import_labelstudio.json", "auto", LABELS)
    venue = [r for r in parsed.records if r.annotation.text.startswith("The summit venue")]
    assert len(venue) == 1  # the cancelled annotation is ignored
    assert venue[0].annotation.labels == ()
    assert venue[0].annotation.source == "ls-doc-1"


def test_argilla_drafts_are_not_annotations():
    parsed = read_annotation_file(DATA / "import_argilla_v2.json", "auto", LABELS)
    t1 = [r for r in parsed.records if r.annotation.text == T1]
    assert [r.annotator for r in t1] == ["u-1"]  # u-2's draft is not a label
    assert [r.annotation.labels for r in parsed.records if r.annotation.text != T1] == [()]  # [] = none


def test_invalid_file_is_rejected_whole_with_every_problem(store):
    with pytest.raises(AnnotationError) as err:
        store.import_file(DATA / "import_bad.jsonl")
    wheres = [p.where for p in err.value.problems]
    assert wheres == ["import_bad.jsonl: line 2", "import_bad.jsonl: line 3", "import_bad.jsonl: line 4"]
    messages = " ".join(p.message for p in err.value.problems)
    assert "not_a_label" in messages and "bad JSON" in messages and "source" in messages
    assert store.stats()["statements"] == 0  # nothing was stored


def test_labelstudio_invalid_records_listed_by_record_number(store):
    with pytest.raises(AnnotationError) as err:
        store.import_file(DATA / "import_labelstudio_bad.json")
    wheres = {p.where for p in err.value.problems}
    assert wheres == {
        "import_labelstudio_bad.json: record 1 (annotation 1)",
        "import_labelstudio_bad.json: record 2 (annotation 1)",
        "import_labelstudio_bad.json: record 3",
    }
    assert store.stats()["statements"] == 0


def test_skip_invalid_imports_the_rest_and_lists_skipped(store):
    report = store.import_file(DATA / "import_bad.jsonl", skip_invalid=True, annotator="olga")
    assert report.added == 2
    assert len(report.skipped) == 3
    texts = {a.text for a in store.snapshot()}
    assert T1 in texts and "Guarantees until Ukraine joins." in texts


def test_reimport_same_file_is_a_noop(store):
    first = store.import_file(DATA / "import_labelstudio.json", batch="ls-1")
    again = store.import_file(DATA / "import_labelstudio.json", batch="ls-1")
    assert first.added == 4 and again.already_imported
    assert store.stats()["annotations"] == 4


def test_disagreeing_annotators_are_listed_as_conflicts(store):
    store.import_file(DATA / "import_labelstudio.json")
    conflicts = store.conflicts()
    assert len(conflicts) == 1
    assert conflicts[0]["text"] == T1
    assert conflicts[0]["by_annotator"] == {
        "anna@example.org": ["fast_track_membership"],
        "2": ["fast_track_membership", "post_war_accession"],
    }
    # the latest annotation wins for training
    latest = {a.text: a.labels for a in store.snapshot()}
    assert latest[T1] == ("fast_track_membership", "post_war_accession")


def test_cli_import_export_stats(tmp_path):
    from service.cli.main import app

    cfg = write_config(tmp_path)
    runner = CliRunner()
    bad = runner.invoke(app, ["annotations", "import", str(DATA / "import_bad.jsonl"), "-c", str(cfg)])
    assert bad.exit_code == 1
    assert "line 2" in bad.output and "line 4" in bad.output and "nothing imported" in bad.output
    ok = runner.invoke(
        app, ["annotations", "import", str(DATA / "import_argilla_hf.jsonl"), "--batch", "week-24", "-c", str(cfg)]
    )
    assert ok.exit_code == 0, ok.output
    assert "3 added" in ok.output
    out = tmp_path / "snap.jsonl"
    exp = runner.invoke(app, ["annotations", "export", "-o", str(out), "-c", str(cfg)])
    assert exp.exit_code == 0, exp.output
    snapshot = load_annotations([out], LABELS).annotations  # the training format, loadable as such
    assert {a.text for a in snapshot} == {T1, T3}
    st = runner.invoke(app, ["annotations", "stats", "--json", "-c", str(cfg)])
    data = json.loads(st.stdout)
    assert data["labels"]["opposition"] == 1 and data["conflicts"] == 1
    assert [b["name"] for b in data["batches"]] == ["week-24"]
