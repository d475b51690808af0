"""`shredstore relay --to URL`: publish the log to RabbitMQ or NATS JetStream, still sealed.

Runs until SIGTERM or Ctrl-C (``--once``: publishes what is there and exits). Relays of the
same ``--name`` share a checkpoint and take turns: start several for failover. Retries are
logged on stderr; personal data never appears in anything it prints (it never opens a sealed
field).
"""

from __future__ import annotations

import logging

import click

from shredstore.cli.command import Command
from shredstore.cli.globals import apply_verbosity
from shredstore.cli.output import emit
from shredstore.cli.settings import Settings
from shredstore.relay import Relay, publisher_for
from shredstore.relay.brokers import shown_url

__all__ = ["relay"]


@click.command(cls=Command)
@click.option("--to", "to", envvar="SHREDSTORE_RELAY_TO", required=True, metavar="URL",
              help="The broker: amqp://user:password@host:5672/ (RabbitMQ) or "
                   "nats://host:4222 (NATS JetStream) (or SHREDSTORE_RELAY_TO).")
@click.option("--name", default="default", show_default=True,
              help="The relay's name: relays of one name share a checkpoint, one runs at once.")
@click.option("--exchange", default="shredstore", show_default=True,
              help="RabbitMQ: the topic exchange (routing key TYPE.STREAM).")
@click.option("--stream", "jetstream", default="SHREDSTORE", show_default=True,
              help="NATS: the JetStream stream.")
@click.option("--subject-prefix", default="shredstore", show_default=True,
              help="NATS: subjects are PREFIX.TYPE.STREAM.")
@click.option("--batch-size", type=click.IntRange(1, 10_000), default=500, show_default=True,
              help="Events per publish (and per checkpoint).")
@click.option("--once", is_flag=True, help="Publish what the log holds now, then exit.")
@click.option("--retry-for", type=click.FloatRange(0, min_open=True), default=60.0,
              show_default=True, metavar="SECONDS",
              help="With --once: give up (exit 1) once the broker was unavailable this long.")
@click.pass_obj
def relay(settings: Settings, *, to: str, name: str, exchange: str, jetstream: str,
          subject_prefix: str, batch_size: int, once: bool, retry_for: float) -> None:
    """Publish every event of the log to a broker, in commit order, at least once, personal
    fields sealed (consumers open them with the key vault: docs/relay.md)."""
    options = ({"exchange": exchange} if to.startswith("amqp")
               else {"stream": jetstream, "prefix": subject_prefix})
    publisher = publisher_for(to, **options)
    apply_verbosity(settings, default=logging.INFO)  # retries and takeovers, a line each
    try:
        with settings.store() as store:
            worker = Relay(store, publisher, name=name, batch_size=batch_size)
            start = worker.position
            if not once and not settings.quiet:
                click.echo(f"relaying to {shown_url(to)} as {name!r} from position {start}; "
                           "Ctrl-C stops", err=True)
            if once:
                worker.relay_pending(retry_for=retry_for)
            else:
                worker.run(handle_signals=True)
            result = {"relay": name, "to": shown_url(to), "published": worker.published,
                      "retries": worker.retries, "position": worker.position}
    finally:
        publisher.close()
    emit(settings.as_json, result, f"relayed {result['published']} event(s) to {result['to']}; "
                          f"checkpoint {result['position']}"
                          + (f" ({worker.retries} retries)" if worker.retries else ""))

