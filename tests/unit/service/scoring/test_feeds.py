"""Feed parsing (RSS, Atom, JSONL, plain text) and the streaming feed endpoint."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest

from service.scoring.feeds import (
    NO_TEXT,
    Article,
    FeedError,
    detect_format,
    html_to_text,
    iter_jsonl,
    iter_text,
    open_feed,
    parse_xml,
)
from tests.conftest import DATA


def test_rss_items_html_reduced_and_empty_item_reported() -> None:
    items = list(parse_xml((DATA / "feed_rss.xml").read_bytes()))
    assert [a.id for a in items] == ["rss-a1", "rss-a2", "rss-a3"]
    first = items[0]
    # content:encoded (full text) wins over the teaser; tags gone, paragraphs kept as lines
    assert "<" not in first.text and "Short teaser" not in first.text
    assert first.text.splitlines()[0].startswith("Several eastern members said Ukraine should be invited to join NATO")
    assert first.url == "https://example.org/a1" and first.published and first.title.startswith("Allies")
    assert "The pledges cover air defence." in items[1].text.splitlines()
    assert items[2].error == NO_TEXT and items[2].text == ""


def test_atom_entries() -> None:
    items = list(parse_xml((DATA / "feed_atom.xml").read_bytes()))
    assert [a.id for a in items] == ["urn:uuid:atom-1", "urn:uuid:atom-2"]
    assert items[0].text.splitlines() == [
        "The Kremlin said Ukraine must never be admitted to the alliance.",
        "It called the summit declaration a provocation.",
    ]
    assert items[1].text.startswith("Kyiv wants a clear invitation") and items[1].error is None


def test_jsonl_articles() -> None:
    items = list(iter_jsonl((DATA / "feed_articles.jsonl").read_bytes().splitlines()))
    assert [a.id for a in items] == ["j1", "j2", "j3"]
    assert items[0].full_text.startswith("Fast track urged\n\nPoland said")
    assert items[1].error == NO_TEXT
    assert items[2].text == "Guarantees first.\nMembership after the war, officials said."


def test_plain_text_articles_split_on_separator() -> None:
    items = list(iter_text(io.BytesIO((DATA / "feed_plain.txt").read_bytes())))
    assert len(items) == 2 and items[1].text.startswith("A second article.")


@pytest.mark.parametrize(
    ("content_type", "head", "expected"),
    [
        ("application/rss+xml", b"<rss", "xml"),
        ("application/atom+xml; charset=utf-8", b"<feed", "xml"),
        ("application/x-ndjson", b"{", "jsonl"),
        (None, b"  <?xml version", "xml"),
        ("application/octet-stream", b'{"id": 1}', "jsonl"),
        (None, b"Just words.", "text"),
        ("text/plain", b"<rss version", "xml"),  # sniffing overrides a generic text/plain
    ],
)
def test_detect_format(content_type: str | None, head: bytes, expected: str) -> None:
    assert detect_format(content_type, head) == expected


def test_malformed_inputs_say_where() -> None:
    with pytest.raises(FeedError, match=r"malformed XML at line 6, column \d+"):
        parse_xml((DATA / "feed_bad.xml").read_bytes())
    with pytest.raises(FeedError, match="not an RSS 2.0 or Atom feed"):
        parse_xml(b"<html><body>hello</body></html>")
    with pytest.raises(FeedError, match=r"^line 2: invalid JSON"):
        open_feed("jsonl", io.BytesIO((DATA / "feed_bad.jsonl").read_bytes()))
    with pytest.raises(FeedError, match=r"line 1: expected a JSON object"):
        list(iter_jsonl([b"[1, 2]"]))
    with pytest.raises(FeedError, match=r"line 1: field 'text' must be a string"):
        list(iter_jsonl([b'{"text": 5}']))
    with pytest.raises(FeedError, match=r"line 2: not valid UTF-8"):
        list(iter_text([b"fine\n", b"caf\xe9\n"]))


def test_html_to_text_keeps_sentences_whole() -> None:
    assert (
        html_to_text("<p>Kyiv <b>must</b> join <a href='#'>now</a>.</p><p>Second.</p>")
        == "Kyiv must join now.\nSecond."
    )


# ------------------------------------------------------------------ endpoint


def _ndjson(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_feed_endpoint_rss(client) -> None:
    r = client.post(
        "/v1/feeds/score", content=(DATA / "feed_rss.xml").read_bytes(), headers={"content-type": "application/rss+xml"}
    )
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
    rows = _ndjson(r.text)
    assert [row["id"] for row in rows] == ["rss-a1", "rss-a2", "rss-a3"]
    first = rows[0]
    assert first["summary"]["boilerplate"] >= 1  # the "Read also:" line is counted, not scored
    assert all("Read also" not in s["text"] for s in first["statements"])
    labels = client.get("/v1/model").json()["labels"]
    for s in first["statements"]:
        assert set(s["scores"]) == set(labels) and set(s["labels"]) <= set(labels)
    counts = first["summary"]["label_counts"]
    for name in labels:
        assert counts[name] == sum(name in s["labels"] for s in first["statements"])
    assert first["summary"]["labels"] == [n for n in labels if counts[n] > 0]
    assert rows[2] == {**{k: rows[2][k] for k in ("id", "title", "url", "published")}, "error": NO_TEXT}


def test_feed_endpoint_matches_bundle_predict(client) -> None:
    """Statement scores in the stream are the bundle's scores for those statements."""
    rows = _ndjson(
        client.post("/v1/feeds/score?format=jsonl", content=(DATA / "feed_articles.jsonl").read_bytes()).text
    )
    statements = [s for row in rows if "statements" in row for s in row["statements"]]
    bundle = client.app.state.scorer.bundle
    expected = bundle.predict([s["text"] for s in statements])
    for s, p in zip(statements, expected, strict=True):
        assert s["labels"] == p.labels
        assert s["scores"] == pytest.approx(p.scores, abs=0.01)  # int8: batch-dependent activation scales
    assert rows[1]["error"] == NO_TEXT


@pytest.mark.parametrize(
    ("name", "ctype"),
    [
        ("feed_atom.xml", "application/atom+xml"),
        ("feed_plain.txt", "text/plain"),
        ("feed_atom.xml", None),
        ("feed_articles.jsonl", None),
    ],
)
def test_feed_endpoint_formats(client, name: str, ctype: str | None) -> None:
    headers = {"content-type": ctype} if ctype else {"content-type": "application/octet-stream"}
    r = client.post("/v1/feeds/score", content=(DATA / name).read_bytes(), headers=headers)
    assert r.status_code == 200, r.text
    rows = _ndjson(r.text)
    assert rows and all("summary" in row or "error" in row for row in rows)


def test_feed_endpoint_malformed_is_400(client) -> None:
    r = client.post(
        "/v1/feeds/score",
        content=(DATA / "feed_bad.jsonl").read_bytes(),
        headers={"content-type": "application/x-ndjson"},
    )
    assert r.status_code == 400 and "line 2" in r.json()["detail"]
    r = client.post(
        "/v1/feeds/score", content=(DATA / "feed_bad.xml").read_bytes(), headers={"content-type": "application/rss+xml"}
    )
    assert r.status_code == 400 and "line 6" in r.json()["detail"]
    r = client.post("/v1/feeds/score", content=b"caf\xe9 au lait", headers={"content-type": "text/plain"})
    assert r.status_code == 400 and "UTF-8" in r.json()["detail"]
    r = client.post("/v1/feeds/score?format=yaml", content=b"x")
    assert r.status_code == 400 and "unknown format" in r.json()["detail"]
    assert client.get("/healthz").status_code == 200


def test_feed_size_limits(client, service_settings) -> None:
    limits = service_settings.service
    line = json.dumps({"id": "x", "text": "Ukraine wants to join NATO."}) + "\n"
    big = line * (limits.max_body_bytes // len(line) + 10)  # over the JSON limit, under the feed limit
    assert limits.max_body_bytes < len(big) < limits.max_feed_bytes
    r = client.post("/v1/feeds/score", content=big, headers={"content-type": "application/x-ndjson"})
    assert r.status_code == 200 and len(_ndjson(r.text)) == big.count("\n")
    huge = line * (limits.max_feed_bytes // len(line) + 10)
    r = client.post("/v1/feeds/score", content=huge, headers={"content-type": "application/x-ndjson"})
    assert r.status_code == 413 and str(limits.max_feed_bytes) in r.json()["detail"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: the streamed size is counted
        for _ in range(limits.max_feed_bytes // 10_000 + 2):
            yield b"x" * 10_000

    r = client.post("/v1/feeds/score", content=chunks(), headers={"content-type": "text/plain"})
    assert r.status_code == 413


def test_stream_pulls_articles_lazily(client, service_settings) -> None:
    """Memory stays flat: the stream reads only a chunk ahead of what it has emitted."""
    from service.scoring.pipeline import stream_feed

    pulled = 0

    def endless() -> Iterator[Article]:
        nonlocal pulled
        while True:
            pulled += 1
            yield Article(id=str(pulled), text="Ukraine should join NATO soon. Russia objects to it.")

    async def first_lines(n: int) -> list[bytes]:
        out = []
        gen = stream_feed(client.app.state.scorer, endless(), service_settings.segmentation, 4)
        async for line in gen:
            out.append(line)
            if len(out) == n:
                break
        await gen.aclose()
        return out

    lines = client.portal.call(first_lines, 3)
    assert [json.loads(x)["id"] for x in lines] == ["1", "2", "3"]
    assert pulled <= 3 + 2 * 4  # the current chunk and the one being prepared, not the feed
