"""Master keys kept in a KMS: `AwsKms`, and `EnvelopeKey`, which makes a process's KMS calls
O(1) instead of O(subjects).

`AwsKms` is a `KeyProvider` over AWS KMS: `wrap` is the KMS's Encrypt call and `unwrap` its
Decrypt, with the vault's `context` as encryption context (``{"keyvault-context": base64 of
the context}``), so a wrapped key moved to another subject fails at the KMS. Used directly as a
vault's master key it costs one KMS request per subject a process opens (and per subject
created): a replay of N subjects is N requests, with the KMS's latency, rate limits and bill.

`EnvelopeKey` is the two-level hierarchy that avoids this::

    KMS key (never leaves the KMS)
       | wraps, once: Encrypt when the envelope key is made, one Decrypt per process start
       v
    envelope key: a local 256-bit key, stored only wrapped (a small JSON file)
       | wraps the subjects' keys locally: AES-256-GCM, as `MasterKey` (zero KMS calls)
       v
    data key per subject

Its `key_id` is the local key's `MasterKey` id, so the vault that stores it keeps accepting it
when the KMS key changes: `EnvelopeKey.rewrap` wraps the same local key with another KMS key,
touching neither the subjects' keys nor any sealed value. Changing the local key itself is a
master-key rotation (`KeyVault.rotate_master_key`), which re-wraps every subject's key.

Errors from the KMS become `KmsError`s (`KmsAccessDenied`, `KmsThrottled`, `KmsUnavailable`)
and an authentication failure `TamperedError`; nothing is ever returned in their place, so no
value is read as redacted because a KMS failed. Messages name the KMS key and the operation,
never key material. boto3 is imported only when an `AwsKms` is made (``pip install
'shredstore[kms]'``). docs/kms.md has the design, the measurements and the other KMSs.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import errno
import importlib
import json
import os
import secrets
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

from keyvault.errors import (
    KeyVaultError,
    KmsAccessDenied,
    KmsError,
    KmsThrottled,
    KmsUnavailable,
    TamperedError,
    VaultConfigurationError,
)
from keyvault.master import KeyProvider, MasterKey

__all__ = ["AwsKms", "EnvelopeKey"]

_CONTEXT_KEY = "keyvault-context"
"""The one encryption-context entry `AwsKms` sends: the vault's context, base64."""

# AWS KMS error codes, by what they mean to a vault.
_TAMPERED = frozenset({"InvalidCiphertextException", "IncorrectKeyException"})
_DENIED = frozenset({
    "AccessDeniedException", "DisabledException", "KMSInvalidStateException",
    "NotFoundException", "InvalidKeyUsageException", "UnrecognizedClientException",
    "ExpiredTokenException", "InvalidSignatureException", "IncompleteSignature",
    "MissingAuthenticationToken",
})
_THROTTLED = frozenset({
    "ThrottlingException", "LimitExceededException", "Throttling", "TooManyRequestsException",
    "RequestLimitExceeded",
})
_UNAVAILABLE = frozenset({
    "KMSInternalException", "DependencyTimeoutException", "KeyUnavailableException",
    "ServiceUnavailable", "ServiceUnavailableException", "InternalFailure",
})
_CREDENTIAL_ERRORS = ("NoCredentialsError", "PartialCredentialsError",
                      "CredentialRetrievalError", "TokenRetrievalError", "NoAuthTokenError")

_ENVELOPE_CONTEXT = b"keyvault envelope key v1"
"""The context the KMS binds an envelope key to: it unwraps as nothing else."""
_FILE_FORMAT = "keyvault.envelope.v1"
_PRIVATE_MODE = 0o600
_TEMPORARY_TRIES = 16


def _import_optional(module: str, *, needed_by: str) -> ModuleType:
    """Import a module of an optional dependency, or say how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise VaultConfigurationError(
            f"{needed_by} needs {module.partition('.')[0]}: pip install 'shredstore[kms]'"
        ) from None


class AwsKms:
    """A `KeyProvider` whose key stays in AWS KMS: wrap is Encrypt, unwrap is Decrypt.

    ``AwsKms("arn:aws:kms:eu-west-1:111122223333:key/...", region="eu-west-1")``. Give the
    key's ARN (or key id), not an alias: Decrypt names the key, and a blob wrapped before an
    alias moved would no longer open. Credentials come from boto3's usual chain (environment,
    profile, instance or task role). Without `client`, one is made with short timeouts
    (`connect_timeout`, `read_timeout` seconds) and `attempts` tries per request in all
    (botocore's standard retry mode, which backs off on throttling); pass `client` (a boto3
    KMS client) to configure it yourself.

    `calls` counts the KMS requests made (retries inside botocore not counted). Used directly
    as a vault's master key, every subject a process opens costs one; wrap it in an
    `EnvelopeKey` to pay one per process instead.
    """

    __slots__ = ("_calls", "_client", "_errors", "_kms_key", "_lock")

    def __init__(
        self,
        key_id: str,
        *,
        client: Any = None,
        region: str | None = None,
        endpoint_url: str | None = None,
        connect_timeout: float = 1.0,
        read_timeout: float = 10.0,
        attempts: int = 2,
    ) -> None:
        if not isinstance(key_id, str) or not key_id.strip():
            raise VaultConfigurationError("AwsKms needs the KMS key's ARN or id")
        if not isinstance(attempts, int) or attempts < 1:
            raise VaultConfigurationError("attempts is at least 1 (the first request)")
        self._errors = _import_optional("botocore.exceptions", needed_by="AwsKms")
        if client is None:
            boto3 = _import_optional("boto3", needed_by="AwsKms")
            config = _import_optional("botocore.config", needed_by="AwsKms").Config(
                connect_timeout=connect_timeout, read_timeout=read_timeout,
                retries={"mode": "standard", "total_max_attempts": attempts})
            try:
                client = boto3.client("kms", region_name=region, endpoint_url=endpoint_url,
                                      config=config)
            except self._errors.BotoCoreError as error:
                raise VaultConfigurationError(
                    f"cannot make an AWS KMS client: {type(error).__name__}: {error}"
                ) from None
        elif region is not None or endpoint_url is not None:
            raise VaultConfigurationError(
                "give either a client, or region and endpoint_url to make one; not both")
        self._client = client
        self._kms_key = key_id
        self._lock = threading.Lock()
        self._calls = 0

    @property
    def key_id(self) -> str:
        """``"aws-kms:"`` and the KMS key's ARN or id, as given."""
        return f"aws-kms:{self._kms_key}"

    @property
    def calls(self) -> int:
        """How many requests (Encrypt and Decrypt) this provider has made to the KMS."""
        return self._calls

    def wrap(self, key: bytes, *, context: bytes) -> bytes:
        """Encrypt `key` under the KMS key, bound to `context` (one KMS request)."""
        response = self._request("Encrypt", Plaintext=key,
                                 EncryptionContext=_encryption_context(context))
        blob = response.get("CiphertextBlob") if isinstance(response, dict) else None
        if not isinstance(blob, bytes) or not blob:
            raise KmsError(f"AWS KMS Encrypt with key {self._kms_key} answered without a "
                           "ciphertext")
        return blob

    def unwrap(self, wrapped: bytes, *, context: bytes) -> bytes:
        """Decrypt a wrapped key with the KMS key and `context` (one KMS request); raise
        `TamperedError` if the KMS finds it altered, bound to another context or wrapped by
        another key, and a `KmsError` if the KMS refuses or fails."""
        if not isinstance(wrapped, bytes) or not wrapped:
            raise TamperedError("a KMS-wrapped key is empty")
        response = self._request("Decrypt", CiphertextBlob=wrapped,
                                 EncryptionContext=_encryption_context(context))
        plaintext = response.get("Plaintext") if isinstance(response, dict) else None
        if not isinstance(plaintext, bytes) or not plaintext:
            raise KmsError(f"AWS KMS Decrypt with key {self._kms_key} answered without a "
                           "plaintext")
        return plaintext

    def _request(self, operation: str, **params: Any) -> Any:
        """Call the KMS; translate every failure (see the module)."""
        method = getattr(self._client, operation.lower())
        with self._lock:
            self._calls += 1
        try:
            return method(KeyId=self._kms_key, **params)
        except self._errors.ClientError as error:
            translated = self._client_error(error, operation)
            if isinstance(translated, TamperedError):
                raise translated from None
            raise translated from error
        except self._errors.BotoCoreError as error:
            unavailable = (self._errors.ConnectionError, self._errors.HTTPClientError)
            where = f"AWS KMS {operation} with key {self._kms_key}"
            if isinstance(error, unavailable):
                raise KmsUnavailable(f"{where}: the KMS cannot be reached or did not answer "
                                     f"in time ({type(error).__name__})") from error
            credentials = tuple(getattr(self._errors, name) for name in _CREDENTIAL_ERRORS
                                if hasattr(self._errors, name))
            if isinstance(error, credentials):
                raise KmsAccessDenied(f"{where}: no usable AWS credentials "
                                      f"({type(error).__name__})") from None
            # Not chained: some botocore errors (parameter validation) quote the parameters.
            raise KmsError(f"{where} failed: {type(error).__name__}") from None

    def _client_error(self, error: Any, operation: str) -> KeyVaultError:
        response = error.response if isinstance(error.response, dict) else {}
        details = response.get("Error") or {}
        code = str(details.get("Code") or "")
        message = str(details.get("Message") or "")[:300]
        status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
        where = f"AWS KMS {operation} with key {self._kms_key}"
        said = f"{code}: {message}" if message else code
        if code in _TAMPERED:
            return TamperedError(
                f"{where} refused the wrapped key ({code}): it was altered, moved to another "
                "subject, or wrapped by another KMS key")
        if code in _DENIED:
            return KmsAccessDenied(f"{where} was denied: {said}")
        if code in _THROTTLED:
            return KmsThrottled(f"{where} was throttled: {said}")
        if code in _UNAVAILABLE or (isinstance(status, int) and status >= 500):
            return KmsUnavailable(f"{where} failed on the KMS's side: {said or status}")
        return KmsError(f"{where} failed: {said or 'an error without a code'}")

    def __repr__(self) -> str:
        return f"AwsKms(key_id={self.key_id!r})"


def _encryption_context(context: bytes) -> dict[str, str]:
    """The KMS encryption context that carries a vault's wrapping context."""
    return {_CONTEXT_KEY: base64.b64encode(context).decode("ascii")}


class EnvelopeKey:
    """A local 256-bit key wrapped once by a KMS: the master key of a vault, at one KMS call
    per process.

    `generate` makes one (one KMS call: Encrypt); store `wrapped` (or `to_file`), and at each
    process start `open` it (or `from_file`): one KMS call, Decrypt. From then on `wrap` and
    `unwrap` of the subjects' keys are local AES-256-GCM, as `MasterKey`'s: no KMS call. The
    KMS may be any `KeyProvider` (`AwsKms`, `VaultTransit`, one of your own). `key_id` is the
    local key's id, unchanged by `rewrap`, which moves it to another KMS key. It prints as its
    ids and refuses to be pickled.
    """

    __slots__ = ("_kms", "_master", "_secret", "_wrapped")

    def __init__(self, kms: KeyProvider, wrapped: bytes) -> None:
        """As `open`: unwrap `wrapped` with `kms` (one KMS call)."""
        _check_kms(kms)
        if not isinstance(wrapped, bytes) or not wrapped:
            raise VaultConfigurationError("a wrapped envelope key is non-empty bytes")
        secret = kms.unwrap(wrapped, context=_ENVELOPE_CONTEXT)
        if not isinstance(secret, bytes) or len(secret) != MasterKey.SIZE:
            raise TamperedError(f"the KMS key {kms.key_id} unwrapped no envelope key: not "
                                f"{MasterKey.SIZE} bytes")
        self._set(kms, wrapped, secret)

    def _set(self, kms: KeyProvider, wrapped: bytes, secret: bytes) -> None:
        self._kms = kms
        self._wrapped = wrapped
        self._secret = secret
        self._master = MasterKey(secret)

    @classmethod
    def generate(cls, kms: KeyProvider) -> EnvelopeKey:
        """A new envelope key from the OS CSPRNG, wrapped by `kms` (one KMS call)."""
        _check_kms(kms)
        secret = secrets.token_bytes(MasterKey.SIZE)
        made = cls.__new__(cls)
        made._set(kms, kms.wrap(secret, context=_ENVELOPE_CONTEXT), secret)
        return made

    @classmethod
    def open(cls, kms: KeyProvider, wrapped: bytes) -> EnvelopeKey:
        """The envelope key `wrapped` by `kms` (one KMS call); `TamperedError` if the KMS finds
        it altered, a `KmsError` if the KMS refuses or fails."""
        return cls(kms, wrapped)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], kms: KeyProvider) -> EnvelopeKey:
        """Read a file written by `to_file` and open its key with `kms` (one KMS call).

        `VaultConfigurationError` if the file is missing or malformed, or names another KMS key
        than `kms` (after a `rewrap`, use the new file with the new KMS key). The file holds no
        secret a reader can use without the KMS key, so its permissions are not checked.
        """
        _check_kms(kms)
        file = Path(path)
        document = _read_envelope_file(file)
        if document["kms"] != kms.key_id:
            raise VaultConfigurationError(
                f"the envelope key file {file} is wrapped by KMS key {document['kms']}, not by "
                f"{kms.key_id}")
        key = cls(kms, document["wrapped"])
        if document["key_id"] is not None and document["key_id"] != key.key_id:
            raise VaultConfigurationError(
                f"the envelope key file {file} says it holds key {document['key_id']}, and it "
                f"holds {key.key_id}: the file was edited")
        return key

    @property
    def key_id(self) -> str:
        """The local key's id (a `MasterKey` id): what the vault stores and checks."""
        return self._master.key_id

    @property
    def kms(self) -> KeyProvider:
        """The KMS provider that wraps this key."""
        return self._kms

    @property
    def wrapped(self) -> bytes:
        """The key as wrapped by the KMS: what to store (no secret without the KMS key)."""
        return self._wrapped

    def wrap(self, key: bytes, *, context: bytes) -> bytes:
        """Wrap a subject's key locally, AES-256-GCM bound to `context` (no KMS call)."""
        return self._master.wrap(key, context=context)

    def unwrap(self, wrapped: bytes, *, context: bytes) -> bytes:
        """Unwrap a subject's key locally (no KMS call); `TamperedError` if altered or moved."""
        return self._master.unwrap(wrapped, context=context)

    def rewrap(self, kms: KeyProvider) -> EnvelopeKey:
        """The same local key wrapped by another KMS key (one call to `kms`): the KMS key's
        rotation. The subjects' keys, the sealed values and the vault's stored key id are
        untouched; store the new `wrapped` (or file), and the old KMS key may then go."""
        _check_kms(kms)
        made = type(self).__new__(type(self))
        made._set(kms, kms.wrap(self._secret, context=_ENVELOPE_CONTEXT), self._secret)
        return made

    def to_file(self, path: str | os.PathLike[str], *, replace: bool = False) -> None:
        """Write the wrapped key to a JSON file, mode 0600, atomically.

        ``{"format": "keyvault.envelope.v1", "kms": <the KMS provider's key_id>, "key_id":
        <this key's id>, "wrapped": <base64>}``. An existing file is never replaced unless
        ``replace=True``, and then only if it holds this same key (as after a `rewrap`):
        losing the only copy of an envelope key loses every key it wraps.
        """
        file = Path(path)
        document = {"format": _FILE_FORMAT, "kms": self._kms.key_id, "key_id": self.key_id,
                    "wrapped": base64.b64encode(self._wrapped).decode("ascii")}
        data = (json.dumps(document, indent=2) + "\n").encode("utf-8")
        if replace and file.exists():
            try:
                held = _read_envelope_file(file)["key_id"]
            except VaultConfigurationError:
                held = None
            if held != self.key_id:
                raise VaultConfigurationError(
                    f"{file} holds another envelope key ({held or 'unreadable'}), and this "
                    f"is {self.key_id}: refusing to replace it")
        try:
            _write_private(file, data, replace=replace)
        except FileExistsError:
            raise VaultConfigurationError(
                f"{file} exists: refusing to replace an envelope key file") from None
        except OSError as error:
            raise VaultConfigurationError(
                f"cannot write the envelope key file {file}: {error.strerror or error}"
            ) from None

    def __repr__(self) -> str:
        return f"EnvelopeKey(key_id={self.key_id!r}, kms={self._kms.key_id!r})"

    __str__ = __repr__

    def __reduce__(self) -> None:  # type: ignore[override]
        raise TypeError("an EnvelopeKey is not picklable: open it from its file in each "
                        "process, on purpose")


def _check_kms(kms: object) -> None:
    if not isinstance(kms, KeyProvider):
        raise VaultConfigurationError("an envelope key is wrapped by a KeyProvider (a KMS)")


def _read_envelope_file(file: Path) -> dict[str, Any]:
    """The fields of an envelope key file, checked: kms (str), wrapped (bytes), key_id
    (str or None)."""
    try:
        document = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise VaultConfigurationError(f"no envelope key file at {file}") from None
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise VaultConfigurationError(
            f"cannot read the envelope key file {file}: {type(error).__name__}") from None
    if not isinstance(document, dict) or document.get("format") != _FILE_FORMAT:
        raise VaultConfigurationError(f"{file} is not an envelope key file ({_FILE_FORMAT})")
    kms, wrapped, key_id = document.get("kms"), document.get("wrapped"), document.get("key_id")
    if not isinstance(kms, str) or not isinstance(wrapped, str) or \
            not (key_id is None or isinstance(key_id, str)):
        raise VaultConfigurationError(f"the envelope key file {file} is malformed")
    try:
        blob = base64.b64decode(wrapped, validate=True)
    except (binascii.Error, ValueError):
        raise VaultConfigurationError(
            f"the envelope key file {file} holds no valid base64 key") from None
    return {"kms": kms, "wrapped": blob, "key_id": key_id}


def _write_private(file: Path, data: bytes, *, replace: bool) -> None:
    """Write `data` to a new temporary file beside `file` (mode 0600 from its first byte),
    sync it, then give it its name: `os.replace`, or `os.link` (FileExistsError if the name is
    taken). Never a moment where `file` is half written or readable by others."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(_TEMPORARY_TRIES):
        partial = file.parent / f".{file.name[:64]}.{secrets.token_hex(6)}.partial"
        try:
            descriptor = os.open(partial, flags, _PRIVATE_MODE)
        except FileExistsError:
            continue
        break
    else:
        raise OSError(errno.EAGAIN, "no free temporary file name", str(file.parent))
    try:
        try:
            if hasattr(os, "fchmod"):
                os.fchmod(descriptor, _PRIVATE_MODE)  # whatever the umask took
            view = memoryview(data)
            while view:
                view = view[os.write(descriptor, view):]
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        if replace:
            os.replace(partial, file)
        else:
            os.link(partial, file)
        with contextlib.suppress(OSError):  # make the name durable, where folders sync
            folder = os.open(file.parent, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
            try:
                os.fsync(folder)
            finally:
                os.close(folder)
    finally:
        partial.unlink(missing_ok=True)
