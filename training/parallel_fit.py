"""The fine-tunes of one training run (every CV fold and the final model) side by side in
worker processes of one thread each.

Why: a MiniLM's matrices are small, so a second intra-op thread adds little, while two
single-thread processes each train at nearly full speed. Running the folds and the final
model two at a time shortens a full `stance train` (its `timing` in metrics.json). Results
are the same as one at a time: every fit is seeded on its own (`training.seed` + fold
number; the final model `training.seed`).
"""

from __future__ import annotations

import multiprocessing as mp
import queue
import tempfile
import threading
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from transformers import TrainerCallback

from training.finetune import fit_recipe, predict_proba
from training.progress import Plan
from training.progress_callback import StepCallback
from training.settings import Settings

FINAL = "final"


@dataclass(frozen=True)
class FitJob:
    key: int | str  # fold number, or FINAL
    texts: list[str]
    targets: np.ndarray
    valid: list[str] | None  # fold: score these; final: None (the model itself is the result)
    seed: int


class _QueueSteps(TrainerCallback):
    """Counts a worker's optimizer steps into a queue the parent drains into its Plan."""

    def __init__(self, steps: Any) -> None:
        self.steps = steps

    def on_step_end(self, args, state, control, **kwargs):  # type: ignore[override]
        self.steps.put(1)


def _fit(settings: Settings, job: FitJob, callback: TrainerCallback, save_dir: Path | None) -> Any:
    model, tokenizer = fit_recipe(job.texts, job.targets, settings, seed=job.seed, callbacks=[callback])
    if job.valid is not None:
        return predict_proba(model, tokenizer, job.valid, settings.base_model.max_length)
    if save_dir is None:
        return model, tokenizer
    model.save_pretrained(save_dir)
    tokenizer.save_pretrained(save_dir)
    return str(save_dir)


def _worker(settings: Settings, job: FitJob, steps: Any, save_dir: str | None) -> Any:
    import training.modeling  # noqa: F401 - registers the classifier with the Auto classes in this process

    return _fit(settings, job, _QueueSteps(steps), Path(save_dir) if save_dir else None)


def run_fits(settings: Settings, jobs: Sequence[FitJob], plan: Plan, workers: int) -> dict[int | str, Any]:
    """Each job's result: out-of-fold probabilities for a fold, (model, tokenizer) for FINAL."""
    if workers <= 1 or len(jobs) <= 1:
        return {job.key: _fit(settings, job, StepCallback(plan), None) for job in jobs}
    single = settings.with_overrides(training={"threads": 1})
    ctx = mp.get_context("spawn")  # a clean interpreter per worker: no forked torch thread pools
    results: dict[int | str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="stance-fits-") as tmp, ctx.Manager() as manager:
        steps = manager.Queue()
        done = threading.Event()

        def drain() -> None:
            while not (done.is_set() and steps.empty()):
                try:
                    steps.get(timeout=0.2)
                except queue.Empty:
                    continue
                plan.step()

        counter = threading.Thread(target=drain, name="fit-progress", daemon=True)
        counter.start()
        try:
            with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=ctx) as pool:
                futures = {
                    pool.submit(
                        _worker, single, job, steps, str(Path(tmp) / "final") if job.key == FINAL else None
                    ): job.key
                    for job in jobs
                }
                for future in as_completed(futures):
                    results[futures[future]] = future.result()
        finally:
            done.set()
            counter.join()
        if FINAL in results:
            results[FINAL] = _load(Path(results[FINAL]))
    return results


def _load(folder: Path) -> tuple[Any, Any]:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    import training.modeling  # noqa: F401 - the Auto classes know the mean-pooling head

    model = AutoModelForSequenceClassification.from_pretrained(folder, local_files_only=True).float().eval()
    return model, AutoTokenizer.from_pretrained(folder, local_files_only=True)
