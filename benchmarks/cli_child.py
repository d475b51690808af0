"""Run the ``shredstore`` command line in this interpreter, then report its peak memory.

``python -m benchmarks.cli_child`` reads ``{"args": [...], "result": PATH}`` on standard input,
runs the arguments exactly as the console script would (same entry point, standalone mode), and
writes ``{"exit": code, "peak_rss_kib": VmHWM, "ru_maxrss_kib": ...}`` to PATH. The command's
own standard output and error are left alone, so the parent can read them. Only the command
line and `benchmarks.common` are imported, so the peak is the command's own (interpreter,
imports, and the work), not the benchmark harness's.
"""

from __future__ import annotations

import json
import sys

from shredstore.cli import cli

from .common import peak_kib


def main() -> int:
    request = json.loads(sys.stdin.read())
    try:
        cli.main(args=request["args"], prog_name="shredstore")
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    else:
        code = 0
    sys.stdout.flush()
    sys.stderr.flush()
    peak, maxrss = peak_kib()
    with open(request["result"], "w", encoding="ascii") as result:
        result.write(json.dumps({"exit": code, "peak_rss_kib": peak, "ru_maxrss_kib": maxrss}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
