"""The console's server side: pages at /, static files, the model card page, and the API
additions it uses (boilerplate rows in feeds, annotation text / statement filters, cards)."""

from __future__ import annotations

import json
import re

import pytest
from fastapi.testclient import TestClient

from service.settings import load_service_settings as load_settings
from tests.conftest import TINY_A
from tests.support.admin import AUTH, make_app, seed_dir, tiny_bundle, write_config
from training.registry import Registry

PAGES = ["/", "/review", "/annotations", "/trends", "/models"]


@pytest.mark.parametrize("path", PAGES)
def test_pages_render_with_config_and_their_module(client: TestClient, path: str) -> None:
    r = client.get(path)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    html = r.text
    config = json.loads(
        re.search(r'<script type="application/json" id="console-config">(.*?)</script>', html, re.DOTALL)[1]
    )
    assert config["labels"] == list(client.app.state.settings.labels)
    assert config["console"]["render_chunk"] == client.app.state.settings.console.render_chunk
    script = re.search(r'<script type="module" src="(/static/js/\w+\.js)">', html)[1]
    js = client.get(script)
    assert js.status_code == 200 and "javascript" in js.headers["content-type"]
    assert f'href="{path}" aria-current="page"' in html
    assert "cdn" not in html.lower() and "https://" not in html  # nothing fetched from outside
    assert "script-src 'self'" in r.headers["content-security-policy"]


def test_docs_and_openapi_stay_and_pages_are_not_in_the_schema(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert "/" not in paths and "/review" not in paths
    assert "/v1/models/{version}/card" in paths


def test_every_static_module_is_served(client: TestClient) -> None:
    from service.web.pages import HERE

    files = sorted((HERE / "static").rglob("*.*"))
    assert files
    for f in files:
        assert client.get("/static/" + f.relative_to(HERE / "static").as_posix()).status_code == 200


def test_model_card_page_and_api(client: TestClient) -> None:
    r = client.get(f"/models/{TINY_A}/card")
    assert r.status_code == 200 and "<h1>tiny test bundle</h1>" in r.text
    card = client.get(f"/v1/models/{TINY_A}/card").json()
    assert card["card"].startswith("# tiny test bundle") and card["plots"] == []
    assert client.get(f"/v1/models/{TINY_A}/plots/../bundle.json").status_code == 404
    assert client.get(f"/v1/models/{TINY_A}/plots/pr_x.png").status_code == 404
    missing = client.get("/models/nope/card")
    assert missing.status_code == 404 and "unknown model version" in missing.json()["detail"]


def test_model_card_escapes_raw_html() -> None:
    from service.web.pages import _markdown

    html = _markdown.render("# t\n\n<script>alert(1)</script>\n\n[x](javascript:alert(1))")
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert 'href="javascript:' not in html


def test_feed_boilerplate_rows_on_request(client: TestClient) -> None:
    text = "NATO leaders met.\n\nUkraine must join now, allies say.\n\nRead also: our live coverage.\n"
    plain = client.post("/v1/feeds/score?format=text", content=text.encode()).text.strip().splitlines()
    full = client.post("/v1/feeds/score?format=text&boilerplate=true", content=text.encode()).text.strip().splitlines()
    plain_rows, full_rows = json.loads(plain[0])["statements"], json.loads(full[0])["statements"]
    skipped = [row for row in full_rows if "boilerplate" in row]
    assert all("boilerplate" not in row for row in plain_rows)
    assert skipped and all("scores" not in row for row in skipped)
    assert (
        len(full_rows) == len(plain_rows) + len(skipped) == json.loads(full[0])["summary"]["statements"] + len(skipped)
    )
    assert [row["index"] for row in full_rows] == sorted(row["index"] for row in full_rows)


def test_annotation_text_and_statement_filters(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("STANCE_API_TOKEN", raising=False)
    seed_dir(tmp_path / "seeds", 5)
    settings = load_settings(write_config(tmp_path))
    tiny_bundle(settings.paths.models_dir, "v1")
    Registry(settings.paths.models_dir).set_current("v1")
    with TestClient(make_app(settings)) as c:
        body = {
            "annotator": "maria",
            "annotations": [
                {
                    "text": "Allies must invite Ukraine NOW 100%_sure.",
                    "labels": ["fast_track_membership"],
                    "source": "d1",
                }
            ],
        }
        assert c.post("/v1/annotations", json=body, headers=AUTH).status_code == 201
        body["annotator"] = "olek"
        body["annotations"][0]["labels"] = []
        assert c.post("/v1/annotations", json=body, headers=AUTH).status_code == 201
        found = c.get("/v1/annotations", params={"text": "invite ukraine now 100%_"}).json()
        assert found["total"] == 1 and found["items"][0]["annotator"] == "olek"
        assert c.get("/v1/annotations", params={"text": "100%x"}).json()["total"] == 0  # % and _ are literal
        sid = found["items"][0]["statement_id"]
        history = c.get("/v1/annotations", params={"view": "history", "statement_id": sid}).json()
        assert [i["annotator"] for i in history["items"]] == ["maria", "olek"]
        assert c.get("/v1/annotations", params={"statement_id": 0}).status_code == 422
