"""Sagas across services: process managers whose state is kept as events of their own stream,
run over the log with each event handled once (see `shredstore.sagas.process`)."""

from shredstore.sagas.orchestration import Orchestration, Retry, Stage, Start
from shredstore.sagas.process import (
    OPERATIONS_STREAM,
    Deadline,
    Saga,
    SagaOperation,
    SagaStatus,
    SagaStep,
    Step,
    handles,
    on_deadline,
)
from shredstore.sagas.runner import SagaRunner, SagaView

__all__ = ["OPERATIONS_STREAM", "Deadline", "Orchestration", "Retry", "Saga", "SagaOperation",
           "SagaRunner", "SagaStatus", "SagaStep", "SagaView", "Stage", "Start", "Step",
           "handles", "on_deadline"]
