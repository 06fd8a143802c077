"""Monitoring inside the app: its objects on `app.state.monitor`, its router, and the
lifespan work (create its tables, recover re-scoring jobs, run the poller)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from service.monitor.model import ServiceModel
from service.monitor.poller import Poller
from service.monitor.rescore import Rescorer
from service.monitor.review import ReviewQueue
from service.monitor.subscriptions import Feeds
from service.monitor.tables import Base
from service.settings import Settings
from service.store.engine import Database
from service.store.repository import AnnotationStore

log = logging.getLogger("stance.monitor")


def ensure_tables(db: Database) -> None:
    """The monitoring tables, in the store's database (a Database opened before this
    package was imported did not create them)."""
    Base.metadata.create_all(db.engine)


@dataclass
class Monitor:
    settings: Settings
    db: Database
    store: AnnotationStore
    model: ServiceModel
    feeds: Feeds = field(init=False)
    review: ReviewQueue = field(init=False)
    rescorer: Rescorer = field(init=False)
    poller: Poller = field(init=False)

    def __post_init__(self) -> None:
        mon = self.settings.monitor
        self.feeds = Feeds(self.db, mon)
        self.review = ReviewQueue(self.store, mon.review_pool, mon.review_lambda)
        self.rescorer = Rescorer(self.settings, self.db, self.model)
        self.poller = Poller(self.settings, self.db, self.model)
