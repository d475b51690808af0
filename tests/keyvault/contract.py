"""The behaviour every key-vault backend must have.

`VaultContract` is not collected on its own: `test_sqlite.py` and `test_postgres.py` subclass
it and provide the `url` fixture.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keyvault import (
    KeyErasedError,
    KeyNotFoundError,
    KeyVault,
    MasterKey,
    RotationError,
    SubjectErasedError,
    TamperedError,
    VaultConfigurationError,
    WrongMasterKeyError,
)
from tests.keyvault.providers import FailingAfter, FakeKms


def raw(url: str, sql: str, **params: object) -> list[sa.Row[tuple[object, ...]]]:
    """Run SQL behind the vault's back, as an operator or attacker would."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            result = conn.execute(sa.text(sql), params)
            return list(result) if result.returns_rows else []
    finally:
        engine.dispose()


class VaultContract:
    """Subclasses provide a `url` fixture naming a fresh, empty database."""

    @pytest.fixture
    def master(self) -> MasterKey:
        return MasterKey.generate()

    @pytest.fixture
    def vault(self, url: str, master: MasterKey) -> Iterator[KeyVault]:
        with KeyVault(url, master_key=master) as vault:
            yield vault

    # Sealing and opening

    def test_a_sealed_value_opens_with_the_same_subject_and_aad(self, vault: KeyVault) -> None:
        """seal then open returns the plaintext; the ciphertext does not contain it."""
        sealed = vault.seal("s-1", b"secret-value-1", aad=b"event-1/name")
        assert b"secret-value-1" not in sealed
        assert vault.open("s-1", sealed, aad=b"event-1/name") == b"secret-value-1"

    def test_sealing_twice_gives_different_ciphertexts(self, vault: KeyVault) -> None:
        """Every seal uses a fresh nonce: equal plaintexts do not give equal ciphertexts."""
        assert vault.seal("s-1", b"same") != vault.seal("s-1", b"same")

    def test_other_associated_data_fails_authentication(self, vault: KeyVault) -> None:
        """A value opened with other associated data (another event or field) is tampering."""
        sealed = vault.seal("s-1", b"secret-value-1", aad=b"event-1/name")
        for aad in (b"event-2/name", b"event-1/email", b""):
            with pytest.raises(TamperedError):
                vault.open("s-1", sealed, aad=aad)

    def test_a_value_moved_to_another_subject_fails_authentication(
        self, vault: KeyVault
    ) -> None:
        """A value sealed for one subject does not open as another subject's."""
        sealed = vault.seal("s-1", b"secret-value-1")
        vault.seal("s-2", b"other")
        with pytest.raises(TamperedError):
            vault.open("s-2", sealed)

    def test_every_flipped_bit_of_a_sealed_value_is_tampering(self, vault: KeyVault) -> None:
        """Changing any byte of a sealed value, or cutting it short, raises TamperedError."""
        sealed = vault.seal("s-1", b"secret-value-1", aad=b"a")
        for index in range(len(sealed)):
            altered = bytearray(sealed)
            altered[index] ^= 0x01
            with pytest.raises(TamperedError):
                vault.open("s-1", bytes(altered), aad=b"a")
        for cut in (0, 5, len(sealed) - 1):
            with pytest.raises(TamperedError):
                vault.open("s-1", sealed[:cut], aad=b"a")

    def test_data_of_a_subject_the_vault_never_knew_is_an_error(self, vault: KeyVault) -> None:
        """Opening for a subject with no key and no erasure record raises KeyNotFoundError."""
        sealed = vault.seal("s-1", b"x")
        with pytest.raises(KeyNotFoundError, match="another vault"):
            vault.open("nobody", sealed)

    @settings(max_examples=40, deadline=None, suppress_health_check=[
        HealthCheck.function_scoped_fixture, HealthCheck.differing_executors])
    @given(plaintext=st.binary(max_size=2048), aad=st.binary(max_size=64),
           other=st.binary(max_size=64))
    def test_any_bytes_round_trip_and_only_with_their_aad(
        self, vault: KeyVault, plaintext: bytes, aad: bytes, other: bytes
    ) -> None:
        """Arbitrary bytes and associated data round-trip; other associated data fails."""
        sealed = vault.seal("prop", plaintext, aad=aad)
        assert vault.open("prop", sealed, aad=aad) == plaintext
        if other != aad:
            with pytest.raises(TamperedError):
                vault.open("prop", sealed, aad=other)

    def test_a_vault_shares_a_database_and_an_engine_with_the_event_store(
        self, url: str, master: MasterKey
    ) -> None:
        """Given the event store's engine, the vault keeps its own tables and leaves it open."""
        from shredstore import EventStore
        from shredstore.storage.engine import create_engine

        engine = create_engine(url)
        try:
            with EventStore(engine) as store, KeyVault(engine, master_key=master) as vault:
                sealed = vault.seal("s-1", b"secret-value-1")
                assert store.head().position == 0
            with KeyVault(engine, master_key=master) as again:  # the engine is still usable
                assert again.open("s-1", sealed) == b"secret-value-1"
            tables = set(sa.inspect(engine).get_table_names())
            assert {"shredstore_events", "keyvault_subjects", "keyvault_state"} <= tables
        finally:
            engine.dispose()

    # Keys

    def test_a_key_is_created_on_first_use_and_stored_wrapped(
        self, vault: KeyVault, master: MasterKey, url: str
    ) -> None:
        """The first seal creates one key, stored only wrapped by the named master key."""
        assert vault.status("s-1").state == "unknown"
        before = datetime.now(UTC)
        vault.seal("s-1", b"x")
        vault.seal("s-1", b"y")
        status = vault.status("s-1")
        assert status.state == "active"
        assert status.created_at is not None
        assert before - timedelta(seconds=1) <= status.created_at <= datetime.now(UTC)
        assert status.key_fingerprint is not None
        assert len(status.key_fingerprint) == 32
        ((wrapped, wrapped_by, version),) = raw(
            url, "SELECT wrapped_key, wrapped_by, key_version FROM keyvault_subjects")
        assert wrapped_by == master.key_id
        assert version == 1
        assert len(wrapped) == 1 + 12 + 32 + 16  # format, nonce, key, tag: never the bare key

    def test_the_master_key_is_not_stored(self, vault: KeyVault, master: MasterKey,
                                          url: str) -> None:
        """Neither the master key nor its base64 appears in any vault table."""
        vault.seal("s-1", b"x")
        dump = repr(raw(url, "SELECT * FROM keyvault_subjects")) + repr(
            raw(url, "SELECT * FROM keyvault_state"))
        assert master.to_base64() not in dump
        assert master._key.hex() not in dump
        assert master.key_id in dump

    def test_a_wrapped_key_moved_to_another_subject_is_tampering(
        self, vault: KeyVault, master: MasterKey, url: str
    ) -> None:
        """A wrapped key copied onto another subject's row fails authentication."""
        vault.seal("s-1", b"x")
        sealed = vault.seal("s-2", b"y")
        raw(url, "UPDATE keyvault_subjects SET wrapped_key = "
                 "(SELECT wrapped_key FROM keyvault_subjects WHERE subject_id = 's-1') "
                 "WHERE subject_id = 's-2'")
        with KeyVault(url, master_key=master) as fresh, pytest.raises(TamperedError):
            fresh.open("s-2", sealed)

    def test_a_flipped_bit_in_a_wrapped_key_is_tampering(
        self, vault: KeyVault, master: MasterKey, url: str
    ) -> None:
        """Altering a stored wrapped key raises TamperedError, never a redaction."""
        sealed = vault.seal("s-1", b"x")
        ((wrapped,),) = raw(url, "SELECT wrapped_key FROM keyvault_subjects")
        for index in (0, 5, len(wrapped) - 1):
            altered = bytearray(wrapped)
            altered[index] ^= 0x80
            raw(url, "UPDATE keyvault_subjects SET wrapped_key = :w", w=bytes(altered))
            with KeyVault(url, master_key=master) as fresh, pytest.raises(TamperedError):
                fresh.open("s-1", sealed)

    def test_a_wrong_master_key_is_refused_and_says_so(
        self, vault: KeyVault, url: str
    ) -> None:
        """A vault opened with another master key raises WrongMasterKeyError at once."""
        vault.seal("s-1", b"x")
        with pytest.raises(WrongMasterKeyError, match="wrong master key"):
            KeyVault(url, master_key=MasterKey.generate())

    def test_a_kms_style_provider_can_wrap_the_keys(self, url: str) -> None:
        """Any KeyProvider (here a stand-in KMS) wraps and unwraps data keys."""
        kms = FakeKms()
        with KeyVault(url, master_key=kms) as vault:
            sealed = vault.seal("s-1", b"secret-value-1")
        with KeyVault(url, master_key=kms) as vault:
            assert vault.open("s-1", sealed) == b"secret-value-1"
        assert kms.calls == 2  # one wrap at creation, one unwrap by the second vault
        assert raw(url, "SELECT wrapped_by FROM keyvault_subjects") == [("kms:fake-kms-key-1",)]

    def test_without_a_master_key_status_and_erase_work_but_sealing_does_not(
        self, vault: KeyVault, url: str
    ) -> None:
        """A vault opened without a master key can report and erase, not seal or open."""
        sealed = vault.seal("s-1", b"x")
        with KeyVault(url, master_key=None) as keyless:
            assert keyless.status("s-1").state == "active"
            with pytest.raises(VaultConfigurationError, match="without a master key"):
                keyless.open("s-1", sealed)
            assert keyless.erase("s-1").held_key
        with pytest.raises(KeyErasedError):
            vault.open("s-1", sealed)

    # Erasure

    def test_erase_destroys_the_key_and_records_a_tombstone(
        self, vault: KeyVault, url: str
    ) -> None:
        """erase deletes the wrapped key and keeps time, request id and reason."""
        vault.seal("s-1", b"x")
        fingerprint = vault.status("s-1").key_fingerprint
        result = vault.erase("s-1", reason="Art. 17 request", request_id="REQ-1")
        assert (result.already_erased, result.held_key) == (False, True)
        assert result.key_fingerprint == fingerprint
        status = vault.status("s-1")
        assert status.state == "erased"
        assert status.erased_at == result.erased_at
        assert (status.request_id, status.reason) == ("REQ-1", "Art. 17 request")
        assert raw(url, "SELECT wrapped_key, wrapped_by FROM keyvault_subjects") == [
            (None, None)]

    def test_erase_is_idempotent_and_says_when(self, vault: KeyVault) -> None:
        """A second erase changes nothing and reports the first erasure's time."""
        vault.seal("s-1", b"x")
        first = vault.erase("s-1", request_id="REQ-1")
        again = vault.erase("s-1", request_id="REQ-2")
        assert again.already_erased
        assert again.erased_at == first.erased_at
        assert again.request_id == "REQ-1"
        assert "already erased" in str(again)

    def test_erasing_an_unknown_subject_records_that_nothing_was_held(
        self, vault: KeyVault
    ) -> None:
        """Erasing a subject that never had a key records the tombstone and says so."""
        result = vault.erase("never-seen", reason="precaution")
        assert (result.already_erased, result.held_key, result.key_fingerprint) == (
            False, False, None)
        assert "no key was held" in str(result)
        assert vault.status("never-seen").state == "erased"
        with pytest.raises(SubjectErasedError):
            vault.seal("never-seen", b"x")

    def test_erased_data_raises_key_erased_and_nothing_else(self, vault: KeyVault) -> None:
        """After erase, opening raises KeyErasedError (a SubjectErasedError): read as redacted."""
        sealed = vault.seal("s-1", b"secret-value-1")
        vault.erase("s-1")
        with pytest.raises(KeyErasedError) as caught:
            vault.open("s-1", sealed)
        assert isinstance(caught.value, SubjectErasedError)
        assert caught.value.subject_id == "s-1"
        assert "secret-value-1" not in str(caught.value)

    def test_an_erased_subject_never_gets_a_key_again(
        self, vault: KeyVault, master: MasterKey, url: str
    ) -> None:
        """Sealing for an erased subject raises SubjectErasedError, in any vault, forever."""
        vault.seal("s-1", b"x")
        vault.erase("s-1")
        with pytest.raises(SubjectErasedError):
            vault.seal("s-1", b"y")
        with KeyVault(url, master_key=master) as other, pytest.raises(SubjectErasedError):
            other.seal("s-1", b"y")
        assert raw(url, "SELECT state FROM keyvault_subjects") == [("erased",)]

    def test_an_erasure_in_another_vault_object_reaches_a_warm_cache(
        self, vault: KeyVault, master: MasterKey, url: str
    ) -> None:
        """A vault that cached a key stops opening as soon as another vault erased it."""
        sealed = vault.seal("s-1", b"x")
        kept = vault.seal("s-2", b"y")
        assert vault.open("s-1", sealed) == b"x"  # cached now
        with KeyVault(url, master_key=master) as other:
            other.erase("s-1")
        with pytest.raises(KeyErasedError):
            vault.open("s-1", sealed)
        assert vault.open("s-2", kept) == b"y"

    def test_a_keyring_opens_many_values_and_knows_erased_subjects(
        self, vault: KeyVault
    ) -> None:
        """A keyring preloads keys in one go and tells erased subjects apart."""
        sealed = {f"s-{i}": vault.seal(f"s-{i}", f"v{i}".encode()) for i in range(5)}
        vault.erase("s-3")
        with vault.keyring() as ring:
            ring.preload(sealed)
            assert ring.is_erased("s-3")
            assert not ring.is_erased("s-1")
            assert [ring.open(s, v) for s, v in sealed.items() if s != "s-3"] == [
                b"v0", b"v1", b"v2", b"v4"]
            with pytest.raises(KeyErasedError):
                ring.open("s-3", sealed["s-3"])

    def test_erased_subjects_are_found_in_one_call(self, vault: KeyVault) -> None:
        """erased_subjects names exactly the erased ones among those asked about."""
        for subject in ("a", "b", "c"):
            vault.seal(subject, b"x")
        vault.erase("b")
        vault.erase("z")
        assert vault.erased_subjects(["a", "b", "c", "z", "unknown"]) == {"b", "z"}

    @pytest.mark.parametrize("bad", ["", "x" * 201, "tab\there", "nul\x00", 7])
    def test_malformed_subject_ids_are_refused(self, vault: KeyVault, bad: object) -> None:
        """Subject ids are non-empty strings of at most 200 printable characters."""
        with pytest.raises(VaultConfigurationError, match="subject id"):
            vault.seal(bad, b"x")  # type: ignore[arg-type]
        with pytest.raises(VaultConfigurationError, match="subject id"):
            vault.erase(bad)  # type: ignore[arg-type]

    def test_subject_ids_that_are_not_valid_unicode_are_refused(self, vault: KeyVault) -> None:
        """A lone surrogate in a subject id is a configuration error, never UnicodeEncodeError."""
        for call in (lambda: vault.seal("a\udc80b", b"x"), lambda: vault.erase("a\udc80b"),
                     lambda: vault.status("\ud800"), lambda: vault.open("a\udc80b", b"x")):
            with pytest.raises(VaultConfigurationError, match="valid Unicode"):
                call()

    def test_an_overlong_reason_is_refused(self, vault: KeyVault) -> None:
        """Reasons and request ids are bounded strings."""
        with pytest.raises(VaultConfigurationError, match="reason"):
            vault.erase("s-1", reason="x" * 2001)
        assert vault.status("s-1").state == "unknown"

    def test_a_database_failure_under_the_guard_is_a_vault_error(
        self, vault: KeyVault, url: str
    ) -> None:
        """The append guard runs on the driver's cursor; its failures read as VaultStorageError."""
        from keyvault import VaultStorageError

        vault.seal("s-1", b"x")
        raw(url, "ALTER TABLE keyvault_subjects RENAME TO keyvault_subjects_gone")
        with pytest.raises(VaultStorageError, match="refused"), vault.hold_active(["s-1"]):
            pass

    # Master-key rotation

    def test_rotation_rewraps_every_key_and_locks_the_old_master_out(
        self, vault: KeyVault, master: MasterKey, url: str
    ) -> None:
        """After rotation every value opens under the new key, and the old key is refused."""
        sealed = {f"s-{i}": vault.seal(f"s-{i}", f"v{i}".encode()) for i in range(7)}
        vault.erase("s-6")
        seen: list[tuple[int, int]] = []
        new = MasterKey.generate()
        result = vault.rotate_master_key(new, batch_size=3,
                                         progress=lambda d, t: seen.append((d, t)))
        assert (result.old_key_id, result.new_key_id, result.rewrapped) == (
            master.key_id, new.key_id, 6)
        assert seen[-1] == (6, 6)
        assert set(raw(url, "SELECT wrapped_by FROM keyvault_subjects "
                            "WHERE state = 'active'")) == {(new.key_id,)}
        with pytest.raises(WrongMasterKeyError):
            KeyVault(url, master_key=master)
        with KeyVault(url, master_key=new) as reopened:
            for subject, value in sealed.items():
                if subject != "s-6":
                    assert reopened.open(subject, value) == f"v{subject[2:]}".encode()
        assert vault.open("s-0", sealed["s-0"]) == b"v0"  # the rotating vault switched keys

    def test_an_interrupted_rotation_resumes(self, url: str, master: MasterKey) -> None:
        """A rotation that crashed part-way finishes when run again with the same keys."""
        with KeyVault(url, master_key=master) as vault:
            sealed = {f"s-{i}": vault.seal(f"s-{i}", b"v") for i in range(10)}
        new = MasterKey.generate()
        with KeyVault(url, master_key=master) as vault, pytest.raises(RuntimeError,
                                                                      match="crash"):
            vault.rotate_master_key(FailingAfter(new, 4), batch_size=3)
        wrapped_by = [k for (k,) in raw(url, "SELECT wrapped_by FROM keyvault_subjects")]
        assert wrapped_by.count(new.key_id) == 3  # the first batch of 3 committed
        assert wrapped_by.count(master.key_id) == 7  # the second rolled back with the crash
        with KeyVault(url, master_key=master) as vault:
            with pytest.raises(RotationError, match="in progress"):
                vault.rotate_master_key(MasterKey.generate())
            assert vault.rotate_master_key(new).rewrapped == 7
        with KeyVault(url, master_key=new) as vault:
            assert all(vault.open(s, v) == b"v" for s, v in sealed.items())

    def test_keys_created_during_a_rotation_are_rewrapped_too(
        self, vault: KeyVault, master: MasterKey, url: str
    ) -> None:
        """A key created with the old master key while a rotation runs is rotated as well."""
        for i in range(4):
            vault.seal(f"s-{i}", b"v")
        late: list[bytes] = []

        def create_meanwhile(done: int, total: int) -> None:
            if not late:
                with KeyVault(url, master_key=master) as other:
                    late.append(other.seal("zz-late", b"late"))

        new = MasterKey.generate()
        vault.rotate_master_key(new, batch_size=2, progress=create_meanwhile)
        assert set(raw(url, "SELECT wrapped_by FROM keyvault_subjects")) == {(new.key_id,)}
        with KeyVault(url, master_key=new) as reopened:
            assert reopened.open("zz-late", late[0]) == b"late"

    def test_rotating_to_the_key_in_use_is_refused(self, vault: KeyVault,
                                                    master: MasterKey) -> None:
        """Rotating to the same master key is a RotationError."""
        with pytest.raises(RotationError, match="in use"):
            vault.rotate_master_key(master)

    # Service keys

    def test_a_service_key_is_made_once_and_stored_wrapped(
        self, vault: KeyVault, url: str, master: MasterKey
    ) -> None:
        """service_key gives 32 random bytes, the same on every call and in every vault object,
        stored only wrapped by the master key; other names get other keys."""
        key = vault.service_key("app.rows.v1")
        assert len(key) == 32
        assert vault.service_key("app.rows.v1") == key
        assert vault.service_key("app.other.v1") != key
        ((wrapped, wrapped_by),) = raw(url, "SELECT wrapped_key, wrapped_by FROM "
                                            "keyvault_service_keys WHERE name = 'app.rows.v1'")
        assert wrapped_by == master.key_id
        assert key not in bytes(wrapped)
        with KeyVault(url, master_key=master) as other:
            assert other.service_key("app.rows.v1") == key

    def test_service_keys_made_at_once_by_several_vaults_are_one_key(
        self, url: str, master: MasterKey
    ) -> None:
        """Vault objects asking for a new service key at the same moment all get the one stored."""
        vaults = [KeyVault(url, master_key=master) for _ in range(4)]
        try:
            with ThreadPoolExecutor(len(vaults)) as pool:
                keys = list(pool.map(lambda v: v.service_key("app.race.v1"), vaults))
        finally:
            for vault in vaults:
                vault.close()
        assert len(set(keys)) == 1
        assert raw(url, "SELECT count(*) FROM keyvault_service_keys") == [(1,)]

    def test_a_service_key_needs_the_master_key(self, url: str, vault: KeyVault) -> None:
        """Without a master key there is no service key: a configuration error."""
        vault.service_key("app.rows.v1")
        with KeyVault(url, master_key=None) as keyless, pytest.raises(
                VaultConfigurationError, match="without a master key"):
            keyless.service_key("app.rows.v1")

    @pytest.mark.parametrize("bad", ["", "x" * 201, "new\nline", "a\udc80b", 7])
    def test_malformed_service_key_names_are_refused(self, vault: KeyVault, bad: object) -> None:
        """A service key's name is a short, printable, valid string."""
        with pytest.raises(VaultConfigurationError, match="service key"):
            vault.service_key(bad)  # type: ignore[arg-type]

    def test_a_service_key_wrapped_by_another_master_key_is_refused(
        self, url: str, vault: KeyVault, master: MasterKey
    ) -> None:
        """A service key that names another wrapping key raises WrongMasterKeyError."""
        vault.service_key("app.rows.v1")
        raw(url, "UPDATE keyvault_service_keys SET wrapped_by = 'someone-else'")
        with KeyVault(url, master_key=master) as other, pytest.raises(WrongMasterKeyError):
            other.service_key("app.rows.v1")
        with pytest.raises(WrongMasterKeyError):
            KeyVault(url, master_key=MasterKey.generate())

    def test_a_tampered_or_moved_service_key_is_refused(
        self, url: str, vault: KeyVault, master: MasterKey
    ) -> None:
        """A wrapped service key altered, or moved to another name, raises TamperedError."""
        vault.service_key("app.a.v1")
        vault.service_key("app.b.v1")
        raw(url, "UPDATE keyvault_service_keys SET wrapped_key = (SELECT wrapped_key FROM "
                 "keyvault_service_keys WHERE name = 'app.a.v1') WHERE name = 'app.b.v1'")
        with KeyVault(url, master_key=master) as other:
            assert len(other.service_key("app.a.v1")) == 32
            with pytest.raises(TamperedError):
                other.service_key("app.b.v1")

    def test_service_keys_survive_erasure_and_follow_a_rotation(
        self, url: str, vault: KeyVault, master: MasterKey
    ) -> None:
        """Erasing subjects leaves service keys alone; a rotation re-wraps them unchanged."""
        key = vault.service_key("app.rows.v1")
        vault.seal("s-1", b"v")
        vault.erase("s-1")
        vault.erase("app.rows.v1")  # a subject of that name is another thing altogether
        new = MasterKey.generate()
        result = vault.rotate_master_key(new)
        assert (result.rewrapped, result.rewrapped_service_keys) == (0, 1)
        assert raw(url, "SELECT wrapped_by FROM keyvault_service_keys") == [(new.key_id,)]
        assert vault.service_key("app.rows.v1") == key
        with KeyVault(url, master_key=new) as reopened:
            assert reopened.service_key("app.rows.v1") == key

    def test_a_service_key_made_during_a_rotation_is_rewrapped_too(
        self, url: str, vault: KeyVault, master: MasterKey
    ) -> None:
        """A service key created with the old master key while a rotation runs is rotated."""
        for i in range(4):
            vault.seal(f"s-{i}", b"v")
        made: list[bytes] = []

        def create_meanwhile(done: int, total: int) -> None:
            if not made:
                with KeyVault(url, master_key=master) as other:
                    made.append(other.service_key("app.late.v1"))

        new = MasterKey.generate()
        vault.rotate_master_key(new, batch_size=2, progress=create_meanwhile)
        assert raw(url, "SELECT wrapped_by FROM keyvault_service_keys") == [(new.key_id,)]
        with KeyVault(url, master_key=new) as reopened:
            assert reopened.service_key("app.late.v1") == made[0]

    def test_scrub_says_what_it_did(self, vault: KeyVault) -> None:
        """scrub runs on an erased vault and says what it did per table and log; where it is
        not complete it says why (on PostgreSQL, a transaction anywhere on the server that
        began before the erasure keeps the old row version: tests/keyvault/test_scrub.py)."""
        vault.seal("s-1", b"x")
        vault.erase("s-1")
        result = vault.scrub()
        assert {t.table for t in result.tables} == {"keyvault_subjects", "keyvault_service_keys"}
        assert all(line for line in result.lines())
        assert result.complete == (not result.why_not)
