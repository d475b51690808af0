"""Orchestration: a saga defined as stages, each a command to a participant and its reply,
with retries before compensating and compensations in reverse order.

::

    class Fulfilment(Orchestration, name="fulfilment"):
        amount: int = 0

        start = Start(OrderPlaced, correlate="order_id",
                      setup=lambda saga, event: setattr(saga, "amount", event.amount))
        stages = (
            Stage("payment",
                  command=lambda saga: (f"payment-{saga.id}",
                                        PaymentRequested(order_id=saga.id, amount=saga.amount)),
                  succeeded=PaymentTaken, failed=PaymentRefused, correlate="order_id",
                  compensation=lambda saga: (f"payment-{saga.id}", RefundRequested(...)),
                  compensated=Refunded,
                  retry=Retry(attempts=3, backoff=timedelta(seconds=2)),
                  timeout=timedelta(minutes=15)),
            Stage("shipping", ...),
        )

The orchestrator sends a stage's command (an event appended to the participant's stream) and
waits for its reply, correlated by the saga's id. A stage that fails (its `failed` reply, or
no reply within its `timeout`) is tried again after the `retry` policy's backoff, doubling
each time; when its attempts run out, the stages that succeeded are compensated in reverse
order, each compensation retried the same way. The saga ends ``completed`` when the last stage
succeeds, ``compensated`` when every compensation is done (its reason names the stage that
failed), and a compensation that keeps failing leaves it ``failed`` with a reason naming it:
an operator fixes the cause and resumes it (`SagaRunner.resume`), which sends that
compensation again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, ClassVar, Literal

from shredstore.errors import ConfigurationError
from shredstore.events import Event
from shredstore.sagas.process import Deadline, Handler, Saga, Step

__all__ = ["Orchestration", "Retry", "Stage", "Start"]

Command = Callable[[Any], tuple[str, Event]]
"""A function of the saga's state: the stream to send to, and the command event."""


@dataclass(frozen=True, slots=True)
class Retry:
    """How often a stage (or its compensation) is tried, and the pause before the second try
    (doubled before each further one)."""

    attempts: int = 1
    backoff: timedelta = timedelta(seconds=1)

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.backoff < timedelta(0):
            raise ConfigurationError("a retry policy needs attempts >= 1 and a backoff >= 0")

    def pause(self, attempt: int) -> timedelta:
        """The pause after failed attempt number `attempt` (1-based)."""
        return self.backoff * (1 << (attempt - 1))


@dataclass(frozen=True, slots=True)
class Start:
    """The event that starts the orchestration, how it names the saga, and what the saga
    takes from it (`setup(saga, event)`)."""

    event: type[Event]
    correlate: str | Callable[[Any], object]
    setup: Callable[[Any, Any], None] | None = None


@dataclass(frozen=True, slots=True)
class Stage:
    """One stage: its command and replies, and how to undo it (see the module)."""

    name: str
    command: Command
    succeeded: type[Event]
    failed: type[Event] | None = None
    correlate: str | Callable[[Any], object] = "order_id"
    compensation: Command | None = None
    compensated: type[Event] | None = None
    compensation_failed: type[Event] | None = None
    retry: Retry = field(default_factory=Retry)
    timeout: timedelta | None = None

    def __post_init__(self) -> None:
        if not self.name or ":" in self.name:
            raise ConfigurationError("a stage needs a name without ':'")
        if (self.compensation is None) != (self.compensated is None):
            raise ConfigurationError(
                f"stage {self.name!r}: a compensation needs its reply (compensated=), and "
                "the other way round")


Phase = Literal["forward", "compensating"]


class Orchestration(Saga, abstract=True):
    """A saga run by its `stages` (see the module). Its state adds the orchestrator's own
    fields: the current stage, the attempt, and whether it is compensating."""

    start: ClassVar[Start]
    stages: ClassVar[tuple[Stage, ...]] = ()

    stage: int = 0
    attempt: int = 1
    phase: Phase = "forward"
    failed_stage: str = ""

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if kwargs.get("abstract"):
            return
        start = getattr(cls, "start", None)
        if not isinstance(start, Start) or not cls.stages:
            raise ConfigurationError(
                f"{cls.__qualname__}: an orchestration needs start = Start(...) and stages")
        names = [stage.name for stage in cls.stages]
        if len(set(names)) != len(names):
            raise ConfigurationError(f"{cls.__qualname__}: stage names must be distinct")
        handlers: dict[str, list[Handler]] = {}

        def add(event_type: type[Event] | None, correlate: str | Callable[[Any], object],
                method: Callable[..., None], *, first: bool = False) -> None:
            if event_type is None:
                return
            how = _correlation(event_type, correlate)
            handlers.setdefault(event_type.__event_type__, []).append(
                Handler(method, event_type, how, first))

        add(start.event, start.correlate, _started, first=True)
        for stage in cls.stages:
            add(stage.succeeded, stage.correlate, _replied(stage.name, ok=True))
            add(stage.failed, stage.correlate, _replied(stage.name, ok=False))
            add(stage.compensated, stage.correlate, _undone(stage.name, ok=True))
            add(stage.compensation_failed, stage.correlate, _undone(stage.name, ok=False))
        cls.__handlers__ = handlers
        cls.__deadlines__ = {**cls.__deadlines__, _RETRY: _retry_due, _TIMEOUT: _timed_out}

    def resumed(self, step: Step) -> None:
        """An operator resumed the failed orchestration: the compensation that kept failing
        is sent again, with its attempts counted afresh."""
        if self.phase == "compensating":
            self.attempt = 1
            _send(self, step)


_RETRY = "orchestration:retry"
_TIMEOUT = "orchestration:timeout"


def _correlation(event_type: type[Event], correlate: str | Callable[[Any], object]
                 ) -> Callable[[Event], object]:
    if callable(correlate):
        return correlate
    if correlate not in event_type.model_fields:
        raise ConfigurationError(
            f"{event_type.__qualname__} has no field {correlate!r} to correlate by")
    return lambda event: getattr(event, correlate)


def _started(saga: Orchestration, event: Event, step: Step) -> None:
    setup = type(saga).start.setup
    if setup is not None:
        setup(saga, event)
    _send(saga, step)


def _current(saga: Orchestration) -> Stage:
    return type(saga).stages[saga.stage]


def _send(saga: Orchestration, step: Step) -> None:
    """Send the current stage's command (or, compensating, its compensation), and set its
    timeout if it has one."""
    stage = _current(saga)
    command = stage.command if saga.phase == "forward" else stage.compensation
    if command is None:  # pragma: no cover - stages without compensation are skipped
        raise ConfigurationError(f"stage {stage.name!r} has nothing to send")
    stream, event = command(saga)
    step.emit(stream, event)
    step.cancel(_RETRY)
    if stage.timeout is not None:
        step.schedule(_TIMEOUT, after=stage.timeout)
    else:
        step.cancel(_TIMEOUT)


def _replied(name: str, *, ok: bool) -> Callable[[Orchestration, Event, Step], None]:
    def handle(saga: Orchestration, event: Event, step: Step) -> None:
        if saga.phase != "forward" or _current(saga).name != name:
            return  # a late or stray reply: the orchestration moved on
        if ok:
            _advance(saga, step)
        else:
            _failed(saga, step)
    return handle


def _undone(name: str, *, ok: bool) -> Callable[[Orchestration, Event, Step], None]:
    def handle(saga: Orchestration, event: Event, step: Step) -> None:
        if saga.phase != "compensating" or _current(saga).name != name:
            return
        if ok:
            _compensate_next(saga, step)
        else:
            _failed(saga, step)
    return handle


def _advance(saga: Orchestration, step: Step) -> None:
    step.cancel(_TIMEOUT)
    if saga.stage + 1 == len(type(saga).stages):
        step.complete()
        return
    saga.stage += 1
    saga.attempt = 1
    _send(saga, step)


def _failed(saga: Orchestration, step: Step) -> None:
    """The current stage (or compensation) failed: retry after its backoff, or, when its
    attempts ran out, compensate (or, compensating, give up for an operator)."""
    step.cancel(_TIMEOUT)
    stage = _current(saga)
    if saga.attempt < stage.retry.attempts:
        step.schedule(_RETRY, after=stage.retry.pause(saga.attempt))
        saga.attempt += 1
        return
    if saga.phase == "compensating":
        step.fail(f"compensation of stage {stage.name!r} kept failing "
                  f"({stage.retry.attempts} attempts): fix it and resume")
        return
    saga.phase = "compensating"
    saga.failed_stage = stage.name
    _compensate_next(saga, step, start=saga.stage - 1)


def _compensate_next(saga: Orchestration, step: Step, *, start: int | None = None) -> None:
    """Compensate the next succeeded stage before `start` (default: before the current one)
    that has a compensation; when none is left, end the saga."""
    stages = type(saga).stages
    index = saga.stage - 1 if start is None else start
    while index >= 0 and stages[index].compensation is None:
        index -= 1
    if index < 0:
        step.cancel(_TIMEOUT)
        step.status = "compensated"
        step.reason = f"stage {saga.failed_stage!r} failed; every stage before it was undone"
        return
    saga.stage = index
    saga.attempt = 1
    _send(saga, step)


def _retry_due(saga: Orchestration, deadline: Deadline, step: Step) -> None:
    _send(saga, step)


def _timed_out(saga: Orchestration, deadline: Deadline, step: Step) -> None:
    _failed(saga, step)
