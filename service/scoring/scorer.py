"""Scoring in front of a bundle: offline batch scoring and the service's micro-batching queue.

Two entry points share the bundle's `predict_proba` + `decide`:

* `score_batches(bundle, texts, batch_size)`: an iterator of statements in, predictions out,
  in order, with memory bounded by one batch (feeds, `stance score`). `BatchPredictor` wraps
  it as a callable over a dict-of-arrays / pandas batch, the shape Ray Data's `map_batches`
  passes, so the same function scales out when one machine is not enough.
* `Scorer`: the HTTP path. Concurrent requests' statements are queued and merged into one
  model call (up to `microbatch_max_size` statements, or after `microbatch_max_wait_ms`),
  run in one dedicated inference thread so the event loop never blocks; `swap()` replaces
  the bundle atomically (requests already queued finish on the bundle they started with).

Fairness and isolation: a large request enters the queue one chunk (`max_call_size`
statements) at a time, its next chunk only after the previous one is scored, so small
requests arriving meanwhile are scored between its chunks instead of after all of them;
a request whose client has gone (its future cancelled, or `cancelled()` true) stops
submitting and its queued chunk is skipped. If a merged batch fails, its requests are
retried one by one, so only the request that caused the failure sees it.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import itertools
import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, Histogram
from prometheus_client import Counter as PromCounter

from service.scoring.statements import regroup
from training.bundle import Bundle, Prediction, load_bundle
from training.settings import InferenceSettings

log = logging.getLogger(__name__)

# A short, ordinary statement used to warm a freshly loaded bundle (first ONNX/torch call
# allocates buffers and is several times slower than the next).
WARMUP_TEXTS = ("NATO leaders discussed Ukraine's membership bid at the summit.",)


# ------------------------------------------------------------------ offline batch scoring


def score_batches(bundle: Bundle, texts: Iterable[str], batch_size: int) -> Iterator[Prediction]:
    """Predictions for `texts`, in order, scoring `batch_size` statements per model call.

    Takes any iterable (a generator over a huge file is fine): only one batch is held in
    memory. Within a batch the backend sorts by length, so padding stays small."""
    iterator = iter(texts)
    while chunk := list(itertools.islice(iterator, batch_size)):
        yield from bundle.predict(chunk)


class BatchPredictor:
    """`ds.map_batches(BatchPredictor, fn_constructor_kwargs={"bundle_path": p,
    "inference": settings.inference}, ...)`.

    Ray Data calls the instance with a batch: a dict of numpy arrays (batch_format="numpy")
    or a pandas DataFrame; both are handled. Adds `labels` (list per row) and one
    `score_<label>` column per label, so results stay columnar."""

    def __init__(
        self,
        bundle_path: str | Path,
        inference: InferenceSettings,
        text_column: str = "text",
        batch_size: int | None = None,
    ) -> None:
        self.bundle = load_bundle(bundle_path, inference)
        self.text_column = text_column
        self.batch_size = batch_size

    def __call__(self, batch: Any) -> Any:
        texts = [str(t) for t in list(batch[self.text_column])]
        preds = list(score_batches(self.bundle, texts, self.batch_size or max(len(texts), 1)))
        out = batch.copy()
        out["labels"] = [p.labels for p in preds]
        for name in self.bundle.labels:
            out[f"score_{name}"] = [p.scores[name] for p in preds]
        return out


# ------------------------------------------------------------------ metrics


class ScoringMetrics:
    """The scorer's Prometheus series, in the app's own registry (one registry per app,
    so tests can build many apps in one process)."""

    def __init__(self, registry: CollectorRegistry, max_batch: int) -> None:
        self.statements = PromCounter("stance_statements_scored", "Statements scored by the model", registry=registry)
        buckets = sorted({1, 2, 4, 8, 16, 32, 64, 128, max_batch})
        self.batch_size = Histogram(
            "stance_inference_batch_size",
            "Statements per model call (micro-batch size)",
            buckets=buckets,
            registry=registry,
        )
        self.inference_seconds = Histogram("stance_inference_seconds", "Wall time of one model call", registry=registry)
        self.model_info = Gauge(
            "stance_model_info",
            "The model version being served (value 1)",
            ["version", "backend"],
            registry=registry,
        )

    def set_model(self, bundle: Bundle) -> None:
        self.model_info.clear()
        self.model_info.labels(version=bundle.version, backend=bundle.backend_name).set(1)


# ------------------------------------------------------------------ micro-batching


class NotReady(RuntimeError):
    """No model is being served yet (the service answers 503)."""


class Abandoned(RuntimeError):
    """The client went away; the rest of its request was not scored."""


Cancelled = Callable[[], Awaitable[bool]]


@dataclass
class _Job:
    bundle: Bundle
    texts: list[str]
    future: asyncio.Future[list[Prediction]]
    loop: asyncio.AbstractEventLoop


@dataclass
class ScorerStats:
    """Counters for tests and /v1/model; batch_sizes maps size -> number of model calls."""

    batches: int = 0
    statements: int = 0
    batch_sizes: Counter[int] = field(default_factory=Counter)

    @property
    def max_batch(self) -> int:
        return max(self.batch_sizes, default=0)


def _resolve(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():  # the client went away and the request was cancelled
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class Scorer:
    """Micro-batching front of a bundle; one inference thread; hot-swappable.

    The bundle splits each micro-batch over its streams (`inference.streams`). Tried and
    measured slower on 2 cores (`stance bench`): several micro-batches in flight on
    separate worker threads (smaller batches, more GIL and core contention)."""

    _STOP = None

    def __init__(
        self,
        max_batch: int,
        max_wait_ms: float,
        metrics: ScoringMetrics | None = None,
        bundle: Bundle | None = None,
        max_call: int | None = None,
    ) -> None:
        self._bundle = bundle
        self.max_batch = max_batch  # small requests are merged up to this many statements
        self.max_call = max(max_call or max_batch, max_batch)  # a large request is cut into calls of this size
        self.max_wait = max_wait_ms / 1000.0
        self.metrics = metrics
        self.stats = ScorerStats()
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._swap_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="stance-inference", daemon=True)
        if metrics and bundle:
            metrics.set_model(bundle)

    # -- lifecycle

    def start(self) -> None:
        if not self._thread.is_alive():
            self._thread.start()

    def close(self) -> None:
        """Stop the inference thread after the jobs already queued."""
        if self._thread.is_alive():
            self._queue.put(self._STOP)
            self._thread.join()

    @property
    def ready(self) -> bool:
        """A warmed-up bundle is loaded and the inference thread runs."""
        return self._bundle is not None and self._thread.is_alive()

    @property
    def bundle(self) -> Bundle:
        if self._bundle is None:
            raise NotReady("no model loaded yet")
        return self._bundle

    @property
    def version(self) -> str:
        return self.bundle.version

    def swap(self, bundle: Bundle, warm_first: bool = True) -> None:
        """Serve `bundle` from now on (also the first load). Blocking, as warm-up is one
        model call: from async code use `starlette.concurrency.run_in_threadpool`.
        Jobs already queued keep the bundle they were submitted with, so in-flight
        requests finish on the old model, new ones use the new one, and none fails."""
        if warm_first:
            warm(bundle)
        with self._swap_lock:
            old, self._bundle = self._bundle, bundle
            if self.metrics:
                self.metrics.set_model(bundle)
        log.info("serving model %s (was %s)", bundle.version, old.version if old else None)
        del old  # not held while the heap is settled: a frozen retired bundle is never freed
        settle_heap()

    # -- scoring

    async def score(self, texts: Sequence[str]) -> list[Prediction]:
        return (await self.score_versioned(texts))[0]

    async def score_versioned(
        self, texts: Sequence[str], cancelled: Cancelled | None = None
    ) -> tuple[list[Prediction], str]:
        """Predictions for `texts` (in order) and the version that produced all of them.
        Chunks of `max_call` go to the queue one after the other (fair to other requests);
        `cancelled` is asked between chunks, and Abandoned raised when it says yes."""
        bundle = self._bundle  # pinned: the whole request is scored by one bundle
        if bundle is None or not self._thread.is_alive():
            raise NotReady("the model is not loaded yet")
        loop = asyncio.get_running_loop()
        preds: list[Prediction] = []
        for start in range(0, len(texts), self.max_call):
            if start and cancelled is not None and await cancelled():
                raise Abandoned(f"client gone after {start} of {len(texts)} statements")
            future: asyncio.Future[list[Prediction]] = loop.create_future()
            self._queue.put(_Job(bundle, list(texts[start : start + self.max_call]), future, loop))
            preds.extend(await future)  # a cancelled await cancels the future: its job is skipped
        return preds, bundle.version

    # -- the inference thread

    def _collect(self, first: _Job) -> tuple[list[_Job], _Job | None, bool]:
        """Merge queued jobs of the same bundle into one batch, waiting at most max_wait
        for company. Returns (batch, a job held over for the next batch, stop requested)."""
        batch, size = [first], len(first.texts)
        deadline = time.monotonic() + self.max_wait
        while size < self.max_batch:
            remaining = deadline - time.monotonic()
            try:
                job = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if job is self._STOP:
                return batch, None, True
            if job.future.done():  # abandoned while queued
                continue
            if job.bundle is not first.bundle or size + len(job.texts) > self.max_batch:
                return batch, job, False
            batch.append(job)
            size += len(job.texts)
        return batch, None, False

    def _run(self) -> None:
        held: _Job | None = None
        stop = False
        while not stop:
            job = held if held is not None else self._queue.get()
            if job is self._STOP:
                break
            held = None
            if job.future.done():  # abandoned while queued: nobody waits for it
                continue
            batch, held, stop = self._collect(job)
            self._infer(batch)
        if held is not None:
            self._infer([held])

    def _infer(self, batch: list[_Job]) -> None:
        """One model call for the batch; if it fails, each request again on its own, so
        one bad request (a text the tokenizer rejects) fails alone."""
        error = self._call(batch)
        if error is not None and len(batch) > 1:
            log.warning("a batch of %d requests failed (%s); retrying them one by one", len(batch), error)
            for job in batch:
                self._call([job])

    def _call(self, batch: list[_Job]) -> BaseException | None:
        """Score a batch and hand each request its predictions (or the error)."""
        bundle = batch[0].bundle
        texts = [t for job in batch for t in job.texts]
        started = time.perf_counter()
        try:
            preds = bundle.predict(texts)
            error: BaseException | None = None
        except Exception as exc:  # reported to the waiting requests, the thread lives on
            preds, error = [], exc
            if len(batch) == 1:
                log.exception("inference failed on a request of %d statements", len(texts))
            else:
                return exc  # the caller retries the requests one by one
        elapsed = time.perf_counter() - started
        self.stats.batches += 1
        self.stats.statements += len(texts)
        self.stats.batch_sizes[len(texts)] += 1
        if self.metrics:
            self.metrics.batch_size.observe(len(texts))
            self.metrics.statements.inc(len(texts))
            self.metrics.inference_seconds.observe(elapsed)
        parts = regroup(preds, (len(job.texts) for job in batch)) if error is None else itertools.repeat(None)
        for job, part in zip(batch, parts, strict=False):
            try:
                job.loop.call_soon_threadsafe(_resolve, job.future, part, error)
            except RuntimeError:  # that request's event loop has closed (shutdown)
                pass
        return error


def settle_heap() -> None:
    """Move everything alive now (torch, transformers, the bundle: millions of objects)
    out of the cyclic garbage collector's reach. Otherwise each full collection walks
    them all while every request in flight waits. Unfreezing first lets the
    collection free a swapped-out bundle's cycles; this runs once per model load."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    release_free_memory()


def release_free_memory() -> None:
    """Hand the memory a retired bundle freed back to the OS (glibc `malloc_trim`). Loads
    run on whichever worker thread serves the promote; each such thread allocates in its
    own malloc arena, and freed arena memory is otherwise kept, so RSS climbed with every
    swap. A no-op where glibc is not the allocator."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass


def warm(bundle: Bundle, texts: Sequence[str] = WARMUP_TEXTS, batch: int = 32) -> None:
    """A lone statement, then a full batch of long ones: ONNX Runtime grows its memory
    arena on the first sight of a bigger shape, and the first users should not pay for it."""
    bundle.predict(list(texts))
    bundle.predict([" ".join(texts * 4)] * batch)
