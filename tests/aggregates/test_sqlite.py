"""The aggregate contract on SQLite."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from shredstore import EventStore, Repository
from tests.aggregates.contract import AggregateContract
from tests.aggregates.snapshot_authenticity import NAME, Account, SnapshotAuthenticityContract


class TestSQLiteAggregates(AggregateContract):
    @pytest.fixture
    def url(self, sqlite_url: str) -> str:
        return sqlite_url


class TestSQLiteSnapshotAuthenticity(SnapshotAuthenticityContract):
    @pytest.fixture
    def url(self, sqlite_url: str) -> str:
        return sqlite_url

    @pytest.mark.parametrize("change", ["version = 2.5", "schema_version = 'one'",
                                        "state = X'7b7d'"])
    def test_a_snapshot_value_of_another_type_is_never_loaded(
        self, url: str, store: EventStore, accounts: Repository[Account], change: str,
    ) -> None:
        """A snapshot value of a type saves never write (SQLite keeps any type in any column;
        its authenticator cannot even be computed) is not loaded, and verify reports it
        instead of stopping."""
        engine = sa.create_engine(url)
        try:
            with engine.begin() as conn:
                conn.execute(sa.text(f"UPDATE shredstore_snapshots SET {change}"))
        finally:
            engine.dispose()
        assert self.snapshot(store) is None
        loaded = accounts.load("c1")
        assert (loaded.version, loaded.holder, loaded.credit_limit) == (2, NAME, 700)
        assert [(f.kind, f.position) for f in store.verify().findings] == [("snapshot", None)]
