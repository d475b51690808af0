"""Snapshots are authenticated like events: an edited snapshot is never loaded.

`SnapshotAuthenticityContract` is not collected on its own: `test_sqlite.py` and
`test_postgres.py` subclass it and provide the `url` fixture. The attacks are the ones measured
in issue 14 (point 3), made with plain SQL on the snapshots table.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Annotated

import pytest
import sqlalchemy as sa

from keyvault import MasterKey
from shredstore import Aggregate, Event, EventStore, PersonalData, Repository, SubjectId

NAME = "Ombrelyn Vasquette-Drummond"


class AccountOpened(Event, type_name="test.aggregates.AccountOpened"):
    customer_id: SubjectId
    holder: Annotated[str, PersonalData()]
    credit_limit: int


class LimitChanged(Event, type_name="test.aggregates.LimitChanged"):
    credit_limit: int


class Account(Aggregate, stream_prefix="account-", type_name="test.aggregates.Account"):
    customer_id: SubjectId = ""
    holder: Annotated[str, PersonalData()] = ""
    credit_limit: int = 0

    def apply(self, event: Event) -> None:
        match event:
            case AccountOpened():
                self.customer_id, self.holder = event.customer_id, event.holder
                self.credit_limit = event.credit_limit
            case LimitChanged():
                self.credit_limit = event.credit_limit


def _redacted_group(row: dict[str, object]) -> dict[str, object]:
    return {"personal": json.dumps([{"subject": "c1", "paths": [["holder"]], "redacted": True}])}


def _credit_limit_raised(row: dict[str, object]) -> dict[str, object]:
    state = json.loads(str(row["state"]))
    state["credit_limit"] = 1_000_000_000
    return {"state": json.dumps(state)}


def _personal_nulled(row: dict[str, object]) -> dict[str, object]:
    return {"personal": None}


ATTACKS = {
    "active subject's group edited to a redacted group": _redacted_group,
    "plain field credit_limit edited to 1e9": _credit_limit_raised,
    "personal column NULLed": _personal_nulled,
}


class SnapshotAuthenticityContract:
    """Subclasses provide a `url` fixture naming a fresh, empty store."""

    @pytest.fixture
    def store(self, url: str) -> Iterator[EventStore]:
        with EventStore(url, master_key=MasterKey.generate()) as store:
            yield store

    @pytest.fixture
    def accounts(self, store: EventStore) -> Repository[Account]:
        account = Account(id="c1")
        account.record(AccountOpened(customer_id="c1", holder=NAME, credit_limit=500))
        account.record(LimitChanged(credit_limit=700))
        repository = Repository(store, Account, snapshot_every=2)
        repository.save(account)  # version 2: a snapshot
        return repository

    def snapshot(self, store: EventStore) -> Account | None:
        return store.load_snapshot(Account, "account-c1", type_name=Account.__stored_type__,
                                   schema_version=Account.__schema_version__)

    def test_an_intact_snapshot_loads_and_verifies(
        self, store: EventStore, accounts: Repository[Account]
    ) -> None:
        """The snapshot the store wrote is used, and verify finds nothing."""
        loaded = self.snapshot(store)
        assert loaded is not None
        assert (loaded.version, loaded.holder, loaded.credit_limit) == (2, NAME, 700)
        assert store.verify().ok

    @pytest.mark.parametrize("attack", list(ATTACKS))
    def test_an_edited_snapshot_is_never_loaded_and_verify_reports_it(
        self, url: str, store: EventStore, accounts: Repository[Account], attack: str,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """An edited snapshot is skipped with a warning naming only the stream and version; the
        aggregate is replayed from its events; verify reports the snapshot."""
        engine = sa.create_engine(url)
        try:
            with engine.begin() as conn:
                row = dict(conn.execute(sa.text(
                    "SELECT state, personal FROM shredstore_snapshots")).one()._mapping)
                conn.execute(sa.update(sa.table("shredstore_snapshots", sa.column("state"),
                                                sa.column("personal")))
                             .values(**ATTACKS[attack](row)))
        finally:
            engine.dispose()
        with caplog.at_level(logging.WARNING, logger="shredstore.snapshots"):
            assert self.snapshot(store) is None
            loaded = accounts.load("c1")
        assert (loaded.version, loaded.holder, loaded.credit_limit) == (2, NAME, 700)
        warnings = [r.getMessage() for r in caplog.records if r.name == "shredstore.snapshots"]
        assert warnings
        assert all("'account-c1'" in w and "version 2" in w and NAME not in w for w in warnings)
        findings = [(f.kind, f.position) for f in store.verify().findings]
        assert findings == [("snapshot", None)]

    def test_a_snapshot_saved_without_the_master_key_is_not_used_by_a_store_with_it(
        self, url: str, store: EventStore, accounts: Repository[Account]
    ) -> None:
        """A snapshot without an authenticator cannot be told from a forged one: replayed."""
        engine = sa.create_engine(url)
        try:
            with engine.begin() as conn:
                conn.execute(sa.text("UPDATE shredstore_snapshots SET mac = NULL"))
        finally:
            engine.dispose()
        assert self.snapshot(store) is None
        assert accounts.load("c1").holder == NAME
