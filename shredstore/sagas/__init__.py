"""Sagas across services: process managers whose state is kept as events of their own stream,
run over the log with each event handled once (see `shredstore.sagas.process`)."""

from shredstore.sagas.orchestration import Orchestration, Retry, Stage, Start
from shredstore.sagas.process import (
    Deadline,
    Saga,
    SagaStatus,
    SagaStep,
    Step,
    handles,
    on_deadline,
)
from shredstore.sagas.runner import SagaRunner, SagaView

__all__ = ["Deadline", "Orchestration", "Retry", "Saga", "SagaRunner", "SagaStatus",
           "SagaStep", "SagaView", "Stage", "Start", "Step", "handles", "on_deadline"]
