"""Erasure receipts: the evidence of one erasure, its Ed25519 signature, and its file.

A receipt says what the log held of the subject, the log head at erasure, the fingerprint of
the destroyed key, and a check that the subject's ciphertext no longer opens. `signed` signs
the canonical JSON of every field; `verify_receipt` checks it, and refuses what a signature
could hide (duplicate keys, older formats). `write_receipt` writes it under a name that is no
function of the subject id, 0600, never half written and never over another
(`shredstore.files.write_private`).
"""

from __future__ import annotations

import base64
import json
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Any, NoReturn

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from shredstore.errors import ConfigurationError, ReceiptParseError
from shredstore.evidence import (
    RECEIPT_FORMAT,
    ErasureReceipt,
    canonical_json,
    public_key_id,
    raw_public_key,
)
from shredstore.files import write_private

__all__ = [
    "RECEIPT_FORMAT",
    "ErasureReceipt",
    "ReceiptCheck",
    "generate_signing_key",
    "load_public_key",
    "load_signing_key",
    "parse_receipt",
    "prepare_receipt_folder",
    "verify_receipt",
    "write_receipt",
]


_OLD_FORMATS = frozenset({"shredstore.erasure-receipt/1"})


@dataclass(frozen=True, slots=True)
class ReceiptCheck:
    """The outcome of `verify_receipt`: `ok`, and why not."""

    ok: bool
    message: str
    key_id: str | None = None


def write_receipt(folder: Path, receipt: ErasureReceipt) -> Path:
    """Write `receipt` as JSON into `folder` (created if missing) and return its path.

    The name is ``erasure-<time>-[<request id>-]<random>.json``: no function of the subject id
    (a hash of an id is reversed by hashing candidate ids), the request id only as a short
    file-safe label. A new file is created (mode 0600) and never replaces an existing one.
    """
    prepare_receipt_folder(folder)
    stamp = receipt.issued_at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    label = _file_label(receipt.request_id)
    text = receipt.to_json().encode("utf-8")
    # Written whole under a temporary name, then linked to its final name, which fails
    # rather than replace an existing receipt (`shredstore.files.write_private`).
    for _ in range(8):
        path = folder / f"erasure-{stamp}-{label}{secrets.token_hex(4)}.json"
        try:
            write_private(path, text, replace=False)
        except FileExistsError:
            continue
        except OSError as error:
            raise ConfigurationError(
                f"cannot write a receipt in {folder}: {error.strerror}") from None
        return path
    raise ConfigurationError(f"cannot find a free receipt file name in {folder}")


def prepare_receipt_folder(folder: Path) -> None:
    """Create the receipts folder if missing; ConfigurationError if it cannot be.

    The command line calls it before erasing anything, so that a bad folder stops the run
    before a key is destroyed rather than after.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigurationError(f"cannot create {folder}: {error.strerror}") from None


_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def _file_label(request_id: str | None) -> str:
    """The request id as a short, safe part of a file name (``""`` without one)."""
    if request_id is None:
        return ""
    label = _UNSAFE.sub("_", request_id).strip("_")[:32]
    return f"{label}-" if label else ""


# Signing


def generate_signing_key(path: Path) -> str:
    """Write a new Ed25519 signing key (PKCS#8 PEM, mode 0600) to `path`; return its key id."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    try:
        write_private(path, pem, replace=False)
    except FileExistsError:
        raise ConfigurationError(f"{path} exists: not overwriting a key") from None
    except OSError as error:
        raise ConfigurationError(f"cannot write {path}: {error.strerror}") from None
    return public_key_id(raw_public_key(key.public_key()))


def load_signing_key(path: Path) -> Ed25519PrivateKey:
    """An Ed25519 private key from a PEM file; ConfigurationError (without contents) if not."""
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as error:
        raise ConfigurationError(f"cannot read the signing key {path}: {error.strerror}") from None
    except (ValueError, TypeError):
        raise ConfigurationError(
            f"{path} is not an unencrypted PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigurationError(f"{path} is not an Ed25519 key")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    """An Ed25519 public key: a PEM public key, or the PEM private key it belongs to."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ConfigurationError(f"cannot read the public key {path}: {error.strerror}") from None
    try:
        key: object = serialization.load_pem_public_key(data)
    except (ValueError, TypeError):
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError):
            raise ConfigurationError(f"{path} is not a PEM Ed25519 key") from None
    if isinstance(key, Ed25519PrivateKey):
        key = key.public_key()
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigurationError(f"{path} is not an Ed25519 key")
    return key


def parse_receipt(text: str | bytes) -> dict[str, Any]:
    """A receipt's JSON as a dict; `ReceiptParseError` for anything a signature could hide.

    Duplicate keys are refused at every level: a JSON reader keeps one of two equal keys and
    readers disagree which, so a receipt with a duplicate could show one value to a person and
    verify with another. NaN and infinities are refused too (they are not JSON).
    """
    try:
        if isinstance(text, bytes):
            text = text.decode("utf-8")  # as written; json.loads would guess UTF-16 or -32
        data = json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except UnicodeDecodeError:
        raise ReceiptParseError("not UTF-8 text") from None
    except ReceiptParseError:
        raise
    except (ValueError, RecursionError):
        raise ReceiptParseError("not JSON") from None
    if not isinstance(data, dict):
        raise ReceiptParseError("not a shredstore erasure receipt")
    return data


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    data = dict(pairs)
    if len(data) != len(pairs):
        raise ReceiptParseError("a JSON key appears twice in one object: the receipt was altered")
    return data


def _no_constant(name: str) -> NoReturn:
    raise ReceiptParseError(f"{name} is not JSON")


def verify_receipt(  # noqa: PLR0911 - one return per way a receipt can fail
    receipt: Mapping[str, Any] | str | bytes, *, public_key: Ed25519PublicKey | None = None
) -> ReceiptCheck:
    """Check a receipt's signature; against `public_key` if given (else the one it names).

    Give the file's text rather than a parsed dict where you can: only the text shows
    duplicate keys (see `parse_receipt`). The signature covers every field of the receipt and
    of its signature block but the signature value itself; a receipt of an older format
    (signed without its key id) is refused.
    """
    if isinstance(receipt, str | bytes):
        try:
            receipt = parse_receipt(receipt)
        except ReceiptParseError as error:
            return ReceiptCheck(False, str(error))
    found = receipt.get("format")
    if found in _OLD_FORMATS:
        return ReceiptCheck(False, f"signed by an older format ({found}) whose signature does "
                            "not cover its key id: not accepted; erase the subject again for "
                            "a new receipt (it answers 'already erased')")
    if found != RECEIPT_FORMAT:
        return ReceiptCheck(False, "not a shredstore erasure receipt")
    signature = receipt.get("signature")
    if signature is None:
        return ReceiptCheck(False, "the receipt is not signed")
    if not isinstance(signature, Mapping) or set(signature) != _SIGNATURE_FIELDS or not all(
            isinstance(signature[name], str) for name in _SIGNATURE_FIELDS):
        return ReceiptCheck(False, "the signature block is malformed")
    if signature["algorithm"] != "Ed25519":
        return ReceiptCheck(False, "unsupported signature algorithm (only Ed25519)")
    try:
        named = base64.b64decode(signature["public_key"], validate=True)
        value = base64.b64decode(signature["value"], validate=True)
        key = public_key or Ed25519PublicKey.from_public_bytes(named)
    except ValueError:
        return ReceiptCheck(False, "the signature block is malformed")
    key_id = public_key_id(raw_public_key(key))
    if signature["key_id"] != public_key_id(named):
        return ReceiptCheck(False, "the key id does not match the public key: the receipt was "
                            "altered", key_id)
    if public_key is not None and raw_public_key(public_key) != named:
        return ReceiptCheck(False, f"signed by key {public_key_id(named)}, not by {key_id}", key_id)
    covered = {**receipt, "signature": {name: signature[name] for name in _SIGNATURE_FIELDS
                                        if name != "value"}}
    try:
        key.verify(value, canonical_json(covered))
    except (InvalidSignature, UnicodeEncodeError, ValueError, TypeError):
        return ReceiptCheck(False, "the signature does not match: the receipt was altered",
                            key_id)
    return ReceiptCheck(True, f"signature valid (key {key_id})", key_id)


_SIGNATURE_FIELDS = frozenset({"algorithm", "public_key", "key_id", "value"})
