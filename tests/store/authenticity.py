"""Row authenticators and the checked subject index, tried as a database-level attacker would.

`AuthenticityContract` is not collected on its own: `test_sqlite.py` and `test_postgres.py`
subclass it and provide the `url` fixture. Each attack drops the immutability triggers, edits
rows with plain SQL, and recomputes the hash chain, so that only the authenticators (or the
subjects column) can tell.
"""

from __future__ import annotations

import base64
import io
import json
import os
from collections.abc import Iterator
from typing import Annotated

import pytest
import sqlalchemy as sa

from keyvault import MasterKey
from shredstore import (
    REDACTED,
    Aggregate,
    ConfigurationError,
    Event,
    EventStore,
    PersonalData,
    Repository,
    ShredstoreError,
    SubjectId,
    TamperedError,
    WrongExpectedVersion,
)
from shredstore.audit.export import write_export
from shredstore.records import Scope
from tests.store import tampering

NAME = "Zyxwvu Quillfeather"
EMAIL = "zyxwvu.quill@example.invalid"
NICKNAME = "Quillo-7731"


class Enrolled(Event, type_name="test.authenticity.Enrolled"):
    customer_id: SubjectId
    name: Annotated[str, PersonalData()]
    email: Annotated[str, PersonalData(replacement="erased@invalid")]
    credit_limit: int


class Nicknamed(Event, type_name="test.authenticity.Nicknamed"):
    """A personal field that may be None: NULLing its column must not read as None."""

    customer_id: SubjectId
    nickname: Annotated[str | None, PersonalData()] = None


class Pinged(Event, type_name="test.authenticity.Pinged"):
    """No subject and no personal data."""

    note: str


def enrolled(customer_id: str, credit_limit: int = 500) -> Enrolled:
    return Enrolled(customer_id=customer_id, name=NAME, email=EMAIL, credit_limit=credit_limit)


def found(store: EventStore, **options: object) -> list[tuple[str, int | None]]:
    """verify's findings, leaving out the dropped triggers that every attack here begins with."""
    return [(f.kind, f.position) for f in store.verify(**options).findings  # type: ignore[arg-type]
            if f.kind != "unprotected"]


class Account(Aggregate, type_name="test.authenticity.Account", stream_prefix="c-"):
    credit_limit: int = 0

    def apply(self, event: Event) -> None:
        if isinstance(event, Enrolled):
            self.credit_limit = event.credit_limit


class AuthenticityContract:
    """Subclasses provide a `url` fixture naming a fresh, empty store."""

    @pytest.fixture
    def master(self) -> MasterKey:
        return MasterKey.generate()

    @pytest.fixture
    def store(self, url: str, master: MasterKey) -> Iterator[EventStore]:
        with EventStore(url, master_key=master) as store:
            yield store

    @pytest.fixture
    def attacker(self, store: EventStore, url: str) -> Iterator[sa.Engine]:
        """A raw connection to the store's database with the immutability triggers gone."""
        engine = tampering.raw_engine(url)
        tampering.drop_triggers(engine)
        yield engine
        engine.dispose()

    def assert_tampered(self, store: EventStore, stream_id: str, position: int) -> None:
        """Every read of the stream, and of the whole log, raises TamperedError naming only
        the position; verify reports the row as forged."""
        for read in (lambda: list(store.read_stream(stream_id)), lambda: list(store.read_all())):
            with pytest.raises(TamperedError, match=f"position {position}") as caught:
                read()
            for value in (NAME, EMAIL, NICKNAME):
                assert value not in str(caught.value)
        assert ("forged", position) in found(store)

    # Intact rows

    def test_a_row_key_made_by_another_process_meanwhile_is_found(
        self, url: str, master: MasterKey, monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """A store that looks for the row key just before another one makes it and appends
        (between its lookup and its look at the log) finds the key, not "another vault"."""
        with EventStore(url, master_key=master) as late, \
                EventStore(url, master_key=master) as early:
            lookup = late.vault.service_key
            raced = []

            def racing(name: str, *, create: bool = True) -> bytes:
                if create or raced:
                    return lookup(name, create=create)
                raced.append(name)
                try:
                    return lookup(name, create=False)  # not there yet: KeyNotFoundError
                finally:
                    early.append("first", [Pinged(note="made the key")])

            monkeypatch.setattr(late.vault, "service_key", racing)
            late.append("second", [Pinged(note="found it")])
            assert raced
            assert [r.event.note for r in late.read_all()] == [  # type: ignore[attr-defined]
                "made the key", "found it"]
            assert late.verify().unauthenticated == 0

    def test_every_appended_row_carries_an_authenticator_and_reads_back(
        self, store: EventStore, url: str
    ) -> None:
        """Rows appended with the master key hold a format-2 MAC (the byte 2 and 32 bytes) and
        their subjects; they read back and verify, with no row counted as unauthenticated."""
        events = [enrolled("c1"), Nicknamed(customer_id="c1", nickname=NICKNAME),
                  Pinged(note="plain")]
        store.append("c-1", events[:2])
        store.append("p", events[2:])
        reader = tampering.raw_engine(url)
        try:
            macs = [bytes(tampering.column(reader, p, "mac"))  # type: ignore[arg-type]
                    for p in (1, 2, 3)]
            assert all(len(mac) == 33 and mac[0] == 2 for mac in macs)
            assert tampering.column(reader, 1, "subjects") == '["c1"]'
            assert tampering.column(reader, 3, "subjects") is None
        finally:
            reader.dispose()
        assert [r.event for r in store.read_all()] == events
        report = store.verify()
        assert report.ok
        assert report.unauthenticated == 0

    def test_authenticators_survive_erasure_and_master_key_rotation(
        self, url: str, store: EventStore, master: MasterKey
    ) -> None:
        """After an erasure and a rotation, every row still reads (redacted where erased) and
        verifies; new appends under the new key are authenticated by the same service key."""
        store.append("c-1", [enrolled("c1")])
        store.append("c-2", [enrolled("c2")])
        store.erase_subject("c1")
        new = MasterKey.generate()
        store.vault.rotate_master_key(new)
        with EventStore(url, master_key=new) as rotated:
            rotated.append("c-3", [enrolled("c3")])
            events = [r.event for r in rotated.read_all() if isinstance(r.event, Enrolled)]
            assert [e.name for e in events] == [REDACTED, NAME, NAME]
            assert rotated.verify().ok

    def test_rows_appended_without_the_master_key_are_accepted_and_counted(
        self, url: str, store: EventStore
    ) -> None:
        """A key-less store appends plain events and erasure-ledger entries without a MAC; a
        store with the key reads them, and verify counts them without failing."""
        store.append("c-1", [enrolled("c1")])
        with EventStore(url) as keyless:
            keyless.append("p", [Pinged(note="plain")])
            keyless.erase_subject("c1")
            assert keyless.verify().unauthenticated is None  # it cannot check authenticators
        assert [type(r.event).__name__ for r in store.read_all()] == [
            "Enrolled", "Pinged", "SubjectErased"]
        report = store.verify()
        assert report.ok
        assert report.unauthenticated == 2

    # The measured attacks of issue 14, point 2

    def test_a_group_relabelled_to_an_erased_subject_is_tampering(
        self, store: EventStore, attacker: sa.Engine
    ) -> None:
        """Relabelling an active subject's group to an erased subject never reads as redacted,
        also once the real subject is erased too."""
        store.append("c-1", [enrolled("c1")])
        store.append("c-2", [enrolled("c2")])
        store.erase_subject("c2")
        personal = json.loads(str(tampering.column(attacker, 1, "personal")))
        for group in personal:
            group["subject"] = "c2"
        tampering.edit(attacker, 1, personal=json.dumps(personal), subjects='["c2"]')
        tampering.rechain(attacker)
        self.assert_tampered(store, "c-1", 1)
        store.vault.erase("c1")
        self.assert_tampered(store, "c-1", 1)

    def test_garbage_under_an_erased_subjects_label_is_tampering(
        self, store: EventStore, attacker: sa.Engine
    ) -> None:
        """A sealed value replaced by random bytes under an erased subject's label is tampering,
        never "redacted"."""
        store.append("c-1", [enrolled("c1")])
        store.erase_subject("c1")
        garbage = base64.b64encode(b"\x01\x00\x00\x00\x01" + os.urandom(60)).decode()
        tampering.edit(attacker, 1, personal=json.dumps(
            [{"subject": "c1", "paths": [["name"], ["email"]], "sealed": garbage}]))
        tampering.rechain(attacker)
        self.assert_tampered(store, "c-1", 1)

    def test_a_nulled_optional_personal_field_is_tampering(
        self, store: EventStore, attacker: sa.Engine
    ) -> None:
        """NULLing the personal column (and the MAC) of an event whose personal field is
        optional never reads as None: its class declares personal data, so it needs a MAC."""
        store.append("c-1", [Nicknamed(customer_id="c1", nickname=NICKNAME)])
        store.append("c-1b", [Nicknamed(customer_id="c1", nickname=NICKNAME)])
        tampering.edit(attacker, 1, personal=None, mac=None)
        tampering.edit(attacker, 2, personal=None)  # the MAC kept: it no longer matches
        tampering.rechain(attacker)
        self.assert_tampered(store, "c-1", 1)
        with pytest.raises(TamperedError, match="position 2"):
            list(store.read_stream("c-1b"))
        assert ("forged", 2) in found(store)
        store.vault.erase("c1")  # the key alone: a receipt cannot be made of a tampered log
        self.assert_tampered(store, "c-1", 1)

    def test_an_edited_plain_field_is_tampering(
        self, store: EventStore, attacker: sa.Engine
    ) -> None:
        """An edited plain payload field is tampering, with the subject active or erased."""
        store.append("c-1", [enrolled("c1", credit_limit=500)])
        payload = json.loads(str(tampering.column(attacker, 1, "payload")))
        payload["credit_limit"] = 1_000_000_000
        tampering.edit(attacker, 1, payload=json.dumps(payload))
        tampering.rechain(attacker)
        self.assert_tampered(store, "c-1", 1)
        store.vault.erase("c1")
        self.assert_tampered(store, "c-1", 1)

    def test_an_edited_plain_event_with_its_mac_stripped_is_left_to_the_anchor(
        self, store: EventStore, attacker: sa.Engine
    ) -> None:
        """A plain event (no personal data declared) whose MAC is removed reads as written by
        a key-less store: verify counts it as unauthenticated, and an anchored head kept from
        before the edit catches it, because the chain covers the MAC."""
        store.append("p", [Pinged(note="first")])
        anchor = store.head()
        tampering.edit(attacker, 1, payload='{"note":"edited"}', mac=None)
        tampering.rechain(attacker)
        assert [r.event.note for r in store.read_all()] == ["edited"]  # type: ignore[attr-defined]
        assert store.verify().unauthenticated == 1
        assert found(store, expected_head=anchor) == [("anchor", 1)]

    def test_a_row_moved_to_another_position_is_tampering(
        self, store: EventStore, attacker: sa.Engine
    ) -> None:
        """The MAC covers the position: swapped rows fail on read."""
        store.append("p", [Pinged(note="a"), Pinged(note="b"), Pinged(note="c")])
        tampering.swap(attacker, 1, 2)
        tampering.rechain(attacker)
        with pytest.raises(TamperedError, match="position 1"):
            list(store.read_all())

    def test_a_forged_row_without_the_key_cannot_carry_personal_data(
        self, store: EventStore, attacker: sa.Engine
    ) -> None:
        """A MAC-less row with a personal column is refused, whatever its type."""
        store.append("p", [Pinged(note="a")])
        tampering.edit(attacker, 1, personal='[{"subject":"c9","paths":[["x"]],"sealed":"AA=="}]',
                       mac=None)
        tampering.rechain(attacker)
        self.assert_tampered(store, "p", 1)

    def test_the_key_is_needed_to_check_authenticators(
        self, url: str, store: EventStore, attacker: sa.Engine
    ) -> None:
        """A store without the master key cannot check MACs: an edited plain field of a
        re-chained log reads as stored (documented); the store with the key refuses it."""
        store.append("p", [Pinged(note="a")])
        tampering.edit(attacker, 1, payload='{"note":"edited"}')
        tampering.rechain(attacker)
        with EventStore(url) as keyless:
            assert [r.event.note for r in keyless.read_all()] == ["edited"]  # type: ignore[attr-defined]
        with pytest.raises(TamperedError):
            list(store.read_all())

    # The subject index (issue 14, point 6)

    def test_index_rows_deleted_or_forged_are_reported_and_never_followed(
        self, store: EventStore, attacker: sa.Engine
    ) -> None:
        """A deleted index row and one forged to point at another subject's event are each
        reported by verify; c1's reads, footprint, export and counts never show c2's event."""
        for _ in range(3):
            store.append("c-1", [Nicknamed(customer_id="c1", nickname=NICKNAME)])
        store.append("c-2", [enrolled("c2")])  # position 4
        tampering.execute(attacker, "DELETE FROM shredstore_event_subjects "
                                    "WHERE subject_id = 'c1' AND position = 2")
        tampering.execute(attacker, "INSERT INTO shredstore_event_subjects (subject_id, position) "
                                    "VALUES ('c1', 4), ('c1', 99)")
        assert found(store) == [("index", 2), ("index", 4), ("index", 99)]

        assert [r.position for r in store.read_subject("c1")] == [1, 3]
        footprint = store.subject_footprint("c1")
        assert (footprint.events, footprint.streams) == (2, ("c-1",))
        assert store._log.count_scope(Scope(subject_id="c1")) == (2, 1, 1)
        out = io.StringIO()
        assert write_export(store, "c1", out, actor="test") == 2
        exported = json.loads(out.getvalue())
        assert [e["position"] for e in exported["events"]] == [1, 3]
        assert NAME not in out.getvalue()

    def test_an_erasure_receipt_counts_only_the_subjects_own_events(
        self, store: EventStore, attacker: sa.Engine
    ) -> None:
        """An index row forged to point c1 at c2's event does not enter c1's receipt."""
        store.append("c-1", [enrolled("c1")])
        store.append("c-2", [enrolled("c2")])
        tampering.execute(attacker, "INSERT INTO shredstore_event_subjects (subject_id, position) "
                                    "VALUES ('c1', 2)")
        receipt = store.erase_subject("c1")
        assert receipt.footprint.events == 1
        assert receipt.footprint.streams == ("c-1",)
        assert store.subject_status("c2").state == "active"

    # Formats and ids

    def test_a_database_of_the_earlier_format_is_refused(
        self, url: str, store: EventStore, attacker: sa.Engine
    ) -> None:
        """Tables without the subjects and mac columns: a clear ConfigurationError, no upgrade."""
        store.append("p", [Pinged(note="a")])
        tampering.execute(attacker, "ALTER TABLE shredstore_events DROP COLUMN mac")
        with pytest.raises(ConfigurationError, match=r"earlier format.*no in-place upgrade"):
            EventStore(url)

    @pytest.mark.parametrize("bad", ["a\udc80b", "\ud800"])
    def test_ids_that_are_not_valid_unicode_are_configuration_errors(
        self, store: EventStore, bad: str
    ) -> None:
        """Lone surrogates in stream or subject ids raise ConfigurationError, never a raw
        UnicodeEncodeError."""
        calls = [
            lambda: store.append(bad, [Pinged(note="a")]),
            lambda: list(store.read_stream(bad)),
            lambda: store.stream_version(bad),
            lambda: list(store.read_subject(bad)),
            lambda: store.subject_footprint(bad),
            lambda: store.subject_status(bad),
            lambda: store.erase_subject(bad),
        ]
        for call in calls:
            with pytest.raises(ConfigurationError, match="valid Unicode"):
                call()

    # Values no append writes (issue 17, seventh session: found by attacking the reader). Each
    # used to escape the reader and verify as a raw struct.error, ValueError, TypeError or
    # AttributeError, or a database error for the whole page.

    @pytest.mark.parametrize("change", [
        "version = -1", "schema_version = -5", "version = 2147483647"])
    def test_a_value_no_append_writes_is_tampering_and_verify_reports_it(
        self, url: str, store: EventStore, attacker: sa.Engine, change: str,
    ) -> None:
        """A negative or out-of-sequence number: see `assert_no_reader_takes`."""
        self.assert_no_reader_takes(url, store, attacker, change)

    def assert_no_reader_takes(self, url: str, store: EventStore, attacker: sa.Engine,
                               change: str) -> None:
        """After `change` to the row at position 2, a stored value outside what appends write
        (a negative version, a time no datetime holds, an id or a time that does not parse,
        text that is not UTF-8) fails every read of the row as TamperedError naming its
        position, and verify reports the row instead of stopping. Each used to escape the
        reader and verify as a raw struct.error, ValueError, TypeError or AttributeError, or
        a database error for the whole page (issue 17, seventh session: found by attacking
        the reader)."""
        store.append("p", [Pinged(note="before")])
        store.append("c-1", [enrolled("c1"), enrolled("c1"), enrolled("c1")])
        store.append("p", [Pinged(note="after")])
        tampering.execute(attacker, f"UPDATE shredstore_events SET {change} WHERE position = 2")
        with pytest.raises(TamperedError, match="position 2") as caught:
            list(store.read_all())
        for value in (NAME, EMAIL):
            assert value not in str(caught.value)
        if "version" not in change and "stream_id" not in change:  # still in c-1 at version 1
            with pytest.raises(TamperedError, match="position 2"):
                list(store.read_stream("c-1"))
        # Without the master key nothing is authenticated, and personal data cannot be read:
        # still an error of the store's own that names the row, never a raw one.
        keyless = EventStore(url)
        with keyless, pytest.raises(ShredstoreError, match="position 2"):
            list(keyless.read_all())
        report = store.verify()
        assert {kind for kind, position in found(store) if position == 2} & {
            "forged", "modified"}, report.findings
        assert report.events_checked == 5
        assert [r.event.note for r in store.read_stream("p")] == [  # type: ignore[attr-defined]
            "before", "after"]

    @pytest.mark.parametrize("change", ["key_version = -1", "key_version = NULL"])
    def test_a_malformed_key_row_is_tampering_named_by_the_record(
        self, url: str, master: MasterKey, store: EventStore, attacker: sa.Engine, change: str,
    ) -> None:
        """See `assert_key_row_refused`."""
        self.assert_key_row_refused(url, master, store, attacker, change)

    def assert_key_row_refused(self, url: str, master: MasterKey, store: EventStore,
                               attacker: sa.Engine, change: str) -> None:
        """A vault row whose key version or wrapped key is of a type or range no vault writes
        fails the reads of its subject's records as shredstore's TamperedError naming the
        record: it used to escape as OverflowError, AttributeError or TypeError, or as the
        key vault's own TamperedError for the whole page, which ``except
        shredstore.TamperedError`` does not catch."""
        store.append("p", [Pinged(note="before")])
        store.append("c-1", [enrolled("c1")])
        tampering.execute(attacker, f"UPDATE keyvault_subjects SET {change} "
                                    "WHERE subject_id = 'c1'")
        with EventStore(url, master_key=master) as fresh:  # no key cached
            with pytest.raises(TamperedError, match="position 2"):
                list(fresh.read_all())
            assert [r.event.note for r in fresh.read_stream("p")] == [  # type: ignore[attr-defined]
                "before"]

    def test_a_row_moved_to_a_negative_position_is_tampering(
        self, store: EventStore, attacker: sa.Engine,
    ) -> None:
        """Found through its stream, a row at a position no append gives (below 1) fails as
        tampering; verify, which walks positions from 1, reports the place it left."""
        store.append("c-1", [enrolled("c1"), enrolled("c1"), enrolled("c1")])
        tampering.execute(attacker, "UPDATE shredstore_events SET position = -3 "
                                    "WHERE position = 2")
        with pytest.raises(TamperedError, match="position -3"):
            list(store.read_stream("c-1"))
        assert ("deleted", 2) in found(store)

    @pytest.mark.parametrize("version", [1, 3])
    def test_an_event_whose_version_was_edited_out_of_its_stream_is_tampering(
        self, store: EventStore, attacker: sa.Engine, version: int,
    ) -> None:
        """A row whose version is edited below 1 drops out of every forward read of its
        stream. Stream versions have no gaps, so a read from the start or from a version, and
        an aggregate's load, reaches the gap and raises instead of folding the stream without
        the event; backwards, the read reaches the row itself and fails its authenticator.
        verify reports the row as forged."""
        store.append("c-1", [enrolled("c1", credit_limit=n) for n in range(1, 6)])
        store.append("c-2", [enrolled("c2")])
        tampering.execute(attacker, "UPDATE shredstore_events SET version = -1 "
                                    f"WHERE stream_id = 'c-1' AND version = {version}")
        gap = f"stream 'c-1' has no event at version {version}"
        for read in (lambda: list(store.read_stream("c-1")),
                     lambda: list(store.read_stream("c-1", from_version=version)),
                     lambda: Repository(store, Account).load("1")):
            with pytest.raises(TamperedError, match=gap):
                read()
        with pytest.raises(TamperedError, match=f"position {version} failed authentication"):
            list(store.read_stream("c-1", backwards=True))
        assert [r.version for r in store.read_stream("c-2")] == [1]
        assert [p for kind, p in found(store) if kind == "forged"] == [version]

    def test_an_event_after_a_snapshot_edited_out_of_its_stream_is_tampering(
        self, store: EventStore, attacker: sa.Engine,
    ) -> None:
        """A load from a snapshot reads the events after the snapshot's version: a gap there
        raises as it does in a replay from the start."""
        accounts = Repository(store, Account, snapshot_every=2)
        account = Account(id="1")
        for limit in (10, 20):
            account.record(enrolled("c1", credit_limit=limit))
        accounts.save(account)  # a snapshot at version 2
        for limit in (30, 40):
            account.record(enrolled("c1", credit_limit=limit))
        account.record(enrolled("c1", credit_limit=50))
        accounts.save(account)  # versions 3 to 5, and a snapshot at 5
        assert accounts.load("1").credit_limit == 50
        tampering.execute(attacker, "UPDATE shredstore_events SET version = -1 "
                                    "WHERE stream_id = 'c-1' AND version = 3")
        tampering.execute(attacker, "DELETE FROM shredstore_snapshots WHERE version > 2")
        with pytest.raises(TamperedError, match="stream 'c-1' has no event at version 3"):
            accounts.load("1")

    def test_a_streams_last_event_edited_away_is_left_to_verify(
        self, store: EventStore, attacker: sa.Engine,
    ) -> None:
        """The one such edit a forward read cannot see: the last event's version edited below
        1 leaves the stream as it was before that append (nothing stored names its length).
        A backward read reaches the row and fails; verify reports it; an append that expects
        the true version is refused."""
        store.append("c-1", [enrolled("c1", credit_limit=n) for n in range(1, 4)])
        tampering.execute(attacker, "UPDATE shredstore_events SET version = -1 "
                                    "WHERE stream_id = 'c-1' AND version = 3")
        assert [r.version for r in store.read_stream("c-1")] == [1, 2]
        with pytest.raises(TamperedError, match="position 3 failed authentication"):
            list(store.read_stream("c-1", backwards=True))
        assert [p for kind, p in found(store) if kind == "forged"] == [3]
        with pytest.raises(WrongExpectedVersion):
            store.append("c-1", [enrolled("c1")], expected_version=3)
