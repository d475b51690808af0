"""shredstore: an append-only event store that honours the right to be forgotten.

Events are appended to an immutable, hash-chained log in SQLite or PostgreSQL and read back as
pydantic models. See README.md and docs/ for the whole story.
"""

from importlib import metadata as _metadata

# The erasure workflow sits above the facade; importing it hands EventStore.erase_subject its
# implementation (see shredstore.store.use_erasure_workflow).
import shredstore.erasure  # noqa: F401
from shredstore.aggregates import Aggregate, Repository
from shredstore.aio import AsyncEventStore
from shredstore.causation import caused_by, current_cause
from shredstore.errors import (
    AggregateNotFound,
    BrokerUnavailable,
    ConfigurationError,
    DuplicateEventError,
    EventDecodingError,
    ImmutableLogError,
    InvalidEventError,
    MessageFormatError,
    MessageTooLarge,
    NotInitialisedError,
    ProjectionError,
    ReadOnlyStoreError,
    ReceiptParseError,
    RelayError,
    SagaError,
    ShredstoreError,
    StorageError,
    StoreUnavailable,
    SubjectErasedError,
    TamperedError,
    UnexpectedEventType,
    UnknownEventType,
    UnknownSubjectError,
    WrongExpectedVersion,
)
from shredstore.events import (
    Event,
    EventRegistry,
    RecordedEvent,
    UnknownEvent,
    default_registry,
    new_event_id,
    upcaster,
)
from shredstore.expected import ANY, NO_STREAM, STREAM_EXISTS, ExpectedVersion
from shredstore.personal import REDACTED, PersonalData, Redacted, SubjectId
from shredstore.storage.chain import Finding, LogHead, StoredRow, VerifyReport
from shredstore.storage.log import AppendResult
from shredstore.store import DEFAULT_URL, EventStore

try:
    __version__ = _metadata.version("shredstore")
    """The installed distribution's version (``shredstore --version`` prints it)."""
except _metadata.PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "ANY",
    "Aggregate",
    "AggregateNotFound",
    "AppendResult",
    "AsyncEventStore",
    "BrokerUnavailable",
    "ConfigurationError",
    "DEFAULT_URL",
    "DuplicateEventError",
    "Event",
    "EventDecodingError",
    "EventRegistry",
    "EventStore",
    "ExpectedVersion",
    "Finding",
    "ImmutableLogError",
    "InvalidEventError",
    "LogHead",
    "MessageFormatError",
    "MessageTooLarge",
    "NO_STREAM",
    "NotInitialisedError",
    "PersonalData",
    "ProjectionError",
    "REDACTED",
    "ReadOnlyStoreError",
    "ReceiptParseError",
    "RecordedEvent",
    "Redacted",
    "RelayError",
    "Repository",
    "STREAM_EXISTS",
    "SagaError",
    "ShredstoreError",
    "StorageError",
    "StoreUnavailable",
    "StoredRow",
    "SubjectErasedError",
    "SubjectId",
    "TamperedError",
    "UnexpectedEventType",
    "UnknownEvent",
    "UnknownEventType",
    "UnknownSubjectError",
    "VerifyReport",
    "WrongExpectedVersion",
    "__version__",
    "caused_by",
    "current_cause",
    "default_registry",
    "new_event_id",
    "upcaster",
]
