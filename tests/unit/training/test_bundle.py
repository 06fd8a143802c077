"""The bundle format: round trip, integrity checks, registry pointer."""

import json
import shutil
import threading

import numpy as np
import pytest

from tests.support import project_settings
from tests.support.tiny import make_tiny_bundle
from training.bundle import MANIFEST, BundleError, load_bundle, verify_manifest
from training.registry import Registry

INFERENCE = project_settings().inference


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_tiny_bundle(tmp_path_factory.mktemp("reg") / "vtiny")


def test_round_trip_torch_and_onnx_agree(tiny):
    texts = ["NATO should invite Ukraine now.", "Security guarantees until Ukraine joins.", "Weather is fine."]
    onnx = load_bundle(tiny, INFERENCE, backend="onnx")
    torch_ = load_bundle(tiny, INFERENCE, backend="torch")
    assert onnx.backend_name == "onnx" and torch_.backend_name == "torch"
    assert onnx.version == "vtest-tiny" and onnx.labels == torch_.labels
    p_onnx, p_torch = onnx.predict_proba(texts), torch_.predict_proba(texts)
    assert p_onnx.shape == (3, len(onnx.labels))
    assert np.abs(p_onnx - p_torch).max() < 0.05  # int8 vs fp32 on a random tiny model
    preds = torch_.predict(texts)
    for row, pred in zip(p_torch, preds):
        assert set(pred.scores) == set(torch_.labels)
        assert pred.labels == [n for n, p in zip(torch_.labels, row) if p >= torch_.thresholds[n]]
    assert torch_.predict([]) == []


def test_predict_order_is_input_order_despite_length_batching(tiny):
    bundle = load_bundle(tiny, INFERENCE, backend="torch", batch_size=2)  # fp32: exact (int8 scales per batch)
    texts = ["a much longer statement about guarantees and membership " * 3, "short", "medium length text here"]
    together = bundle.predict_proba(texts)
    alone = np.vstack([bundle.predict_proba([t]) for t in texts])
    assert np.allclose(together, alone, atol=1e-4)


def test_onnx_streams_run_batches_in_parallel_and_keep_input_order(tiny):
    texts = [f"statement {i} about {'NATO membership ' * (i % 4)}guarantees" for i in range(10)]
    serial = load_bundle(tiny, INFERENCE, backend="onnx", threads=2, batch_size=1, streams=1)
    parallel = load_bundle(tiny, INFERENCE, backend="onnx", threads=2, batch_size=1, streams=2)
    assert parallel.backend.streams == 2
    assert parallel.backend.session.get_session_options().intra_op_num_threads == 1
    # The first two batches must be in flight together, or the barrier breaks the test.
    barrier, forward, seen = threading.Barrier(2, timeout=10), parallel.backend._forward, set()

    def gated(enc):
        first = threading.get_ident() not in seen
        seen.add(threading.get_ident())
        if first:  # each stream's first batch waits for the other's
            barrier.wait()
        return forward(enc)

    parallel.backend._forward = gated
    # Single-statement batches are identical either way, so int8 results match exactly.
    assert np.array_equal(serial.predict_proba(texts), parallel.predict_proba(texts))
    assert len(seen) == 2


def test_corrupted_bundle_is_refused_with_the_file_named(tiny, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(tiny, copy)
    weights = copy / "model" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"model\.safetensors: checksum mismatch"):
        load_bundle(copy, INFERENCE)


def test_incomplete_or_tampered_bundles_are_refused(tiny, tmp_path):
    no_manifest = tmp_path / "half"
    shutil.copytree(tiny, no_manifest)
    (no_manifest / MANIFEST).unlink()
    with pytest.raises(BundleError, match="incomplete"):
        load_bundle(no_manifest, INFERENCE)
    extra = tmp_path / "extra"
    shutil.copytree(tiny, extra)
    (extra / "surprise.bin").write_bytes(b"x")
    with pytest.raises(BundleError, match="not in the manifest"):
        verify_manifest(extra)
    with pytest.raises(BundleError, match="no bundle"):
        load_bundle(tmp_path / "nothing-here", INFERENCE)


def test_registry_pointer_and_errors(tiny):
    reg = Registry(tiny.parent)
    assert reg.current() is None
    with pytest.raises(BundleError, match="stance train"):
        reg.resolve()
    reg.set_current("vtiny", reason="test")
    assert reg.current() == "vtiny" and reg.resolve() == tiny
    assert reg.describe("vtiny")["current"] is True
    assert reg.history()[-1]["current"] == "vtiny"
    with pytest.raises(BundleError, match="unknown model version"):
        reg.resolve("v-nope")
    with pytest.raises(BundleError, match="invalid model version"):
        reg.path("../etc")
    meta = json.loads((tiny / "bundle.json").read_text())
    assert set(meta["thresholds"]) == set(meta["labels"])
