"""`stance feeds add|list|poll|remove` against a loopback feed server and a tiny registry."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from service.cli.main import app
from tests.support.monitor import FeedServer
from tests.support.tiny import write_config


@pytest.fixture
def server():
    s = FeedServer().start()
    s.serve_file("/wire.xml", "wire_v1.xml")
    yield s
    s.stop()


def test_feeds_commands(tiny_registry, tmp_path, server, monkeypatch):
    monkeypatch.delenv("STANCE_CONFIG", raising=False)
    cfg = write_config(tmp_path / "c.yaml", paths={"models_dir": tiny_registry, "data_dir": tmp_path / "data"})
    run = CliRunner().invoke
    r = run(
        app, ["feeds", "add", "wire", server.url("/wire.xml"), "--outlet", "Wire", "--interval", "60", "-c", str(cfg)]
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["name"] == "wire"
    assert run(app, ["feeds", "add", "wire", server.url("/x"), "--outlet", "Wire", "-c", str(cfg)]).exit_code == 2
    bad = run(app, ["feeds", "add", "x", "file:///etc/passwd", "--outlet", "W", "-c", str(cfg)])
    assert bad.exit_code == 2 and "http(s)" in bad.output

    r = run(app, ["feeds", "poll", "-c", str(cfg)])
    assert r.exit_code == 0, r.output
    poll = json.loads(r.stdout.strip().splitlines()[-1])
    assert (poll["status"], poll["new"], poll["model_version"]) == ("ok", 3, "vtest-a")
    r = run(app, ["feeds", "poll", "wire", "-c", str(cfg)])
    assert json.loads(r.stdout.strip().splitlines()[-1])["status"] == "not_modified"

    listed = [json.loads(line) for line in run(app, ["feeds", "list", "-c", str(cfg)]).stdout.splitlines()]
    assert [(f["name"], f["articles"], f["last_status"]) for f in listed] == [("wire", 3, "not_modified")]
    assert run(app, ["feeds", "remove", "nope", "-c", str(cfg)]).exit_code == 2
    assert run(app, ["feeds", "remove", "wire", "-c", str(cfg)]).exit_code == 0
    assert run(app, ["feeds", "list", "-c", str(cfg)]).stdout.strip() == ""

    server.routes.pop("/wire.xml")
    run(app, ["feeds", "add", "gone", server.url("/wire.xml"), "--outlet", "Wire", "-c", str(cfg)])
    r = run(app, ["feeds", "poll", "gone", "-c", str(cfg)])
    assert r.exit_code == 1 and "HTTP 404" in r.stdout
