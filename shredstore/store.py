"""`EventStore`: the facade applications use to append, read and verify events."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from types import TracebackType
from typing import Self

from pydantic import JsonValue
from sqlalchemy.engine import URL, Engine

from shredstore import expected as _expected
from shredstore.errors import ConfigurationError, DuplicateEventError
from shredstore.events import Event, EventRegistry, RecordedEvent, default_registry
from shredstore.expected import ANY, ExpectedVersion
from shredstore.mapping.mapper import EventMapper, encode_metadata
from shredstore.storage.chain import Finding, LogHead, VerifyReport, verify_rows
from shredstore.storage.engine import create_engine
from shredstore.storage.log import AppendResult, EventLog

__all__ = ["DEFAULT_URL", "EventStore"]

DEFAULT_URL = "sqlite:///shredstore.db"
"""The embedded default: an SQLite file in the working directory."""


class EventStore:
    """An append-only, tamper-evident log of domain events in SQLite or PostgreSQL.

    ``EventStore("sqlite:///events.db")`` or ``EventStore("postgresql+psycopg://...")``; an
    SQLAlchemy `Engine` works too. The tables are created if missing. Use it as a context
    manager, or call `close()`.
    """

    def __init__(
        self,
        url: str | URL | Engine = DEFAULT_URL,
        *,
        registry: EventRegistry = default_registry,
    ) -> None:
        self._owns_engine = not isinstance(url, Engine)
        self._engine = create_engine(url)
        self._log = EventLog(self._engine)
        self._mapper = EventMapper(registry)
        try:
            self._log.install()
        except BaseException:
            self.close()
            raise

    def append(
        self,
        stream_id: str,
        events: Iterable[Event],
        *,
        expected_version: int | ExpectedVersion = ANY,
        metadata: Mapping[str, JsonValue] | None = None,
    ) -> AppendResult:
        """Append `events` to the end of `stream_id`, atomically.

        `expected_version` is ANY, NO_STREAM, STREAM_EXISTS, or the version of the stream's
        last event (0 for none). On a mismatch `WrongExpectedVersion` is raised and nothing is
        written. `metadata` (correlation_id, causation_id and any JSON keys) is stored with
        each event; it must not contain personal data. Appending the same event instances
        again after a commit (a retry) stores nothing and returns the first result.
        """
        _check_stream_id(stream_id)
        expected_version = _expected.validate(expected_version)
        batch = list(events)
        if len({event.event_id for event in batch}) != len(batch):
            raise DuplicateEventError("a batch holds the same event (event id) twice")
        encoded_metadata = encode_metadata(metadata)
        rows = [self._mapper.to_row(event, encoded_metadata) for event in batch]
        return self._log.append(stream_id, rows, expected_version=expected_version)

    def read_stream(
        self,
        stream_id: str,
        *,
        from_version: int | None = None,
        backwards: bool = False,
        limit: int | None = None,
    ) -> Iterator[RecordedEvent]:
        """The events of one stream by version; an unknown stream reads as empty.

        Forwards from `from_version` (default: the first), or with ``backwards=True`` down from
        it (default: the last). At most `limit` events.
        """
        _check_stream_id(stream_id)
        _check_count("from_version", from_version, minimum=1)
        _check_count("limit", limit, minimum=0)
        rows = self._log.read_stream(
            stream_id, from_version=from_version, backwards=backwards, limit=limit
        )
        return map(self._mapper.to_recorded, rows)

    def read_all(
        self,
        *,
        after: int = 0,
        limit: int | None = None,
        types: Iterable[str | type[Event]] | None = None,
    ) -> Iterator[RecordedEvent]:
        """Every event after position `after`, in global order; optionally only some types.

        A reader that remembers the last position it saw and calls again with ``after=`` that
        position never misses an event, even while other processes append.
        """
        _check_count("after", after, minimum=0)
        _check_count("limit", limit, minimum=0)
        names = None if types is None else [
            kind if isinstance(kind, str) else kind.__event_type__ for kind in types
        ]
        return map(self._mapper.to_recorded, self._log.read_all(
            after=after, limit=limit, types=names
        ))

    def stream_version(self, stream_id: str) -> int:
        """The version of the stream's last event, 0 if it has none."""
        _check_stream_id(stream_id)
        return self._log.stream_version(stream_id)

    def head(self) -> LogHead:
        """The position and chain hash of the last event: an anchor for a later `verify`."""
        return self._log.head()

    def verify(self, *, expected_head: LogHead | None = None) -> VerifyReport:
        """Walk the whole log and report, by position, every row that is not as written.

        Also reports immutability triggers that are missing, and, given an `expected_head`
        kept from earlier, a log truncated or rewritten behind that anchor.
        """
        report = verify_rows(self._log.read_all(), expected_head=expected_head)
        missing = self._log.missing_triggers()
        if not missing:
            return report
        extra = tuple(
            Finding("unprotected", None, f"the immutability trigger {name} is missing")
            for name in missing
        )
        return VerifyReport(report.events_checked, report.head, extra + report.findings)

    def restore_protection(self) -> list[str]:
        """Re-create the immutability triggers if someone dropped them; return their names.

        Opening a store never does this on its own, so that `verify` can report the loss.
        Run `verify` first: rows changed while the triggers were gone stay changed.
        """
        return self._log.restore_triggers()

    def close(self) -> None:
        """Release the database connections (an engine passed in is left to its owner)."""
        if self._owns_engine:
            self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _check_stream_id(stream_id: object) -> None:
    if not isinstance(stream_id, str) or not stream_id:
        raise ConfigurationError("a stream id is a non-empty string")


def _check_count(name: str, value: object, *, minimum: int) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigurationError(f"{name} must be an int >= {minimum}, not {value!r}")
