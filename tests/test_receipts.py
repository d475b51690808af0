"""Erasure receipts: file names that do not name the subject, and signatures that cover every
field, refuse duplicate JSON keys and refuse the older format; the library and
`shredstore receipt verify`, on both backends."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from keyvault import MasterKey
from shredstore import ConfigurationError, EventStore, erasure
from shredstore.cli import cli
from shredstore.erasure import (
    RECEIPT_FORMAT,
    generate_signing_key,
    load_public_key,
    load_signing_key,
    parse_receipt,
    receipts,
    verify_receipt,
    write_receipt,
)
from shredstore.evidence import canonical_json
from tests.shredding.events import CustomerRegistered

SUBJECT = "c-7781"


@pytest.fixture
def store(any_url: str) -> Iterator[EventStore]:
    with EventStore(any_url, master_key=MasterKey.generate()) as store:
        store.append("customer-1", [CustomerRegistered(
            customer_id=SUBJECT, name="Wren-Axolotl-4410", email="wren@example.org",
            credit_limit=5)])
        yield store


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "signing.pem"
    generate_signing_key(path)
    return path


@pytest.fixture
def receipt_file(store: EventStore, key_file: Path, tmp_path: Path) -> Path:
    """A receipt of a real erasure, signed and written as the command line writes it."""
    receipt = store.erase_subject(SUBJECT, request_id="REQ-118", reason="Art. 17",
                                  signing_key=load_signing_key(key_file))
    return write_receipt(tmp_path / "receipts", receipt)


def check(text: str | bytes, key_file: Path | None = None) -> erasure.ReceiptCheck:
    key = load_public_key(key_file) if key_file is not None else None
    return verify_receipt(text, public_key=key)


def verify_cli(path: Path, key_file: Path | None = None) -> Any:
    args = ["receipt", "verify", str(path)]
    if key_file is not None:
        args += ["--public-key", str(key_file)]
    return CliRunner().invoke(cli, args)


def leaves(data: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """The path of every leaf value of a JSON document."""
    if isinstance(data, dict):
        for name, value in data.items():
            yield from leaves(value, (*path, name))
    elif isinstance(data, list) and data:
        for index, value in enumerate(data):
            yield from leaves(value, (*path, index))
    else:
        yield path


def edited(value: Any) -> Any:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return value + 1
    if isinstance(value, str):
        return value[:-1] + ("A" if not value.endswith("A") else "B") if value else "x"
    return "x"


def set_at(data: Any, path: tuple[Any, ...], value: Any) -> None:
    for step in path[:-1]:
        data = data[step]
    data[path[-1]] = value


# File names


def test_a_receipt_file_name_is_no_function_of_the_subject(
    store: EventStore, tmp_path: Path
) -> None:
    """The name holds the time, the request id as a safe label and a random part: erasing the
    same subject twice gives two names, and no hash of the subject id is in either."""
    first = write_receipt(tmp_path, store.erase_subject(SUBJECT, request_id="REQ/../118 x"))
    second = write_receipt(tmp_path, store.erase_subject(SUBJECT, request_id="REQ/../118 x"))
    assert first != second
    for path in (first, second):
        assert re.fullmatch(r"erasure-\d{8}T\d{6}Z-REQ_118_x-[0-9a-f]{8}\.json", path.name)
        assert path.parent == tmp_path
        assert path.stat().st_mode & 0o777 == 0o600
        for algorithm in ("sha256", "sha1", "md5", "blake2b", "sha512"):
            digest = hashlib.new(algorithm, SUBJECT.encode()).hexdigest()
            assert not any(digest[i:i + 6] in path.name for i in range(len(digest) - 5))
        assert SUBJECT not in path.name


def test_a_receipt_without_a_request_id_and_an_unsafe_one_are_named_safely(
    store: EventStore, tmp_path: Path
) -> None:
    plain = write_receipt(tmp_path, store.erase_subject(SUBJECT))
    assert re.fullmatch(r"erasure-\d{8}T\d{6}Z-[0-9a-f]{8}\.json", plain.name)
    odd = write_receipt(tmp_path, store.erase_subject(SUBJECT, request_id="../" + "R" * 90))
    assert odd.parent == tmp_path
    assert len(odd.name) < 80


def test_a_receipt_never_overwrites_an_existing_file(
    store: EventStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Names that collide every time end in an error; the existing receipt is untouched."""
    monkeypatch.setattr(receipts.secrets, "token_hex", lambda n: "0" * 2 * n)
    receipt = store.erase_subject(SUBJECT, request_id="R-1")
    folder = tmp_path / "receipts"
    path = write_receipt(folder, receipt)
    before = path.read_bytes()
    with pytest.raises(ConfigurationError, match="free receipt file name"):
        write_receipt(folder, receipt)
    assert path.read_bytes() == before
    assert list(folder.iterdir()) == [path]


# Signatures


def test_a_signed_receipt_verifies_from_its_file(receipt_file: Path, key_file: Path) -> None:
    result = check(receipt_file.read_bytes(), key_file)
    assert result.ok, result.message
    data = json.loads(receipt_file.read_text())
    assert data["format"] == RECEIPT_FORMAT
    assert set(data["signature"]) == {"algorithm", "public_key", "key_id", "value"}
    assert check(receipt_file.read_text()).ok
    assert verify_receipt(data).ok  # a parsed dict is still accepted


@pytest.mark.parametrize(("pattern", "injected"), [
    (r'"subject": "c-7781"', '"subject": "c-9999", '),
    (r'"format": "[^"]+"', '"format": "x", '),
    (r'"events": \d+', '"events": 0, '),
    (r'"result": "no ciphertext[^"]*"', '"result": "the subject\'s data can still be opened", '),
    (r'"key_id": "[0-9a-f]+"', '"key_id": "0000000000000000", '),
], ids=["top-level", "format", "nested held", "nested check", "signature block"])
def test_a_duplicate_json_key_fails_verification(
    receipt_file: Path, key_file: Path, pattern: str, injected: str
) -> None:
    """A reader that keeps the last of two equal keys would verify the original value while a
    person or another reader sees the first: any duplicate key fails, at every level."""
    text = receipt_file.read_text()
    forged = re.sub(pattern, lambda m: injected + m.group(0), text, count=1)
    assert forged != text
    assert json.loads(forged) == json.loads(text)  # what a last-wins reader sees
    result = check(forged, key_file)
    assert not result.ok
    assert "appears twice" in result.message
    receipt_file.write_text(forged)
    answer = verify_cli(receipt_file, key_file)
    assert answer.exit_code == 1
    assert "appears twice" in answer.stderr


def test_an_edited_key_id_fails_verification(receipt_file: Path, key_file: Path) -> None:
    data = json.loads(receipt_file.read_text())
    data["signature"]["key_id"] = "0123456789abcdef"
    receipt_file.write_text(json.dumps(data))
    assert not check(receipt_file.read_text()).ok
    assert not check(receipt_file.read_text(), key_file).ok
    assert verify_cli(receipt_file).exit_code == 1
    assert verify_cli(receipt_file, key_file).exit_code == 1


def test_the_signature_covers_its_key_id_and_algorithm(store: EventStore) -> None:
    """Signed bytes include the signature block without its value: a signature made over the
    body alone (as format 1 did) does not verify."""
    key = Ed25519PrivateKey.generate()
    receipt = store.erase_subject(SUBJECT).signed(key)
    data = receipt.to_dict()
    body_only = key.sign(canonical_json(receipt.body()))
    data["signature"]["value"] = base64.b64encode(body_only).decode()
    assert not verify_receipt(json.dumps(data)).ok


def test_every_field_edited_in_turn_fails_verification(receipt_file: Path, key_file: Path
                                                        ) -> None:
    """Each leaf of the receipt, signature block included, changed alone; each field removed;
    one field added: none verifies."""
    original = json.loads(receipt_file.read_text())
    paths = list(leaves(original))
    assert ("signature", "key_id") in paths
    assert ("signature", "algorithm") in paths
    for path in paths:
        data = json.loads(receipt_file.read_text())
        value = data
        for step in path:
            value = value[step]
        set_at(data, path, edited(value))
        for key in (key_file, None):
            assert not check(json.dumps(data), key).ok, path
    for name in original:
        data = {k: v for k, v in original.items() if k != name}
        assert not check(json.dumps(data), key_file).ok, name
    assert not check(json.dumps({**original, "note": "added"}), key_file).ok


def test_a_receipt_of_the_older_format_is_refused_with_a_clear_message(
    store: EventStore, key_file: Path, tmp_path: Path
) -> None:
    """Format 1 signed the body only, so its key id could be edited unseen: refused."""
    key = load_signing_key(key_file)
    body = {**store.erase_subject(SUBJECT).body(), "format": "shredstore.erasure-receipt/1"}
    public = key.public_key().public_bytes_raw()
    old = {**body, "signature": {
        "algorithm": "Ed25519", "public_key": base64.b64encode(public).decode(),
        "key_id": hashlib.sha256(public).hexdigest()[:16],
        "value": base64.b64encode(key.sign(canonical_json(body))).decode()}}
    result = check(json.dumps(old), key_file)
    assert not result.ok
    assert "older format" in result.message
    path = tmp_path / "old.json"
    path.write_text(json.dumps(old))
    answer = verify_cli(path, key_file)
    assert answer.exit_code == 1
    assert "older format" in answer.stderr


@pytest.mark.parametrize(("content", "message"), [
    (b"{not json", "not JSON"),
    (b"\xff\xfe{}", "not UTF-8"),
    (b"[1, 2]", "not a shredstore erasure receipt"),
    (b'{"format": "shredstore.erasure-receipt/2", "x": NaN}', "NaN is not JSON"),
    (b'{"format": "shredstore.erasure-receipt/2"}', "not signed"),
    (b'{"format": "shredstore.erasure-receipt/2", "signature": {"value": "x"}}', "malformed"),
    (b'{"format": "other"}', "not a shredstore erasure receipt"),
])
def test_what_is_not_a_signed_receipt_fails_verification_with_exit_1(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "r.json"
    path.write_bytes(content)
    assert message in check(content).message
    answer = verify_cli(path)
    assert answer.exit_code == 1
    assert message in answer.stderr
    assert len(answer.stderr.splitlines()) == 1


def test_receipt_verify_exit_codes(receipt_file: Path, key_file: Path, tmp_path: Path) -> None:
    """0 valid; 1 signed by another key or edited; 2 a file or key that cannot be read."""
    valid = verify_cli(receipt_file, key_file)
    assert valid.exit_code == 0, valid.output
    assert "signature valid" in valid.stdout
    other = tmp_path / "other.pem"
    generate_signing_key(other)
    assert verify_cli(receipt_file, other).exit_code == 1
    missing = verify_cli(tmp_path / "missing.json")
    assert missing.exit_code == 2
    assert "cannot read" in missing.stderr
    no_key = verify_cli(receipt_file, tmp_path / "missing.pem")
    assert no_key.exit_code == 2


def test_parse_receipt_refuses_duplicates_at_any_depth() -> None:
    with pytest.raises(erasure.ReceiptParseError, match="twice"):
        parse_receipt('{"a": {"b": [{"c": 1, "c": 1}]}}')
    assert parse_receipt('{"a": {"b": [{"c": 1}]}}') == {"a": {"b": [{"c": 1}]}}
