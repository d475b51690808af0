"""The broker relay: events leave the store for RabbitMQ or NATS JetStream, still sealed.

- `Relay` publishes every event of the log in commit order, at least once; the log is the
  outbox (a checkpoint, no second copy), one relay per name active at a time;
- `Message`, `to_message`, `read_message`: a message is the stored row, personal fields
  sealed, with routing headers;
- `open_message`, `RelayConsumer` and `Inbox`: the consumer side, through the store's decrypt
  path (an erased subject reads as redacted in every copy already sent), each event taking
  effect once (in the service's tables, or copied into its own event store);
- `Publisher`, `Subscriber`, `Delivery`, `publisher_for`, `subscriber_for`: the broker
  interface; `shredstore.relay.rabbitmq` and `shredstore.relay.nats` implement it (install
  ``shredstore[relay]``).

See docs/relay.md.
"""

from shredstore.relay.brokers import (
    Delivery,
    LoopThread,
    Publisher,
    Subscriber,
    publisher_for,
    subscriber_for,
)
from shredstore.relay.consumer import Inbox, RelayConsumer, open_message
from shredstore.relay.message import FORMAT, Message, default_route, read_message, to_message
from shredstore.relay.relay import Relay

__all__ = ["FORMAT", "Delivery", "Inbox", "LoopThread", "Message", "Publisher", "Relay",
           "RelayConsumer", "Subscriber", "default_route", "open_message", "publisher_for",
           "read_message", "subscriber_for", "to_message"]
