"""The window of recent rows that verify keeps to explain a broken link (fixed memory)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from shredstore.storage.chain import RecentRows

# Halves of a few byte values: two adjacent slots "a b | c d" hold "b c" across their
# boundary, so misaligned matches happen often, and so do repeated hashes.
halves = st.sampled_from([bytes([n]) * 16 for n in range(3)])
digests = st.builds(bytes.__add__, halves, halves) | st.binary(max_size=40)


@given(size=st.integers(1, 5),
       added=st.lists(st.tuples(digests, st.integers(1, 10**6)), max_size=40),
       wanted=digests)
def test_a_lookup_finds_the_newest_row_with_that_hash_among_the_last_rows(
        size: int, added: list[tuple[bytes, int]], wanted: bytes) -> None:
    window = RecentRows(size)
    for digest, position in added:
        window.add(digest, position)
    kept = [(d, p) for d, p in added if len(d) == 32][-size:]
    expected = next((p for d, p in reversed(kept) if d == wanted), None)
    assert window.get(wanted) == expected


def test_the_window_slides_over_many_rows_in_fixed_memory() -> None:
    window = RecentRows(1000)
    buffers = (len(window.hashes), len(window.positions))
    for position in range(1, 10_001):
        window.add(position.to_bytes(32, "big"), position)
    assert (len(window.hashes), len(window.positions)) == buffers
    assert window.get((9_001).to_bytes(32, "big")) == 9_001
    assert window.get((9_000).to_bytes(32, "big")) is None  # slid out
