"""The admin API on a bare app (fake scorer): auth on every write endpoint, annotations,
registry listing, promote and rollback with hot swap."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from service.settings import load_service_settings
from tests.support.admin import AUTH, TOKEN, make_app, seed_dir, tiny_bundle, write_config
from training.registry import Registry

WRITE_ENDPOINTS = [
    ("POST", "/v1/annotations", {"text": "x y z", "labels": [], "source": "d"}),
    ("POST", "/v1/retrain", {}),
    ("POST", "/v1/jobs/nope/cancel", None),
    ("POST", "/v1/models/v1/promote", None),
    ("POST", "/v1/models/rollback", {}),
]


@pytest.fixture
def settings(tmp_path, monkeypatch):
    monkeypatch.delenv("STANCE_API_TOKEN", raising=False)
    seed_dir(tmp_path / "seeds", 20)
    return load_service_settings(write_config(tmp_path))


@pytest.fixture
def client(settings):
    with TestClient(make_app(settings)) as c:
        yield c


@pytest.mark.parametrize("method, path, body", WRITE_ENDPOINTS)
def test_write_endpoints_need_the_token(client, method, path, body):
    assert client.request(method, path, json=body).status_code == 401
    assert client.request(method, path, json=body, headers={"Authorization": "Basic abc"}).status_code == 401
    assert client.request(method, path, json=body, headers={"Authorization": "Bearer wrong"}).status_code == 403


@pytest.mark.parametrize("method, path, body", WRITE_ENDPOINTS)
def test_write_endpoints_closed_without_configured_token(tmp_path, monkeypatch, method, path, body):
    monkeypatch.delenv("STANCE_API_TOKEN", raising=False)
    settings = load_service_settings(write_config(tmp_path, auth={"token": None}))
    with TestClient(make_app(settings)) as c:
        r = c.request(method, path, json=body, headers=AUTH)
    assert r.status_code == 503
    assert "STANCE_API_TOKEN" in r.json()["detail"]


def test_env_token_wins_over_config(client, monkeypatch):
    monkeypatch.setenv("STANCE_API_TOKEN", "from-env")
    body = {"text": "Some statement here.", "labels": [], "source": "d"}
    assert client.post("/v1/annotations", json=body, headers=AUTH).status_code == 403
    ok = client.post("/v1/annotations", json=body, headers={"Authorization": "Bearer from-env"})
    assert ok.status_code == 201


def test_read_endpoints_are_open_and_seeds_loaded_on_start(client):
    stats = client.get("/v1/annotations/stats").json()
    assert stats["statements"] == 20 and stats["batches"][0]["name"] == "seed_small"
    assert client.get("/v1/models").status_code == 200
    assert client.get("/v1/jobs").json() == []


def test_post_annotations_validates_all_or_nothing(client):
    bad = {
        "annotations": [
            {"text": "Fine statement about guarantees.", "labels": ["interim_guarantees"], "source": "d1"},
            {"text": "", "labels": [], "source": "d1"},
            {"text": "Another one.", "labels": ["fast-track"], "source": "d1"},
            {"text": "No source here.", "labels": []},
        ]
    }
    r = client.post("/v1/annotations", json=bad, headers=AUTH)
    assert r.status_code == 422
    assert r.json()["error"] == "invalid_request"
    problems = r.json()["problems"]
    assert [p["record"] for p in problems] == [2, 3, 4]
    assert [p["field"] for p in problems] == ["text", "labels", "source"]
    assert "text" in problems[0]["message"] and "fast-track" in problems[1]["message"]
    assert "source" in problems[2]["message"]
    assert client.get("/v1/annotations", params={"source": "d1"}).json()["total"] == 0


def test_post_and_get_annotations(client):
    body = {
        "batch": "analyst-1",
        "annotator": "maria",
        "annotations": [
            {"text": "Invite Ukraine now.", "labels": ["fast_track_membership"], "source": "d2"},
            {
                "text": "Members only after the war.",
                "labels": ["post_war_accession"],
                "source": "d2",
                "annotator": "ivan",
            },
        ],
    }
    r = client.post("/v1/annotations", json=body, headers=AUTH)
    assert r.status_code == 201
    out = r.json()
    assert out["created"] == 2 and out["batch"] == "analyst-1"
    again = client.post("/v1/annotations", json=body, headers=AUTH).json()
    assert again["ids"] == out["ids"] and again["created"] == 0
    listed = client.get("/v1/annotations", params={"batch": "analyst-1"}).json()
    assert {(i["text"], i["annotator"]) for i in listed["items"]} == {
        ("Invite Ukraine now.", "maria"),
        ("Members only after the war.", "ivan"),
    }
    single = client.post("/v1/annotations", json={"text": "One alone.", "labels": [], "source": "d3"}, headers=AUTH)
    assert single.status_code == 201 and single.json()["batch"].startswith("api-")
    too_many = {"annotations": [{"text": f"t{i}", "labels": [], "source": "d"} for i in range(1001)]}
    assert client.post("/v1/annotations", json=too_many, headers=AUTH).status_code == 413


def test_promote_rollback_hot_swap_and_listing(client, settings):
    models = settings.paths.models_dir
    for v in ("v1", "v2", "v3"):
        tiny_bundle(models, v)
    registry = Registry(models)
    scorer = client.app.state.scorer
    for v in ("v1", "v2", "v3"):
        r = client.post(f"/v1/models/{v}/promote", headers=AUTH)
        assert r.status_code == 200, r.text
    assert registry.current() == "v3" and scorer.swaps == ["v1", "v2", "v3"]
    assert client.post("/v1/models/rollback", headers=AUTH).json()["current"] == "v2"
    assert client.post("/v1/models/rollback", headers=AUTH).json()["current"] == "v1"  # walks back, no toggle
    assert client.post("/v1/models/rollback", json={"version": "v3"}, headers=AUTH).json()["current"] == "v3"
    assert scorer.swaps[-3:] == ["v2", "v1", "v3"] and scorer.version == "v3"
    listing = client.get("/v1/models").json()
    assert listing["current"] == "v3"
    status = {m["version"]: (m["status"], m["current"]) for m in listing["models"]}
    assert status["v3"] == ("promoted", True) and status["v2"][1] is False
    assert client.post("/v1/models/nope/promote", headers=AUTH).status_code == 404
    assert client.post("/v1/models/rollback", json={"version": "v3"}, headers=AUTH).status_code == 409


def test_broken_bundle_is_never_promoted(client, settings):
    models = settings.paths.models_dir
    tiny_bundle(models, "good")
    assert client.post("/v1/models/good/promote", headers=AUTH).status_code == 200
    broken = tiny_bundle(models, "broken")
    (broken / "bundle.json").write_text((broken / "bundle.json").read_text() + " ")  # checksum mismatch
    r = client.post("/v1/models/broken/promote", headers=AUTH)
    assert r.status_code == 409 and "checksum" in r.json()["detail"]
    assert Registry(models).current() == "good" and client.app.state.scorer.version == "good"


def test_service_follows_cli_promotion(settings):
    """`stance models promote` moves CURRENT; the running service swaps by itself."""
    import time

    from typer.testing import CliRunner

    from service.cli.main import app as cli

    tiny_bundle(settings.paths.models_dir, "va")
    tiny_bundle(settings.paths.models_dir, "vb")
    Registry(settings.paths.models_dir).set_current("va", "test")
    with TestClient(make_app(settings)) as c:
        cfg = settings.paths.data_dir.parent / "config.yaml"
        res = CliRunner().invoke(cli, ["models", "promote", "vb", "-c", str(cfg)])
        assert res.exit_code == 0, res.output
        deadline = time.monotonic() + 30
        while c.app.state.scorer.version != "vb" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert c.app.state.scorer.version == "vb"
    assert TOKEN  # the fixture's token is what the config holds
