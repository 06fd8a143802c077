"""The HTTP API through FastAPI's TestClient: every endpoint and every error case."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from tests.conftest import TINY_A

LONG_TEXT = (
    "NATO leaders met in Washington on Tuesday. "
    "Several allies said Ukraine should be invited to join the alliance without delay. "
    "Others insisted that membership can only follow the end of the war.\n"
    "Read also: Summit schedule\n"
    "Kyiv asked for security guarantees in the meantime."
)


def test_health_ready_and_model(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok", "model_version": None, "detail": None}
    assert client.get("/readyz").json() == {"status": "ready", "model_version": TINY_A, "detail": None}
    info = client.get("/v1/model").json()
    bundle = client.app.state.scorer.bundle
    assert info["version"] == TINY_A and info["backend"] == bundle.backend_name == "onnx"
    assert info["labels"] == bundle.labels and info["thresholds"] == bundle.thresholds
    assert info["metrics"] == bundle.metrics and info["max_length"] == bundle.meta["max_length"]


def test_not_ready_before_lifespan(service_settings) -> None:
    """Without the lifespan (no model loaded) readiness and scoring answer 503."""
    c = TestClient(create_app(service_settings), raise_server_exceptions=False)
    assert c.get("/healthz").status_code == 200
    assert c.get("/readyz").status_code == 503
    r = c.post("/v1/classify", json={"text": "Ukraine should join NATO."})
    assert r.status_code == 503 and "not loaded" in r.json()["detail"] and r.json()["error"] == "unavailable"


def test_classify_single_and_batch_match_bundle(client: TestClient) -> None:
    bundle = client.app.state.scorer.bundle
    texts = ["Ukraine must join NATO at the next summit", "Russia will never accept Ukraine in NATO"]
    one = client.post("/v1/classify", json={"text": texts[0]}).json()
    many = client.post("/v1/classify", json={"texts": texts}).json()
    assert one["model_version"] == many["model_version"] == TINY_A
    expected = bundle.predict(texts)
    for result, pred, text in zip(many["results"], expected, texts, strict=True):
        assert result["labels"] == pred.labels and result["statements"] == 1
        assert result["scores"] == pytest.approx(pred.scores, abs=0.01)
        assert set(result["scores"]) == set(bundle.labels) and result["model_version"] == TINY_A
        assert all(
            ev == [{"text": text, "index": 0, "score": result["scores"][name]}]
            for name, ev in result["evidence"].items()
        )
        assert set(result["evidence"]) == set(result["labels"])
    assert one["results"][0]["labels"] == many["results"][0]["labels"]


def test_classify_long_text_segmented_with_evidence(client: TestClient, service_settings) -> None:
    from training.segment import segment

    bundle = client.app.state.scorer.bundle
    result = client.post("/v1/classify", json={"text": LONG_TEXT}).json()["results"][0]
    statements = segment(LONG_TEXT, service_settings.segmentation)
    content = [s for s in statements if s.boilerplate is None]
    assert result["statements"] == len(statements) and result["boilerplate"] == len(statements) - len(content)
    preds = bundle.predict([s.text for s in content])
    for name in bundle.labels:  # score = max over statements, label on iff any statement has it
        assert result["scores"][name] == pytest.approx(max(p.scores[name] for p in preds), abs=0.01)
        carriers = [s.text for s, p in zip(content, preds) if name in p.labels]
        assert [e["text"] for e in result["evidence"].get(name, [])] == carriers
        assert (name in result["labels"]) == bool(carriers)
    assert all("Read also" not in e["text"] for ev in result["evidence"].values() for e in ev)


def test_over_long_statement_is_split_not_truncated(client: TestClient) -> None:
    bundle = client.app.state.scorer.bundle
    words = [f"ally{i}" for i in range(200)]  # one 'sentence', far over the 64-token window
    text = " ".join(words)
    from service.scoring.statements import splitter_for

    pieces = splitter_for(bundle).split(text)
    assert len(pieces) > 1 and " ".join(pieces).split() == words
    tok = splitter_for(bundle).tokenizer
    assert all(len(tok(p)["input_ids"]) <= bundle.meta["max_length"] for p in pieces)
    result = client.post("/v1/classify", json={"text": text}).json()["results"][0]
    preds = bundle.predict(pieces)
    for name in bundle.labels:
        assert result["scores"][name] == pytest.approx(max(p.scores[name] for p in preds), abs=0.01)


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"text": ""}, "text", "empty"),
        ({"text": "   \n\t"}, "text", "empty"),
        ({"texts": ["fine", " "]}, "texts[1]", "empty"),
        ({"text": "x" * 3001}, "text", "limit is 3000"),
        ({"texts": ["a statement"] * 9}, "texts", "limit is 8"),
        ({"texts": []}, "texts", "at least one"),
        ({"texts": ["ok", 5]}, "texts[1]", "valid string"),
        ({"text": ["a", "b"]}, "text", "valid string"),
        ({"text": "a", "texts": ["b"]}, "body", "exactly one"),
        ({}, "body", "exactly one"),
        ({"txt": "a"}, "txt", "not permitted"),
        ([1, 2], "body", "valid dictionary"),
    ],
)
def test_classify_422_names_field_and_limit(client: TestClient, body, field: str, words: str) -> None:
    r = client.post("/v1/classify", json=body)
    assert r.status_code == 422, r.text
    payload = r.json()
    assert payload["error"] == "invalid_request"
    assert any(d["field"] == field and words in d["message"] for d in payload["problems"]), payload
    assert field in payload["detail"] and "Traceback" not in r.text


def test_bad_bodies(client: TestClient, service_settings) -> None:
    r = client.post("/v1/classify", content=b'{"text": "caf\xe9"}', headers={"content-type": "application/json"})
    assert r.status_code == 400 and "UTF-8" in r.json()["detail"]
    r = client.post("/v1/classify", content=b'{"text": ', headers={"content-type": "application/json"})
    assert r.status_code == 422 and "invalid JSON" in r.json()["detail"]
    limit = service_settings.service.max_body_bytes
    big = json.dumps({"texts": ["x" * 2000] * (limit // 2000 + 1)})
    r = client.post("/v1/classify", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413 and str(limit) in r.json()["detail"] and r.json()["error"] == "too_large"

    def chunked() -> Iterator[bytes]:  # no Content-Length header: counted while streaming
        yield b'{"texts": ["'
        for _ in range(limit // 1000 + 1):
            yield b"y" * 1000
        yield b'"]}'

    r = client.post("/v1/classify", content=chunked(), headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert client.post("/v1/classify", json={"text": "Still serving?"}).status_code == 200


def test_unexpected_error_is_json_500_and_service_survives(client: TestClient, monkeypatch) -> None:
    from service.scoring import pipeline

    async def boom(*args, **kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(pipeline, "classify", boom)
    r = client.post("/v1/classify", json={"text": "Ukraine and NATO."})
    assert r.status_code == 500
    assert r.json() == {
        "error": "internal_error",
        "detail": "internal server error; see the service log",
        "problems": [],
    }
    monkeypatch.undo()
    assert client.post("/v1/classify", json={"text": "Ukraine and NATO."}).status_code == 200


def test_metrics_exposed(client: TestClient) -> None:
    client.post("/v1/classify", json={"texts": ["one statement", "another statement"]})
    text = client.get("/metrics").text
    assert 'http_requests_total{handler="/v1/classify",method="POST",status="2xx"}' in text
    assert "http_request_duration_seconds_bucket" in text
    assert f'stance_model_info{{backend="onnx",version="{TINY_A}"}} 1.0' in text
    scored = float(
        next(line.split()[1] for line in text.splitlines() if line.startswith("stance_statements_scored_total"))
    )
    assert scored >= 2
    assert "stance_inference_batch_size_bucket" in text


def test_openapi_docs(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/v1/classify", "/v1/feeds/score", "/v1/model", "/healthz", "/readyz", "/metrics"):
        assert path in paths


def test_served_onnx_session_does_not_spin(client: TestClient) -> None:
    """service.spin_wait false (default): the served ONNX session has busy-waiting off."""
    opts = client.app.state.scorer.bundle.backend.session.get_session_options()
    assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    inference = client.app.state.settings.inference
    assert opts.intra_op_num_threads == inference.threads // inference.streams
