"""The analyst console in a real browser (Playwright driving Debian's chromium) against a
real `stance serve` subprocess with tiny bundles: paste -> highlighted statements ->
correct one with the keyboard -> the annotation is in the store -> retrain -> progress ->
the new version is listed -> roll back. Every page is screenshotted (into $STANCE_SCREENSHOTS, e.g. docs/screenshots/)
and any console error or page error fails the test."""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.admin import (
    AUTH,
    TOKEN,
    LiveServer,
    seed_dir,
    serve_command,
    tiny_base_model,
    tiny_bundle,
    write_config,
)
from tests.support.monitor import LABELS, FeedServer
from training.registry import Registry

CHROMIUM = Path(os.environ.get("STANCE_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Screenshots go to a temp folder, so a test run leaves the checkout as it was; refresh
# the documented ones with STANCE_SCREENSHOTS=docs/screenshots.
SCREENSHOTS = Path(os.environ.get("STANCE_SCREENSHOTS") or tempfile.mkdtemp(prefix="stance-screenshots-"))
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
ANALYST = "e2e-analyst"
JOB_TIMEOUT_S = 600
LONG_DOC_STATEMENTS = 1000
EXPECT_TIMEOUT_MS = 30_000
SERVER_START_S = 600  # imports + model load; minutes when the shared machine is busy
ARTICLE = """NATO leaders meet in Vilnius this week.

Several allies say Ukraine must be invited to join the alliance now, without waiting for the war to end.
Others argue that membership can only come after the fighting stops.
Until then, bilateral security guarantees should protect Ukraine.
Hungary opposes any path to membership for Ukraine.

Read also: our live coverage of the summit.
"""

pytestmark = pytest.mark.timeout(JOB_TIMEOUT_S + 300)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """`stance serve` with two tiny bundles: v0-prev (an earlier version, to roll back to)
    and v1-start (current; threshold 0.01, so every statement is highlighted)."""
    tmp = tmp_path_factory.mktemp("console")
    base = tiny_base_model(tmp / "tiny-base")
    seed_dir(tmp / "seeds", 181)
    cfg = write_config(tmp, base_model=base, console={"poll_interval_ms": 300})
    models = tmp / "models"
    tiny_bundle(models, "v0-prev", threshold=0.999)
    tiny_bundle(models, "v1-start", threshold=0.01, seed=1)
    Registry(models).set_current("v0-prev", "test start")
    Registry(models).set_current("v1-start", "test start")
    with LiveServer(cfg, command=serve_command(cfg), ready_path="/readyz", ready_timeout=SERVER_START_S) as live:
        yield live


def expect(locator: Any) -> Any:
    """Playwright's web-first assertions (no string eval: the pages' CSP forbids it)."""
    from playwright.sync_api import expect as pw_expect

    pw_expect.set_options(timeout=EXPECT_TIMEOUT_MS)  # a shared 2-core machine can be slow
    return pw_expect(locator)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} missing: .ci/run installs Debian's chromium before the tests")
        pytest.skip(f"no {CHROMIUM}: `apt-get install -y chromium` to run the browser tests")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


class Page:
    """A browser page that records console errors and uncaught exceptions."""

    def __init__(self, browser: Any, base: str, viewport: dict[str, int] = DESKTOP) -> None:
        self.context = browser.new_context(viewport=viewport, base_url=base)
        self.page = self.context.new_page()
        self.page.set_default_timeout(30_000)
        self.errors: list[str] = []
        self.page.on(
            "console", lambda m: self.errors.append(f"console.{m.type}: {m.text}") if m.type == "error" else None
        )
        self.page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))

    def goto(self, path: str) -> Any:
        self.page.goto(path)
        self.page.wait_for_load_state("networkidle")
        return self.page

    def shot(self, name: str, full_page: bool = False) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=full_page)

    def close(self) -> None:
        self.context.close()
        assert self.errors == [], "the console logged errors:\n" + "\n".join(self.errors)


def _annotations(server: LiveServer, **query: Any) -> dict[str, Any]:
    r = httpx.get(f"{server.url}/v1/annotations", params=query, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def test_read_correct_review_retrain_rollback(server: LiveServer, browser: Any) -> None:
    ui = Page(browser, server.url)
    page = ui.goto("/")
    page.fill("#analyst-name", ANALYST)
    page.dispatch_event("#analyst-name", "change")
    page.locator("#analyst-name").blur()
    assert page.locator("#model-badge").inner_text() == "model: v1-start"

    # paste a text -> statements in reading order, highlighted (colour + text), boilerplate greyed
    page.fill("#text-input", ARTICLE)
    page.click("#read-submit")
    page.wait_for_selector("li.st.has-l1")
    statements = page.locator("li.st:not(.boilerplate)")
    assert statements.count() >= 4
    assert page.locator("li.st.boilerplate").count() >= 1
    first_text = statements.first.locator(".text").inner_text()
    assert "fast track membership" in statements.first.locator(".tags").inner_text()
    assert "Summary" in page.locator(".summary").inner_text()
    ui.shot("read-summary")

    # correct the first statement with the keyboard: j, 0 (none), 2 (one label), Enter
    page.locator("body").press("j")
    assert page.locator("li.st.current .text").inner_text() == first_text
    page.keyboard.press("0")
    page.keyboard.press("2")
    assert page.locator("li.st.current .dirty").is_visible()
    page.keyboard.press("Enter")
    page.wait_for_selector("#token-dialog[open]")  # the first write asks for the token once
    page.fill("#token-input", TOKEN)
    page.keyboard.press("Enter")
    page.wait_for_selector("li.st.current .saved")
    assert "Saved as interim guarantees" in page.locator("#status-box").inner_text()
    page.locator("li.st.current").evaluate("e => e.scrollIntoView({block: 'center'})")
    ui.shot("read")
    stored = _annotations(server, text=first_text, annotator=ANALYST)
    assert stored["total"] == 1
    item = stored["items"][0]
    assert item["labels"] == ["interim_guarantees"] and item["text"] == first_text
    assert item["source"].startswith("console-")

    # a second correction goes through without asking again (token kept for the session)
    page.keyboard.press("j")
    page.keyboard.press("0")
    page.keyboard.press("Enter")
    page.wait_for_selector("li.st.current .saved")
    assert not page.locator("#token-dialog").is_visible()
    assert _annotations(server, annotator=ANALYST)["total"] == 2

    # the review queue is the service's feed queue: empty, no feed is monitored yet
    # (test_review_and_trends_on_monitored_feeds fills and answers it)
    page = ui.goto("/review")
    assert "monitored feeds" in page.locator("#queue-source").inner_text()
    expect(page.locator("#review-card .empty")).to_have_text(re.compile("review queue is empty"))
    expect(page.locator("#today-counter")).to_have_text(re.compile(r": 2$"))

    # annotations: filter by text, a statement's history
    page = ui.goto("/annotations")
    page.fill("#f-text", first_text[:30])
    page.click("#filter-form button[type=submit]")
    expect(page.locator("#result-count")).to_have_text(re.compile(r"^1 "))
    page.click("[data-history]")
    page.wait_for_selector("#history li")
    assert ANALYST in page.locator("#history").inner_text()
    # the tiny bundles have no out-of-fold scores: the audit's 409 is said in words; the
    # browser logs the failed request itself, nothing else may be logged
    expect(page.locator("#audit .empty")).to_have_text(re.compile(r"^HTTP 409: .*no out-of-fold scores"))
    ui.errors = [e for e in ui.errors if not re.search(r"status of 409", e)]
    ui.shot("annotations")

    # trends: no monitored statements yet
    page = ui.goto("/trends")
    expect(page.locator("#trend-chart .empty")).to_have_text(re.compile("^No statements in this range"))
    ui.shot("trends")

    # models: retrain -> progress moves -> the new version is listed -> roll back
    page = ui.goto("/models")
    assert page.locator("#models tbody tr").count() == 2
    page.click("#retrain")
    page.click("#confirm-ok")
    page.wait_for_selector("#job-state")
    seen: list[str] = []
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while time.monotonic() < deadline:
        # read without waiting: the job panel is re-rendered as the job moves (an element
        # counted a moment ago may be gone, and a waiting read would then time out)
        state, percent, phase = (
            (page.locator(sel).all_inner_texts() or [""])[0] for sel in ("#job-state", "#job-percent", "#job-phase")
        )
        if not state:  # between two renders
            time.sleep(0.05)
            continue
        if not seen or seen[-1] != f"{state}|{phase}|{percent}":
            seen.append(f"{state}|{phase}|{percent}")
            if state == "running" and percent.endswith("%") and not (SCREENSHOTS / "models-retraining.png").exists():
                ui.shot("models-retraining")
        if state not in ("queued", "running", "judging"):
            break
        time.sleep(0.2)
    last_job = httpx.get(f"{server.url}/v1/jobs", timeout=30).json()[0]
    assert state in ("succeeded", "rejected"), (seen, {k: last_job[k] for k in ("state", "error", "log_tail")})
    assert any(s.startswith("running") for s in seen) and len(seen) >= 3, seen  # progress moved
    page.wait_for_selector("#gate-verdict")
    job = httpx.get(f"{server.url}/v1/jobs", timeout=30).json()[0]
    new_version = job["version"]
    page.wait_for_selector(f"#models tbody tr:has-text('{new_version}')")
    assert page.locator("#models tbody tr").count() == 3
    ui.shot("models")
    before = httpx.get(f"{server.url}/v1/models", timeout=30).json()["current"]
    page.click("#rollback")
    page.click("#confirm-ok")
    expect(page.locator("#status-box")).to_have_text(re.compile(r"^Rolled back"))
    after = httpx.get(f"{server.url}/v1/models", timeout=30).json()["current"]
    assert after != before and after in ("v1-start", "v0-prev")
    assert page.locator("#model-badge").inner_text() == f"model: {after}"
    assert page.locator("#models tr.current-model").inner_text().startswith(after)

    # the model card with its figures
    page = ui.goto(f"/models/{after}/card")
    assert "tiny test bundle" in page.locator(".card").inner_text()
    ui.shot("model-card")
    ui.close()


def test_errors_are_shown_in_words(server: LiveServer, browser: Any) -> None:
    """A wrong token: the API's 403 message is on the page, not swallowed."""
    ui = Page(browser, server.url)
    page = ui.goto("/models")
    page.click("#rollback")
    page.click("#confirm-ok")
    page.fill("#token-input", "wrong-token")
    page.keyboard.press("Enter")
    page.wait_for_selector("#token-dialog[open]")  # asked again once after a 403
    page.fill("#token-input", "still-wrong")
    page.keyboard.press("Enter")
    page.wait_for_selector("#error-box:not([hidden])")
    assert "HTTP 403" in page.locator("#error-box").inner_text()
    assert "invalid API token" in page.locator("#error-box").inner_text()
    # the browser logs the failed request itself; nothing else may be logged
    ui.errors = [e for e in ui.errors if not re.search(r"status of 403", e)]
    ui.close()


def test_long_document_and_phone_width(server: LiveServer, browser: Any) -> None:
    """1,000 statements render and stay responsive; the page fits a phone screen."""
    text = "\n".join(
        f"Statement {i}: allies discussed whether Ukraine should join NATO after round {i}."
        for i in range(LONG_DOC_STATEMENTS)
    )
    ui = Page(browser, server.url, viewport=PHONE)
    page = ui.goto("/")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    page.fill("#text-input", text)
    started = time.monotonic()
    page.click("#read-submit")
    page.locator("li.st").nth(LONG_DOC_STATEMENTS - 1).wait_for(timeout=240_000)
    print(f"{LONG_DOC_STATEMENTS} statements scored and rendered in {time.monotonic() - started:.1f} s")
    t0 = time.monotonic()
    for _ in range(20):
        page.keyboard.press("j")
    page.wait_for_selector("li.st.current")
    elapsed = time.monotonic() - t0
    print(f"20 x j on {LONG_DOC_STATEMENTS} statements: {elapsed:.2f} s")
    assert page.locator("li.st.current .text").inner_text().startswith("Statement 19:")
    assert elapsed < 10, f"20 key presses took {elapsed:.1f} s"
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    ui.shot("read-phone")
    ui.close()


def _monitored_feeds(server: LiveServer, feeds: FeedServer) -> list[str]:
    """Subscribe to the Wire (RSS) and Daily (Atom) test feeds, disabled so the service's
    poller leaves them alone, and poll each once through the API; returns the outlets."""
    outlets = []
    for name, outlet, path, file, kind in [
        ("wire", "Wire", "/wire.xml", "wire_v1.xml", "application/rss+xml"),
        ("daily", "Daily", "/daily.atom", "daily.atom", "application/atom+xml"),
    ]:
        feeds.serve_file(path, file, kind)
        r = httpx.post(
            f"{server.url}/v1/feeds",
            headers=AUTH,
            timeout=30,
            json={"name": name, "outlet": outlet, "url": feeds.url(path), "enabled": False},
        )
        assert r.status_code == 201, r.text
        poll = httpx.post(f"{server.url}/v1/feeds/{r.json()['id']}/poll", headers=AUTH, timeout=300)
        assert poll.status_code == 200, poll.text
        assert poll.json()["status"] == "ok" and poll.json()["new"] >= 2 and poll.json()["statements"] >= 2, poll.json()
        outlets.append(outlet)
    return outlets


def _review_ids(server: LiveServer) -> dict[int, str]:
    r = httpx.get(f"{server.url}/v1/review/next", params={"n": 100}, timeout=60)
    assert r.status_code == 200, r.text
    return {item["id"]: item["text"] for item in r.json()["items"]}


def test_review_and_trends_on_monitored_feeds(server: LiveServer, browser: Any) -> None:
    """Real monitored data end to end: feeds served on loopback and polled by the service ->
    the Review page shows a queued statement (GET /v1/review/next), the keyboard answer is
    stored as an annotation (POST /v1/review/{id}), a skip leaves the queue, and the
    Trends page charts every outlet's series with the figures of GET /v1/trends."""
    if httpx.get(f"{server.url}/v1/models", timeout=30).json()["current"] != "v1-start":  # after a rollback
        assert httpx.post(f"{server.url}/v1/models/v1-start/promote", headers=AUTH, timeout=60).status_code == 200
    feeds = FeedServer().start()
    try:
        outlets = _monitored_feeds(server, feeds)
    finally:
        feeds.stop()
    queued = _review_ids(server)
    assert len(queued) >= 2

    ui = Page(browser, server.url)
    page = ui.goto("/review")
    page.fill("#analyst-name", ANALYST)
    page.dispatch_event("#analyst-name", "change")
    page.locator("#analyst-name").blur()  # keys typed in a field are not shortcuts
    page.wait_for_selector("#review-text")
    assert "monitored feeds" in page.locator("#queue-source").inner_text()
    reviewed = page.locator("#review-text").inner_text()
    assert reviewed in queued.values()
    card = page.locator("#review-card").inner_text()
    assert any(outlet in card for outlet in outlets) and "2024-07" in card  # outlet and published date
    expect(page.locator("#today-counter")).to_have_text(re.compile(rf"\({ANALYST}\): \d+$"))
    counter = int(page.locator("#today-counter").inner_text().rsplit(": ", 1)[1])
    ui.shot("review")

    page.keyboard.press("0")  # none, then two labels
    page.keyboard.press("2")
    page.keyboard.press("4")
    page.keyboard.press("Enter")
    page.wait_for_selector("#token-dialog[open]")  # a new browser session: the token is asked once
    page.fill("#token-input", TOKEN)
    page.keyboard.press("Enter")
    expect(page.locator("#status-box")).to_have_text("Saved as interim guarantees, opposition.")
    expect(page.locator("#today-counter")).to_have_text(re.compile(rf": {counter + 1}$"))
    stored = _annotations(server, text=reviewed, annotator=ANALYST)
    assert stored["total"] == 1, stored
    item = stored["items"][0]
    assert item["text"] == reviewed and set(item["labels"]) == {"interim_guarantees", "opposition"}
    assert item["batch"].startswith("review-") and item["source"].startswith("https://")

    expect(page.locator("#review-text")).not_to_have_text(reviewed)  # the next statement
    skipped = page.locator("#review-text").inner_text()
    assert skipped != reviewed
    page.keyboard.press("s")
    expect(page.locator("#status-box")).to_have_text("Skipped.")
    left = _review_ids(server).values()
    assert reviewed not in left and skipped not in left  # answered and skipped: neither is proposed again
    assert _annotations(server, text=skipped, annotator=ANALYST)["total"] == 0

    label = LABELS[0]
    expected = httpx.get(f"{server.url}/v1/trends", params={"bucket": "week", "label": label}, timeout=30).json()
    assert {r["outlet"] for r in expected["rows"]} == set(outlets)
    page = ui.goto("/trends")
    page.wait_for_selector("#trend-chart svg")
    assert page.locator("#trend-chart polyline").count() == len(outlets)
    assert page.locator("#trend-chart svg g text").all_text_contents() == sorted(outlets)  # the legend
    table = page.locator("#trend-table tbody tr")
    assert table.count() == len(expected["rows"])
    first = expected["rows"][0]
    cells = table.first.locator("td").all_inner_texts()
    assert cells[:3] == [first["bucket_start"], first["outlet"], f"{100 * first['labels'][label]['share']:.1f}%"]
    assert cells[4:] == [
        str(first["labels"][label]["statements"]),
        str(first["stance_statements"]),
        str(first["statements"]),
        str(first["articles"]),
    ]
    assert expected["model_versions"][0]["version"] in page.locator("#trend-versions").inner_text()
    ui.shot("trends-chart")
    with page.expect_download() as download:
        page.click("#csv")
    lines = Path(download.value.path()).read_text().splitlines()
    assert lines[0].startswith("bucket,outlet,label,share,ci_low,ci_high") and len(lines) == len(expected["rows"]) + 1
    assert lines[1].startswith(f'"{first["bucket_start"]}","{first["outlet"]}","{label}"')
    ui.close()


ERROR_BODIES = [  # (body, words that must be shown)
    (
        {
            "error": "invalid_request",
            "detail": "texts[1]: text is empty",
            "problems": [{"field": "texts[1]", "message": "text is empty"}],
        },
        ["texts[1]: text is empty"],
    ),
    (
        {"error": "invalid request: texts[0]: too long", "detail": [{"field": "texts[0]", "message": "too long"}]},
        ["invalid request: texts[0]: too long"],
    ),
    ({"error": "invalid API token"}, ["invalid API token"]),
    (
        {
            "detail": {
                "message": "2 invalid record(s); nothing was stored",
                "problems": [{"record": 2, "message": "unknown label"}],
            }
        },
        ["2 invalid record(s)", "record 2: unknown label"],
    ),
    ({"error": "not_found"}, ["not found"]),
    ("upstream timed out", ["upstream timed out"]),
    (None, ["Bad Gateway"]),
]


def test_error_bodies_become_words(server: LiveServer, browser: Any) -> None:
    """api.js's errorMessage on every error shape the API has or will have (issue 9)."""
    ui = Page(browser, server.url)
    page = ui.goto("/trends")
    for body, words in ERROR_BODIES:
        text = page.evaluate(
            "async ([b]) => (await import('/static/js/api.js')).errorMessage(b, 502, 'Bad Gateway')", [body]
        )
        assert text.startswith("HTTP 502: ")
        for w in words:
            assert w in text, (body, text)
        assert text.count("text is empty") <= 1  # the same words are not repeated
    ui.close()


def test_upload_a_jsonl_feed(server: LiveServer, browser: Any) -> None:
    """An uploaded JSON Lines file: one document per article, ids kept as source ids."""
    articles = [
        {
            "id": "kp-101",
            "title": "Allies split",
            "text": "Some allies want Ukraine in now. Others want to wait.",
            "url": "https://news.example/kp-101",
        },
        {
            "id": "kp-102",
            "title": "Guarantees",
            "text": "Bilateral guarantees will protect Ukraine until it joins.",
            "url": "javascript:alert(1)",
        },
    ]
    feed = "".join(json.dumps(a) + "\n" for a in articles)
    ui = Page(browser, server.url)
    page = ui.goto("/")
    page.set_input_files("#file-input", files=[{"name": "feed.jsonl", "mimeType": "", "buffer": feed.encode()}])
    page.click("#read-submit")
    expect(page.locator("article.doc")).to_have_count(2)
    heads = page.locator("article.doc .doc-head").all_inner_texts()
    assert "Allies split" in heads[0] and "kp-101" in heads[0]
    assert "Guarantees" in heads[1] and "kp-102" in heads[1]
    assert "2 document(s)" in page.locator("#status-box").inner_text()
    links = page.locator("article.doc .doc-head a")
    assert links.count() == 1 and links.get_attribute("href") == "https://news.example/kp-101"  # no javascript: link
    ui.close()
