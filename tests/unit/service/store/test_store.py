"""The annotation store: seeds, history, idempotency, and the same on PostgreSQL (a
temporary server from the `pg_url` fixture, or STANCE_TEST_PG_URL). (Durability after
SIGKILL and concurrent writes over HTTP: tests/e2e/test_store_server.py.)"""

from __future__ import annotations

import json
import shutil
import threading

import pytest

from service.settings import load_service_settings
from tests.support.admin import SEED_FILE, seed_dir, write_config
from training.annotations import Annotation


def _new(text: str, labels: tuple[str, ...], annotator: str = "a", source: str = "doc"):
    from service.store.repository import NewAnnotation

    return NewAnnotation(Annotation(text, labels, source), annotator)


@pytest.fixture
def settings(tmp_path):
    seed_dir(tmp_path / "seeds", 30)
    return load_service_settings(write_config(tmp_path))


@pytest.fixture
def store(settings):
    from service.store.repository import AnnotationStore

    return AnnotationStore(settings)


def test_seeds_imported_once_and_new_batches_later(store, settings):
    first = store.ensure_seeds()
    assert [r.added for r in first] == [30]
    assert store.ensure_seeds()[0].already_imported
    assert store.stats()["annotations"] == 30
    # a new batch file appears in the seeds folder: imported on the next start
    lines = SEED_FILE.read_text().splitlines()[30:40]
    (settings.paths.annotations_dir / "batch_new.jsonl").write_text("\n".join(lines) + "\n")
    reports = {r.batch: r for r in store.ensure_seeds()}
    assert reports["batch_new"].added == 10 and reports["seed_small"].already_imported
    assert store.stats()["statements"] == 40


def test_history_kept_latest_wins_and_reimport_does_not_revert(store, settings):
    store.ensure_seeds()
    seed = store.snapshot()[0]
    new_labels = ("opposition",) if seed.labels != ("opposition",) else ()
    store.add([_new(seed.text, new_labels, "maria", seed.source)], "corrections")
    assert {a.text: a.labels for a in store.snapshot()}[seed.text] == new_labels
    history = store.list(view="history", source=seed.source)["items"]
    assert [h["labels"] for h in history if h["text"] == seed.text] == [list(seed.labels), list(new_labels)]
    # the seed file changes (appended line): re-import must not undo maria's correction
    path = settings.paths.annotations_dir / "seed_small.jsonl"
    extra = SEED_FILE.read_text().splitlines()[50]
    path.write_text(path.read_text() + extra + "\n")
    report = store.ensure_seeds()[0]
    assert (report.added, report.unchanged) == (1, 30)
    assert {a.text: a.labels for a in store.snapshot()}[seed.text] == new_labels


def test_identical_repost_is_idempotent_but_corrections_count(store):
    text = "Ukraine should receive guarantees until it joins."
    a = store.add([_new(text, ("interim_guarantees",))], "b1")
    again = store.add([_new(text, ("interim_guarantees",))], "b1")
    assert again[0].id == a[0].id and not again[0].created
    b = store.add([_new(text, ())], "b1")
    back = store.add([_new(text, ("interim_guarantees",))], "b1")  # A -> B -> A is a real correction
    assert b[0].created and back[0].created and len({a[0].id, b[0].id, back[0].id}) == 3
    assert store.snapshot() == [Annotation(text, ("interim_guarantees",), "doc")]


def test_list_filters_and_pages(store):
    store.ensure_seeds()
    page = store.list(label="opposition", page_size=3)
    assert page["total"] > 3 and len(page["items"]) == 3
    assert all("opposition" in item["labels"] for item in page["items"])
    nones = store.list(label="none", page_size=1000)["items"]
    assert nones and all(item["labels"] == [] for item in nones)
    page2 = store.list(label="opposition", page=2, page_size=3)
    assert not {i["id"] for i in page["items"]} & {i["id"] for i in page2["items"]}
    with pytest.raises(ValueError):
        store.list(label="bogus")


def test_sqlite_runs_in_wal_mode(store):
    with store.db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


# ---------------------------------------------------------------- PostgreSQL


def test_postgresql_store_roundtrip_and_concurrency(tmp_path, pg_url):
    from sqlalchemy import text as sql

    from service.store.engine import Database
    from service.store.repository import AnnotationStore
    from service.store.tables import Base

    settings = load_service_settings(write_config(tmp_path, store={"url": pg_url}))
    db = Database(pg_url, settings.store.busy_timeout_ms)
    Base.metadata.drop_all(db.engine)
    Base.metadata.create_all(db.engine)
    store = AnnotationStore(settings, db)
    shutil.copy(SEED_FILE, settings.paths.annotations_dir / "b2.jsonl")
    assert store.ensure_seeds()[0].added == 181
    assert store.ensure_seeds()[0].already_imported
    errors: list[BaseException] = []

    def work(c: int) -> None:
        try:
            for i in range(20):
                recs = [_new(f"pg shared {i % 4}", ("opposition",), f"w{c}"), _new(f"pg {c} {i}", (), f"w{c}")]
                store.add(recs, "pg-load")
                store.add(recs, "pg-load")  # retry
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(c,)) for c in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert store.list(view="history", batch="pg-load", page_size=1000)["total"] == 6 * 20 + 6 * 4
    with db.engine.connect() as conn:
        assert conn.execute(sql("select count(*) from statements")).scalar() == 181 + 6 * 20 + 4
    json.dumps(store.stats())
    db.dispose()
