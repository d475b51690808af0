"""Shared fixtures: an SQLite file per test, and a PostgreSQL schema per test.

PostgreSQL tests read SHREDSTORE_TEST_POSTGRES_URL. Without it they skip with a reason; with
SHREDSTORE_REQUIRE_POSTGRES=1 a missing or unreachable server fails them instead, and any
PostgreSQL test that skipped anyway fails the run. Each run works in a database of its own,
dropped at the end; each test in a schema of its own.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url

from keyvault import MasterKey

POSTGRES_ENV = "SHREDSTORE_TEST_POSTGRES_URL"
REQUIRE_ENV = "SHREDSTORE_REQUIRE_POSTGRES"


def _postgres_required() -> bool:
    return os.environ.get(REQUIRE_ENV, "") not in ("", "0", "false", "no")


def _no_postgres(reason: str) -> None:
    if _postgres_required():
        pytest.fail(f"{reason}, and {REQUIRE_ENV}=1 forbids skipping", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[URL]:
    """A database of this test run's own on the configured server, dropped at the end."""
    configured = os.environ.get(POSTGRES_ENV)
    if not configured:
        _no_postgres(f"{POSTGRES_ENV} is not set")
    base = make_url(configured).set(drivername="postgresql+psycopg")
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    name = f"shredstore_test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.OperationalError as error:
        admin.dispose()
        _no_postgres(f"PostgreSQL at {base.render_as_string()} is unreachable: "
                     f"{str(error.orig).strip().splitlines()[0]}")
    try:
        yield base.set(database=name)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@contextlib.contextmanager
def fresh_schema(database: URL, prefix: str = "t") -> Iterator[str]:
    """A URL whose connections work in a new schema of `database`, dropped afterwards."""
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(database, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    url = database.render_as_string(hide_password=False)
    try:
        yield f"{url}?options={quote(f'-csearch_path={schema}')}"
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.dispose()


@pytest.fixture
def postgres_url(postgres_database: URL) -> Iterator[str]:
    """A URL whose connections work in a fresh schema of the run's database."""
    with fresh_schema(postgres_database) as url:
        yield url


@pytest.fixture
def second_postgres_url(postgres_database: URL) -> Iterator[str]:
    """A URL of another fresh schema of the run's database (a second database, in effect)."""
    with fresh_schema(postgres_database, "v") as url:
        yield url


@pytest.fixture
def master_file(tmp_path: Path) -> Path:
    """A new master key in a file only its owner may read."""
    path = tmp_path / "master.key"
    MasterKey.generate().to_file(path)
    return path


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A URL of a new SQLite file."""
    return f"sqlite:///{tmp_path / 'events.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_url(request: pytest.FixtureRequest) -> str:
    """The URL of a fresh store on each backend in turn."""
    name = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    url: str = request.getfixturevalue(name)
    return url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def separate_urls(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(event store URL, vault URL) of a store whose vault has a database of its own, on each
    backend in turn (two schemas of the run's database on PostgreSQL)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'events.db'}", f"sqlite:///{tmp_path / 'vault.db'}"
        return
    yield (request.getfixturevalue("postgres_url"),
           request.getfixturevalue("second_postgres_url"))


_skipped_postgres: list[str] = []


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "postgres_url" in getattr(item, "fixturenames", ()) or "postgres" in item.nodeid.lower():
            item.add_marker(pytest.mark.postgres)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and "postgres" in report.keywords and not hasattr(report, "wasxfail"):
        _skipped_postgres.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _postgres_required() and _skipped_postgres and exitstatus == 0:
        session.exitstatus = 1


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _postgres_required() and _skipped_postgres:
        terminalreporter.write_line(
            f"FAILED: {len(_skipped_postgres)} PostgreSQL test(s) skipped although "
            f"{REQUIRE_ENV}=1, e.g. {_skipped_postgres[0]}",
            red=True,
        )
