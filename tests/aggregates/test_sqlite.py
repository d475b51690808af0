"""The aggregate contract on SQLite."""

from __future__ import annotations

import pytest

from tests.aggregates.contract import AggregateContract
from tests.aggregates.snapshot_authenticity import SnapshotAuthenticityContract


class TestSQLiteAggregates(AggregateContract):
    @pytest.fixture
    def url(self, sqlite_url: str) -> str:
        return sqlite_url


class TestSQLiteSnapshotAuthenticity(SnapshotAuthenticityContract):
    @pytest.fixture
    def url(self, sqlite_url: str) -> str:
        return sqlite_url
