"""Is a text fit to score or to store? One rule for /v1/classify, annotations and feeds.

JSON can carry a lone UTF-16 surrogate (`"\\ud800"`): Python decodes it into a `str` that
is not valid Unicode, and the tokenizer (Rust) fails on it. Such text is refused, never
silently altered. A text made only of control characters, zero-width characters and byte
order marks has nothing to score and is refused like an empty one.
"""

from __future__ import annotations

import re
import unicodedata

_SURROGATE = re.compile("[\ud800-\udfff]")
# Unicode categories removed before the emptiness check: Cc control (NUL, ...), Cf format
# (zero-width space/joiners, BOM, soft hyphen, direction marks).
_INVISIBLE = frozenset({"Cc", "Cf"})


def surrogate_at(text: str) -> int | None:
    """Position of the first lone surrogate, or None when the text is valid Unicode."""
    found = _SURROGATE.search(text)
    return found.start() if found else None


def has_visible_text(text: str) -> bool:
    """True if something is left once control, zero-width and BOM characters and
    whitespace are removed."""
    return any(not ch.isspace() and unicodedata.category(ch) not in _INVISIBLE for ch in text)


def text_problem(text: str, max_chars: int) -> str | None:
    """Why `text` cannot be scored or stored (one message), or None when it is fine."""
    at = surrogate_at(text)
    if at is not None:
        return f"text is not valid Unicode: lone surrogate at character {at}"
    if not has_visible_text(text):
        return "text is empty or whitespace only (control, zero-width and BOM characters do not count)"
    if len(text) > max_chars:
        return f"text too long: {len(text)} characters, the limit is {max_chars}"
    return None


def without_surrogates(text: str) -> str:
    """For echoing a refused value back (ids, titles): lone surrogates become U+FFFD."""
    return _SURROGATE.sub("\ufffd", text)
