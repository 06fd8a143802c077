"""Support for the monitoring tests: a real HTTP feed server on loopback, a deterministic
keyword model, and settings for a throw-away database."""

from __future__ import annotations

import email.utils
import hashlib
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from service.monitor.ingest import Scored
from service.scoring.statements import WindowSplitter
from tests.support import project_settings
from training.base_model import base_model_dir
from training.bundle import Prediction

LABELS = project_settings().labels

MONITOR_DATA = Path(__file__).resolve().parents[1] / "data" / "monitor"
TOKEN = "monitor-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

# keyword -> label, and the probability it gets (0.9 sure; 0.55 just over the threshold)
KEYWORDS = {
    "invited": ("fast_track_membership", 0.9),
    "guarantee": ("interim_guarantees", 0.9),
    "after the war": ("post_war_accession", 0.9),
    "never": ("opposition", 0.9),
    "lithuania": ("fast_track_membership", 0.55),
}
LOW = 0.1


def keyword_scores(text: str) -> dict[str, float]:
    scores = {name: LOW for name in LABELS}
    low = text.lower()
    for word, (label, p) in KEYWORDS.items():
        if word in low:
            scores[label] = max(scores[label], p) if scores[label] != LOW else p
    return scores


def keyword_labels(text: str) -> list[str]:
    return [n for n, p in keyword_scores(text).items() if p >= 0.5]


class KeywordModel:
    """A deterministic `ModelPort`: labels from keywords, so trends can be counted by hand."""

    def __init__(self, version: str = "vkeyword") -> None:
        self.version = version
        self.calls = 0
        self._splitter = WindowSplitter(base_model_dir(project_settings().base_model), 64)

    async def score(self, texts: Sequence[str]) -> Scored:
        self.calls += 1
        preds = [Prediction(labels=keyword_labels(t), scores=keyword_scores(t)) for t in texts]
        return Scored(preds, self.version, {n: 0.5 for n in LABELS})

    def splitter(self) -> WindowSplitter:
        return self._splitter


@dataclass
class Route:
    body: bytes = b""
    content_type: str = "application/rss+xml"
    status: int = 200
    delay_s: float = 0.0
    etag: bool = True  # answer with an ETag (and honour If-None-Match)
    last_modified: str | None = None


@dataclass
class FeedServer:
    """A threading http.server on 127.0.0.1 serving `routes` (path -> Route), mutable while
    it runs. ETag = hash of the body; If-None-Match / If-Modified-Since -> 304."""

    routes: dict[str, Route] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def start(self) -> FeedServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                server.requests.append((self.path, dict(self.headers)))
                route = server.routes.get(self.path)
                if route is None:
                    self.send_error(404)
                    return
                if route.delay_s:
                    time.sleep(route.delay_s)
                if route.status != 200:
                    self.send_response(route.status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                etag = '"' + hashlib.sha256(route.body).hexdigest()[:16] + '"'
                if route.etag and self.headers.get("If-None-Match") == etag:
                    self.send_response(304)
                    self.end_headers()
                    return
                if route.last_modified and self.headers.get("If-Modified-Since") == route.last_modified:
                    self.send_response(304)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", route.content_type)
                self.send_header("Content-Length", str(len(route.body)))
                if route.etag:
                    self.send_header("ETag", etag)
                if route.last_modified:
                    self.send_header("Last-Modified", route.last_modified)
                self.end_headers()
                try:
                    self.wfile.write(route.body)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return self

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def serve_file(self, path: str, name: str, content_type: str = "application/rss+xml", **kw: object) -> None:
        self.routes[path] = Route((MONITOR_DATA / name).read_bytes(), content_type, **kw)  # type: ignore[arg-type]

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def big_rss(n: int) -> bytes:
    """An RSS document of `n` one-sentence items without titles, one per hour back from
    2024-06-30 12:00 UTC."""
    items = []
    for i in range(n):
        day = email.utils.format_datetime(datetime(2024, 6, 30, 12, tzinfo=UTC) - timedelta(hours=i))
        items.append(
            f"<item><guid>big-{i}</guid><link>https://big.example/{i}</link>"
            f"<pubDate>{day}</pubDate><description>Statement number {i} was made today.</description></item>"
        )
    return (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>Big</title><link>https://big.example/</link>'
        f"<description>10k</description>{''.join(items)}</channel></rss>"
    ).encode()
