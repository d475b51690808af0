"""The shipped crypto-shredding contract on PostgreSQL, and what only PostgreSQL has to promise."""

from __future__ import annotations

import pytest

from keyvault import MasterKey
from shredstore import EventStore
from shredstore.testing import ShreddingContract
from tests.shredding.contract import (
    PERSONAL,
    customer,
    distinctive_events,
    found_in,
    raw_rows,
    table_dumps,
)


class TestPostgresShredding(ShreddingContract):
    @pytest.fixture
    def url(self, postgres_url: str) -> str:
        return postgres_url

    @pytest.fixture
    def vault_url(self, second_postgres_url: str) -> str:
        return second_postgres_url


def test_the_dump_covers_every_table_of_the_schema(postgres_url: str) -> None:
    """The plaintext scan reads every table PostgreSQL lists in the store's schema."""
    with EventStore(postgres_url, master_key=MasterKey.generate()) as store:
        store.append("s", distinctive_events())
    listed = {name for (name,) in raw_rows(
        postgres_url, "SELECT table_name FROM information_schema.tables "
        "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'")}
    dumps = table_dumps(postgres_url)
    assert set(dumps) == listed
    assert {"shredstore_events", "shredstore_event_subjects", "keyvault_subjects",
            "keyvault_state"} <= listed
    leaks = found_in(dumps, PERSONAL)
    assert leaks == [], leaks


def test_a_separate_vault_is_a_second_schema(
    postgres_url: str, second_postgres_url: str
) -> None:
    """With vault_url, the key tables are in the vault's schema and not in the events' one."""
    with EventStore(postgres_url, master_key=MasterKey.generate(),
                    vault_url=second_postgres_url) as store:
        store.append("s", [customer("c-1")])
        store.erase_subject("c-1")
        assert [r.redacted_fields for r in store.read_stream("s")] == [{"name", "email"}]
    events_tables, vault_tables = set(table_dumps(postgres_url)), set(
        table_dumps(second_postgres_url))
    assert {"shredstore_events", "shredstore_event_subjects"} <= events_tables
    assert not any(name.startswith("keyvault_") for name in events_tables)
    assert vault_tables == {"keyvault_subjects", "keyvault_state", "keyvault_service_keys"}
    assert raw_rows(second_postgres_url,
                    "SELECT subject_id, state FROM keyvault_subjects") == [("c-1", "erased")]
