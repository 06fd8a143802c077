"""Predictions of statements already scored, so repeats skip the model.

Feeds repeat themselves: boilerplate lines ("Subscribe to our newsletter"), wire copy
published by many outlets, the same article polled again. The scorer looks every
statement up here by (bundle version, exact text) before queueing it; a hit costs a dict
lookup instead of a model call (measured in benchmarks/statement_cache.py). Least
recently used entries go first once `size` is reached; a model swap empties the cache
(the version in the key already keeps models apart; emptying frees the memory).
Thread-safe: the event loop reads and writes it, the inference thread never does.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from training.bundle import Prediction


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0


class StatementCache:
    """LRU of `Prediction`s keyed by (bundle version, statement text); size 0 = off."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.stats = CacheStats()
        self._items: OrderedDict[tuple[str, str], Prediction] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def lookup(self, version: str, texts: Sequence[str]) -> list[Prediction | None]:
        """The cached prediction of each text, or None where it must be scored."""
        if self.size <= 0:
            return [None] * len(texts)
        out: list[Prediction | None] = []
        with self._lock:
            for text in texts:
                hit = self._items.get((version, text))
                if hit is not None:
                    self._items.move_to_end((version, text))
                out.append(hit)
        hits = sum(p is not None for p in out)
        self.stats.hits += hits
        self.stats.misses += len(texts) - hits
        return out

    def store(self, version: str, texts: Sequence[str], preds: Sequence[Prediction]) -> None:
        if self.size <= 0:
            return
        with self._lock:
            for text, pred in zip(texts, preds, strict=True):
                self._items[(version, text)] = pred
                self._items.move_to_end((version, text))
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
