"""The scorer's cache of repeated statements: same answers, fewer model calls, emptied on swap."""

from __future__ import annotations

import asyncio

import pytest

from service.scoring.cache import StatementCache
from service.scoring.scorer import Scorer
from tests.conftest import TINY_A, TINY_B
from tests.support import project_settings
from training.bundle import load_bundle

INFERENCE = project_settings().inference
TEXTS = [f"Statement {i}: " + "Ukraine and NATO " * (i % 5 + 1) for i in range(12)]


@pytest.fixture(scope="module")
def bundles(tiny_registry):
    return {v: load_bundle(tiny_registry / v, INFERENCE, backend="torch", threads=1) for v in (TINY_A, TINY_B)}


def _scorer(bundle, size: int) -> Scorer:
    scorer = Scorer(max_batch=8, max_wait_ms=1, bundle=bundle, max_call=8, cache=StatementCache(size))
    scorer.start()
    return scorer


def _same(a, b) -> None:
    assert [p.labels for p in a] == [p.labels for p in b]
    for x, y in zip(a, b, strict=True):
        assert x.scores == pytest.approx(y.scores, abs=1e-5)


def test_a_hit_returns_the_same_prediction_without_a_model_call(bundles):
    scorer = _scorer(bundles[TINY_A], 100)
    try:
        first, version = asyncio.run(scorer.score_versioned(TEXTS))
        calls, scored = scorer.stats.batches, scorer.stats.statements
        again, version2 = asyncio.run(scorer.score_versioned(list(reversed(TEXTS))))
    finally:
        scorer.close()
    assert version == version2 == bundles[TINY_A].version
    _same(again, list(reversed(first)))
    assert (scorer.stats.batches, scorer.stats.statements) == (calls, scored)  # no model call at all
    assert scorer.cache.stats.hits == len(TEXTS) and scorer.cache.stats.misses == len(TEXTS)


def test_the_miss_path_is_unchanged_and_repeats_in_a_request_are_scored_once(bundles):
    request = TEXTS[:5] + TEXTS[:5] + TEXTS[5:7]  # wire copy: the same statements twice
    off, on = _scorer(bundles[TINY_A], 0), _scorer(bundles[TINY_A], 100)
    try:
        plain = asyncio.run(off.score(request))
        cached = asyncio.run(on.score(request))
    finally:
        off.close()
        on.close()
    _same(cached, plain)
    _same(plain, bundles[TINY_A].predict(request))
    assert off.stats.statements == len(request) and len(off.cache) == 0
    assert on.stats.statements == 7 and len(on.cache) == 7  # each distinct statement once


def test_a_swap_empties_the_cache_and_the_new_model_answers(bundles):
    scorer = _scorer(bundles[TINY_A], 100)
    try:
        asyncio.run(scorer.score(TEXTS))
        assert len(scorer.cache) == len(TEXTS)
        scorer.swap(bundles[TINY_B])
        assert len(scorer.cache) == 0
        preds, version = asyncio.run(scorer.score_versioned(TEXTS))
    finally:
        scorer.close()
    assert version == bundles[TINY_B].version
    _same(preds, bundles[TINY_B].predict(TEXTS))


def test_least_recently_used_statements_leave_first():
    cache = StatementCache(2)
    a, b, c = (object() for _ in range(3))
    cache.store("v1", ["a", "b"], [a, b])
    assert cache.lookup("v1", ["a"]) == [a]  # "a" is now the most recently used
    cache.store("v1", ["c"], [c])
    assert cache.lookup("v1", ["a", "b", "c"]) == [a, None, c]
    assert cache.lookup("v2", ["a"]) == [None]  # another model version never shares entries
