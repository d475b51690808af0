"""The aggregate contract on PostgreSQL."""

from __future__ import annotations

import pytest

from tests.aggregates.contract import AggregateContract
from tests.aggregates.snapshot_authenticity import SnapshotAuthenticityContract


class TestPostgresAggregates(AggregateContract):
    @pytest.fixture
    def url(self, postgres_url: str) -> str:
        return postgres_url


class TestPostgresSnapshotAuthenticity(SnapshotAuthenticityContract):
    @pytest.fixture
    def url(self, postgres_url: str) -> str:
        return postgres_url
