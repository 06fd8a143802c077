"""How fast can int8 ONNX Runtime score our statements on this machine, however the two
cores are used? Prints JSON: one 2-thread session vs one 1-thread session vs two 1-thread
sessions in parallel, spinning on and off, for the current model on all annotated
statements (twice over). Usage: .venv/bin/python benchmarks/onnx_ceiling.py [VERSION]
"""

from __future__ import annotations

import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from training.annotations import annotation_files, load_annotations
from training.bundle import load_bundle
from training.registry import Registry
from training.settings import get_settings


def main(version: str | None = None) -> None:
    settings = get_settings()
    path = Registry(settings.paths.models_dir).resolve(version)
    texts = [a.text for a in load_annotations(annotation_files(settings.paths.annotations_dir)).annotations] * 2
    batch = settings.inference.batch_size
    out: dict[str, object] = {"model": path.name, "statements": len(texts), "batch_size": batch}
    for spin in (True, False):
        two = load_bundle(path, backend="onnx", threads=2, spin_wait=spin)
        one_a = load_bundle(path, backend="onnx", threads=1, spin_wait=spin)
        one_b = load_bundle(path, backend="onnx", threads=1, spin_wait=spin)
        two.predict_proba(texts[:64])
        one_a.predict_proba(texts[:64])
        one_b.predict_proba(texts[:64])

        def rate(fn) -> float:
            t0 = time.perf_counter()
            fn()
            return round(len(texts) / (time.perf_counter() - t0), 1)

        halves = [texts[0::2], texts[1::2]]
        with ThreadPoolExecutor(2) as pool:
            parallel = rate(lambda: list(pool.map(lambda b_t: b_t[0].predict_proba(b_t[1]), zip((one_a, one_b), halves))))
        out[f"spin_{'on' if spin else 'off'}"] = {
            "one_session_2_threads": rate(lambda: two.predict_proba(texts)),
            "one_session_1_thread": rate(lambda: one_a.predict_proba(texts)),
            "two_sessions_1_thread_parallel": parallel,
        }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
