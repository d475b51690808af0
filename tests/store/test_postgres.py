"""The shipped event-store contract on PostgreSQL, and what only PostgreSQL has to promise."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from shredstore import ConfigurationError, EventStore, StoreUnavailable
from shredstore.testing import EventStoreContract
from tests.store import tampering
from tests.store.authenticity import AuthenticityContract
from tests.store.contract import notes


class TestPostgresEventStore(EventStoreContract):
    @pytest.fixture
    def url(self, postgres_url: str) -> str:
        return postgres_url


@pytest.fixture
def store(postgres_url: str) -> Iterator[EventStore]:
    with EventStore(postgres_url) as store:
        yield store


def test_truncate_is_refused(store: EventStore, postgres_url: str) -> None:
    """TRUNCATE of the events table fails by trigger."""
    store.append("s", notes(2))
    engine = tampering.raw_engine(postgres_url)
    try:
        with pytest.raises(sa.exc.DBAPIError, match="append-only: TRUNCATE is refused"):
            tampering.execute(engine, "TRUNCATE shredstore_events")
    finally:
        engine.dispose()
    assert len(list(store.read_all())) == 2


def test_stores_in_two_schemas_are_independent(
    postgres_url: str, postgres_database: sa.URL
) -> None:
    """Two event logs in different schemas of one database each number from 1."""
    with EventStore(postgres_url) as first:
        first.append("s", notes(2))
    admin = sa.create_engine(postgres_database, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql('CREATE SCHEMA "other_schema_test"')
    other = postgres_database.render_as_string(hide_password=False)
    try:
        with EventStore(f"{other}?options=-csearch_path%3Dother_schema_test") as second:
            assert second.append("s", notes(1)).positions == (1,)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql('DROP SCHEMA "other_schema_test" CASCADE')
        admin.dispose()


def test_plain_postgresql_urls_use_psycopg(postgres_url: str) -> None:
    """postgresql:// without a driver name is served by psycopg 3."""
    with EventStore(postgres_url.replace("postgresql+psycopg://", "postgresql://")) as store:
        assert store._engine.dialect.driver == "psycopg"


def test_other_postgresql_drivers_are_refused() -> None:
    """A driver other than psycopg 3 is a configuration error, named in the message."""
    with pytest.raises(ConfigurationError, match="psycopg2"):
        EventStore("postgresql+psycopg2://postgres@127.0.0.1/test")


def test_an_unreachable_server_is_reported_as_unavailable() -> None:
    """A server that refuses connections raises StoreUnavailable."""
    with pytest.raises(StoreUnavailable, match="cannot reach the database"):
        EventStore("postgresql+psycopg://postgres@127.0.0.1:1/test?connect_timeout=2")


class TestPostgresAuthenticity(AuthenticityContract):
    @pytest.fixture
    def url(self, postgres_url: str) -> str:
        return postgres_url

    @pytest.mark.parametrize("change", [
        "recorded_at = 'infinity'",
        "recorded_at = '-infinity'",
        "recorded_at = '200000-01-01 00:00:00+00'",
        "recorded_at = '0001-01-01 00:00:00+00 BC'",
    ])
    def test_a_time_no_datetime_holds_is_tampering_and_verify_reports_it(
        self, url: str, store: EventStore, attacker: sa.Engine, change: str,
    ) -> None:
        """A timestamptz Python cannot hold used to fail the whole statement (an overflow)."""
        self.assert_no_reader_takes(url, store, attacker, change)
