"""examples/relay_services.py: orders and payments in separate processes, each with an event
store of its own, talking through RabbitMQ (relay out, inbox in), one orchestrated saga across
them; an erasure in one store shreds the other's copy and the message in the broker."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "relay_services.py"


def test_the_relay_services_example_runs_against_rabbitmq(amqp_url: str) -> None:
    done = subprocess.run([sys.executable, str(EXAMPLE), "--amqp", amqp_url],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "orders: running" in out
    assert "payments: running" in out
    assert "order o-1: completed" in out
    assert "order o-2: compensated (stage 'charge' failed" in out  # over 500: declined
    assert "order o-3: completed" in out
    assert ("the payments service holds a copy of each ChargeCard (o-1, o-2, o-3), the same "
            "event under the same id") in out
    assert ("the payments service's copy of ChargeCard o-1 reads the e-mail as REDACTED"
            in out)  # one vault: the copy is shredded with the original
    assert "messages from RabbitMQ: none holds an e-mail address" in out
    assert "message taken from RabbitMQ, opened now, reads the e-mail as REDACTED" in out
    assert "orders: stopped" in out
    assert "payments: stopped" in out
    assert "every order ended as expected" in out
    assert "@example.org" not in out + done.stderr
