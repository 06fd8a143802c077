"""Shared fixtures. Service fixtures: a temp registry of tiny bundles, settings pointing at
it (small limits so the error cases are cheap to hit), and a running TestClient."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.settings import Settings
from tests.support import project_settings
from tests.support.tiny import make_tiny_bundle
from training.registry import Registry

TINY_A = "vtest-a"
TINY_B = "vtest-b"
DATA = Path(__file__).parent / "data"
_databases = itertools.count(1)


@pytest.fixture(scope="session")
def tiny_registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two tiny bundles (different random weights); the first is current."""
    root = tmp_path_factory.mktemp("models")
    make_tiny_bundle(root / TINY_A, version=TINY_A, seed=0)
    make_tiny_bundle(root / TINY_B, version=TINY_B, seed=1)
    Registry(root).set_current(TINY_A, reason="tests")
    return root


@pytest.fixture(scope="session")
def service_settings(tiny_registry: Path, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return project_settings().with_overrides(
        paths={"models_dir": tiny_registry, "data_dir": tmp_path_factory.mktemp("data")},
        service={
            "max_text_chars": 3000,
            "max_texts": 8,
            "max_body_bytes": 50_000,
            "max_feed_bytes": 200_000,
            "microbatch_max_size": 16,
            "microbatch_max_wait_ms": 20,
            "max_statements": 50,
        },
    )


@pytest.fixture(scope="session")
def client(service_settings: Settings) -> Iterator[TestClient]:  # noqa: F821
    """A started app (lifespan ran: model loaded and warm), shared by read-only tests."""
    from fastapi.testclient import TestClient

    from service.app import create_app

    with TestClient(create_app(service_settings), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(scope="session")
def postgres() -> Iterator[object]:
    """A temporary PostgreSQL server (tests/support/postgres.py) for the whole session.
    Without server binaries the tests that need it skip, loudly, except under CI (CI=true),
    where they fail: `.ci/run` installs Debian's `postgresql`, so a skip there hides a bug."""
    from tests.support.postgres import BIN_GLOB, find_bin_dir, start_postgres

    bin_dir = find_bin_dir()
    if bin_dir is None:
        why = f"PostgreSQL server binaries not found ({BIN_GLOB}); install Debian's `postgresql` package"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"CI must run the PostgreSQL tests: {why}")
        pytest.skip(f"SKIPPED PostgreSQL tests: {why}")
    server = start_postgres(bin_dir)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_url(request: pytest.FixtureRequest) -> str:
    """An empty PostgreSQL database: STANCE_TEST_PG_URL if set (a scratch database you
    own), else a fresh database on the temporary server."""
    given = os.environ.get("STANCE_TEST_PG_URL")
    if given:
        return given
    server = request.getfixturevalue("postgres")
    return server.new_database(f"stance_test_{next(_databases)}")
