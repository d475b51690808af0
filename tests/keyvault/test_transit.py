"""HashiCorp Vault's transit engine as a vault's master key (`VaultTransit`), through hvac.

No Vault server can run here: the tests run against `StandInVault`, an HTTP server in a thread
that implements what `VaultTransit` uses of Vault's API, with its request and response shapes:
``POST /v1/<mount>/encrypt/<name>`` and ``/decrypt/<name>`` with base64 ``plaintext`` and
``associated_data``, ciphertexts ``vault:v<version>:<base64 of nonce + AES-256-GCM>`` bound to
the associated data, the ``X-Vault-Token`` header checked, keys created on first encrypt and
rotated to new versions, and errors as ``{"errors": [...]}`` with Vault's status codes (400,
403, 404, 429, 503) and words. It is not Vault: what it shows is that the provider sends and
understands those shapes, not that a given Vault release answers them so (docs/kms.md).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import hvac
import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from keyvault import (
    EnvelopeKey,
    KeyProvider,
    KeyVault,
    KmsAccessDenied,
    KmsError,
    KmsThrottled,
    KmsUnavailable,
    TamperedError,
    VaultConfigurationError,
    VaultTransit,
)
from shredstore.testing import KeyProviderContract

TOKEN = "hvs.test-token-not-a-secret"  # noqa: S105 - the stand-in's token


class StandInVault:
    """The transit engine's encrypt and decrypt endpoints, as Vault answers them."""

    def __init__(self, *, token: str = TOKEN, mounts: tuple[str, ...] = ("transit",)) -> None:
        self.token = token
        self.mounts = mounts
        self.keys: dict[str, list[bytes]] = {}  # name: versions, oldest first
        self.requests: list[dict[str, Any]] = []
        self.fail_with: tuple[int, list[str]] | None = None
        self.ignores_associated_data = False  # as Vault before 1.13
        self.lock = threading.Lock()

    def rotate(self, name: str) -> None:
        with self.lock:
            self.keys[name].append(AESGCM.generate_key(bit_length=256))

    def answer(self, path: str, headers: dict[str, str], body: bytes
               ) -> tuple[int, dict[str, Any]]:
        parts = path.strip("/").split("/")
        try:
            request = json.loads(body or b"{}")
        except ValueError:
            return 400, {"errors": ["failed to parse JSON input"]}
        with self.lock:
            self.requests.append({"path": path, "token": headers.get("x-vault-token"),
                                  "body": request})
            if len(parts) != 4 or parts[0] != "v1" or parts[1] not in self.mounts or \
                    parts[2] not in ("encrypt", "decrypt"):
                return 404, {"errors": [f'no handler for route "{path}". route entry not '
                                        "found."]}
            if headers.get("x-vault-token") != self.token:
                return 403, {"errors": ["permission denied"]}
            if self.fail_with is not None:
                status, errors = self.fail_with
                return status, {"errors": errors}
            if parts[2] == "encrypt":
                return self.encrypt(parts[3], request)
            return self.decrypt(parts[3], request)

    def encrypt(self, name: str, request: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        try:
            plaintext = base64.b64decode(request["plaintext"], validate=True)
            aad = base64.b64decode(request.get("associated_data", ""), validate=True)
        except (KeyError, binascii.Error, ValueError, TypeError):
            return 400, {"errors": ["failed to base64-decode plaintext"]}
        warnings = None
        if self.ignores_associated_data and "associated_data" in request:
            aad = b""
            warnings = ["Endpoint ignored these unrecognized parameters: [associated_data]"]
        versions = self.keys.setdefault(name, [AESGCM.generate_key(bit_length=256)])
        nonce = os.urandom(12)
        sealed = nonce + AESGCM(versions[-1]).encrypt(nonce, plaintext, aad or None)
        ciphertext = f"vault:v{len(versions)}:{base64.b64encode(sealed).decode()}"
        return 200, _response({"ciphertext": ciphertext, "key_version": len(versions)},
                              warnings)

    def decrypt(self, name: str, request: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        versions = self.keys.get(name)
        if versions is None:
            return 400, {"errors": ["encryption key not found"]}
        try:
            version, sealed = _parse_ciphertext(request.get("ciphertext"), len(versions))
            aad = base64.b64decode(request.get("associated_data", ""), validate=True)
        except _Refused as refused:
            return 400, {"errors": [str(refused)]}
        except (binascii.Error, ValueError, TypeError):
            return 400, {"errors": ["failed to base64-decode associated_data"]}
        if self.ignores_associated_data:
            aad = b""
        try:
            plaintext = AESGCM(versions[version - 1]).decrypt(sealed[:12], sealed[12:],
                                                              aad or None)
        except (InvalidTag, ValueError):
            return 400, {"errors": ["cipher: message authentication failed"]}
        return 200, _response({"plaintext": base64.b64encode(plaintext).decode()})


class _Refused(Exception):
    """A bad request, in Vault's words."""


def _parse_ciphertext(ciphertext: object, latest: int) -> tuple[int, bytes]:
    """The key version and the sealed bytes, read as Vault's keysutil.Policy.Decrypt reads
    them: "vault:v", a version (Go's strconv.Atoi: a sign and leading zeros pass; 0 means 1),
    ":", base64."""
    if not isinstance(ciphertext, str) or not ciphertext.startswith("vault:v"):
        raise _Refused("invalid ciphertext: no prefix")
    fields = ciphertext.removeprefix("vault:v").split(":", 1)
    if len(fields) != 2:
        raise _Refused("invalid ciphertext: wrong number of fields")
    try:
        version = int(fields[0]) or 1  # "compatibility mode with initial implementation"
    except ValueError:
        raise _Refused("invalid ciphertext: version number could not be decoded") from None
    if version > latest:
        raise _Refused("invalid ciphertext: version is too new")
    if version < 1:
        raise _Refused("invalid key version")
    try:
        return version, base64.b64decode(fields[1], validate=True)
    except (binascii.Error, ValueError):
        raise _Refused("invalid ciphertext: could not decode base64") from None


def _response(data: dict[str, Any], warnings: list[str] | None = None) -> dict[str, Any]:
    return {"request_id": str(uuid.uuid4()), "lease_id": "", "renewable": False,
            "lease_duration": 0, "data": data, "wrap_info": None, "warnings": warnings,
            "auth": None}


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive, as Vault
    disable_nagle_algorithm = True  # headers and body in two writes: no 40 ms wait between

    def do_POST(self) -> None:  # http.server's name
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {name.lower(): value for name, value in self.headers.items()}
        status, answer = self.server.vault.answer(self.path, headers, body)
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: http.server would print a line per request on stderr."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    vault: StandInVault


@pytest.fixture
def vault_server() -> Iterator[tuple[str, StandInVault]]:
    """The stand-in's URL, and the stand-in (to look at its requests, or make it fail)."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.vault = StandInVault(mounts=("transit", "keys-mount"))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", server.vault
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def transit(vault_server: tuple[str, StandInVault]) -> VaultTransit:
    return VaultTransit(vault_server[0], "shredstore", token=TOKEN)


class TestVaultTransit(KeyProviderContract):
    @pytest.fixture
    def provider(self, transit: VaultTransit) -> KeyProvider:
        return transit


class TestEnvelopeKeyOverVaultTransit(KeyProviderContract):
    @pytest.fixture
    def provider(self, transit: VaultTransit) -> KeyProvider:
        return EnvelopeKey.generate(transit)


# The requests


def test_the_requests_have_the_shapes_of_vaults_transit_api(
        vault_server: tuple[str, StandInVault]) -> None:
    """Encrypt and decrypt go to /v1/<mount>/<operation>/<key> with the token header, the key
    as base64 plaintext and the context as base64 associated_data; the wrapped form is the
    vault:v1: ciphertext."""
    url, vault = vault_server
    transit = VaultTransit(url + "/", "shredstore", token=TOKEN, mount="keys-mount")
    wrapped = transit.wrap(b"k" * 32, context=b"ctx\x00subject")
    assert wrapped.startswith(b"vault:v1:")
    assert transit.unwrap(wrapped, context=b"ctx\x00subject") == b"k" * 32
    context = base64.b64encode(b"ctx\x00subject").decode()
    assert vault.requests == [
        {"path": "/v1/keys-mount/encrypt/shredstore", "token": TOKEN,
         "body": {"plaintext": base64.b64encode(b"k" * 32).decode(),
                  "associated_data": context}},
        {"path": "/v1/keys-mount/decrypt/shredstore", "token": TOKEN,
         "body": {"ciphertext": wrapped.decode(), "associated_data": context}},
    ]
    assert transit.calls == 2
    assert transit.key_id == f"vault-transit:{url}/keys-mount/shredstore"
    assert TOKEN not in transit.key_id
    assert TOKEN not in repr(transit)


def test_a_client_of_ones_own_is_used_as_given(vault_server: tuple[str, StandInVault]) -> None:
    """With an hvac client (other authentication, TLS options), no token is needed here."""
    url, vault = vault_server
    transit = VaultTransit(url, "shredstore", client=hvac.Client(url=url, token=TOKEN))
    assert transit.unwrap(transit.wrap(b"k" * 32, context=b"c"), context=b"c") == b"k" * 32
    assert {request["token"] for request in vault.requests} == {TOKEN}


def test_a_rotated_transit_key_still_opens_what_it_wrapped_before(
        vault_server: tuple[str, StandInVault], transit: VaultTransit, tmp_path: Path) -> None:
    """Vault rotates a transit key to a new version under the same name: key_id is unchanged,
    older ciphertexts still open, new ones use the new version."""
    url, vault = vault_server
    with KeyVault(f"sqlite:///{tmp_path / 'vault.db'}", master_key=transit) as keys:
        sealed = keys.seal("subject-1", b"value")
    vault.rotate("shredstore")
    again = VaultTransit(url, "shredstore", token=TOKEN)
    assert again.key_id == transit.key_id
    with KeyVault(f"sqlite:///{tmp_path / 'vault.db'}", master_key=again) as keys:
        assert keys.open("subject-1", sealed) == b"value"
    assert again.wrap(b"k" * 32, context=b"c").startswith(b"vault:v2:")


def test_an_envelope_key_makes_one_transit_call_per_process(
        transit: VaultTransit, vault_server: tuple[str, StandInVault], tmp_path: Path) -> None:
    """Over Vault too, an envelope key costs one decrypt per process, whatever the subjects."""
    envelope = EnvelopeKey.generate(transit)
    envelope.to_file(tmp_path / "envelope.json")
    url = f"sqlite:///{tmp_path / 'vault.db'}"
    with KeyVault(url, master_key=envelope) as keys, keys.keyring() as ring:
        subjects = [f"subject-{i}" for i in range(50)]
        ring.prepare(subjects)
        sealed = {s: ring.seal(s, s.encode()) for s in subjects}
    process = VaultTransit(vault_server[0], "shredstore", token=TOKEN)
    with KeyVault(url, master_key=EnvelopeKey.from_file(tmp_path / "envelope.json", process)
                  ) as keys, keys.keyring() as ring:
        assert all(ring.open(s, value) == s.encode() for s, value in sealed.items())
    assert (transit.calls, process.calls) == (1, 1)


# Errors


def test_a_wrong_token_is_access_denied(vault_server: tuple[str, StandInVault]) -> None:
    """403 permission denied: KmsAccessDenied naming the key and the operation."""
    transit = VaultTransit(vault_server[0], "shredstore", token="hvs.wrong")  # noqa: S106
    with pytest.raises(KmsAccessDenied, match=r"transit encrypt with vault-transit:.*shredstore"
                                              r".*permission denied"):
        transit.wrap(b"k" * 32, context=b"c")


def test_a_missing_key_or_mount_is_access_denied(vault_server: tuple[str, StandInVault],
                                                 transit: VaultTransit) -> None:
    """A key Vault does not have, or no transit engine at the mount: KmsAccessDenied, not
    tampering."""
    url, _ = vault_server
    wrapped = transit.wrap(b"k" * 32, context=b"c")
    with pytest.raises(KmsAccessDenied, match="encryption key not found"):
        VaultTransit(url, "other-key", token=TOKEN).unwrap(wrapped, context=b"c")
    with pytest.raises(KmsAccessDenied, match="mounted at 'elsewhere'"):
        VaultTransit(url, "shredstore", token=TOKEN, mount="elsewhere").unwrap(
            wrapped, context=b"c")


@pytest.mark.parametrize(("status", "errors", "expected"), [
    (429, ["request path \"transit/decrypt/shredstore\": rate limit quota exceeded"],
     KmsThrottled),
    (503, ["Vault is sealed"], KmsUnavailable),
    (500, ["internal error"], KmsUnavailable),
    (403, ["permission denied"], KmsAccessDenied),
    (400, ["ciphertext or signature version is disallowed by policy (too old)"],
     KmsAccessDenied),
    (412, ["something new"], KmsError),
])
def test_each_vault_failure_becomes_a_clear_key_vault_error(
        vault_server: tuple[str, StandInVault], transit: VaultTransit, status: int,
        errors: list[str], expected: type[Exception]) -> None:
    """Vault's error statuses map onto the KeyVaultError tree; nothing is returned."""
    wrapped = transit.wrap(b"k" * 32, context=b"c")
    vault_server[1].fail_with = (status, errors)
    with pytest.raises(expected) as raised:
        transit.unwrap(wrapped, context=b"c")
    assert type(raised.value) is expected
    assert "transit decrypt with vault-transit:" in str(raised.value)


def test_an_unreachable_vault_is_unavailable_promptly() -> None:
    """A closed port: KmsUnavailable at once (hvac makes no retries)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    transit = VaultTransit(f"http://127.0.0.1:{port}", "shredstore", token=TOKEN, timeout=2)
    started = time.monotonic()
    with pytest.raises(KmsUnavailable, match="cannot be reached"):
        transit.wrap(b"k" * 32, context=b"c")
    with pytest.raises(KmsUnavailable):
        transit.unwrap(b"vault:v1:AAAA", context=b"c")
    assert time.monotonic() - started < 4


def test_what_is_not_a_vault_ciphertext_is_tampering_without_a_request(
        vault_server: tuple[str, StandInVault], transit: VaultTransit) -> None:
    """Bytes that are not a ciphertext exactly as Vault writes them are refused before asking
    Vault, which would open some of them: it reads version 0 as version 1, so ``v1`` with one
    bit flipped (``v0``) opens there, as do ``v01`` and ``v+1``."""
    wrapped = transit.wrap(b"k" * 32, context=b"c")
    body = wrapped.removeprefix(b"vault:v1:")
    client = hvac.Client(url=vault_server[0], token=TOKEN)
    for alias in (b"vault:v0:", b"vault:v01:", b"vault:v+1:"):
        answer = client.secrets.transit.decrypt_data(
            name="shredstore", ciphertext=(alias + body).decode(),
            associated_data=base64.b64encode(b"c").decode())
        assert base64.b64decode(answer["data"]["plaintext"]) == b"k" * 32  # as Vault does
        with pytest.raises(TamperedError, match="altered"):
            transit.unwrap(alias + body, context=b"c")
    for altered in (b"", b"\xff\xfe", b"not-a-ciphertext", wrapped + b"\n", wrapped + b"=",
                    b"vault:v1:" + body.replace(b"+", b"-").replace(b"/", b"_") + b"-",
                    b"vault:v1:" + body[:-1]):
        with pytest.raises(TamperedError):
            transit.unwrap(altered, context=b"c")
    assert transit.calls == 1  # the wrap


def test_a_vault_that_ignores_associated_data_is_refused(
        vault_server: tuple[str, StandInVault], transit: VaultTransit) -> None:
    """Vault before 1.13 ignores associated_data and says so in a warning: the context would
    not be bound, so wrap refuses rather than return a key bound to nothing."""
    vault_server[1].ignores_associated_data = True
    with pytest.raises(VaultConfigurationError, match=r"1\.13"):
        transit.wrap(b"k" * 32, context=b"c")


def test_a_kms_error_is_never_read_as_redacted(
        vault_server: tuple[str, StandInVault], transit: VaultTransit, tmp_path: Path) -> None:
    """A reader that shows erased subjects as redacted gets Vault's error, not None."""
    url = f"sqlite:///{tmp_path / 'vault.db'}"
    with KeyVault(url, master_key=transit) as keys:
        sealed = keys.seal("subject-1", b"value")
    vault_server[1].fail_with = (429, ["rate limit quota exceeded"])
    again = VaultTransit(vault_server[0], "shredstore", token=TOKEN)
    with KeyVault(url, master_key=again) as keys, keys.keyring() as ring, \
            pytest.raises(KmsThrottled):
        ring.open_unless_erased("subject-1", sealed)


@pytest.mark.parametrize(("arguments", "match"), [
    ({"url": "", "key_name": "k", "token": TOKEN}, "url"),
    ({"url": "http://v", "key_name": "", "token": TOKEN}, "key_name"),
    ({"url": "http://v", "key_name": "a/b", "token": TOKEN}, "no '/'"),
    ({"url": "http://v", "key_name": "k", "token": TOKEN, "mount": "/"}, "mount"),
    ({"url": "http://v", "key_name": "k"}, "token"),
])
def test_bad_configuration_is_refused(arguments: dict[str, Any], match: str) -> None:
    """What cannot work is a VaultConfigurationError when the provider is made."""
    with pytest.raises(VaultConfigurationError, match=match):
        VaultTransit(**arguments)


def test_without_hvac_the_error_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(__import__("sys").modules, "hvac", None)
    with pytest.raises(VaultConfigurationError, match=r"needs hvac: pip install"):
        VaultTransit("http://v", "k", token=TOKEN)
