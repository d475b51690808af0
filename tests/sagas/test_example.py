"""examples/order_saga.py: three services in separate processes, one orchestrated saga across
them (a compensation, a deadline that gives up, a choreographed notification), on each
backend."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "order_saga.py"


def test_the_order_saga_example_runs_on_each_backend(any_url: str) -> None:
    done = subprocess.run([sys.executable, str(EXAMPLE), "--url", any_url],
                          capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "order 1: completed" in out
    assert "order 2: compensated (stage 'charge' failed" in out  # a failing payment
    assert ("commands sent: ReserveParcel, ChargeCard, ChargeCard, ReleaseParcel"
            in out)  # ... retried, then the reservation undone
    assert "order 3: compensated (stage 'ship' failed" in out
    assert ("commands sent: ReserveParcel, ChargeCard, ShipOrder, RefundCard, ReleaseParcel"
            in out)  # compensations in reverse order
    assert "order 4: compensated (stage 'charge' failed" in out  # the deadline gave up
    assert "mail for order 3: we could not ship your order: your payment was refunded" in out
    assert "holds her e-mail as REDACTED" in out
    assert "every order ended as expected" in out
    assert "@example.org" not in out
