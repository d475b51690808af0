"""Child processes for tests/relay/test_chaos.py: a relay that may be killed.

``python -m tests.relay._workers STORE_URL BROKER_URL OPTIONS_JSON`` reads the master key
(base64) as its first line on stdin, prints ``{"ready": true, "pid": ...}`` once its store is
open, and relays until it is killed or gets SIGTERM.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import timedelta

from keyvault import MasterKey
from shredstore import EventStore
from shredstore.relay import Relay, publisher_for


def main(url: str, broker: str, options: str) -> int:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    master = MasterKey.from_base64(sys.stdin.readline().strip())
    publisher = publisher_for(broker, **json.loads(options))
    try:
        with EventStore(url, master_key=master) as store:
            # A short lease: a relay killed while it held the lease blocks its successor
            # only briefly; short pauses between retries while the broker restarts.
            relay = Relay(store, publisher, batch_size=25, poll_interval=0.05,
                          lease=timedelta(seconds=1), backoff=(0.05, 0.5))
            sys.stdout.write(json.dumps({"ready": True, "pid": os.getpid()}) + "\n")
            sys.stdout.flush()
            relay.run(handle_signals=True)
    finally:
        publisher.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
