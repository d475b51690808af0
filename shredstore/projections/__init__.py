"""The read side: subscriptions, checkpointed projections that forget erased subjects, and
idempotent consumers.

`Subscription` reads the log from a position, in batches, then live. A `Projection` declares
handlers per event type for its read-model tables and how it forgets a subject;
`ProjectionRunner` applies each batch and its checkpoint in one transaction.
`IdempotentConsumer` applies an event's side effects once despite redelivery. See
docs/projections.md and docs/consumers.md.
"""

from shredstore.projections.consumer import IdempotentConsumer
from shredstore.projections.projection import (
    Projection,
    delete_rows,
    handles,
    personal_columns,
    redact_columns,
)
from shredstore.projections.runner import ProjectionRunner, read_models
from shredstore.projections.subscription import Batch, Subscription

__all__ = [
    "Batch",
    "IdempotentConsumer",
    "Projection",
    "ProjectionRunner",
    "Subscription",
    "delete_rows",
    "handles",
    "personal_columns",
    "read_models",
    "redact_columns",
]
