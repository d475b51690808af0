"""The master key: generation, encodings, key files and what it never reveals."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest

from keyvault import MasterKey, TamperedError, VaultConfigurationError


def test_generated_keys_are_256_bit_and_distinct() -> None:
    """generate() gives 32 random bytes, different each time."""
    keys = {MasterKey.generate().to_base64() for _ in range(20)}
    assert len(keys) == 20
    assert all(len(MasterKey.from_base64(k)._key) == 32 for k in keys)


def test_base64_round_trip_keeps_the_key() -> None:
    """from_base64(to_base64()) is the same key, with the same id."""
    key = MasterKey.generate()
    again = MasterKey.from_base64(key.to_base64() + "\n")
    assert again == key
    assert again.key_id == key.key_id


@pytest.mark.parametrize("text", ["not base64!", "", "AAAA", "A" * 100])
def test_malformed_or_short_base64_is_refused(text: str) -> None:
    """Text that is not base64 of exactly 32 bytes is a configuration error."""
    with pytest.raises(VaultConfigurationError, match="master key"):
        MasterKey.from_base64(text)


def test_repr_and_str_show_only_the_key_id() -> None:
    """Printing a key shows its id, never its material."""
    key = MasterKey.generate()
    for text in (repr(key), str(key), f"{key}"):
        assert key.key_id in text
        assert key.to_base64() not in text


def test_a_master_key_cannot_be_pickled() -> None:
    """Pickling, which would copy key material silently, is refused."""
    with pytest.raises(TypeError, match="not picklable"):
        pickle.dumps(MasterKey.generate())


def test_to_file_writes_an_owner_only_file_that_from_file_reads(tmp_path: Path) -> None:
    """to_file creates a 0600 file; from_file reads it back; an existing file is not overwritten."""
    key = MasterKey.generate()
    path = tmp_path / "master.key"
    key.to_file(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert MasterKey.from_file(path) == key
    with pytest.raises(FileExistsError):
        MasterKey.generate().to_file(path)


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_a_key_file_others_can_read_is_refused(tmp_path: Path, mode: int) -> None:
    """A key file accessible to group or others is refused with the chmod to run."""
    path = tmp_path / "master.key"
    MasterKey.generate().to_file(path)
    path.chmod(mode)
    with pytest.raises(VaultConfigurationError, match="chmod 600"):
        MasterKey.from_file(path)


def test_a_shared_key_file_can_be_allowed_with_a_warning(tmp_path: Path) -> None:
    """allow_shared=True reads a group-readable key file and warns."""
    path = tmp_path / "master.key"
    key = MasterKey.generate()
    key.to_file(path)
    path.chmod(0o640)
    with pytest.warns(UserWarning, match="chmod 600"):
        assert MasterKey.from_file(path, allow_shared=True) == key


def test_a_missing_key_file_is_a_configuration_error(tmp_path: Path) -> None:
    """A key file that does not exist is reported by path."""
    with pytest.raises(VaultConfigurationError, match="no master key file"):
        MasterKey.from_file(tmp_path / "absent.key")


def test_wrapping_is_bound_to_its_context() -> None:
    """A wrapped key unwraps only with its context and only with its master key."""
    key, other = MasterKey.generate(), MasterKey.generate()
    wrapped = key.wrap(b"k" * 32, context=b"subject-1")
    assert key.unwrap(wrapped, context=b"subject-1") == b"k" * 32
    with pytest.raises(TamperedError):
        key.unwrap(wrapped, context=b"subject-2")
    with pytest.raises(TamperedError):
        other.unwrap(wrapped, context=b"subject-1")
    with pytest.raises(TamperedError, match="malformed"):
        key.unwrap(b"\x09" + wrapped[1:], context=b"subject-1")
