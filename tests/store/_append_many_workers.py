"""Child processes for tests/store/test_append_many.py: transfers racing each other.

``python -m tests.store._append_many_workers URL WRITER COUNT`` prints ``{"ready": true}``,
waits for ``go`` on stdin, then makes COUNT transfers, each one `append_many` of a `Moved`
event to each of the streams ``left`` and ``right`` with the versions it read just before;
on `WrongExpectedVersion` it reads again and retries. After each transfer commits it prints
``{"transfer": ID, "positions": [...]}``; at the end ``{"done": true, "conflicts": N}``.
"""

from __future__ import annotations

import json
import sys

from shredstore import EventStore, WrongExpectedVersion
from shredstore.events import Event

STREAMS = ("left", "right")


class Moved(Event, type_name="test.append_many.Moved"):
    """One half of a transfer: which transfer, and by whom."""

    transfer: str
    writer: str


def _emit(message: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def main(url: str, writer: str, count: int) -> int:
    conflicts = 0
    with EventStore(url) as store:
        _emit({"ready": True})
        if sys.stdin.readline().strip() != "go":
            return 1
        for n in range(count):
            transfer = f"{writer}-{n}"
            while True:
                versions = {stream: store.stream_version(stream) for stream in STREAMS}
                try:
                    results = store.append_many({
                        stream: ([Moved(transfer=transfer, writer=writer)], versions[stream])
                        for stream in STREAMS})
                except WrongExpectedVersion:
                    conflicts += 1
                    continue
                break
            _emit({"transfer": transfer,
                   "positions": [p for result in results.values() for p in result.positions]})
    _emit({"done": True, "conflicts": conflicts})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
