"""AWS KMS as a vault's master key (`AwsKms`), and the envelope hierarchy over it (`EnvelopeKey`),
against moto's server mode: a real HTTP endpoint on 127.0.0.1 that speaks the KMS API, started
once for the module.

Moto does not model two things AWS KMS does, and the module's fixture adds them to moto's
backend (in this process, where the threaded server runs), so that the errors still travel as
KMS error responses over HTTP: Encrypt and Decrypt refuse a disabled key (DisabledException) or
one pending deletion (KMSInvalidStateException), and a Decrypt whose KeyId is not the key of
the ciphertext is IncorrectKeyException (moto answers AccessDeniedException). Throttling cannot
be provoked on moto: a stub client raises it, as botocore would.
"""

from __future__ import annotations

import base64
import json
import logging
import pickle
import socket
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import moto.backends
import pytest
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ParamValidationError,
    ReadTimeoutError,
)
from moto.server import ThreadedMotoServer

from keyvault import (
    AwsKms,
    EnvelopeKey,
    KeyProvider,
    KeyVault,
    KeyVaultError,
    KmsAccessDenied,
    KmsError,
    KmsThrottled,
    KmsUnavailable,
    TamperedError,
    VaultConfigurationError,
    master_key_from,
)
from shredstore.testing import KeyProviderContract

REGION = "us-east-1"
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_CONFIG_FILE": "/nonexistent/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
}
N_SUBJECTS = 200


# The KMS: moto's server, with AWS's key states and key checks


def _as_aws_answers(patch: pytest.MonkeyPatch) -> None:
    """Make moto's KMS refuse unusable keys and mismatched KeyIds as AWS KMS does."""
    from moto.core.exceptions import JsonRESTError
    from moto.kms.exceptions import AccessDeniedException
    from moto.kms.models import KmsBackend

    encrypt, decrypt = KmsBackend.encrypt, KmsBackend.decrypt

    def refuse_unusable(backend: Any, key_id: str) -> None:
        try:
            key = backend.keys.get(backend.any_id_to_key_id(key_id))
        except Exception:  # noqa: BLE001 - an unknown alias: moto's own answer follows
            return
        if key is None or key.key_state == "Enabled":
            return
        if key.key_state == "Disabled":
            raise JsonRESTError("DisabledException", f"{key.arn} is disabled.")
        raise JsonRESTError("KMSInvalidStateException", f"{key.arn} is {key.key_state}.")

    def checked_encrypt(self: Any, key_id: str, plaintext: bytes,
                        encryption_context: dict[str, str]) -> Any:
        refuse_unusable(self, key_id)
        return encrypt(self, key_id, plaintext, encryption_context)

    def checked_decrypt(self: Any, ciphertext_blob: bytes, encryption_context: dict[str, str],
                        key_id: str | None = None) -> Any:
        if key_id is not None:
            refuse_unusable(self, key_id)
        try:
            return decrypt(self, ciphertext_blob, encryption_context, key_id)
        except AccessDeniedException:
            if key_id is None:
                raise
            raise JsonRESTError(
                "IncorrectKeyException", "The key ID in the request does not identify a KMS "
                "key that can perform this operation.") from None

    patch.setattr(KmsBackend, "encrypt", checked_encrypt)
    patch.setattr(KmsBackend, "decrypt", checked_decrypt)


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    """The URL of moto's KMS, with dummy credentials in the environment while it runs."""
    werkzeug = logging.getLogger("werkzeug")
    level = werkzeug.level
    with pytest.MonkeyPatch.context() as patch:
        for name, value in AWS_ENV.items():
            patch.setenv(name, value)
        for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL",
                     "AWS_ENDPOINT_URL_KMS", "AWS_REGION"):
            patch.delenv(name, raising=False)
        _as_aws_answers(patch)
        # Moto's server lists its package's folders on every request (4 ms of its 8): once.
        modules = tuple(moto.backends.list_of_moto_modules())
        patch.setattr(moto.backends, "list_of_moto_modules", lambda: modules)
        werkzeug.setLevel(logging.ERROR)  # one line per request otherwise
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        try:
            host, port = server.get_host_and_port()
            yield f"http://{host}:{port}"
        finally:
            server.stop()
            werkzeug.setLevel(level)


@pytest.fixture(scope="module")
def admin(endpoint: str) -> Any:
    """A boto3 KMS client for what an operator does: create, disable, delete keys."""
    return boto3.client("kms", endpoint_url=endpoint, region_name=REGION)


@pytest.fixture(scope="module")
def new_key(admin: Any) -> Callable[[], str]:
    """Makes a new symmetric KMS key; its ARN."""
    def make() -> str:
        return str(admin.create_key(Description="keyvault test")["KeyMetadata"]["Arn"])
    return make


@pytest.fixture(scope="module")
def key_arn(new_key: Callable[[], str]) -> str:
    """A KMS key the module's tests share (tests that disable a key make their own)."""
    return new_key()


@pytest.fixture
def kms(endpoint: str, key_arn: str) -> AwsKms:
    return AwsKms(key_arn, endpoint_url=endpoint, region=REGION)


class TestAwsKms(KeyProviderContract):
    @pytest.fixture
    def provider(self, kms: AwsKms) -> KeyProvider:
        return kms


class TestEnvelopeKeyOverAwsKms(KeyProviderContract):
    @pytest.fixture
    def provider(self, kms: AwsKms) -> KeyProvider:
        return EnvelopeKey.generate(kms)


# Helpers


def seal_all(vault: KeyVault, n: int) -> dict[str, bytes]:
    """A value sealed for each of `n` subjects (their keys created in one transaction)."""
    subjects = [f"subject-{i}" for i in range(n)]
    with vault.keyring() as ring:
        ring.prepare(subjects)
        return {s: ring.seal(s, f"value of {s}".encode(), aad=b"email") for s in subjects}


def open_all(vault: KeyVault, sealed: dict[str, bytes]) -> None:
    """Open every value: the replay of a log with one event per subject."""
    with vault.keyring() as ring:
        ring.preload(list(sealed))
        for subject, value in sealed.items():
            assert ring.open(subject, value, aad=b"email") == f"value of {subject}".encode()


def key_id_of(arn: str) -> str:
    """The key id in an ARN (moto's DisableKey takes no ARN)."""
    return arn.rpartition("/")[2]


def wrapped_rows(path: Path) -> list[tuple[str, bytes, str]]:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT subject_id, wrapped_key, wrapped_by FROM keyvault_subjects "
                            "ORDER BY subject_id").fetchall()


def client_error(code: str, operation: str = "Decrypt", status: int = 400) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": f"the KMS says {code}"},
                        "ResponseMetadata": {"HTTPStatusCode": status}}, operation)


class StubKms:
    """A boto3 KMS client stand-in: raises `error` (or answers like the KMS), and records the
    requests it gets."""

    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.requests: list[tuple[str, dict[str, Any]]] = []

    def encrypt(self, **params: Any) -> dict[str, Any]:
        self.requests.append(("Encrypt", params))
        if self.error is not None:
            raise self.error
        return {"CiphertextBlob": b"blob:" + params["Plaintext"], "KeyId": params["KeyId"]}

    def decrypt(self, **params: Any) -> dict[str, Any]:
        self.requests.append(("Decrypt", params))
        if self.error is not None:
            raise self.error
        return {"Plaintext": params["CiphertextBlob"].removeprefix(b"blob:"),
                "KeyId": params["KeyId"]}


# The O(1) replay


def test_a_replay_of_n_subjects_costs_one_kms_call_with_an_envelope_key(
        endpoint: str, key_arn: str, tmp_path: Path) -> None:
    """Through an envelope key, a new process opens N subjects' values with 1 KMS call (the
    envelope key's Decrypt); with AwsKms as the master key itself, with N."""
    envelope_kms = AwsKms(key_arn, endpoint_url=endpoint, region=REGION)
    envelope = EnvelopeKey.generate(envelope_kms)
    envelope.to_file(tmp_path / "envelope.json")
    with KeyVault(f"sqlite:///{tmp_path / 'envelope.db'}", master_key=envelope) as vault:
        sealed = seal_all(vault, N_SUBJECTS)
    assert envelope_kms.calls == 1  # Encrypt of the envelope key; the subjects' keys: none

    process_kms = AwsKms(key_arn, endpoint_url=endpoint, region=REGION)  # a new process
    reopened = EnvelopeKey.from_file(tmp_path / "envelope.json", process_kms)
    with KeyVault(f"sqlite:///{tmp_path / 'envelope.db'}", master_key=reopened) as vault:
        open_all(vault, sealed)
    assert process_kms.calls == 1

    bare = AwsKms(key_arn, endpoint_url=endpoint, region=REGION)
    with KeyVault(f"sqlite:///{tmp_path / 'bare.db'}", master_key=bare) as vault:
        sealed = seal_all(vault, N_SUBJECTS)
    assert bare.calls == N_SUBJECTS  # one Encrypt per new subject
    process_bare = AwsKms(key_arn, endpoint_url=endpoint, region=REGION)
    with KeyVault(f"sqlite:///{tmp_path / 'bare.db'}", master_key=process_bare) as vault:
        open_all(vault, sealed)
        open_all(vault, sealed)  # a second pass: the keys are cached
    assert process_bare.calls == N_SUBJECTS  # one Decrypt per subject


def test_a_vault_moves_from_aws_kms_to_an_envelope_key_by_rotation(
        kms: AwsKms, tmp_path: Path) -> None:
    """A vault whose master key was AwsKms itself moves to an envelope key with
    rotate_master_key: one Decrypt per subject, once; after that one call per process."""
    url = f"sqlite:///{tmp_path / 'vault.db'}"
    with KeyVault(url, master_key=kms) as vault:
        sealed = seal_all(vault, 5)
        envelope = EnvelopeKey.generate(kms)
        vault.rotate_master_key(envelope)
    assert kms.calls == 5 + 1 + 5  # wraps, the envelope key, the rotation's unwraps
    with KeyVault(url, master_key=EnvelopeKey.open(kms, envelope.wrapped)) as vault:
        open_all(vault, sealed)
    assert kms.calls == 5 + 1 + 5 + 1


# Rotation of the KMS key


def test_rewrap_moves_the_envelope_key_to_a_new_kms_key_and_the_old_may_be_disabled(
        endpoint: str, admin: Any, new_key: Callable[[], str], tmp_path: Path) -> None:
    """rewrap wraps the same local key with another KMS key: the vault's rows, its stored key
    id and the sealed values stay as they were; the old KMS key can then be disabled."""
    old_arn, new_arn = new_key(), new_key()
    file = tmp_path / "envelope.json"
    url = f"sqlite:///{tmp_path / 'vault.db'}"
    envelope = EnvelopeKey.generate(AwsKms(old_arn, endpoint_url=endpoint, region=REGION))
    envelope.to_file(file)
    with KeyVault(url, master_key=envelope) as vault:
        sealed = seal_all(vault, 20)
    rows_before = wrapped_rows(tmp_path / "vault.db")
    (tmp_path / "old-envelope.json").write_bytes(file.read_bytes())

    rotated = EnvelopeKey.from_file(file, AwsKms(old_arn, endpoint_url=endpoint,
                                                 region=REGION)).rewrap(
        AwsKms(new_arn, endpoint_url=endpoint, region=REGION))
    assert rotated.key_id == envelope.key_id
    assert rotated.wrapped != envelope.wrapped
    rotated.to_file(file, replace=True)
    admin.disable_key(KeyId=key_id_of(old_arn))

    process_kms = AwsKms(new_arn, endpoint_url=endpoint, region=REGION)
    with KeyVault(url, master_key=EnvelopeKey.from_file(file, process_kms)) as vault:
        open_all(vault, sealed)
        assert vault.status("subject-0").state == "active"
    assert process_kms.calls == 1
    assert wrapped_rows(tmp_path / "vault.db") == rows_before  # no subject's key re-wrapped
    with pytest.raises(KmsAccessDenied, match="DisabledException"):  # the old key is gone
        EnvelopeKey.from_file(tmp_path / "old-envelope.json",
                              AwsKms(old_arn, endpoint_url=endpoint, region=REGION))


def test_an_envelope_file_is_read_only_with_the_kms_key_it_names(
        endpoint: str, new_key: Callable[[], str], tmp_path: Path) -> None:
    """from_file refuses a KMS provider other than the file's, before any KMS call."""
    envelope = EnvelopeKey.generate(AwsKms(new_key(), endpoint_url=endpoint, region=REGION))
    envelope.to_file(tmp_path / "envelope.json")
    other = AwsKms(new_key(), endpoint_url=endpoint, region=REGION)
    with pytest.raises(VaultConfigurationError, match="wrapped by KMS key"):
        EnvelopeKey.from_file(tmp_path / "envelope.json", other)
    assert other.calls == 0


# The envelope key file


def test_the_envelope_file_is_private_json_and_never_silently_replaced(
        kms: AwsKms, tmp_path: Path) -> None:
    """to_file writes mode 0600 JSON in the documented format; an existing file is refused,
    and replaced only by the same local key."""
    envelope = EnvelopeKey.generate(kms)
    file = tmp_path / "envelope.json"
    envelope.to_file(file)
    assert file.stat().st_mode & 0o777 == 0o600
    document = json.loads(file.read_text())
    assert document == {"format": "keyvault.envelope.v1", "kms": kms.key_id,
                        "key_id": envelope.key_id,
                        "wrapped": base64.b64encode(envelope.wrapped).decode()}
    assert [p.name for p in tmp_path.iterdir()] == ["envelope.json"]  # no temporary left

    with pytest.raises(VaultConfigurationError, match="exists"):
        envelope.to_file(file)
    with pytest.raises(VaultConfigurationError, match="holds another envelope key"):
        EnvelopeKey.generate(kms).to_file(file, replace=True)
    assert json.loads(file.read_text()) == document
    envelope.to_file(file, replace=True)  # the same key: allowed
    assert EnvelopeKey.from_file(file, kms).key_id == envelope.key_id


@pytest.mark.parametrize("content", [
    "not json", "[]", '{"format": "other"}',
    '{"format": "keyvault.envelope.v1", "kms": "k"}',
    '{"format": "keyvault.envelope.v1", "kms": "k", "wrapped": "not base64!"}',
])
def test_a_malformed_envelope_file_is_a_configuration_error(content: str, tmp_path: Path
                                                             ) -> None:
    """A file that is not an envelope key file is refused clearly, before any KMS call."""
    file = tmp_path / "envelope.json"
    file.write_text(content.replace('"k"', '"aws-kms:k"'))
    kms = AwsKms("k", client=StubKms())
    with pytest.raises(VaultConfigurationError, match=r"envelope key file|no valid base64"):
        EnvelopeKey.from_file(file, kms)
    assert kms.calls == 0
    with pytest.raises(VaultConfigurationError, match="no envelope key file"):
        EnvelopeKey.from_file(tmp_path / "missing.json", kms)


def test_an_envelope_file_whose_key_id_was_edited_is_refused(kms: AwsKms, tmp_path: Path
                                                             ) -> None:
    """The key id in the file must be the id of the key the KMS unwraps."""
    file = tmp_path / "envelope.json"
    EnvelopeKey.generate(kms).to_file(file)
    document = json.loads(file.read_text())
    file.write_text(json.dumps({**document, "key_id": "0123456789abcdef"}))
    with pytest.raises(VaultConfigurationError, match="edited"):
        EnvelopeKey.from_file(file, kms)


def test_an_envelope_key_shows_only_ids_and_cannot_be_pickled(kms: AwsKms) -> None:
    """Printing shows the local key's id and the KMS key's; pickling is refused."""
    envelope = EnvelopeKey.generate(kms)
    assert repr(envelope) == f"EnvelopeKey(key_id={envelope.key_id!r}, kms={kms.key_id!r})"
    assert envelope.kms is kms
    with pytest.raises(TypeError, match="not picklable"):
        pickle.dumps(envelope)


# Errors from the KMS


def test_a_disabled_or_deleted_kms_key_is_access_denied(
        endpoint: str, admin: Any, new_key: Callable[[], str]) -> None:
    """A disabled key, or one pending deletion, raises KmsAccessDenied naming the key and the
    operation; never a value, never an empty key."""
    arn = new_key()
    kms = AwsKms(arn, endpoint_url=endpoint, region=REGION)
    wrapped = kms.wrap(b"k" * 32, context=b"ctx")
    admin.disable_key(KeyId=key_id_of(arn))
    with pytest.raises(KmsAccessDenied, match=f"Decrypt with key {arn}.*DisabledException"):
        kms.unwrap(wrapped, context=b"ctx")
    with pytest.raises(KmsAccessDenied, match=f"Encrypt with key {arn}"):
        kms.wrap(b"k" * 32, context=b"ctx")
    admin.schedule_key_deletion(KeyId=key_id_of(arn), PendingWindowInDays=7)
    with pytest.raises(KmsAccessDenied, match="KMSInvalidStateException"):
        kms.unwrap(wrapped, context=b"ctx")
    with pytest.raises(KmsAccessDenied, match="NotFoundException"):
        AwsKms(arn.replace(arn[-12:], "0" * 12), endpoint_url=endpoint,
               region=REGION).wrap(b"k" * 32, context=b"ctx")


def test_an_unreachable_kms_is_unavailable_promptly(key_arn: str) -> None:
    """A closed port raises KmsUnavailable within seconds (short timeouts, few attempts)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    kms = AwsKms(key_arn, endpoint_url=f"http://127.0.0.1:{port}", region=REGION)
    started = time.monotonic()
    with pytest.raises(KmsUnavailable, match=f"Encrypt with key {key_arn}"):
        kms.wrap(b"k" * 32, context=b"ctx")
    with pytest.raises(KmsUnavailable, match="Decrypt"):
        kms.unwrap(b"blob", context=b"ctx")
    assert time.monotonic() - started < 6
    assert kms.calls == 2


def test_a_blob_of_another_kms_key_or_an_altered_envelope_is_tampering(
        endpoint: str, new_key: Callable[[], str]) -> None:
    """A blob another KMS key wrapped (IncorrectKeyException), an altered envelope key and
    an empty blob are TamperedError, not access errors."""
    first = AwsKms(new_key(), endpoint_url=endpoint, region=REGION)
    second = AwsKms(new_key(), endpoint_url=endpoint, region=REGION)
    with pytest.raises(TamperedError, match="IncorrectKeyException"):
        second.unwrap(first.wrap(b"k" * 32, context=b"ctx"), context=b"ctx")
    envelope = EnvelopeKey.generate(first)
    altered = bytearray(envelope.wrapped)
    altered[-1] ^= 0x01
    with pytest.raises(TamperedError):
        EnvelopeKey.open(first, bytes(altered))
    with pytest.raises(TamperedError):  # a subject's wrapped key, as the envelope key
        EnvelopeKey.open(first, first.wrap(b"k" * 32, context=b"keyvault.wrap.v1\x00s"))
    with pytest.raises(TamperedError):
        first.unwrap(b"", context=b"ctx")


@pytest.mark.parametrize(("error", "expected"), [
    (client_error("ThrottlingException"), KmsThrottled),
    (client_error("LimitExceededException"), KmsThrottled),
    (client_error("AccessDeniedException"), KmsAccessDenied),
    (client_error("KMSInvalidStateException"), KmsAccessDenied),
    (client_error("DisabledException"), KmsAccessDenied),
    (client_error("NotFoundException"), KmsAccessDenied),
    (client_error("InvalidCiphertextException"), TamperedError),
    (client_error("IncorrectKeyException"), TamperedError),
    (client_error("KMSInternalException", status=500), KmsUnavailable),
    (client_error("SomethingNew", status=503), KmsUnavailable),
    (client_error("ValidationException"), KmsError),
    (EndpointConnectionError(endpoint_url="https://kms.example"), KmsUnavailable),
    (ConnectTimeoutError(endpoint_url="https://kms.example"), KmsUnavailable),
    (ReadTimeoutError(endpoint_url="https://kms.example"), KmsUnavailable),
    (NoCredentialsError(), KmsAccessDenied),
])
def test_each_kms_failure_becomes_a_clear_key_vault_error(error: Exception,
                                                           expected: type[Exception]) -> None:
    """botocore's errors map onto the KeyVaultError tree (a stub client raises them)."""
    kms = AwsKms("arn:aws:kms:us-east-1:111122223333:key/k", client=StubKms(error))
    with pytest.raises(expected) as raised:
        kms.unwrap(b"blob", context=b"ctx")
    assert type(raised.value) is expected
    assert isinstance(raised.value, KeyVaultError)
    if expected is not TamperedError:
        assert isinstance(raised.value, KmsError)
        assert "Decrypt with key arn:aws:kms:us-east-1:111122223333:key/k" in str(raised.value)


def test_a_parameter_error_does_not_quote_the_key() -> None:
    """botocore's parameter errors quote the values sent: the KmsError does not carry them."""
    quoted = "c2VjcmV0IGtleSBieXRlcw=="
    kms = AwsKms("k", client=StubKms(ParamValidationError(report=f"Plaintext: {quoted}")))
    with pytest.raises(KmsError) as raised:
        kms.wrap(b"secret key bytes", context=b"ctx")
    assert quoted not in str(raised.value)
    assert raised.value.__cause__ is None
    assert raised.value.__suppress_context__


def test_a_kms_error_is_never_read_as_redacted(kms: AwsKms, tmp_path: Path) -> None:
    """A reader that shows erased subjects as redacted (open_unless_erased) gets the KMS's
    error, not None, when the KMS throttles, denies or is unreachable."""
    url = f"sqlite:///{tmp_path / 'vault.db'}"
    with KeyVault(url, master_key=kms) as vault:
        sealed = vault.seal("subject-1", b"value")
    arn = kms.key_id.removeprefix("aws-kms:")
    for error, expected in [(client_error("ThrottlingException"), KmsThrottled),
                            (client_error("AccessDeniedException"), KmsAccessDenied),
                            (EndpointConnectionError(endpoint_url="x"), KmsUnavailable)]:
        failing = AwsKms(arn, client=StubKms(error))
        with KeyVault(url, master_key=failing) as vault:
            with vault.keyring() as ring, pytest.raises(expected):
                ring.open_unless_erased("subject-1", sealed)
            with pytest.raises(expected):
                vault.open("subject-1", sealed)
            assert vault.status("subject-1").state == "active"


# Requests and configuration


def test_the_requests_carry_the_key_and_the_context_as_encryption_context() -> None:
    """Encrypt and Decrypt name the KMS key and send the context, base64, as encryption
    context; key_id names the KMS key and nothing else."""
    stub = StubKms()
    kms = AwsKms("arn:aws:kms:eu-west-1:111122223333:key/k", client=stub)
    wrapped = kms.wrap(b"k" * 32, context=b"ctx\x00subject")
    assert kms.unwrap(wrapped, context=b"ctx\x00subject") == b"k" * 32
    context = {"keyvault-context": base64.b64encode(b"ctx\x00subject").decode()}
    assert stub.requests == [
        ("Encrypt", {"KeyId": "arn:aws:kms:eu-west-1:111122223333:key/k",
                     "Plaintext": b"k" * 32, "EncryptionContext": context}),
        ("Decrypt", {"KeyId": "arn:aws:kms:eu-west-1:111122223333:key/k",
                     "CiphertextBlob": wrapped, "EncryptionContext": context}),
    ]
    assert kms.key_id == "aws-kms:arn:aws:kms:eu-west-1:111122223333:key/k"
    assert repr(kms) == f"AwsKms(key_id={kms.key_id!r})"
    assert kms.calls == 2


def test_an_empty_answer_is_an_error_not_a_key() -> None:
    """A KMS answer without a plaintext or ciphertext raises; nothing empty is returned."""
    class Empty(StubKms):
        def encrypt(self, **params: Any) -> dict[str, Any]:
            return {"CiphertextBlob": b""}

        def decrypt(self, **params: Any) -> dict[str, Any]:
            return {}

    kms = AwsKms("k", client=Empty())
    with pytest.raises(KmsError, match="without a ciphertext"):
        kms.wrap(b"k" * 32, context=b"ctx")
    with pytest.raises(KmsError, match="without a plaintext"):
        kms.unwrap(b"blob", context=b"ctx")


def test_bad_configuration_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """No key id, a client with a region, no attempts, no region, no boto3:
    VaultConfigurationError."""
    with pytest.raises(VaultConfigurationError, match="ARN"):
        AwsKms("")
    with pytest.raises(VaultConfigurationError, match="either a client"):
        AwsKms("k", client=StubKms(), region=REGION)
    with pytest.raises(VaultConfigurationError, match="attempts"):
        AwsKms("k", client=StubKms(), attempts=0)
    with pytest.raises(VaultConfigurationError, match="an envelope key is wrapped by"):
        EnvelopeKey.generate(object())  # type: ignore[arg-type]
    for name in ("AWS_DEFAULT_REGION", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
    with pytest.raises(VaultConfigurationError, match="NoRegionError"):
        AwsKms("k")
    monkeypatch.setitem(sys.modules, "boto3", None)
    with pytest.raises(VaultConfigurationError,
                       match=r"needs boto3: pip install 'shredstore\[kms\]'"):
        AwsKms("k")


def test_the_command_line_makes_uses_and_rewraps_an_envelope_key(
        endpoint: str, admin: Any, new_key: Callable[[], str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`keys new-master --kms`, a store opened through the envelope file (one KMS call), or
    through `--master-key kms:...`, and `keys rewrap-kms` to a new KMS key, after which the
    old one is disabled and nothing notices."""
    from shredstore import EventStore
    from tests.cli.runner import shredstore
    from tests.relay.test_relay import CustomerRegistered

    monkeypatch.setenv("AWS_ENDPOINT_URL_KMS", endpoint)
    monkeypatch.setenv("AWS_REGION", REGION)
    first, second = new_key(), new_key()
    key_file = tmp_path / "envelope.json"
    made = shredstore("keys", "new-master", "--kms", f"aws-kms:{first}", "--out", str(key_file))
    assert made.returncode == 0, made.stderr
    master = master_key_from(str(key_file))
    assert isinstance(master, EnvelopeKey)
    assert master.kms.calls == 1  # type: ignore[attr-defined]
    url = f"sqlite:///{tmp_path / 'events.db'}"
    with EventStore(url, master_key=master) as store:
        store.registry.register(CustomerRegistered)
        store.append("customer-1", [CustomerRegistered(customer_id="c1", email="c1@example.org",
                                                       plan="basic")])

    def exported(*options: str) -> dict[str, Any]:
        ran = shredstore(*options, "export", "c1", url=url)
        assert ran.returncode == 0, ran.stderr
        document: dict[str, Any] = json.loads(ran.stdout)
        return document

    assert exported("--master-key-file", str(key_file))["events"][0]["personal"] == {
        "email": "c1@example.org"}
    rewrapped = shredstore("keys", "rewrap-kms", "--key-file", str(key_file), "--kms",
                           f"aws-kms:{second}")
    assert rewrapped.returncode == 0, rewrapped.stderr
    admin.disable_key(KeyId=first.rsplit("/", 1)[-1])
    assert exported("--master-key", f"file:{key_file}")["state"] == "active"
    refused = shredstore("--master-key", "c2VjcmV0", "status", "c1", url=url)
    assert refused.returncode == 2  # a key itself on the command line is refused
    plain = tmp_path / "plain.key"
    assert shredstore("keys", "new-master", "--out", str(plain)).returncode == 0
    not_envelope = shredstore("keys", "rewrap-kms", "--key-file", str(plain), "--kms",
                              f"aws-kms:{second}")
    assert not_envelope.returncode == 2
    assert "not an envelope key file" in not_envelope.stderr
    with socket.socket() as sock:  # a KMS that cannot be reached: one line, exit 2
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL_KMS", f"http://127.0.0.1:{closed}")
    down = shredstore("--master-key-file", str(key_file), "export", "c1", url=url)
    assert down.returncode == 2
    assert "KMS" in down.stderr
    assert "Traceback" not in down.stderr
