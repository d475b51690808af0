"""`scrub`: make the bytes of erased keys, rotation leftovers and forgotten read-model rows leave
the live database files, as far as each backend allows, and say what was done.

An erasure destroys a key and the projections forget the subject's rows, a master-key rotation
re-wraps every key: the database may still hold the old bytes (SQLite: older page versions in
the WAL and the file until a checkpoint; PostgreSQL: dead tuples in the table files until
VACUUM FULL). `scrub` runs `keyvault.scrub.scrub_tables` on the vault's tables and on the
tables of every projection registered in the read-model database (the tables the residue check
scans). What it cannot reach (WAL archives, backups, replicas) is in docs/scrubbing.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import URL, Engine

from keyvault.engine import CHECKPOINT_WAIT_SECONDS
from keyvault.errors import VaultStorageError, VaultUnavailable
from keyvault.scrub import VAULT_TABLES, ScrubResult, scrub_tables
from shredstore.errors import StorageError, StoreUnavailable
from shredstore.projections.runner import read_models as registered_read_models
from shredstore.storage.engine import create_engine, translate_errors

if TYPE_CHECKING:
    from shredstore.store import EventStore

__all__ = ["SCRUB_WAIT_SECONDS", "ScrubReport", "scrub"]

SCRUB_WAIT_SECONDS: float = CHECKPOINT_WAIT_SECONDS
"""How long `scrub` waits, by default, for a reader or a lock each time (seconds): the
default of ``shredstore scrub --wait``."""


@dataclass(frozen=True, slots=True)
class ScrubReport:
    """What `scrub` did, per database: ``(what, result)`` pairs such as ``("vault", ...)``,
    ``("read models", ...)``, or ``("vault and read models", ...)`` where they share one."""

    parts: tuple[tuple[str, ScrubResult], ...]
    notes: tuple[str, ...] = ()
    """What was not scrubbed because there was nothing to scrub (no projection registered)."""

    @property
    def complete(self) -> bool:
        """Whether every database was scrubbed as far as its backend allows."""
        return all(result.complete for _, result in self.parts)

    def lines(self) -> list[str]:
        """What the command line prints: a line per table and log, notes, then the verdict."""
        lines = [f"{what} ({result.backend}): {line}"
                 for what, result in self.parts for line in result.lines()]
        lines += list(self.notes)
        if self.complete:
            lines.append("scrub complete: the live database files hold no old copies of "
                         "erased keys or forgotten rows; WAL archives, backups and replicas "
                         "keep theirs until their retention ends (docs/scrubbing.md)")
        else:
            reasons = "; ".join(reason for _, result in self.parts for reason in result.why_not)
            lines.append(f"scrub NOT complete: {reasons}; run shredstore scrub again")
        return lines

    def to_dict(self) -> dict[str, Any]:
        return {"complete": self.complete,
                "databases": [{"what": what, **result.to_dict()} for what, result in self.parts],
                "notes": list(self.notes)}


def scrub(store: EventStore, *, read_models: str | URL | Engine | None = None,
          wait: float = SCRUB_WAIT_SECONDS) -> ScrubReport:
    """Scrub the vault's tables and the registered projections' tables in `read_models` (a URL
    or Engine; default the store's database). `wait` bounds each wait for a reader or a lock,
    in seconds. Never raises because something could not be completed: the report says what
    and why (run it again later); a database that fails raises `StorageError`
    (`StoreUnavailable` if it cannot be reached).
    """
    vault_engine = store.vault.engine
    engine = store.engine if read_models is None else create_engine(read_models)
    try:
        with translate_errors("the read-model database"):  # reading the registered projections
            return _scrub(vault_engine, engine, wait)
    except VaultUnavailable as error:
        raise StoreUnavailable(str(error)) from error
    except VaultStorageError as error:
        raise StorageError(str(error)) from error
    finally:
        if engine is not store.engine and not isinstance(read_models, Engine):
            engine.dispose()


def _scrub(vault_engine: Engine, engine: Engine, wait: float) -> ScrubReport:
    tables = sorted({table for _, (_, names) in registered_read_models(engine).items()
                     for table in names})
    notes = () if tables else (
        "read models: no projection is registered in the read-model database",)
    if engine is vault_engine:  # one database: one pass, one checkpoint
        both = scrub_tables(engine, [*VAULT_TABLES, *tables], wait=wait)
        return ScrubReport((("vault and read models" if tables else "vault", both),), notes)
    parts = [("vault", scrub_tables(vault_engine, list(VAULT_TABLES), wait=wait))]
    if tables:
        parts.append(("read models", scrub_tables(engine, tables, wait=wait)))
    return ScrubReport(tuple(parts), notes)
