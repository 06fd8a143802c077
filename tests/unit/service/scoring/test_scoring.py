"""Batch scoring, micro-batching and hot swap of the scorer."""

from __future__ import annotations

import asyncio
import random
import threading
from collections import Counter

import numpy as np
import pytest

from service.scoring.scorer import BatchPredictor, NotReady, Scorer, score_batches
from tests.conftest import TINY_A, TINY_B
from tests.support import project_settings
from training.bundle import load_bundle

INFERENCE = project_settings().inference

TEXTS = [f"Statement {i}: " + "Ukraine and NATO " * (i % 7 + 1) for i in range(40)]


@pytest.fixture(scope="module")
def torch_bundles(tiny_registry):
    """fp32 torch bundles: their scores do not depend on batch composition (the int8 ONNX
    export quantises activations per batch, so its scores move by ~1e-3 with the company)."""
    return {v: load_bundle(tiny_registry / v, INFERENCE, backend="torch", threads=1) for v in (TINY_A, TINY_B)}


def test_score_batches_is_predict_over_an_iterator(torch_bundles) -> None:
    bundle = torch_bundles[TINY_A]
    expected = bundle.predict(TEXTS)
    got = list(score_batches(bundle, (t for t in TEXTS), batch_size=7))
    assert [p.labels for p in got] == [p.labels for p in expected]
    for a, b in zip(got, expected, strict=True):
        assert a.scores == pytest.approx(b.scores, abs=1e-5)


def test_batch_predictor_is_a_map_batches_callable(tiny_registry, torch_bundles) -> None:
    predictor = BatchPredictor(tiny_registry / TINY_A, INFERENCE)
    out = predictor({"text": np.array(TEXTS[:5]), "id": np.arange(5)})
    assert list(out["id"]) == list(range(5))
    reference = predictor.bundle.predict(TEXTS[:5])
    assert out["labels"] == [p.labels for p in reference]
    for name in predictor.bundle.labels:
        assert out[f"score_{name}"] == pytest.approx([p.scores[name] for p in reference], abs=1e-5)


def _run(coro):
    return asyncio.run(coro)


def test_concurrent_requests_are_merged_and_results_match(torch_bundles) -> None:
    bundle = torch_bundles[TINY_A]
    scorer = Scorer(max_batch=16, max_wait_ms=50, bundle=bundle)
    scorer.start()
    try:

        async def go():
            return await asyncio.gather(*(scorer.score([t]) for t in TEXTS))

        results = _run(go())
    finally:
        scorer.close()
    assert scorer.stats.max_batch > 1, scorer.stats  # requests were merged into model calls
    assert scorer.stats.statements == len(TEXTS) and scorer.stats.batches < len(TEXTS)
    assert max(scorer.stats.batch_sizes) <= 16
    unbatched = [bundle.predict([t])[0] for t in TEXTS]
    for (got,), want in zip(results, unbatched, strict=True):
        assert got.labels == want.labels
        assert got.scores == pytest.approx(want.scores, abs=1e-5)


def test_large_request_is_split_into_micro_batches(torch_bundles) -> None:
    scorer = Scorer(max_batch=8, max_wait_ms=0, bundle=torch_bundles[TINY_A])
    scorer.start()
    try:
        preds, version = _run(scorer.score_versioned(TEXTS))
    finally:
        scorer.close()
    assert version == TINY_A and len(preds) == len(TEXTS) and max(scorer.stats.batch_sizes) <= 8
    expected = torch_bundles[TINY_A].predict(TEXTS)
    assert [p.labels for p in preds] == [p.labels for p in expected]


def test_small_requests_merge_up_to_max_batch_large_ones_use_max_call(torch_bundles) -> None:
    scorer = Scorer(max_batch=4, max_wait_ms=50, bundle=torch_bundles[TINY_A], max_call=16)
    scorer.start()
    try:

        async def go():
            singles = await asyncio.gather(*(scorer.score([t]) for t in TEXTS[:12]))
            merged = dict(scorer.stats.batch_sizes)
            return singles, merged, await scorer.score(TEXTS)

        singles, merged, big = _run(go())
    finally:
        scorer.close()
    assert max(merged) == 4 and sum(k * v for k, v in merged.items()) == 12  # merged, up to max_batch
    later = scorer.stats.batch_sizes - Counter(merged)
    assert later == Counter({16: 2, 8: 1})  # 40 statements in one request: 16 + 16 + 8
    expected = torch_bundles[TINY_A].predict(TEXTS)
    assert [p.labels for p in big] == [p.labels for p in expected]
    assert [p.labels for (p,) in singles] == [p.labels for p in expected[:12]]


def test_not_ready_without_a_bundle() -> None:
    scorer = Scorer(max_batch=4, max_wait_ms=1)
    assert not scorer.ready
    with pytest.raises(NotReady):
        _run(scorer.score(["x"]))


def test_hot_swap_under_load_drops_nothing(torch_bundles) -> None:
    """Clients keep scoring while another thread swaps A <-> B: no request fails, and each
    answer is exactly what the version it reports would give."""
    a, b = torch_bundles[TINY_A], torch_bundles[TINY_B]
    reference = {v: {t: p for t, p in zip(TEXTS, bnd.predict(TEXTS))} for v, bnd in torch_bundles.items()}
    assert any(reference[TINY_A][t].scores != reference[TINY_B][t].scores for t in TEXTS)
    scorer = Scorer(max_batch=16, max_wait_ms=2, bundle=a)
    scorer.start()
    stop = threading.Event()
    swaps = 0

    def swapper() -> None:
        nonlocal swaps
        while not stop.is_set():
            scorer.swap(b if scorer.bundle is a else a)
            swaps += 1

    async def client(seed: int) -> list[tuple[str, list[str], list]]:
        rng = random.Random(seed)
        out = []
        for _ in range(25):
            batch = rng.sample(TEXTS, rng.randint(1, 5))
            preds, version = await scorer.score_versioned(batch)
            out.append((version, batch, preds))
        return out

    async def load():
        return await asyncio.gather(*(client(s) for s in range(8)), return_exceptions=True)

    thread = threading.Thread(target=swapper)
    thread.start()
    try:
        results = _run(load())
    finally:
        stop.set()
        thread.join()
        scorer.close()
    errors = [r for r in results if isinstance(r, BaseException)]
    assert not errors, errors
    assert swaps > 1
    versions = set()
    for per_client in results:
        for version, batch, preds in per_client:
            versions.add(version)
            for text, pred in zip(batch, preds, strict=True):
                assert pred.labels == reference[version][text].labels
                assert pred.scores == pytest.approx(reference[version][text].scores, abs=1e-5)
    assert versions == {TINY_A, TINY_B}


def test_swap_through_the_app_serves_new_version(service_settings, tiny_registry) -> None:
    """The admin API's path: app.state.scorer.swap(bundle) -> new requests get the new model."""
    from fastapi.testclient import TestClient

    from service.app import create_app

    with TestClient(create_app(service_settings)) as c:
        assert c.post("/v1/classify", json={"text": "NATO"}).json()["model_version"] == TINY_A
        c.app.state.scorer.swap(load_bundle(tiny_registry / TINY_B, INFERENCE))
        assert c.post("/v1/classify", json={"text": "NATO"}).json()["model_version"] == TINY_B
        assert c.get("/v1/model").json()["version"] == TINY_B
        assert f'version="{TINY_B}"' in c.get("/metrics").text
        assert f'version="{TINY_A}"' not in c.get("/metrics").text


def test_hot_swap_over_http_under_concurrent_load(service_settings, tiny_registry) -> None:
    """Concurrent HTTP requests (ASGI, in process) while the model is swapped back and forth."""
    import httpx

    from service.app import create_app

    app = create_app(service_settings)
    bundles = {v: load_bundle(tiny_registry / v, INFERENCE) for v in (TINY_A, TINY_B)}

    async def scenario():
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:

                async def client(i: int) -> list[int | str]:
                    out = []
                    for j in range(15):
                        r = await http.post("/v1/classify", json={"texts": TEXTS[(i + j) % 40 : (i + j) % 40 + 2]})
                        out.append(r.json()["model_version"] if r.status_code == 200 else r.status_code)
                    return out

                async def swapper() -> None:
                    for k in range(6):
                        await asyncio.to_thread(app.state.scorer.swap, bundles[(TINY_B, TINY_A)[k % 2]])
                        await asyncio.sleep(0.01)

                results = await asyncio.gather(*(client(i) for i in range(12)), swapper())
        return [x for r in results[:-1] for x in r]

    outcomes = _run(scenario())
    assert len(outcomes) == 12 * 15
    assert set(outcomes) <= {TINY_A, TINY_B}, [o for o in outcomes if o not in (TINY_A, TINY_B)]


def test_loading_a_model_freezes_the_heap_for_short_gc_pauses(torch_bundles) -> None:
    import gc

    gc.unfreeze()
    try:
        scorer = Scorer(max_batch=8, max_wait_ms=1)
        scorer.swap(torch_bundles[TINY_A])
        # Everything alive at load time is out of the cyclic collector's reach, so a
        # full collection under load walks only what requests allocate.
        assert gc.get_freeze_count() > 10_000
        assert gc.get_freeze_count() > 10 * sum(gc.get_count())
    finally:
        gc.unfreeze()
