"""The store's database: one engine per URL per process, a `write()` transaction that takes
the write lock up front on SQLite, and the SQLite pragmas that make a 2xx answer durable
(WAL, `synchronous=FULL`). Every table (annotations, jobs, monitoring) lives in it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from service.settings import Settings
from service.store.tables import Base


class Database:
    """Engine + sessions. `write()` is one transaction that takes the write lock up front on
    SQLite (so check-then-insert cannot race); `read()` is a plain session."""

    def __init__(self, url: str, busy_timeout_ms: int) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            self.engine = _sqlite_engine(url, busy_timeout_ms)
        else:
            self.engine = create_engine(url, pool_pre_ping=True)
        writer: Engine = self.engine.execution_options(stance_write=True)
        self._read = sessionmaker(bind=self.engine, expire_on_commit=False)
        self._write = sessionmaker(bind=writer, expire_on_commit=False)
        self._create_tables()

    def _create_tables(self) -> None:
        try:
            Base.metadata.create_all(self.engine)
        except (OperationalError, IntegrityError):  # another process created them meanwhile
            Base.metadata.create_all(self.engine)

    @contextmanager
    def write(self) -> Iterator[Session]:
        with self._write() as session, session.begin():
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._read() as session:
            yield session

    def dispose(self) -> None:
        self.engine.dispose()


def _sqlite_engine(url: str, busy_timeout_ms: int) -> Engine:
    path = url.split("///", 1)[-1]
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": busy_timeout_ms / 1000, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # SQLAlchemy's "begin" event below emits BEGIN
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cur.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
        cur.execute("PRAGMA synchronous=FULL")  # a committed write survives power loss too
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get("stance_write")
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


_databases: dict[tuple[str, int], Database] = {}
_databases_lock = threading.Lock()


def open_database(settings: Settings) -> Database:
    """One Database per URL per process (engines pool connections; share them)."""
    key = (settings.store_url(), settings.store.busy_timeout_ms)
    with _databases_lock:
        if key not in _databases:
            _databases[key] = Database(*key)
        return _databases[key]
