"""The shipped event-store contract on SQLite, and what only SQLite has to promise."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa

from keyvault import MasterKey
from shredstore import EventStore, StoreUnavailable
from shredstore.testing import EventStoreContract
from tests.store.authenticity import AuthenticityContract
from tests.store.contract import notes


class TestSQLiteEventStore(EventStoreContract):
    @pytest.fixture
    def url(self, sqlite_url: str) -> str:
        return sqlite_url


def test_the_database_runs_in_wal_with_full_sync(sqlite_url: str) -> None:
    """Store connections use WAL, synchronous=FULL and a busy timeout."""
    with EventStore(sqlite_url) as store:
        store.append("s", notes(1))
        with store._engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 10_000


def test_appends_are_visible_to_a_plain_sqlite_reader(sqlite_url: str, tmp_path: Path) -> None:
    """A committed append is in the file for any other connection to read."""
    with EventStore(sqlite_url) as store:
        store.append("s", notes(3))
        with sqlite3.connect(tmp_path / "events.db") as other:
            assert other.execute("SELECT count(*) FROM shredstore_events").fetchone() == (3,)


def test_an_in_memory_store_works_for_experiments() -> None:
    """sqlite:// gives one private in-memory store shared by all its connections."""
    with EventStore("sqlite://") as store:
        store.append("s", notes(2))
        assert [r.version for r in store.read_stream("s")] == [1, 2]
        assert store.verify().ok


def test_an_unreachable_database_file_is_reported_as_unavailable(tmp_path: Path) -> None:
    """A path in a folder that does not exist raises StoreUnavailable, not a driver error."""
    with pytest.raises(StoreUnavailable, match="cannot reach the database"):
        EventStore(f"sqlite:///{tmp_path / 'missing' / 'events.db'}")


class TestSQLiteAuthenticity(AuthenticityContract):
    @pytest.fixture
    def url(self, sqlite_url: str) -> str:
        return sqlite_url

    @pytest.mark.parametrize("change", [
        "version = 9223372036854775807",
        "version = 'abc'",
        "schema_version = 1.5",
        "event_id = 'not hex'",
        "event_id = X'00112233445566778899aabbccddeeff'",
        "recorded_at = 'garbage'",
        "recorded_at = '0000-01-01 00:00:00.000000'",
        "recorded_at = X'00ff'",
        "subjects = X'01'",
        "mac = 'text'",
        "stream_id = CAST(X'ff' AS TEXT)",
        "payload = CAST(X'7b22c3' AS TEXT)",
        "personal = CAST(X'5bff5d' AS TEXT)",
    ])
    def test_a_value_of_another_type_is_tampering_and_verify_reports_it(
        self, url: str, store: EventStore, attacker: sa.Engine, change: str,
    ) -> None:
        """SQLite keeps any type in any column, and text that is not UTF-8."""
        self.assert_no_reader_takes(url, store, attacker, change)

    @pytest.mark.parametrize("change", ["key_version = 'x'", "wrapped_key = 'text'"])
    def test_a_key_row_value_of_another_type_is_tampering(
        self, url: str, master: MasterKey, store: EventStore, attacker: sa.Engine, change: str,
    ) -> None:
        """SQLite keeps any type in any column, the vault's too."""
        self.assert_key_row_refused(url, master, store, attacker, change)
