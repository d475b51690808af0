"""Sagas across services: process managers whose state is kept as events of their own stream,
run over the log with each event handled once (see `shredstore.sagas.process`)."""

from shredstore.sagas.process import Saga, SagaStatus, SagaStep, Step, handles
from shredstore.sagas.runner import SagaRunner, SagaView

__all__ = ["Saga", "SagaRunner", "SagaStatus", "SagaStep", "SagaView", "Step", "handles"]
