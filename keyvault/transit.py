"""Master keys kept in HashiCorp Vault's transit engine: `VaultTransit`.

A `KeyProvider` over the transit engine's encrypt and decrypt endpoints, through hvac: `wrap`
sends the key as ``plaintext`` and the vault's context as ``associated_data`` (both base64), so
the transit key must be an AEAD type (``aes256-gcm96``, the default) and Vault 1.13 or later,
the first to take ``associated_data``. An older Vault ignores the parameter (and says so in a
warning): the context would not be bound, so `wrap` refuses with `VaultConfigurationError`.
The wrapped form is Vault's ciphertext string (``vault:v1:...``) as ASCII bytes; `unwrap`
refuses one that is not exactly as Vault writes them, since Vault reads ``vault:v0:`` as
version 1 (one flipped bit of ``v1`` would otherwise open).

Transit keys rotate inside Vault (``transit/keys/<name>/rotate``): the name stays, older
versions still decrypt, and `key_id` does not change. Like `AwsKms`, a `VaultTransit` used
directly costs one request per subject a process opens; wrap it in `keyvault.EnvelopeKey` for
one per process.

Errors become `KmsError`s: hvac's ``Forbidden``/``Unauthorized`` (and a missing path or key)
`KmsAccessDenied`, ``RateLimitExceeded`` `KmsThrottled`, connection errors, timeouts and a
sealed or failing server `KmsUnavailable`; a decrypt refused as a bad request (ciphertext or
associated data that fails authentication) is `TamperedError`. hvac is imported only when a
`VaultTransit` is made (``pip install 'shredstore[kms]'``).
"""

from __future__ import annotations

import base64
import binascii
import importlib
import re
import threading
from types import ModuleType
from typing import Any

from keyvault.errors import (
    KmsAccessDenied,
    KmsError,
    KmsThrottled,
    KmsUnavailable,
    TamperedError,
    VaultConfigurationError,
)

__all__ = ["VaultTransit"]

_CIPHERTEXT = re.compile(r"vault:v[1-9][0-9]*:([A-Za-z0-9+/]+={0,2})")
"""A ciphertext as Vault writes it. Vault reads more: it takes version 0 for version 1 (so
``v1`` with one bit changed, ``v0``, would open), a sign or leading zeros in the version, and
non-canonical base64; `unwrap` refuses all of these before asking."""
# Vault's words for a decrypt it refuses as a bad request for another reason than the
# ciphertext: the key is missing, or too old a version for the key's policy.
_REFUSALS = ("not found", "disallowed by policy", "does not support", "not supported")


def _import_optional(module: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise VaultConfigurationError(
            f"VaultTransit needs {module.partition('.')[0]}: pip install 'shredstore[kms]'"
        ) from None


class VaultTransit:
    """A `KeyProvider` whose key stays in Vault's transit engine: wrap is encrypt, unwrap is
    decrypt, the context bound as associated data.

    ``VaultTransit("https://vault.example:8200", "shredstore", token=...)``. `mount` is where
    the transit engine is mounted. Without `client`, an ``hvac.Client`` is made with the token
    and `timeout` (seconds); pass `client` (an ``hvac.Client``) for other authentication, TLS
    options or a namespace. The token never appears in `key_id` or the `repr`. `calls` counts
    the requests made to Vault.
    """

    __slots__ = ("_calls", "_errors", "_http_errors", "_key_id", "_key_name", "_lock",
                 "_mount", "_transit")

    def __init__(
        self,
        url: str,
        key_name: str,
        *,
        token: str | None = None,
        mount: str = "transit",
        client: Any = None,
        timeout: float = 10.0,
    ) -> None:
        for name, value in (("url", url), ("key_name", key_name), ("mount", mount)):
            if not isinstance(value, str) or not value.strip("/ "):
                raise VaultConfigurationError(f"VaultTransit needs a {name}")
        if "/" in key_name:
            raise VaultConfigurationError("a transit key name has no '/'")
        hvac = _import_optional("hvac")
        self._errors = _import_optional("hvac.exceptions")
        self._http_errors = _import_optional("requests.exceptions")
        if client is None:
            if not token:
                raise VaultConfigurationError("VaultTransit needs a Vault token, or a client")
            client = hvac.Client(url=url, token=token, timeout=timeout)
        self._transit = client.secrets.transit
        self._mount = mount.strip("/")
        self._key_name = key_name
        self._key_id = f"vault-transit:{url.rstrip('/')}/{self._mount}/{key_name}"
        self._lock = threading.Lock()
        self._calls = 0

    @property
    def key_id(self) -> str:
        """``"vault-transit:"``, the server's URL, the mount and the key's name."""
        return self._key_id

    @property
    def calls(self) -> int:
        """How many requests (encrypt and decrypt) this provider has made to Vault."""
        return self._calls

    def wrap(self, key: bytes, *, context: bytes) -> bytes:
        """Encrypt `key` with the transit key, `context` as associated data (one request)."""
        response = self._request("encrypt", plaintext=_b64(key), associated_data=_b64(context))
        warnings = response.get("warnings") or []
        if any("associated_data" in str(warning) for warning in warnings):
            raise VaultConfigurationError(
                f"Vault ignored associated_data when wrapping with {self._key_id}: the context "
                "would not be bound; VaultTransit needs Vault 1.13 or later")
        ciphertext = _data(response).get("ciphertext")
        wrapped = ciphertext.encode("ascii", "replace") if isinstance(ciphertext, str) else b""
        try:
            return _canonical_ciphertext(wrapped).encode("ascii")
        except TamperedError:
            raise KmsError(f"Vault's transit encrypt with {self._key_id} answered without a "
                           "ciphertext as Vault writes them") from None

    def unwrap(self, wrapped: bytes, *, context: bytes) -> bytes:
        """Decrypt a wrapped key with the transit key and `context` (one request); raise
        `TamperedError` if Vault finds it altered or bound to another context, a `KmsError` if
        Vault refuses or fails."""
        ciphertext = _canonical_ciphertext(wrapped)
        response = self._request("decrypt", ciphertext=ciphertext,
                                 associated_data=_b64(context))
        plaintext = _data(response).get("plaintext")
        try:
            key = base64.b64decode(plaintext, validate=True) if isinstance(plaintext, str) \
                else b""
        except (binascii.Error, ValueError):
            key = b""
        if not key:
            raise KmsError(f"Vault's transit decrypt with {self._key_id} answered without a "
                           "plaintext")
        return key

    def _request(self, operation: str, **params: str) -> dict[str, Any]:
        """Call the transit engine; translate every failure (see the module)."""
        method = getattr(self._transit, f"{operation}_data")
        with self._lock:
            self._calls += 1
        where = f"Vault's transit {operation} with {self._key_id}"
        try:
            response = method(name=self._key_name, mount_point=self._mount, **params)
        except self._errors.VaultError as error:
            raise self._vault_error(error, operation, where) from None
        except (self._http_errors.ConnectionError, self._http_errors.Timeout) as error:
            raise KmsUnavailable(f"{where}: Vault cannot be reached or did not answer in "
                                 f"time ({type(error).__name__})") from error
        except self._http_errors.RequestException as error:
            raise KmsError(f"{where} failed: {type(error).__name__}") from None
        if not isinstance(response, dict):
            raise KmsError(f"{where} answered with no JSON object")
        return response

    def _vault_error(self, error: Any, operation: str, where: str) -> Exception:
        kind = type(error).__name__
        said = "; ".join(str(item) for item in (error.errors or []))[:300] or kind
        errors = self._errors
        refused = isinstance(error, errors.InvalidRequest)
        if refused and operation == "decrypt" and \
                not any(words in said.lower() for words in _REFUSALS):
            return TamperedError(
                f"{where} refused the wrapped key: it was altered, moved to another subject, "
                "or wrapped by another key")
        families: tuple[tuple[Any, type[KmsError], str], ...] = (
            (errors.Forbidden | errors.Unauthorized, KmsAccessDenied, "was denied"),
            (errors.InvalidPath, KmsAccessDenied,
             f"found no such path (is the transit engine mounted at {self._mount!r}?)"),
            (errors.RateLimitExceeded, KmsThrottled, "was throttled"),
            (errors.VaultDown | errors.BadGateway | errors.InternalServerError
             | errors.VaultNotInitialized, KmsUnavailable, "failed on Vault's side"),
            (errors.InvalidRequest, KmsAccessDenied if operation == "decrypt" else KmsError,
             "was refused"),
        )
        for classes, family, happened in families:
            if isinstance(error, classes):
                return family(f"{where} {happened} ({kind}): {said}")
        return KmsError(f"{where} failed ({kind}): {said}")

    def __repr__(self) -> str:
        return f"VaultTransit(key_id={self._key_id!r})"


def _canonical_ciphertext(wrapped: bytes) -> str:
    """`wrapped` as Vault's ciphertext string, if it is one exactly as Vault writes them;
    otherwise `TamperedError`."""
    try:
        text = wrapped.decode("ascii")
    except (AttributeError, UnicodeDecodeError):
        raise TamperedError("a Vault-wrapped key is not a Vault ciphertext") from None
    match = _CIPHERTEXT.fullmatch(text)
    try:
        canonical = match is not None and \
            _b64(base64.b64decode(match[1], validate=True)) == match[1]
    except (binascii.Error, ValueError):
        canonical = False
    if not canonical:
        raise TamperedError("a Vault-wrapped key is not a Vault ciphertext as Vault writes "
                            "them: altered")
    return text


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _data(response: dict[str, Any]) -> dict[str, Any]:
    data = response.get("data")
    return data if isinstance(data, dict) else {}
