"""Feeds -> articles: RSS 2.0 / Atom (feedparser), JSON Lines of articles, plain text.

Everything here yields articles one at a time so callers can score and emit as they go.
Malformed input raises `FeedError` naming what failed and where (XML line:column, JSONL
line number); an item that parses but has no text becomes an `Article` with `error` set,
so it is reported rather than silently dropped.
"""

from __future__ import annotations

import json
import re
import xml.sax
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import IO, Any, Literal

import feedparser
from bs4 import BeautifulSoup

from service.scoring.formats import sniff
from service.text_hygiene import has_visible_text, surrogate_at, without_surrogates

FeedFormat = Literal["xml", "jsonl", "text"]
FORMAT_ALIASES: dict[str, FeedFormat] = {
    "rss": "xml",
    "atom": "xml",
    "xml": "xml",
    "jsonl": "jsonl",
    "ndjson": "jsonl",
    "text": "text",
}
_CONTENT_TYPES: dict[str, FeedFormat] = {
    "application/rss+xml": "xml",
    "application/atom+xml": "xml",
    "application/xml": "xml",
    "text/xml": "xml",
    "application/x-ndjson": "jsonl",
    "application/ndjson": "jsonl",
    "application/jsonl": "jsonl",
    "application/x-jsonlines": "jsonl",
    "application/json-lines": "jsonl",
    "application/json": "jsonl",
    "text/plain": "text",
}
# A line holding only this (or a form feed) separates articles in plain text.
TEXT_SEPARATORS = frozenset({"---", "\f"})
_BLOCK_TAGS = [
    "p",
    "div",
    "br",
    "li",
    "ul",
    "ol",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "blockquote",
    "tr",
    "table",
    "section",
    "article",
    "header",
    "footer",
    "figcaption",
    "pre",
]
_LOOKS_LIKE_HTML = re.compile(r"<(?:[a-zA-Z][a-zA-Z0-9]*)(?:\s[^>]*)?/?>|</[a-zA-Z][a-zA-Z0-9]*>|&[a-z]+;|&#\d+;")
NO_TEXT = "item has no text"


class FeedError(ValueError):
    """The input cannot be read as the feed format it claims to be; says what and where."""


@dataclass
class Article:
    id: str
    text: str
    title: str | None = None
    url: str | None = None
    published: str | None = None
    error: str | None = None  # set when the item cannot be scored (e.g. it has no text)

    def meta(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k not in ("text", "error")}

    @property
    def full_text(self) -> str:
        """The title is the article's first paragraph, as in the annotated corpus."""
        return f"{self.title}\n\n{self.text}" if self.title else self.text


# ------------------------------------------------------------------ format detection


def detect_format(content_type: str | None, head: bytes, requested: str | None = None) -> FeedFormat:
    """An explicit `requested` format wins, then the Content-Type, then sniffing the first
    bytes ('<' -> XML, '{' -> JSON Lines, anything else -> plain text)."""
    if requested and requested != "auto":
        if requested not in FORMAT_ALIASES:
            raise FeedError(f"unknown format {requested!r}; use one of auto, {', '.join(FORMAT_ALIASES)}")
        return FORMAT_ALIASES[requested]
    mime = (content_type or "").split(";")[0].strip().lower()
    if mime in _CONTENT_TYPES and not (mime == "text/plain" and sniff(head) != "text"):
        return _CONTENT_TYPES[mime]
    return sniff(head)


# ------------------------------------------------------------------ HTML


def html_to_text(markup: str) -> str:
    """Visible text with block elements on their own lines (so paragraphs stay paragraphs
    and inline tags do not break sentences)."""
    soup = BeautifulSoup(markup, "html.parser")
    for tag in soup(["script", "style", "noscript"]):
        tag.decompose()
    for tag in soup.find_all(_BLOCK_TAGS):
        tag.insert_before("\n")
        tag.insert_after("\n")
    lines = (" ".join(line.split()) for line in soup.get_text().splitlines())
    return "\n".join(line for line in lines if line)


def clean_text(value: str, is_html: bool | None = None) -> str:
    if is_html is None:
        is_html = bool(_LOOKS_LIKE_HTML.search(value))
    return html_to_text(value) if is_html else value.strip()


# ------------------------------------------------------------------ RSS / Atom


def parse_xml(data: bytes) -> Iterator[Article]:
    """Articles of an RSS 2.0 or Atom document. Raises FeedError on malformed XML (with the
    parser's line and column) or on XML that is not a feed."""
    parsed = feedparser.parse(data)  # bytes, never a URL: feedparser would fetch it
    exc = parsed.get("bozo_exception")
    if isinstance(exc, xml.sax.SAXParseException):
        raise FeedError(
            f"malformed XML at line {exc.getLineNumber()}, column {exc.getColumnNumber()}: {exc.getMessage()}"
        )
    if not parsed.get("version"):
        raise FeedError("XML is not an RSS 2.0 or Atom feed (no <rss> or <feed> root)")
    return _entries(parsed.entries)


def _entries(entries: list[Any]) -> Iterator[Article]:
    for n, entry in enumerate(entries, start=1):
        yield _entry_article(entry, n)


def _entry_article(entry: Any, n: int) -> Article:
    body = ""
    # Atom <content> / RSS <content:encoded> carry the full text; summary is the fallback.
    candidates = [*entry.get("content", []), entry.get("summary_detail")]
    for detail in candidates:
        if detail and (detail.get("value") or "").strip():
            body = clean_text(detail["value"], "html" in (detail.get("type") or "html"))
            if body:
                break
    title = entry.get("title")
    title = clean_text(title) if title else None
    article = Article(
        id=str(entry.get("id") or entry.get("link") or f"item-{n}"),
        text=body,
        title=title or None,
        url=entry.get("link"),
        published=entry.get("published") or entry.get("updated"),
    )
    if not body:
        article.error = NO_TEXT
    return article


# ------------------------------------------------------------------ JSON Lines


@dataclass(frozen=True)
class LineError:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


_ARTICLE_FIELDS = ("id", "title", "text", "url", "published")


def decode_line(raw: bytes | str, line_no: int) -> str:
    if isinstance(raw, str):
        return raw
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FeedError(f"line {line_no}: not valid UTF-8 (byte {exc.start})") from None


def parse_json_object(raw: bytes | str, line_no: int) -> dict[str, Any] | None:
    """The object on one JSON Lines line, None for a blank line; FeedError otherwise."""
    text = decode_line(raw, line_no).strip()
    if not text:
        return None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FeedError(f"line {line_no}: invalid JSON ({exc.msg} at column {exc.colno})") from None
    except RecursionError:
        raise FeedError(f"line {line_no}: JSON nested too deeply") from None
    if not isinstance(obj, dict):
        raise FeedError(f"line {line_no}: expected a JSON object, got {type(obj).__name__}")
    return obj


def jsonl_article(obj: dict[str, Any], line_no: int) -> Article:
    for name in _ARTICLE_FIELDS:
        value = obj.get(name)
        allowed = (str, int) if name == "id" else (str,)
        if value is not None and (not isinstance(value, allowed) or isinstance(value, bool)):
            raise FeedError(f"line {line_no}: field '{name}' must be a string, got {type(value).__name__}")
    bad = next(
        (name for name in _ARTICLE_FIELDS if isinstance(obj.get(name), str) and surrogate_at(obj[name]) is not None),
        None,
    )
    if bad is not None:  # reported on the article's line; the rest of the feed is scored
        safe = {name: without_surrogates(v) if isinstance(v, str) else v for name, v in obj.items()}
        return Article(
            id=str(safe.get("id") if safe.get("id") is not None else f"line-{line_no}"),
            text="",
            title=safe.get("title"),
            url=safe.get("url"),
            published=safe.get("published"),
            error=f"field '{bad}' is not valid Unicode text: lone surrogate at character {surrogate_at(obj[bad])}",
        )
    text = clean_text(obj.get("text") or "")
    title = clean_text(obj["title"]) if obj.get("title") else None
    return Article(
        id=str(obj.get("id") if obj.get("id") is not None else f"line-{line_no}"),
        text=text,
        title=title or None,
        url=obj.get("url"),
        published=obj.get("published"),
        error=None if has_visible_text(text) else NO_TEXT,
    )


def iter_jsonl(lines: Iterable[bytes | str]) -> Iterator[Article]:
    """Articles of a JSON Lines feed; raises FeedError at the first malformed line."""
    for line_no, raw in enumerate(lines, start=1):
        obj = parse_json_object(raw, line_no)
        if obj is not None:
            yield jsonl_article(obj, line_no)


# ------------------------------------------------------------------ plain text


def iter_text(lines: Iterable[bytes | str]) -> Iterator[Article]:
    """Plain text: one article, or several separated by a line holding only `---` (or a
    form feed). Raises FeedError at the first line that is not UTF-8."""
    buf: list[str] = []
    number = 0
    for line_no, raw in enumerate(lines, start=1):
        line = decode_line(raw, line_no)
        if line.strip(" \t\r\n") in TEXT_SEPARATORS:
            if "".join(buf).strip():
                number += 1
                yield Article(id=f"article-{number}", text="".join(buf).strip())
            buf = []
        else:
            buf.append(line)
    if "".join(buf).strip():
        number += 1
        yield Article(id=f"article-{number}", text="".join(buf).strip())


# ------------------------------------------------------------------ one entry point


def iter_articles(fmt: FeedFormat, source: IO[bytes]) -> Iterator[Article]:
    """Articles from a binary file, read line by line for JSONL and text (flat memory);
    XML is parsed whole (feedparser needs the document)."""
    if fmt == "xml":
        return parse_xml(source.read())
    if fmt == "jsonl":
        return iter_jsonl(source)
    return iter_text(source)


def open_feed(fmt: FeedFormat, source: IO[bytes]) -> Iterator[Article]:
    """Check the whole input first, raising FeedError on the first malformed part (so the
    HTTP endpoint can answer 400 before it streams anything), then iterate articles.
    The check is one cheap pass (no segmentation, no model); XML is parsed once."""
    if fmt == "xml":
        return parse_xml(source.read())
    start = source.tell()
    for _ in iter_articles(fmt, source):
        pass
    source.seek(start)
    return iter_articles(fmt, source)
