"""The two ways monitoring reaches a model (`ingest.ModelPort`): through the service's
micro-batching `Scorer` (poller, re-scoring, API), or a bundle loaded by the CLI."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from service.monitor.ingest import Scored
from service.scoring.scorer import Scorer
from service.scoring.statements import WindowSplitter, splitter_for
from training.bundle import Bundle


class ServiceModel:
    """Scores through the running service's Scorer: requests and polls share the
    micro-batches, and a hot swap applies to the next chunk."""

    def __init__(self, scorer: Scorer) -> None:
        self.scorer = scorer

    async def score(self, texts: Sequence[str]) -> Scored:
        bundle = self.scorer.bundle
        preds, version = await self.scorer.score_versioned(list(texts))
        if bundle.version != version:  # swapped between the two lines: take the new one's thresholds
            bundle = self.scorer.bundle
        return Scored(preds, version, bundle.thresholds)

    def splitter(self) -> WindowSplitter:
        return splitter_for(self.scorer.bundle)

    @property
    def version(self) -> str:
        return self.scorer.version

    @property
    def bundle(self) -> Bundle:
        return self.scorer.bundle


class BundleModel:
    """A bundle scored in a worker thread (the CLI's `stance feeds poll`)."""

    def __init__(self, bundle: Bundle) -> None:
        self.bundle = bundle

    async def score(self, texts: Sequence[str]) -> Scored:
        preds = await asyncio.to_thread(self.bundle.predict, list(texts)) if texts else []
        return Scored(preds, self.bundle.version, self.bundle.thresholds)

    def splitter(self) -> WindowSplitter:
        return splitter_for(self.bundle)

    @property
    def version(self) -> str:
        return self.bundle.version
