"""Article -> statements: pysbd sentence splitting, quote-aware merging, boilerplate flags.

The one segmentation of the project: the corpus annotations were built with it, and the
service uses it for long texts and feeds, so what the model sees at scoring time looks
like what it was trained on. Boilerplate is flagged, never dropped: callers decide.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pysbd

from training.settings import SegmentationSettings


@dataclass(frozen=True)
class Statement:
    text: str
    index: int  # position in the article, 0-based
    boilerplate: str | None = None  # why it is boilerplate, or None for content


# Whole-line patterns of page furniture (navigation, bylines, widgets, forms, banners).
_BOILERPLATE_LINES: list[tuple[str, re.Pattern[str]]] = [
    (name, re.compile(pattern, re.IGNORECASE))
    for name, pattern in [
        (
            "navigation",
            r"^(menu|home|search|back to top( button)?|similar articles|related( articles| posts)?"
            r"|recent posts|read more|share( this)?|tags?:.*)$",
        ),
        ("read-also link", r"^(read also|see also|related|also read)\s*:"),
        ("byline", r"^(by|author|photo|source|image)\s*(:|$)|^photo:"),
        ("relative date", r"^\d+\s+(second|minute|hour|day|week|month|year)s?\s+ago$"),
        (
            "comment form",
            r"^leave a (reply|comment)$|your email address will not be published|required fields are marked",
        ),
        ("cookie banner", r"\bwe use cookies\b|\bcookie policy\b|\baccept (all )?cookies\b"),
        ("browser notice", r"^outdated browser$|^available for$|^(windows|mac os|linux)$"),
        ("percentage", r"^[\d.,]+\s*%$"),
    ]
]
# A heading after which the rest of the page is a sidebar of other articles' teasers.
_SIDEBAR_START = re.compile(
    r"^(recent posts|similar articles|related (articles|posts|news)|more (news|stories)|most read)$",
    re.IGNORECASE,
)
_BULLET = re.compile(r"^[\s•·\-–—*]+")


def _letters(text: str) -> list[str]:
    return [c for c in text if c.isalpha()]


def boilerplate_reason(text: str, settings: SegmentationSettings) -> str | None:
    """Why a piece of text is page furniture rather than a statement, or None."""
    stripped = _BULLET.sub("", text).strip()
    letters = _letters(stripped)
    if len(letters) < settings.min_alpha_chars:
        return "no words"
    latin = sum(1 for c in letters if "LATIN" in unicodedata.name(c, ""))
    if latin / len(letters) < 0.5:
        return "non-English"
    for name, pattern in _BOILERPLATE_LINES:
        if pattern.search(stripped):
            return name
    words = stripped.split()
    if len(words) <= 3 and not re.search(r"[.!?”\"]$", stripped):
        return "heading or fragment"
    return None


@lru_cache(maxsize=1)
def _splitter() -> pysbd.Segmenter:
    return pysbd.Segmenter(language="en", clean=False)


def _quote_balance(text: str) -> int:
    """> 0 while a quotation opened in `text` is still open."""
    curly = sum(text.count(c) for c in "“«„") - sum(text.count(c) for c in "”»")
    straight = text.count('"') % 2
    return curly + straight


def _merge_open_quotes(sentences: list[str], max_sentences: int) -> list[str]:
    """Keep a quote that spans sentences together (up to max_sentences), as the guide's
    unit is 'a sentence, or a quote spanning two sentences'."""
    out: list[str] = []
    buf: list[str] = []
    for sentence in sentences:
        buf.append(sentence)
        if _quote_balance(" ".join(buf)) <= 0 or len(buf) >= max_sentences:
            out.append(" ".join(buf))
            buf = []
    if buf:
        out.append(" ".join(buf))
    return out


def _split_long(text: str, limit: int) -> Iterator[str]:
    """Never truncate: cut an over-long piece at word boundaries into <= limit chars."""
    while len(text) > limit:
        cut = text.rfind(" ", 0, limit)
        cut = cut if cut > limit // 2 else limit
        yield text[:cut].strip()
        text = text[cut:].strip()
    if text:
        yield text


def _normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def split_paragraph(paragraph: str, settings: SegmentationSettings) -> list[str]:
    sentences = [_normalise(s) for s in _splitter().segment(paragraph)]
    sentences = [s for s in sentences if s]
    merged = _merge_open_quotes(sentences, settings.max_quote_sentences)
    return [piece for s in merged for piece in _split_long(s, settings.max_statement_chars)]


def segment(text: str, settings: SegmentationSettings) -> list[Statement]:
    """Split an article (or any text) into statements, in order, boilerplate flagged."""
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n"))
    pieces = [
        piece
        for paragraph in re.split(r"\n", text)
        if paragraph.strip()
        for piece in split_paragraph(paragraph, settings)
    ]
    out: list[Statement] = []
    sidebar: str | None = None
    for i, piece in enumerate(pieces):
        reason = boilerplate_reason(piece, settings)
        if reason is None and sidebar is not None:
            reason = f"after '{sidebar}'"
        elif _SIDEBAR_START.match(piece):
            sidebar = piece
        out.append(Statement(text=piece, index=i, boilerplate=reason))
    return out


def content_statements(text: str, settings: SegmentationSettings) -> list[Statement]:
    return [s for s in segment(text, settings) if s.boilerplate is None]


def segment_file(path: Path, settings: SegmentationSettings) -> list[Statement]:
    return segment(Path(path).read_text(encoding="utf-8"), settings)
