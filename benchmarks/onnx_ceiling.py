"""How fast can int8 ONNX Runtime score our statements on this machine, however the two
cores are used? Prints JSON: one 2-thread stream vs one 1-thread stream vs two 1-thread
streams in parallel (the backend's `streams`), spinning on and off, for a model on all
annotated statements (twice over); the mean tokens per statement; and the configured
setup's rate on the same text cut into statements of 8, 16, 32 and 64 tokens, and
with batches of 8, 16, 32 and 64 statements.
Usage: .venv/bin/python benchmarks/onnx_ceiling.py [VERSION]
"""

from __future__ import annotations

import json
import sys
import time

from training.annotations import annotation_files, load_annotations
from training.bundle import load_bundle
from training.registry import Registry
from training.settings import load_settings

LENGTHS = (8, 16, 32, 64)
BATCH_SIZES = (8, 16, 32, 64)


def main(version: str | None = None) -> None:
    settings = load_settings()  # the entry point: configs/ under the current folder or $STANCE_ROOT
    path = Registry(settings.paths.models_dir).resolve(version)
    texts = [
        a.text for a in load_annotations(annotation_files(settings.paths.annotations_dir), settings.labels).annotations
    ] * 2
    batch = settings.inference.batch_size
    out: dict[str, object] = {"model": path.name, "statements": len(texts), "batch_size": batch}
    tokenizer = load_bundle(path, settings.inference, backend="onnx").backend.tokenizer
    out["mean_tokens_per_statement"] = round(sum(len(tokenizer(t)["input_ids"]) for t in texts) / len(texts), 1)
    for spin in (True, False):
        setups = {
            "one_stream_2_threads": load_bundle(
                path, settings.inference, backend="onnx", threads=2, streams=1, spin_wait=spin
            ),
            "one_stream_1_thread": load_bundle(
                path, settings.inference, backend="onnx", threads=1, streams=1, spin_wait=spin
            ),
            "two_streams_1_thread_each": load_bundle(
                path, settings.inference, backend="onnx", threads=2, streams=2, spin_wait=spin
            ),
        }
        rates = {}
        for name, bundle in setups.items():
            bundle.predict_proba(texts[:64])  # warm-up
            t0 = time.perf_counter()
            bundle.predict_proba(texts)
            rates[name] = round(len(texts) / (time.perf_counter() - t0), 1)
        out[f"spin_{'on' if spin else 'off'}"] = rates
    # Cost per statement grows with its length: the same text cut into pieces of N tokens.
    stream = [i for t in texts[: len(texts) // 2] for i in tokenizer(t, add_special_tokens=False)["input_ids"]]
    default = load_bundle(path, settings.inference, backend="onnx")
    by_length = {}
    for n in LENGTHS:
        pieces = [tokenizer.decode(stream[i : i + n]) for i in range(0, len(stream) - n, n)][: len(texts)]
        default.predict_proba(pieces[:64])
        t0 = time.perf_counter()
        default.predict_proba(pieces)
        by_length[n] = round(len(pieces) / (time.perf_counter() - t0), 1)
    out["statements_per_s_by_tokens_default_setup"] = by_length
    # Batch size with the default streams: small batches keep int8 activations in cache.
    by_batch = {}
    for size in BATCH_SIZES:
        bundle = load_bundle(path, settings.inference, backend="onnx", batch_size=size)
        bundle.predict_proba(texts[:64])
        t0 = time.perf_counter()
        bundle.predict_proba(texts)
        by_batch[size] = round(len(texts) / (time.perf_counter() - t0), 1)
    out["statements_per_s_by_batch_size_default_setup"] = by_batch
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
