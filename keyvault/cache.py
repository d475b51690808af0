"""A bounded cache of unwrapped data keys that never outlives an erasure.

Each vault checks the vault's latest erasure before it trusts its cache (once per call, or
once per `KeyRing`): the erasure counter together with the subject and time of the erasure it
numbers. When that moved forwards along the same history, the vault evicts the subjects erased
since; when it cannot be the same history (the counter went back, or the erasure it numbered is
not the one remembered: a vault restored from a backup), it drops the whole cache. A counter
alone can go backwards with a restore and then forwards again to the number a process last
saw, while naming other erasures. The check is one read by primary key and unique index: the
price of "after erase returns, no process opens that subject's data on its next call".
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable, Iterable
from datetime import datetime
from typing import NamedTuple

from keyvault.envelope import DataKey

__all__ = ["ErasureMark", "KeyCache"]


class ErasureMark(NamedTuple):
    """The vault's latest erasure: its number, and the subject and time it numbers."""

    number: int
    subject_id: str | None
    erased_at: datetime | None


class KeyCache:
    """Bounded map of `DataKey` by subject, plus a bounded set of subjects known to be erased."""

    def __init__(self, size: int) -> None:
        if size < 0:
            raise ValueError("cache size must be >= 0")
        self.size = size
        self.seen: ErasureMark | None = None  # unknown: the first check drops everything
        self.seen_record: Hashable | None = None  # the erasure record's mark (see vault)
        self._keys: OrderedDict[str, DataKey] = OrderedDict()
        self.find = self._keys.get
        """`get` without a Python call in between (the map is never replaced, only changed)."""
        self._erased: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, subject_id: str) -> DataKey | None:
        # Lock-free: a dict read is atomic. Eviction is therefore first-in, first-out rather
        # than least-recently-used; a hot key that is evicted costs one unwrap to bring back.
        return self._keys.get(subject_id)

    def is_erased(self, subject_id: str) -> bool:
        return subject_id in self._erased

    def put(self, key: DataKey) -> None:
        if self.size == 0:
            return
        with self._lock:
            self._keys[key.subject_id] = key
            while len(self._keys) > self.size:
                self._keys.popitem(last=False)

    def mark_erased(self, subject_ids: Iterable[str]) -> None:
        with self._lock:
            for subject_id in subject_ids:
                self._keys.pop(subject_id, None)
                if self.size:
                    self._erased[subject_id] = None
            while len(self._erased) > self.size:
                self._erased.popitem(last=False)

    def forget(self, subject_id: str) -> None:
        """Drop anything known about `subject_id` (a restored vault may differ)."""
        with self._lock:
            self._keys.pop(subject_id, None)
            self._erased.pop(subject_id, None)

    def clear(self) -> None:
        with self._lock:
            self._keys.clear()
            self._erased.clear()

    def __len__(self) -> int:
        return len(self._keys)
