"""verify includes the database's own integrity check (SQLite: PRAGMA integrity_check).

A damaged index page does not change a single row the hash chain covers, so only the
database's own check can see it; verify must report it, and the CLI exit 1.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy.engine import make_url

from shredstore import EventStore
from shredstore.cli import cli
from shredstore.storage import schema
from tests.store.contract import notes


def damage_an_index_page(url: str) -> None:
    """Flip bytes in the cell area of the events table's first index's root page (the file
    is checkpointed: the store was closed)."""
    path = Path(str(make_url(url).database))
    with sqlite3.connect(path) as conn:
        (root,) = conn.execute(
            "SELECT rootpage FROM sqlite_master WHERE type = 'index' "
            "AND tbl_name = ? ORDER BY name LIMIT 1", (schema.EVENTS.name,)).fetchone()
        (page_size,) = conn.execute("PRAGMA page_size").fetchone()
    conn.close()
    data = bytearray(path.read_bytes())
    start = (root - 1) * page_size + page_size - 400
    data[start:start + 100] = bytes(byte ^ 0x5A for byte in data[start:start + 100])
    path.write_bytes(bytes(data))


def test_verify_reports_a_damaged_index_page(sqlite_url: str) -> None:
    """Rows and chain intact, an index page damaged: verify reports "damaged" and is not ok;
    `shredstore verify` exits 1 and says so in one line per problem."""
    with EventStore(sqlite_url) as store:
        store.append("s", notes(300))
        assert store.verify().ok
    damage_an_index_page(sqlite_url)
    with EventStore(sqlite_url) as store:
        report = store.verify()
    assert not report.ok
    assert [f.kind for f in report.findings if f.kind == "damaged"]
    assert report.events_checked == 300
    result = CliRunner().invoke(cli, ["--url", sqlite_url, "verify"])
    assert result.exit_code == 1, result.output
    assert "damaged: the database's own integrity check" in result.output
