"""Text -> scoring units, and unit predictions -> text-level labels with evidence.

A text of several sentences is cut by the project's one segmentation
(`training.segment`), so the model sees what it was trained on; a statement still longer
than the model window is cut again at word boundaries (never truncated). A text's label is
on if any of its statements carries it; its score is the max over statements.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

from training.bundle import MODEL_DIR, Bundle, Prediction
from training.segment import segment
from training.settings import SegmentationSettings

# Where a sentence splitter could cut: end punctuation (+ closing quotes) before more text,
# or a line break. A text without any is one statement, and skips the (slow) splitter.
_POSSIBLE_BOUNDARY = re.compile(r"[.!?…][\"'”’»)\]]*\s+\S|\n")
_SPECIAL_TOKENS = 2  # [CLS] and [SEP]


@dataclass(frozen=True)
class Unit:
    """One piece of text the model scores; `index` is its statement's position."""

    text: str
    index: int


@dataclass(frozen=True)
class Skipped:
    """A boilerplate statement: kept so a reader can show it greyed, never scored."""

    text: str
    index: int
    reason: str


@dataclass(frozen=True)
class Prepared:
    units: list[Unit]
    statements: int  # statements found in the text (content + boilerplate)
    boilerplate: int  # of which flagged as boilerplate (not scored)
    skipped: tuple[Skipped, ...] = ()  # the boilerplate statements (feed articles only)


class WindowSplitter:
    """Cuts statements longer than the model window (in tokens) at word boundaries.

    Holds its own tokenizer: the backend's one is used by the inference thread, and HF
    fast tokenizers must not be shared between threads."""

    def __init__(self, model_dir: Path, max_length: int) -> None:
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        # The Rust tokenizer directly: the Python wrapper costs more than the tokenizing.
        self._fast = self.tokenizer.backend_tokenizer
        self._fast.no_truncation()
        self._fast.no_padding()
        self.max_tokens = max_length - _SPECIAL_TOKENS
        self._lock = threading.Lock()  # feeds and long texts are prepared in worker threads

    def split(self, text: str) -> list[str]:
        if len(text) <= self.max_tokens:  # a token covers at least one character
            return [text]
        with self._lock:
            offsets = self._fast.encode(text, add_special_tokens=False).offsets
        if len(offsets) <= self.max_tokens:
            return [text]
        pieces, start = [], 0
        while start < len(offsets):
            end = min(start + self.max_tokens, len(offsets))
            if end < len(offsets):  # back off to the start of a word, if one is near
                cut = end
                while cut > start + self.max_tokens // 2 and not _starts_word(text, offsets[cut][0]):
                    cut -= 1
                end = cut if cut > start + self.max_tokens // 2 else end
            stop = offsets[end][0] if end < len(offsets) else len(text)
            pieces.append(text[offsets[start][0] : stop].strip())
            start = end
        return [p for p in pieces if p]


def _starts_word(text: str, pos: int) -> bool:
    return pos > 0 and text[pos - 1].isspace()


@lru_cache(maxsize=4)
def _splitter(model_dir: str, max_length: int) -> WindowSplitter:
    return WindowSplitter(Path(model_dir), max_length)


def splitter_for(bundle: Bundle) -> WindowSplitter:
    return _splitter(str(bundle.path / MODEL_DIR), int(bundle.meta.get("max_length", 128)))


def prepare_text(text: str, seg: SegmentationSettings, splitter: WindowSplitter) -> Prepared:
    """Units for one /v1/classify text. A single statement is scored whatever the
    boilerplate filter thinks of it (the caller asked for it); in a longer text,
    boilerplate is skipped unless nothing else is left."""
    flat = unicodedata.normalize("NFC", " ".join(text.split()))
    if len(flat) <= seg.max_statement_chars and not _POSSIBLE_BOUNDARY.search(text.strip()):
        return Prepared([Unit(piece, 0) for piece in splitter.split(flat)], 1, 0)
    statements = segment(text, seg)
    content = [s for s in statements if s.boilerplate is None]
    chosen = content if content else statements
    units = [Unit(piece, s.index) for s in chosen for piece in splitter.split(s.text)]
    return Prepared(units, len(statements), len(statements) - len(chosen))


def prepare_article(text: str, seg: SegmentationSettings, splitter: WindowSplitter) -> Prepared:
    """Units for a feed article: content statements only; boilerplate is counted."""
    statements = segment(text, seg)
    content = [s for s in statements if s.boilerplate is None]
    units = [Unit(piece, s.index) for s in content for piece in splitter.split(s.text)]
    skipped = tuple(Skipped(s.text, s.index, s.boilerplate) for s in statements if s.boilerplate is not None)
    return Prepared(units, len(statements), len(statements) - len(content), skipped)


def aggregate(units: Sequence[Unit], preds: Sequence[Prediction], labels: Sequence[str]) -> dict[str, Any]:
    """Text-level labels (any statement), scores (max) and per-label evidence."""
    scores = {name: max((p.scores[name] for p in preds), default=0.0) for name in labels}
    evidence = {
        name: [
            {"text": u.text, "index": u.index, "score": p.scores[name]}
            for u, p in zip(units, preds, strict=True)
            if name in p.labels
        ]
        for name in labels
    }
    return {
        "labels": [name for name in labels if evidence[name]],
        "scores": scores,
        "evidence": {name: rows for name, rows in evidence.items() if rows},
    }


def summarize(prepared: Prepared, preds: Sequence[Prediction], labels: Sequence[str]) -> dict[str, Any]:
    """An article's summary: statements scored, boilerplate skipped, statements per label."""
    carrying: dict[str, set[int]] = {name: set() for name in labels}
    for unit, pred in zip(prepared.units, preds, strict=True):
        for name in pred.labels:
            carrying[name].add(unit.index)
    return {
        "statements": len({u.index for u in prepared.units}),
        "boilerplate": prepared.boilerplate,
        "label_counts": {name: len(idx) for name, idx in carrying.items()},
        "labels": [name for name in labels if carrying[name]],
    }


T = TypeVar("T")


def regroup(flat: Sequence[T], sizes: Iterable[int]) -> Iterator[Sequence[T]]:
    """Results of one scoring call over many texts' statements, back into one slice per
    text (`sizes`: each text's number of statements, in order). Every caller that merges
    texts into one call to keep batches full slices back through here."""
    start = 0
    for n in sizes:
        yield flat[start : start + n]
        start += n
