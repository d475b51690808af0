"""Child processes for tests/sagas/test_runner_processes.py: saga runners that may be killed.

``python -m tests.sagas._workers URL NAME`` runs a `SagaRunner` of `Checkout` (from
tests.sagas.test_process) until it is killed: it prints ``{"ready": true}`` once its store is
open, and runs once it reads ``go`` on stdin.
"""

from __future__ import annotations

import json
import sys
from datetime import timedelta

from keyvault import MasterKey
from shredstore import EventStore
from shredstore.sagas import SagaRunner
from tests.sagas.test_process import Checkout


def main(url: str, name: str, master: str) -> int:
    with EventStore(url, master_key=MasterKey.from_base64(master)) as store:
        # A short lease: a runner killed while it held its name's lease blocks a successor of
        # that name only briefly.
        runner = SagaRunner(store, [Checkout], name=name, batch_size=3, poll_interval=0.02,
                            lease=timedelta(seconds=0.5))
        sys.stdout.write(json.dumps({"ready": True}) + "\n")
        sys.stdout.flush()
        if sys.stdin.readline().strip() != "go":
            return 1
        runner.run(handle_signals=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], sys.argv[3]))
