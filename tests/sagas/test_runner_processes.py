"""Saga runners as real processes, killed with SIGKILL at random moments and restarted, two
at a time: every saga takes each of its steps exactly once (no step lost, none twice), and
every command and receipt it emits is in the log once."""

from __future__ import annotations

import random
import signal
import time
from collections import Counter

from keyvault import MasterKey
from shredstore import EventStore
from shredstore.sagas import SagaRunner
from tests.processes import Child
from tests.sagas.test_process import Checkout, OrderPlaced, PaymentReceived

ORDERS = 60
TIMEOUT = 120.0


def completed(url: str, master: MasterKey) -> int:
    with EventStore(url, master_key=master) as store:
        return sum(1 for n in range(ORDERS)
                   if (last := next(store.read_stream(Checkout.stream_of(str(n)),
                                                      backwards=True, limit=1), None))
                   is not None and last.event.status == "completed")


def test_killed_and_competing_runners_take_every_step_exactly_once(any_url: str) -> None:
    master = MasterKey.generate()
    with EventStore(any_url, master_key=master) as store:
        SagaRunner(store, [Checkout])  # the tables, before the children race to make them
        for n in range(ORDERS):
            store.append(f"order-{n}", [OrderPlaced(order_id=str(n), customer_id=f"c-{n}",
                                                    email=f"u{n}@example.org", amount=n)])
            store.append(f"payment-{n}", [PaymentReceived(order_id=str(n))])
    rng = random.Random(17)  # noqa: S311 - when to kill, not a secret
    deadline = time.monotonic() + TIMEOUT
    runners: list[Child] = []
    progress: list[int] = []  # sagas completed at each kill
    try:
        while True:
            assert time.monotonic() < deadline, f"not every saga completed in {TIMEOUT} s"
            started = [Child("tests.sagas._workers", any_url, f"r{(len(progress) + n) % 3}",
                             master.to_base64()) for n in range(2 - len(runners))]
            for child in started:  # two at a time, competing, started together
                assert child.message(deadline) == {"ready": True}, child.describe()
            for child in started:
                child.send("go")
            runners += started
            # The first kill early: two runners can take all the sagas' steps in less than
            # 0.14 s here, and a first kill after that would test no kill at all.
            time.sleep(rng.uniform(0.005, 0.03) if not progress else rng.uniform(0.02, 0.25))
            victim = runners.pop(rng.randrange(len(runners)))
            victim.kill()  # SIGKILL, wherever it is
            progress.append(completed(any_url, master))
            if progress[-1] == ORDERS:
                break
    finally:
        for child in runners:
            child.kill()
    assert progress[0] < ORDERS, "the first kill came after the work was done"
    with EventStore(any_url, master_key=master) as store:
        records = list(store.read_all())
    steps = Counter(r.stream_id for r in records if r.stream_id.startswith("saga-"))
    assert steps == {Checkout.stream_of(str(n)): 2 for n in range(ORDERS)}
    handled = Counter((r.stream_id, r.event.handled_event_id) for r in records
                      if r.stream_id.startswith("saga-"))
    assert set(handled.values()) == {1}
    requested = Counter(r.stream_id for r in records
                        if r.event_type == "test.sagas.PaymentRequested")
    receipts = Counter(r.stream_id for r in records if r.event_type == "test.sagas.ReceiptSent")
    assert requested == {f"payment-{n}": 1 for n in range(ORDERS)}
    assert receipts == {f"mail-{n}": 1 for n in range(ORDERS)}


def test_sigterm_stops_a_runner_after_the_step_in_hand(any_url: str) -> None:
    """A runner process run with handle_signals ends on SIGTERM with exit 0, leaving whole
    steps; a new one finishes the rest."""
    master = MasterKey.generate()
    with EventStore(any_url, master_key=master) as store:
        SagaRunner(store, [Checkout])
        for n in range(ORDERS):
            store.append(f"order-{n}", [OrderPlaced(order_id=str(n), customer_id=f"c-{n}",
                                                    email=f"u{n}@example.org", amount=n)])
    deadline = time.monotonic() + TIMEOUT
    child = Child("tests.sagas._workers", any_url, "t", master.to_base64())
    try:
        assert child.message(deadline) == {"ready": True}, child.describe()
        child.send("go")
        time.sleep(0.2)
        child.proc.send_signal(signal.SIGTERM)
        child.wait_exit(deadline)  # exit 0: it stopped, it was not killed
    finally:
        child.kill()
    with EventStore(any_url, master_key=master) as store:
        SagaRunner(store, [Checkout], name="t").catch_up()
        steps = Counter(r.stream_id for r in store.read_all() if r.stream_id.startswith("saga-"))
    assert steps == {Checkout.stream_of(str(n)): 1 for n in range(ORDERS)}
