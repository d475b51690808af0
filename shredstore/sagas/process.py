"""Process managers: sagas whose state is kept as events of their own stream.

::

    class Checkout(Saga, name="checkout"):
        customer_id: SubjectId = ""
        email: Annotated[str, PersonalData(subject="customer_id")] = ""
        paid: bool = False

        @handles(OrderPlaced, correlate="order_id", start=True)
        def placed(self, event: OrderPlaced, step: Step) -> None:
            self.customer_id, self.email = event.customer_id, event.email
            step.emit(f"payment-{event.order_id}", PaymentRequested(order_id=event.order_id))

        @handles(PaymentReceived, correlate="order_id")
        def paid(self, event: PaymentReceived, step: Step) -> None:
            self.paid = True
            step.complete()

A saga instance is identified by its correlation id (``Checkout`` of order 7 lives in stream
``saga-checkout-7``). Handling an event appends one *step* event to that stream, holding the
saga's whole state after the step (its personal fields sealed per subject, as in any event),
together with whatever the handler emitted, in one transaction (`EventStore.append_many`),
with a marker of the handled event (the idempotent consumers' table): a redelivered event has
no second effect, and a crash leaves the whole step or none of it. What a handler emits
carries the handled event's correlation id and its id as the causation id.

After an erasure a saga's state reads with the subject's fields as `REDACTED`, as events do:
handlers must accept that (compare with `REDACTED`, never send it on).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, create_model

from shredstore.errors import ConfigurationError
from shredstore.events import Event
from shredstore.personal import is_complete, plan_of

__all__ = ["OPERATIONS_STREAM", "Deadline", "Saga", "SagaOperation", "SagaStatus", "SagaStep",
           "Step", "handles", "on_deadline"]

SagaStatus = Literal["running", "completed", "compensated", "failed", "cancelled"]
"""``running`` until a step ends it: ``completed``; ``compensated`` (an orchestration undid its
stages); ``failed`` (an operator may resume it); ``cancelled`` (by an operator)."""

_HANDLES = "__saga_handles__"


@dataclass(frozen=True, slots=True)
class Handler:
    """One `@handles` declaration: the method, its event class, how to correlate, whether the
    event starts a saga."""

    method: Callable[..., None]
    event_type: type[Event]
    correlate: Callable[[Event], object]
    start: bool


def handles(event_type: type[Event], *, correlate: str | Callable[[Any], object],
            start: bool = False) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Mark a saga method ``def on_x(self, event, step) -> None`` as the handler of
    `event_type`: `correlate` names the event's field that holds the saga's id (or is a
    function of the event returning it); with `start`, the event starts a saga that does
    not exist yet (else such an event is ignored)."""
    if not (isinstance(event_type, type) and issubclass(event_type, Event)):
        raise ConfigurationError("handles() takes an Event class")
    if isinstance(correlate, str):
        field = correlate
        if field not in event_type.model_fields:
            raise ConfigurationError(
                f"{event_type.__qualname__} has no field {field!r} to correlate by")

        def by_field(event: Event) -> object:
            return getattr(event, field)

        how: Callable[[Event], object] = by_field
    elif callable(correlate):
        how = correlate
    else:
        raise ConfigurationError("correlate is a field name or a function of the event")

    def mark(method: Callable[..., None]) -> Callable[..., None]:
        declared = getattr(method, _HANDLES, [])
        setattr(method, _HANDLES, [*declared, (event_type, how, start)])
        return method

    return mark


_ON_DEADLINE = "__saga_deadline__"


@dataclass(frozen=True, slots=True)
class Deadline:
    """A deadline being fired: its id, name, the saga it belongs to, and when it was due."""

    id: UUID
    name: str
    saga_id: str
    due_at: datetime


def on_deadline(name: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Mark a saga method ``def on_x(self, deadline: Deadline, step: Step) -> None`` as what
    happens when the deadline `name` (set by `Step.schedule`) comes due."""
    if not name or not isinstance(name, str):
        raise ConfigurationError("on_deadline() takes the deadline's name")

    def mark(method: Callable[..., None]) -> Callable[..., None]:
        setattr(method, _ON_DEADLINE, name)
        return method

    return mark


class Step:
    """What a handler does besides changing the saga's state: the events it emits, and
    whether the saga ends (completed, or failed with a reason an operator can read; a reason
    must hold no personal data)."""

    def __init__(self) -> None:
        self.emitted: dict[str, list[Event]] = {}
        self.status: SagaStatus = "running"
        self.reason = ""
        self.scheduled: dict[str, datetime] = {}
        self.cancelled: set[str] = set()

    def schedule(self, name: str, *, at: datetime | None = None,
                 after: timedelta | None = None) -> None:
        """A deadline `name` for this saga, due `at` a time or `after` a while from now
        (replacing one of the same name): stored with the step, fired once by a runner (the
        saga's `@on_deadline(name)` handler), dropped when the saga ends or it is cancelled."""
        if (at is None) == (after is None):
            raise ConfigurationError("schedule() takes at= or after=")
        if not name or not isinstance(name, str):
            raise ConfigurationError("a deadline needs a name")
        if at is not None and at.tzinfo is None:
            raise ConfigurationError("a deadline's time must be timezone-aware")
        self.cancelled.discard(name)
        self.scheduled[name] = at if at is not None else datetime.now(UTC) + (
            after or timedelta())

    def cancel(self, name: str) -> None:
        """Drop the deadline `name` (if it is set) with the step."""
        self.scheduled.pop(name, None)
        self.cancelled.add(name)

    def emit(self, stream_id: str, *events: Event) -> None:
        """Append `events` to `stream_id` in the step's transaction (any version)."""
        self.emitted.setdefault(stream_id, []).extend(events)

    def complete(self) -> None:
        """The saga is done: later events for it are ignored, its deadlines dropped."""
        self.status = "completed"

    def fail(self, reason: str) -> None:
        """The saga failed: later events for it are ignored (until an operator resumes it),
        its deadlines dropped."""
        self.status = "failed"
        self.reason = reason


OPERATIONS_STREAM = "sagas.operations"
"""Where operators' requests (`SagaOperation`) are appended, for the sagas' runners."""


class SagaOperation(Event, type_name="shredstore.saga.Operation"):
    """An operator's request to resume or cancel a saga (``shredstore sagas resume|cancel``),
    applied once by a runner that runs the saga (`SagaRunner.resume`, `SagaRunner.cancel`)."""

    saga: str
    saga_id: str
    action: Literal["resume", "cancel"]
    actor: str = ""


class SagaStep(Event, register=False):
    """The base of every saga's step event: the handled event, and the saga's status after
    the step. Each saga class gets a subclass that adds its ``state``. A state whose subject
    was erased keeps its personal fields as `REDACTED` (stored without a value)."""

    __keeps_redacted__: ClassVar[bool] = True

    handled_event_id: UUID
    handled_type: str
    status: SagaStatus = "running"
    reason: str = ""


class Saga(BaseModel):
    """A process manager's state and handlers (see the module).

    Class keywords: ``name`` (the saga's stable name: its streams are ``saga-{name}-{id}``,
    its step events' type ``saga:{name}``; default the class name), ``schema_version`` of the
    step events, ``register`` (default True: the step class goes into
    `shredstore.default_registry`), ``abstract`` (a base for sagas, such as `Orchestration`).
    """

    model_config = ConfigDict(validate_assignment=False, extra="forbid")

    __saga_name__: ClassVar[str] = "Saga"
    __step_class__: ClassVar[type[SagaStep]]
    __handlers__: ClassVar[dict[str, list[Handler]]] = {}
    __deadlines__: ClassVar[dict[str, Callable[..., None]]] = {}

    id: str
    """The saga's correlation id."""

    @classmethod
    def __pydantic_init_subclass__(cls, *, name: str | None = None,
                                   schema_version: int | None = None, register: bool = True,
                                   abstract: bool = False, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if abstract:  # a kind of saga (Orchestration), not a saga: no name, no steps
            return
        name = name if name is not None else cls.__name__
        if not name or not name.strip() or "-" in name:
            raise ConfigurationError(
                f"{cls.__qualname__}: a saga's name is non-blank and has no '-' (it is part "
                "of its stream ids)")
        cls.__saga_name__ = name
        handlers: dict[str, list[Handler]] = {}
        deadlines: dict[str, Callable[..., None]] = {}
        for attribute in dir(cls):
            method: Any = getattr(cls, attribute, None)
            for event_type, correlate, start in getattr(method, _HANDLES, ()):
                handlers.setdefault(event_type.__event_type__, []).append(
                    Handler(method, event_type, correlate, start))
            deadline = getattr(method, _ON_DEADLINE, None)
            if deadline is not None:
                if deadline in deadlines:
                    raise ConfigurationError(
                        f"{cls.__qualname__}: two handlers of deadline {deadline!r}")
                deadlines[deadline] = method
        cls.__handlers__ = handlers
        cls.__deadlines__ = deadlines
        if is_complete(cls):
            plan_of(cls)  # an unresolvable personal-data declaration fails at definition
        options: dict[str, Any] = {"type_name": f"saga:{name}", "register": register}
        if schema_version is not None:
            options["schema_version"] = schema_version
        cls.__step_class__ = create_model(
            f"{cls.__name__}Step", __base__=SagaStep, __cls_kwargs__=options,
            __module__=cls.__module__, state=(cls, ...))

    def __init_subclass__(cls, **kwargs: Any) -> None:
        for option in ("name", "schema_version", "register", "abstract"):
            kwargs.pop(option, None)
        super().__init_subclass__(**kwargs)

    def resumed(self, step: Step) -> None:
        """Called when an operator resumes this failed saga (`SagaRunner.resume`), before the
        saga runs again: send again what it was waiting for. The default does nothing."""

    @classmethod
    def stream_of(cls, saga_id: str) -> str:
        """The stream that holds the saga `saga_id`'s steps."""
        return f"saga-{cls.__saga_name__}-{saga_id}"
