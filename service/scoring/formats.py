"""Input formats, named once: the suffixes each format's files carry, and which format a
file or folder holds (its suffix, else its first bytes). Every reader (`stance score` on
either engine, table input, feeds over HTTP, which add the Content-Type first) asks here."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import PurePosixPath
from typing import Literal

Sniffed = Literal["xml", "jsonl", "text"]

SUFFIXES: dict[str, tuple[str, ...]] = {
    "jsonl": (".jsonl", ".ndjson", ".json"),
    "csv": (".csv",),
    "parquet": (".parquet",),
    "rss": (".xml", ".rss"),
    "atom": (".atom",),
    "text": (".txt",),
}
SNIFF_BYTES = 512  # the first bytes a reader looks at to tell XML, JSON Lines and text apart
TABLES = ("jsonl", "csv", "parquet")  # formats read as tables (through `datasets` or Ray Data)
_BY_SUFFIX = {suffix: fmt for fmt, suffixes in SUFFIXES.items() for suffix in suffixes}
_BOM_AND_SPACE = b"\xef\xbb\xbf \t\r\n"


def format_of_name(name: str) -> str | None:
    """The format a file name's suffix says (local path or URI), None if it says none."""
    return _BY_SUFFIX.get(PurePosixPath(name.rstrip("/")).suffix.lower())


def format_of_files(names: Iterable[str]) -> str | None:
    """A folder's format: the one format all its recognised files share (None if they mix
    formats or none is recognised)."""
    found = {fmt for fmt in map(format_of_name, names) if fmt is not None}
    return found.pop() if len(found) == 1 else None


def sniff(head: bytes) -> Sniffed:
    """From the first bytes: '<' is XML (RSS or Atom), '{' JSON Lines, anything else text."""
    start = head.lstrip(_BOM_AND_SPACE)[:1]
    if start == b"<":
        return "xml"
    if start == b"{":
        return "jsonl"
    return "text"
