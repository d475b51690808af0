"""The exceptions shredstore raises.

Every one of them derives from `ShredstoreError`; where a builtin fits, a class inherits it
too, so ``except LookupError`` keeps working for callers that never heard of shredstore::

    ShredstoreError
    ├── ConfigurationError (ValueError)       a URL or option that cannot work
    │   └── NotInitialisedError               no event store there yet: `shredstore init`
    ├── WrongExpectedVersion                  optimistic concurrency: the stream moved on
    ├── DuplicateEventError (ValueError)      an event id already stored elsewhere
    ├── InvalidEventError (ValueError)        an event its readers could not return as written
    ├── UnknownEventType (LookupError)        no class is registered for a stored type name
    ├── UnexpectedEventType (TypeError)       a stream holds an event its read's `of=` excludes
    ├── EventDecodingError (ValueError)       a stored event does not fit its class
    ├── SubjectErasedError (LookupError)      personal data for an erased subject
    ├── TamperedError (ValueError)            stored ciphertext failed authentication
    ├── AggregateNotFound (LookupError)       no events for an aggregate id
    ├── UnknownSubjectError (LookupError)     the store holds nothing of a subject
    ├── ReceiptParseError (ValueError)        a text that is no erasure receipt to check
    ├── ProjectionError                       a read model that cannot run safely, or failed
    ├── SagaError                             a saga that cannot take its step
    └── StorageError                          the database failed or refused
        ├── StoreUnavailable                  cannot connect
        └── ImmutableLogError                 an attempt to change the append-only log

`SubjectErasedError` and `TamperedError` are also keyvault's classes of the same names, so
either package's name catches them. Redacted means exactly "the subject's key was erased";
a failed authentication is `TamperedError`, never a redaction.

Messages never contain event field values: they may hold personal data.

Database-driver errors become these in one place, `shredstore.storage.engine.translate_errors`;
keyvault's `VaultConfigurationError` becomes `ConfigurationError` through
`vault_configuration_errors`.
"""

from __future__ import annotations

from types import TracebackType
from typing import Literal

import keyvault

__all__ = [
    "AggregateNotFound",
    "BrokerUnavailable",
    "ConfigurationError",
    "DuplicateEventError",
    "EventDecodingError",
    "ImmutableLogError",
    "InvalidEventError",
    "MessageFormatError",
    "MessageTooLarge",
    "NotInitialisedError",
    "ProjectionError",
    "SagaError",
    "ReadOnlyStoreError",
    "ReceiptParseError",
    "RelayError",
    "ShredstoreError",
    "StorageError",
    "StoreUnavailable",
    "SubjectErasedError",
    "TamperedError",
    "UnexpectedEventType",
    "UnknownEventType",
    "UnknownSubjectError",
    "WrongExpectedVersion",
    "vault_configuration_errors",
]


class ShredstoreError(Exception):
    """The root of every error raised by shredstore."""


class ConfigurationError(ShredstoreError, ValueError):
    """A URL, option or declaration that cannot work; fix the configuration and retry."""


class NotInitialisedError(ConfigurationError):
    """The database has no event store (opened with ``create=False``): run `shredstore init`."""


class ReadOnlyStoreError(ConfigurationError):
    """A write to a store opened read-only (``EventStore(..., read_only=True)``), or to a
    database that refuses writes: nothing was written. A revealing read raises it too, since
    its reveal cannot be recorded in ``$access``."""


class WrongExpectedVersion(ShredstoreError):
    """The stream's version was not the one the append expected; nothing was written."""

    def __init__(self, stream_id: str, *, expected: object, actual: int | None) -> None:
        self.stream_id = stream_id
        self.expected = expected
        self.actual = actual
        shown = "no stream" if actual is None else f"version {actual}"
        super().__init__(
            f"stream {stream_id!r} is at {shown}, but the append expected {expected}; "
            "reload the stream and retry"
        )


class DuplicateEventError(ShredstoreError, ValueError):
    """An event id of the batch is already stored, and not as a retry of this same append."""


class InvalidEventError(ShredstoreError, ValueError):
    """`append` refused an event that its readers could not return as written (nested too
    deeply, text that is not valid Unicode, a value that does not survive JSON), or whose
    personal data could not be sealed (held where no subject can be found). Nothing was
    written; the message names the field, never its value."""


class UnknownEventType(ShredstoreError, LookupError):
    """No event class is registered under a stored event's type name."""


class UnexpectedEventType(ShredstoreError, TypeError):
    """`read_stream(..., of=Cls)` reached an event that is not a `Cls`: the stream holds
    something the reader did not expect. The message names the stream, the version, the
    position and the types, never the event's fields; the events before it were returned."""


class EventDecodingError(ShredstoreError, ValueError):
    """A stored event could not be turned into its class (schema drift without an upcaster)."""


class SubjectErasedError(ShredstoreError, keyvault.SubjectErasedError):
    """Personal data cannot be appended for an erased subject; nothing was written."""


class TamperedError(ShredstoreError, keyvault.TamperedError):
    """Stored ciphertext failed authentication: the log was altered. Run `verify()`."""


class AggregateNotFound(ShredstoreError, LookupError):
    """No events are stored for the aggregate id."""


class UnknownSubjectError(ShredstoreError, LookupError):
    """The store holds nothing of the subject: no key, no erasure record, no events."""


class ReceiptParseError(ShredstoreError, ValueError):
    """Why a text is not a receipt `verify_receipt` can check (says what, never the content)."""


class StorageError(ShredstoreError):
    """The database failed or refused a statement."""


class StoreUnavailable(StorageError):
    """The database cannot be reached; check the URL, the server and the credentials."""


class ImmutableLogError(StorageError):
    """Something tried to update or delete a stored event; the log is append-only."""


class ProjectionError(ShredstoreError):
    """A projection that cannot run safely (it keeps personal data and cannot forget it), or
    whose handler failed: its batch was rolled back and its checkpoint did not move."""


class SagaError(ShredstoreError):
    """A saga that cannot take a step: its stream holds something else, or other runners kept
    stepping it first."""


class RelayError(ShredstoreError):
    """The broker relay or a broker consumer cannot go on (`shredstore.relay`)."""


class BrokerUnavailable(RelayError, ConnectionError):
    """The broker cannot be reached, or did not confirm what was published in time: the relay
    retries with backoff; nothing after the first unconfirmed message counts as sent."""

    def __init__(self, message: str, *, confirmed: int = 0) -> None:
        super().__init__(message)
        self.confirmed = confirmed
        """How many messages, from the first of the batch, the broker confirmed."""


class MessageFormatError(RelayError, ValueError):
    """A broker message that is not a relayed event (says what is wrong, never the content)."""


class MessageTooLarge(RelayError):
    """An event is larger than the broker accepts (NATS: the server's ``max_payload``). Retrying
    cannot help, and skipping it would lose it: the relay stops there, having sent nothing of
    the batch; raise the broker's limit and start it again."""

    def __init__(self, message: str, *, index: int = 0, size: int = 0, limit: int = 0) -> None:
        super().__init__(message)
        self.index = index
        """The message's place in the batch given to `publish`."""
        self.size = size
        self.limit = limit


class _VaultConfigurationErrors:
    """See `vault_configuration_errors`."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> Literal[False]:
        if isinstance(error, keyvault.VaultConfigurationError):
            raise ConfigurationError(str(error)) from None
        return False


_VAULT_CONFIGURATION_ERRORS = _VaultConfigurationErrors()


def vault_configuration_errors() -> _VaultConfigurationErrors:
    """A context manager that raises keyvault's `VaultConfigurationError` in its block as
    `ConfigurationError`, with the same message (a subject id, note or master key the vault
    refused is the caller's configuration to fix, whichever package noticed)."""
    return _VAULT_CONFIGURATION_ERRORS
