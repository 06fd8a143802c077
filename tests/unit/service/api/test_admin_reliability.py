"""Issue 9 on the admin API: auth before the body, no 500 for odd inputs, one error shape
documented in OpenAPI, private job folders without secrets, statement identity."""

from __future__ import annotations

import json
import stat

import pytest
from fastapi.testclient import TestClient

from service.settings import load_service_settings as load_settings
from tests.support.admin import AUTH, TOKEN, make_app, seed_dir, tiny_bundle, write_config
from training.registry import Registry

WRITE_CALLS = [
    ("POST", "/v1/annotations"),
    ("POST", "/v1/retrain"),
    ("POST", "/v1/jobs/nope/cancel"),
    ("POST", "/v1/models/v1/promote"),
    ("POST", "/v1/models/rollback"),
]


@pytest.fixture
def settings(tmp_path, monkeypatch):
    monkeypatch.delenv("STANCE_API_TOKEN", raising=False)
    seed_dir(tmp_path / "seeds", 20)
    return load_settings(write_config(tmp_path, jobs={"train_module": "tests.support.fake_trainer"}))


@pytest.fixture
def client(settings):
    with TestClient(make_app(settings), raise_server_exceptions=False) as c:
        yield c


# ------------------------------------------------------------------ defect 8: auth first


@pytest.mark.parametrize("method, path", WRITE_CALLS)
@pytest.mark.parametrize("body", [b'{"config": ', b'{"version": "caf\xe9"}', b"[1, 2, 3]"])
def test_token_is_checked_before_the_body(client, method, path, body):
    r = client.request(method, path, content=body, headers={"content-type": "application/json"})
    assert r.status_code == 401, r.text
    assert r.json()["error"] == "unauthorized"


def test_job_folder_is_private_and_holds_no_token(settings, monkeypatch):
    from service.retrain.jobs import JobManager
    from service.retrain.promotion import ModelAdmin

    monkeypatch.setenv("FAKE_TRAIN_MODE", "crash")
    jobs = JobManager(settings, ModelAdmin(settings))
    job = jobs.start()
    jobs.wait(job["id"], timeout=60)
    job_dir = settings.paths.data_dir / "jobs" / job["id"]
    config = (job_dir / "config.yaml").read_text()
    assert TOKEN not in config and TOKEN in (settings.auth.token or "")
    files = [p for p in job_dir.iterdir() if p.is_file()]
    assert {p.name for p in files} >= {"config.yaml", "snapshot.jsonl", "train.out", "train.log", "command.txt"}
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in files), {p.name: oct(p.stat().st_mode) for p in files}
    assert stat.S_IMODE(job_dir.stat().st_mode) == 0o700


# ------------------------------------------------------------------ defect 2: odd inputs


def test_odd_inputs_are_4xx_never_500(client, settings):
    assert client.get("/v1/annotations", params={"page": 10**19}).status_code == 422
    assert client.get("/v1/annotations", params={"page": 2**31}).status_code == 200
    r = client.post("/v1/models/rollback", json={"version": "v" * 5000}, headers=AUTH)
    assert r.status_code == 422 and r.json()["problems"][0]["field"] == "version"
    r = client.post("/v1/retrain", json={"config": "c" * 10_000}, headers=AUTH)
    assert r.status_code == 422 and r.json()["problems"][0]["field"] == "config"
    assert client.post("/v1/models/" + "v" * 5000 + "/promote", headers=AUTH).status_code == 404
    assert client.get("/v1/jobs/" + "j" * 5000).status_code == 422
    assert client.post("/v1/models/rollback", json={"version": "vnone"}, headers=AUTH).status_code == 404


def test_promoting_a_bundle_with_garbage_onnx_is_409_naming_the_file(client, settings):
    from tests.support.tiny import make_tiny_bundle
    from training.bundle import ONNX_FILE, write_manifest

    models = settings.paths.models_dir
    tiny_bundle(models, "good")
    assert client.post("/v1/models/good/promote", headers=AUTH).status_code == 200
    bad = make_tiny_bundle(models / "garbage", version="garbage")
    (bad / ONNX_FILE).write_bytes(b"not an onnx model at all" * 100)
    write_manifest(bad)  # the manifest matches: only loading can tell
    r = client.post("/v1/models/garbage/promote", headers=AUTH)
    assert r.status_code == 409, r.text
    assert ONNX_FILE in r.json()["detail"] and "garbage" in r.json()["detail"]
    assert Registry(models).current() == "good" and client.app.state.scorer.version == "good"


# ------------------------------------------------------------------ defect 1 and 6: text


def test_annotation_text_hygiene(client, settings):
    limit = settings.service.max_text_chars
    records = [
        {"text": "Fine statement.", "labels": [], "source": "d"},
        {"text": "x \ud800 y", "labels": [], "source": "d"},
        {"text": "\u200b\ufeff\u0000", "labels": [], "source": "d"},
        {"text": "y" * (limit + 1), "labels": [], "source": "d"},
    ]
    r = client.post(
        "/v1/annotations",
        content=json.dumps({"annotations": records}),
        headers={**AUTH, "content-type": "application/json"},
    )
    assert r.status_code == 422, r.text
    problems = r.json()["problems"]
    assert [(p["record"], p["field"]) for p in problems] == [(2, "text"), (3, "text"), (4, "text")]
    assert "surrogate" in problems[0]["message"] and "empty" in problems[1]["message"]
    assert f"limit is {limit}" in problems[2]["message"]
    assert client.get("/v1/annotations", params={"source": "d"}).json()["total"] == 0


def test_distinct_words_keep_their_own_labels(client):
    posts = [
        ("Die Straße bleibt zu.", ["opposition"]),
        ("Die Strasse bleibt zu.", ["interim_guarantees"]),
        ("Café  society\u00a0debates.", []),
        ("CAFE\u0301 SOCIETY debates.", ["opposition"]),
    ]
    for text, labels in posts:
        r = client.post("/v1/annotations", json={"text": text, "labels": labels, "source": "id"}, headers=AUTH)
        assert r.status_code == 201, r.text
    items = client.get("/v1/annotations", params={"source": "id"}).json()["items"]
    by_text = {i["text"]: i["labels"] for i in items}
    assert by_text["Die Straße bleibt zu."] == ["opposition"]
    assert by_text["Die Strasse bleibt zu."] == ["interim_guarantees"]
    assert len(items) == 3  # the NFC + case + whitespace variants of "Café society" are one statement


def test_statement_identity_rule():
    from training.annotations import statement_identity

    assert statement_identity("Straße") != statement_identity("Strasse")
    assert statement_identity("Cafe\u0301  SOCIETY\n") == statement_identity("café society")
    assert statement_identity("NATO") == statement_identity("nato")


def test_old_casefold_keys_are_rekeyed_on_start(settings):
    import hashlib

    from service.store.engine import open_database
    from service.store.repository import AnnotationStore
    from service.store.tables import Statement

    with TestClient(make_app(settings)) as c:
        c.post("/v1/annotations", json={"text": "Die Straße bleibt zu.", "labels": [], "source": "rk"}, headers=AUTH)
    db = open_database(settings)
    old_key = hashlib.sha256("die straße bleibt zu.".casefold().encode()).hexdigest()
    with db.write() as s:
        row = s.query(Statement).filter(Statement.text == "Die Straße bleibt zu.").one()
        row.key = old_key  # as the casefold rule stored it
    assert AnnotationStore(settings, db).rekey() == 1
    with TestClient(make_app(settings)) as c:
        r = c.post(
            "/v1/annotations", json={"text": "Die Straße bleibt zu.", "labels": [], "source": "rk"}, headers=AUTH
        )
        assert r.json()["created"] == 1 or r.json()["unchanged"] == 1
        assert c.get("/v1/annotations/stats").json()["statements"] == 21


# ------------------------------------------------------------------ defect 5: error shape


def test_every_operation_documents_its_success_schema_and_errors(service_settings):
    """Walks /openapi.json of the full app: each operation's success status has a
    schema; every documented error uses the one error shape; write endpoints document
    401, 403 and 503."""
    from service.app import create_app

    app = create_app(service_settings)
    spec = TestClient(app).get("/openapi.json").json()
    missing, bad_errors, unguarded = [], [], []
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            responses = op["responses"]
            success = [code for code in responses if code.startswith("2")]
            if success == ["204"]:  # no content, by definition no schema
                pass
            elif not success or not any(
                c.get("schema") for code in success for c in responses[code].get("content", {}).values()
            ):
                missing.append(f"{method.upper()} {path}")
            for code, resp in responses.items():
                if code.startswith(("4", "5")) and path != "/readyz":
                    ref = resp.get("content", {}).get("application/json", {}).get("schema", {}).get("$ref", "")
                    if not ref.endswith("/ErrorBody"):
                        bad_errors.append(f"{method.upper()} {path} {code}")
            if method == "post" and op.get("security") and not {"401", "403", "503"} <= set(responses):
                unguarded.append(f"{method.upper()} {path}")
    assert not missing, f"no response schema for the success status: {missing}"
    assert not bad_errors, f"errors not documented with ErrorBody: {bad_errors}"
    assert not unguarded, unguarded
    secured = [f"{m} {p}" for p, ops in spec["paths"].items() for m, op in ops.items() if op.get("security")]
    documented = [f"{m} {p}" for p, ops in spec["paths"].items() for m, op in ops.items() if "401" in op["responses"]]
    assert len(secured) >= 5 and sorted(secured) == sorted(documented)  # every guarded operation says it is


def test_405_lists_every_method_of_the_path(client):
    r = client.request("DELETE", "/v1/annotations")
    assert r.status_code == 405 and r.json()["error"] == "method_not_allowed"
    assert set(r.headers["allow"].split(", ")) == {"GET", "POST"}
