"""Broker fixtures: RabbitMQ and NATS JetStream servers named by the environment.

Broker tests read SHREDSTORE_TEST_AMQP_URL and SHREDSTORE_TEST_NATS_URL. Without one they skip
with a reason; with SHREDSTORE_REQUIRE_BROKERS=1 (set by .ci/run) a missing or unreachable
server fails them instead. Each test works in exchanges, queues and streams of its own (named
by `broker_name`), deleted at the end.
"""

from __future__ import annotations

import fcntl
import os
import socket
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

AMQP_ENV = "SHREDSTORE_TEST_AMQP_URL"
NATS_ENV = "SHREDSTORE_TEST_NATS_URL"
REQUIRE_ENV = "SHREDSTORE_REQUIRE_BROKERS"


def _broker_url(env: str, default_port: int) -> str:
    url = os.environ.get(env)
    required = os.environ.get(REQUIRE_ENV, "") not in ("", "0", "false", "no")
    if not url:
        if required:
            pytest.fail(f"{env} is not set, and {REQUIRE_ENV}=1 forbids skipping", pytrace=False)
        pytest.skip(f"{env} is not set")
    parts = urlsplit(url)
    try:
        socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port),
                                 timeout=3).close()
    except OSError as error:
        reason = f"the broker at {parts.hostname}:{parts.port} is unreachable: {error}"
        if required:
            pytest.fail(f"{reason}, and {REQUIRE_ENV}=1 forbids skipping", pytrace=False)
        pytest.skip(reason)
    return url


BROKER_LOCK = Path(tempfile.gettempdir()) / "shredstore-test-brokers.lock"
"""Taken shared by every test here, and exclusive by a test that stops and starts the
brokers (marker ``restarts_brokers``): tests running at once (pytest-xdist's workers, another
run on the machine) never see a broker go down under them."""


@pytest.fixture(autouse=True)
def _brokers_stay_up(request: pytest.FixtureRequest) -> Iterator[None]:
    exclusive = request.node.get_closest_marker("restarts_brokers") is not None
    with BROKER_LOCK.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield


@pytest.fixture
def amqp_url() -> str:
    """The RabbitMQ server's URL (``amqp://guest:guest@127.0.0.1:5672/``)."""
    return _broker_url(AMQP_ENV, 5672)


@pytest.fixture
def nats_url() -> str:
    """The NATS server's URL (``nats://127.0.0.1:4222``), JetStream enabled."""
    return _broker_url(NATS_ENV, 4222)


@pytest.fixture
def broker_name() -> str:
    """A name of this test's own for exchanges, queues, streams and subject prefixes."""
    return f"t{uuid.uuid4().hex[:12]}"


def free_port() -> int:
    """A local TCP port nothing listens on (a broker that is down)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def wait_for_port(port: int, seconds: float = 90) -> None:
    """Wait until something accepts connections on the local `port` (a restarted broker)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
