"""The `shredstore` command line.

Exit codes: 0 done; 1 the command ran and found a problem (verify found tampering, an erasure
failed or has no receipt, a request file had bad lines, a receipt does not verify); 2 a usage
or configuration error (one line on stderr, never a traceback); 130 or 143: `erase` stopped by
SIGINT or SIGTERM between two subjects, saying how to resume. Personal data is never printed:
the commands work on subject ids, counts, field names and fingerprints.

Every command is a `_Command` under a `_Group`: before a command runs, its arguments, options
and environment values are checked to be valid UTF-8 text (a non-UTF-8 byte arrives from the
operating system as a lone surrogate, which no database, file or terminal can take), and
whatever `ShredstoreError`, `KeyVaultError`, `OSError` or `UnicodeError` escapes a command
becomes one line on stderr and its exit code: both in one place, for every command.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn, TextIO

import click
from rich.console import Console
from rich.progress import MofNCompleteColumn, Progress, track

import keyvault
from keyvault import MasterKey
from keyvault.engine import CHECKPOINT_WAIT_SECONDS
from shredstore import erasure, scrubbing
from shredstore.audit.export import write_export
from shredstore.audit.reader import Scope
from shredstore.audit.report import FORMATS, write_report
from shredstore.demo import run_demo
from shredstore.errors import (
    ConfigurationError,
    ReadOnlyStoreError,
    ShredstoreError,
    StoreUnavailable,
)
from shredstore.requests import ErasureRequest, read_requests
from shredstore.residue import ResidueReport
from shredstore.storage.chain import LogHead
from shredstore.store import DEFAULT_URL, EventStore

__all__ = ["main"]

EXIT_PROBLEM = 1
EXIT_USAGE = 2


@dataclass(frozen=True, slots=True)
class Settings:
    """Where the store is and how to open it, from the global options and the environment."""

    url: str
    vault_url: str | None
    master_key_file: Path | None

    def master_key(self, *, required: bool) -> MasterKey | None:
        if self.master_key_file is not None:
            return MasterKey.from_file(self.master_key_file)
        text = os.environ.get("SHREDSTORE_MASTER_KEY")
        if text:
            return MasterKey.from_base64(text)
        if required:
            raise ConfigurationError(
                "this command needs the master key: pass --master-key-file, or set "
                "SHREDSTORE_MASTER_KEY_FILE or SHREDSTORE_MASTER_KEY")
        return None

    @contextmanager
    def store(self, *, needs_key: bool = False, create: bool = False,
              read_only: bool | None = False) -> Iterator[EventStore]:
        """The store, opened read-only for commands that only read (they then work on an
        auditor's copy on a read-only mount); ``read_only=None``: writable where the database
        allows it, else read-only (a revealing read then refuses, as it cannot be recorded)."""
        key = self.master_key(required=needs_key)
        try:
            opened = EventStore(self.url, master_key=key, vault_url=self.vault_url,
                                create=create, read_only=bool(read_only))
        except ReadOnlyStoreError:
            if read_only is not None:
                raise
            opened = EventStore(self.url, master_key=key, vault_url=self.vault_url,
                                read_only=True)
        with opened as store:
            if store.read_only_note:
                click.echo(f"note: {store.read_only_note}", err=True)
            yield store


class _Command(click.Command):
    """A command that refuses text that is not valid UTF-8 before it runs."""

    def invoke(self, ctx: click.Context) -> Any:
        _refuse_bad_text(ctx)
        with _errors():
            return super().invoke(ctx)


class _Group(click.Group):
    """A command group whose commands and subgroups check their text and turn errors into
    one line and an exit code (see the module's docstring)."""

    command_class = _Command
    group_class = type  # subgroups are _Group too

    def invoke(self, ctx: click.Context) -> Any:
        _refuse_bad_text(ctx)
        with _errors():
            return super().invoke(ctx)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--url", envvar="SHREDSTORE_URL", default=DEFAULT_URL, show_default=True,
              help="Database URL of the event store (or SHREDSTORE_URL).")
@click.option("--vault-url", envvar="SHREDSTORE_VAULT_URL",
              help="Database URL of the key vault, if not the event store's (or "
                   "SHREDSTORE_VAULT_URL).")
@click.option("--master-key-file", envvar="SHREDSTORE_MASTER_KEY_FILE",
              type=click.Path(dir_okay=False, path_type=Path),
              help="File holding the base64 master key, mode 600 (or SHREDSTORE_MASTER_KEY_FILE;"
                   " or the key itself in SHREDSTORE_MASTER_KEY).")
@click.pass_context
def cli(ctx: click.Context, url: str, vault_url: str | None, master_key_file: Path | None
        ) -> None:
    """An event store that honours the right to be forgotten."""
    ctx.obj = Settings(url, vault_url, master_key_file)


@cli.command()
@click.option("--dir", "folder", type=click.Path(file_okay=False, path_type=Path),
              help="An empty folder for the demo's files (default: a new temporary folder).")
@click.option("--reveal", is_flag=True,
              help="Show the demo's (invented) personal values instead of masking them.")
def demo(folder: Path | None, reveal: bool) -> None:
    """Crypto-shredding in a minute: append, replay, erase a customer, replay, verify."""
    with _errors():
        ok = run_demo(folder, Console(highlight=False), reveal=reveal)
    if not ok:
        sys.exit(EXIT_PROBLEM)


@cli.command()
@click.pass_obj
def init(settings: Settings) -> None:
    """Create the tables and triggers if missing (idempotent); restore dropped triggers."""
    with _errors(), settings.store(create=True) as store:
        restored = store.restore_protection()
    for name in restored:
        click.echo(f"restored the missing immutability trigger {name}")
    click.echo("event store ready")


@cli.command()
@click.option("--expect-head", metavar="POSITION:HASH",
              help="An anchored log head kept from earlier; the log must still hold it.")
@click.pass_obj
def verify(settings: Settings, expect_head: str | None) -> None:
    """Check the hash chain, the immutability triggers, and that no erased key is back."""
    with _errors():
        anchor = _parse_head(expect_head)
        with settings.store(read_only=True) as store:
            report = store.verify(expected_head=anchor)
    for finding in report.findings:
        click.echo(str(finding))
    click.echo(f"{report.events_checked} events checked, head {report.head}: "
               + ("intact" if report.ok else f"{len(report.findings)} problem(s)"))
    if report.unauthenticated is None:
        click.echo("row authenticators not checked: give the master key to check them")
    elif report.unauthenticated:
        click.echo(f"{report.unauthenticated} row(s) without an authenticator (appended "
                   "without the master key, e.g. by a key-less erase): only an anchored head "
                   "vouches for them")
    if not report.ok:
        sys.exit(EXIT_PROBLEM)


@cli.command()
@click.argument("subject")
@click.pass_obj
def status(settings: Settings, subject: str) -> None:
    """What the vault and the log hold of SUBJECT; exit 1 if the store knows nothing of it, or
    if the vault disagrees with the erasure ledger (a vault restored from a backup)."""
    with _errors(), settings.store(read_only=True) as store:
        state = store.subject_status(subject)  # the erasure ledger outranks the vault
        held = store.vault.status(subject)
        recorded = erasure.ledger_entry(store, subject) is not None
        footprint = store.subject_footprint(subject)
    click.echo(f"{subject}: {state.state}")
    if state.state == "erased" and state.erased_at is not None:
        click.echo(f"  erased at {state.erased_at.isoformat()}"
                   + (f", request {state.request_id}" if state.request_id else ""))
    if state.key_fingerprint:
        click.echo(f"  key fingerprint {state.key_fingerprint}")
    click.echo(f"  {footprint.events} event(s) in {len(footprint.streams)} stream(s) hold its "
               "personal data")
    if state.state == "unknown" and footprint.mentions == 0:
        _fail(EXIT_PROBLEM, "unknown subject: no key, no erasure record, no events")
    if state.state == "erased" and held.state != "erased":
        _fail(EXIT_PROBLEM, "the erasure ledger records the subject as erased, but the vault "
              + ("holds its key again (restored from a backup?)" if held.state == "active"
                 else "has no tombstone for it (restored from a backup? a deleted row?)")
              + ": run `shredstore reconcile`")
    if held.state == "erased" and not recorded:
        _fail(EXIT_PROBLEM, "the vault erased the subject, but the erasure ledger does not "
              "record it (an interrupted erasure?): run `shredstore reconcile`")


_receipts_option = click.option(
    "--receipts", "receipt_dir", envvar="SHREDSTORE_RECEIPTS_DIR",
    type=click.Path(file_okay=False, path_type=Path), default=Path("erasure-receipts"),
    show_default=True, help="Folder the receipts are written to.")
_signing_key_option = click.option(
    "--signing-key-file", envvar="SHREDSTORE_SIGNING_KEY_FILE",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Ed25519 private key (PEM) to sign receipts with.")


@cli.command()
@click.argument("subjects", nargs=-1)
@click.option("--reason", help="Why (e.g. 'GDPR Art. 17'); stored: no personal data.")
@click.option("--request-id", help="The erasure request's id; stored: no personal data.")
@click.option("--from-file", "request_file", type=click.Path(dir_okay=False, path_type=Path),
              help="A batch of requests: CSV (subject,request_id,reason) or JSON lines.")
@click.option("--start-line", type=click.IntRange(min=1),
              help="Skip the file's requests before this line (to resume a stopped batch).")
@click.option("--dry-run", is_flag=True, help="Show what would be erased; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per result.")
@_receipts_option
@_signing_key_option
@click.option("--allow-unknown", is_flag=True,
              help="Erase subjects the store knows nothing of (records a tombstone).")
@click.option("--verify-residue", is_flag=True,
              help="Fingerprint the subject's values first, wait for the projections to apply "
                   "the erasure, then scan their tables for the values (needs the master key).")
@click.option("--read-model-url", envvar="SHREDSTORE_READ_MODEL_URL",
              help="The read models' database for --verify-residue (default: --url).")
@click.option("--residue-timeout", type=click.FloatRange(min=0), default=30.0,
              show_default=True, help="Seconds to wait for the projections to catch up.")
@click.pass_obj
def erase(settings: Settings, *, subjects: tuple[str, ...], reason: str | None,
          request_id: str | None, request_file: Path | None, start_line: int | None,
          dry_run: bool, as_json: bool, receipt_dir: Path, signing_key_file: Path | None,
          allow_unknown: bool, verify_residue: bool, read_model_url: str | None,
          residue_timeout: float) -> None:
    """Erase SUBJECT...: destroy their keys, record it in the log, write receipts.
    Exit 1 if an erasure failed, a receipt could not be written, or --verify-residue found
    the subject in a read model.

    SIGINT (Ctrl-C) or SIGTERM stops a batch between two subjects, never inside one: the
    subject in hand is finished (its key destroyed and recorded together), the run says how
    far it got and how to resume, and exits 130 (SIGINT) or 143 (SIGTERM).
    """
    with _errors():
        requests = [ErasureRequest(0, subject, request_id, reason) for subject in subjects]
        bad: list[str] = []
        if start_line is not None and request_file is None:
            raise click.UsageError("--start-line needs --from-file")
        if request_file is not None:
            parsed, bad = read_requests(request_file)
            requests += [r for r in parsed if start_line is None or r.line >= start_line]
        if not requests and not bad:
            raise click.UsageError("name at least one SUBJECT, or --from-file")
        signing_key = (erasure.load_signing_key(signing_key_file)
                       if signing_key_file is not None and not dry_run else None)
        if not dry_run:
            erasure.prepare_receipt_folder(receipt_dir)  # before any key is destroyed
        for problem in bad:
            _emit(as_json, {"result": "invalid", "problem": problem}, f"skipped: {problem}")
        batch = _Batch()
        residue = _Residue(read_model_url, residue_timeout) if verify_residue else None
        with settings.store(needs_key=verify_residue and not dry_run) as store, \
                _signals_deferred() as stop:
            for request in _progress(requests, "erasing" if not dry_run else "checking"):
                if stop.signal is not None:
                    break
                batch.add(request, _erase_one(
                    store, request, dry_run=dry_run, as_json=as_json, receipt_dir=receipt_dir,
                    signing_key=signing_key, allow_unknown=allow_unknown, residue=residue))
    click.echo(batch.summary(bad) or "nothing to do", err=as_json)
    if stop.signal is not None and batch.done < len(requests):
        _stopped(stop.signal, batch, requests, as_json=as_json)
    if batch.problems or bad:
        sys.exit(EXIT_PROBLEM)


@cli.command()
@click.option("--read-model-url", envvar="SHREDSTORE_READ_MODEL_URL",
              help="The read models' database, if not --url (its registered projections' "
                   "tables are scrubbed too).")
@click.option("--wait", type=click.FloatRange(min=0), default=CHECKPOINT_WAIT_SECONDS,
              show_default=True, help="Seconds to wait for a reader or a lock, each time.")
@click.option("--json", "as_json", is_flag=True, help="The report as one JSON object.")
@click.pass_obj
def scrub(settings: Settings, read_model_url: str | None, wait: float, as_json: bool) -> None:
    """Make erased keys, rotation's old key wrappings and forgotten read-model rows leave the
    live database files, as far as the backend allows (SQLite: WAL checkpoint over
    secure_delete; PostgreSQL: VACUUM FULL and CHECKPOINT). Exit 1 if it could not complete
    (a reader, a lock, a missing privilege): it says why; run it again."""
    with _errors(), settings.store() as store:
        report = scrubbing.scrub(store, read_models=read_model_url, wait=wait)
    if as_json:
        click.echo(json.dumps(report.to_dict(), ensure_ascii=False))
    else:
        for line in report.lines():
            click.echo(line)
    if not report.complete:
        sys.exit(EXIT_PROBLEM)


@cli.command()
@click.pass_obj
def reconcile(settings: Settings) -> None:
    """Erase again every key the vault holds for a subject the log's ledger says is erased."""
    with _errors(), settings.store() as store:
        report = erasure.reconcile(store)
    for subject in report.re_erased:
        click.echo(f"re-erased {subject}: the vault held its key again or had no tombstone")
    for subject in report.recorded:
        click.echo(f"recorded {subject} in the ledger: erased in the vault, missing from the log")
    click.echo(f"{report.ledger_entries} ledger entries checked: "
               + ("nothing to do" if not report.changed else
                  f"{len(report.re_erased)} re-erased, {len(report.recorded)} recorded"))


@cli.command()
@click.option("--subject", help="Only events that name this subject.")
@click.option("--stream", help="Only this stream's events.")
@click.option("--type", "event_type", help="Only events of this type.")
@click.option("--since", metavar="DATE", help="Recorded on or after (ISO date or time, UTC).")
@click.option("--until", metavar="DATE", help="Recorded on or before: the log as of DATE.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="html", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="File to write (default: standard output).")
@click.option("--reveal", is_flag=True,
              help="Show held personal values in the clear (recorded in the $access stream).")
@click.option("--purpose", help="Why the values are revealed; recorded with the access.")
@click.pass_obj
def report(settings: Settings, *, subject: str | None, stream: str | None,
           event_type: str | None, since: str | None, until: str | None, fmt: str,
           out: Path | None, reveal: bool, purpose: str | None) -> None:
    """What the log holds: summary, erasure ledger, and every event with the state of each
    personal field (held, masked unless --reveal; or erased). Exit 1 if the log was altered."""
    with _errors():
        scope = Scope(stream_id=stream, event_type=event_type, subject_id=subject,
                      since=_moment(since, "--since", end=False),
                      until=_moment(until, "--until", end=True))
        with settings.store(needs_key=reveal, read_only=None if reveal else True) as store, \
                _output(out) as target, \
                _progress_bar("reporting", minimum=10_000) as tick:
            result = write_report(store, target, scope=scope, fmt=fmt, reveal=reveal,
                                  purpose=purpose, progress=tick)
    summary = result.summary
    click.echo(f"{summary['events']} event(s), {summary['erased_subjects']} erased subject(s), "
               f"{summary['personal_fields_redacted']} redacted field(s); integrity: "
               + ("intact" if result.ok else "FAILED (see the report's findings)")
               + (f"; written to {out}" if out else ""), err=True)
    if not result.ok:
        sys.exit(EXIT_PROBLEM)


@cli.command()
@click.argument("subject")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="File to write (default: standard output).")
@click.option("--purpose", help="Why (e.g. 'Art. 15 request 2026-7'); recorded with the access.")
@click.pass_obj
def export(settings: Settings, subject: str, out: Path | None, purpose: str | None) -> None:
    """Everything the log holds about SUBJECT, as JSON, with its personal data opened
    (GDPR Art. 15/20). Recorded in the $access stream. Exit 1 for an unknown subject."""
    with _errors(), settings.store(needs_key=True, read_only=None) as store, \
            _output(out) as target:
        count = write_export(store, subject, target, purpose=purpose)
    if out is not None:
        click.echo(f"{count} event(s) of {subject} written to {out}", err=True)


@cli.group()
def receipt() -> None:
    """Erasure receipts."""


@receipt.command("verify")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--public-key", type=click.Path(dir_okay=False, path_type=Path),
              help="The signer's Ed25519 key (PEM); without it, the key the receipt names.")
def receipt_verify(file: Path, public_key: Path | None) -> None:
    """Check the signature of an erasure receipt; exit 1 if it does not hold (an edited,
    unsigned, duplicated-key or older-format receipt), 2 if FILE or the key cannot be read."""
    with _errors():
        try:
            data = file.read_bytes()
        except OSError as error:
            raise ConfigurationError(f"cannot read {file}: {error.strerror}") from None
        key = erasure.load_public_key(public_key) if public_key is not None else None
        check = erasure.verify_receipt(data, public_key=key)
    if not check.ok:
        _fail(EXIT_PROBLEM, f"{file}: {check.message}")
    click.echo(f"{file}: {check.message}"
               + ("" if public_key else "; pass --public-key to check whose key it is"))


@receipt.command("from-ledger")
@click.argument("subject")
@_receipts_option
@_signing_key_option
@click.option("--json", "as_json", is_flag=True, help="The result as one JSON object.")
@click.pass_obj
def receipt_from_ledger(settings: Settings, subject: str, receipt_dir: Path,
                        signing_key_file: Path | None, as_json: bool) -> None:
    """Write the receipt of SUBJECT's erasure from the erasure ledger: for an erasure whose
    receipt could not be written (a full or read-only folder) or was lost. Its time, request
    and key fingerprint are the ledger's; what is held and the check are made now. Exit 1 if
    the subject's data still opens, 2 if the ledger does not record the subject."""
    with _errors():
        signing_key = (erasure.load_signing_key(signing_key_file)
                       if signing_key_file is not None else None)
        with settings.store() as store:
            made = erasure.receipt_from_ledger(store, subject, signing_key=signing_key)
        path = erasure.write_receipt(receipt_dir, made)
    check = made.check.to_dict()["result"]
    _emit(as_json, {"subject": subject, "request_id": made.request_id,
                    "result": "receipt written", "receipt": str(path),
                    "erased_at": made.erased_at.isoformat(),
                    "ledger_position": made.ledger_position, "check": check,
                    "signed": made.signature is not None},
          f"{subject}: erased at {made.erased_at.isoformat()} (ledger position "
          f"{made.ledger_position}); {check}; receipt {path}")
    if not made.check.ok:
        _fail(EXIT_PROBLEM, "the subject's data can still be opened (the vault holds its key "
              "again?): run `shredstore reconcile`")


@cli.group()
def keys() -> None:
    """Master and signing keys."""


@keys.command("new-signing-key")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
def new_signing_key(out: Path) -> None:
    """Write a new Ed25519 key for signing erasure receipts (mode 600)."""
    with _errors():
        key_id = erasure.generate_signing_key(out)
    click.echo(f"wrote signing key {key_id} to {out}")


@keys.command("new-master")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
def new_master(out: Path) -> None:
    """Write a new random master key to OUT (base64, mode 600; never overwrites)."""
    with _errors():
        if out.exists():
            raise ConfigurationError(f"{out} exists: not overwriting a key")
        try:
            MasterKey.generate().to_file(out)
        except OSError as error:
            raise ConfigurationError(f"cannot write {out}: {error.strerror}") from None
    click.echo(f"wrote a new master key to {out}; keep it apart from the database")


@keys.command("rotate-master")
@click.option("--new-key-file", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The new master key (from `shredstore keys new-master`).")
@click.pass_obj
def rotate_master(settings: Settings, new_key_file: Path) -> None:
    """Re-wrap every subject's key under a new master key; events are untouched.

    Resumable: if interrupted, run it again with the same two keys. Afterwards the old key
    opens nothing: restart every process with the new one.
    """
    with _errors():
        new = MasterKey.from_file(new_key_file)
        with settings.store(needs_key=True) as store, _progress_bar("re-wrapping keys") as tick:
            result = store.vault.rotate_master_key(new, progress=tick)
    click.echo(f"master key rotated: {result.rewrapped} subject key(s) re-wrapped from "
               f"{result.old_key_id} to {result.new_key_id}; use {new_key_file} from now on")


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="shredstore")


@dataclass(frozen=True, slots=True)
class _Residue:
    """What --verify-residue asks for."""

    read_models: str | None
    timeout: float


@dataclass(frozen=True, slots=True)
class _Outcome:
    """What came of one request: its result for the summary, and whether its receipt is
    missing (the erasure itself being done)."""

    result: str
    receipt_missing: bool = False


@dataclass(slots=True)
class _Batch:
    """How far a run of `erase` got: the requests handled in full, the last of them, and
    their outcomes counted for the summary line."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(
        ("erased", "already erased", "would erase", "residue found", "failed"), 0))
    receipts_missing: int = 0
    done: int = 0
    last: ErasureRequest | None = None

    def add(self, request: ErasureRequest, outcome: _Outcome) -> None:
        self.counts[outcome.result] += 1
        self.receipts_missing += outcome.receipt_missing
        self.done += 1
        self.last = request

    @property
    def problems(self) -> bool:
        return bool(self.counts["failed"] or self.counts["residue found"]
                    or self.receipts_missing)

    def summary(self, bad: list[str]) -> str:
        parts = [f"{n} {label}" for label, n in self.counts.items() if n]
        if self.receipts_missing:
            parts.append(f"{self.receipts_missing} receipt(s) not written (the erasures are "
                         "done: `shredstore receipt from-ledger SUBJECT` writes one)")
        if bad:
            parts.append(f"{len(bad)} invalid request(s)")
        return ", ".join(parts)


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class _Stop:
    """The first SIGINT or SIGTERM that `_signals_deferred` held back, if any."""

    def __init__(self) -> None:
        self.signal: int | None = None

    def note(self, number: int, frame: FrameType | None) -> None:
        name = signal.Signals(number).name
        if self.signal is None:
            self.signal = number
            text = f"{name}: finishing the subject in hand, then stopping"
        else:
            text = (f"{name} again: still finishing the subject in hand, then stopping (kill "
                    "-9 would stop at once, but could leave its key destroyed and not yet "
                    "recorded in the ledger until `shredstore reconcile`)")
        # os.write, not click.echo: a handler may run in the middle of a write to stderr.
        os.write(2, f"shredstore: {text}\n".encode())


@contextmanager
def _signals_deferred() -> Iterator[_Stop]:
    """Hold SIGINT and SIGTERM back while the block runs: each only sets the flag that the
    block checks between two subjects, so that no erasure stops between destroying a key and
    recording it. The previous handlers are restored after. (Outside the main thread, where
    no handler can be installed, nothing changes.)"""
    stop = _Stop()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {number: signal.signal(number, stop.note) for number in _STOP_SIGNALS}
    try:
        yield stop
    finally:
        for number, handler in previous.items():
            signal.signal(number, signal.SIG_DFL if handler is None else handler)


def _stopped(number: int, batch: _Batch, requests: list[ErasureRequest], *, as_json: bool
             ) -> NoReturn:
    """Say how far a stopped batch got and how to resume it; exit 128 + the signal number."""
    name = signal.Signals(number).name
    left, last = requests[batch.done:], batch.last
    shown = "" if last is None else \
        f"; the last: {last.subject}" + (f" (line {last.line})" if last.line else "")
    resume = (f"the same command with --start-line {left[0].line}, or " if left[0].line
              else "") + "the same command again (erased subjects answer \"already erased\")"
    if len(left) <= 10 and not left[0].line:
        resume += f"; not started: {' '.join(shlex.quote(r.subject) for r in left)}"
    _emit(as_json, {"result": "stopped", "signal": name, "done": batch.done,
                    "requests": len(requests),
                    "last_done": None if last is None else {"subject": last.subject,
                                                            "line": last.line or None},
                    "resume_at_line": left[0].line or None, "not_started": len(left)},
          f"stopped by {name} after {batch.done} of {len(requests)} request(s), each done in "
          f"full{shown}; {len(left)} not started\nto resume: {resume}")
    sys.exit(128 + number)


def _erase_one(store: EventStore, request: ErasureRequest, *, dry_run: bool, as_json: bool,
               receipt_dir: Path, signing_key: Any, allow_unknown: bool,
               residue: _Residue | None = None) -> _Outcome:
    """Handle one request and print its line; what came of it, for the summary."""
    subject, where = request.subject, request.where()
    try:
        state = store.subject_status(subject).state
        refuse_unknown = state == "unknown" and not allow_unknown
        footprint = store.subject_footprint(subject) if dry_run or refuse_unknown else None
        if refuse_unknown and footprint is not None and footprint.mentions == 0:
            _emit(as_json, {"subject": subject, "request_id": request.request_id,
                            "result": "failed", "problem": "unknown subject"},
                  f"{where}{subject}: unknown subject: nothing held "
                  "(--allow-unknown records the erasure anyway)")
            return _Outcome("failed")
        if dry_run and footprint is not None:
            _emit(as_json, {"subject": subject, "result": "dry run", "state": state,
                            **footprint.to_dict()},
                  _describe_footprint(where, state, footprint))
            return _Outcome("would erase" if state != "erased" else "already erased")
        receipt = erasure.erase(
            store, subject, reason=request.reason, request_id=request.request_id,
            signing_key=signing_key, verify_residue=residue is not None,
            read_models=residue.read_models if residue is not None else None,
            residue_timeout=residue.timeout if residue is not None else 0.0)
    except (ConfigurationError, keyvault.VaultConfigurationError) as error:
        _emit(as_json, {"subject": subject, "result": "failed", "problem": str(error)},
              f"{where}{subject}: {error}")
        return _Outcome("failed")
    outcome = "already erased" if receipt.already_erased else "erased"
    if not receipt.check.ok:
        outcome = "failed"
    elif receipt.residue is not None and not receipt.residue.clean:
        outcome = "residue found"
    data = {"subject": subject, "request_id": receipt.request_id, "result": outcome,
            "events": receipt.footprint.events, "streams": len(receipt.footprint.streams),
            "check": receipt.check.to_dict()["result"], "scrubbed": receipt.scrubbed,
            **({"residue": receipt.residue.to_dict()} if receipt.residue else {})}
    details = (f"{receipt.footprint.events} event(s) in {len(receipt.footprint.streams)} "
               f"stream(s); {receipt.check.to_dict()['result']}; {_scrubbed_text(receipt)}"
               f"{_residue_text(receipt.residue)}")
    try:
        path = erasure.write_receipt(receipt_dir, receipt)
    except ConfigurationError as error:
        # The erasure is done and recorded: only its evidence is missing, and the ledger
        # holds what is needed to write it later.
        later = f"shredstore receipt from-ledger {shlex.quote(subject)}"
        _emit(as_json, {**data, "receipt": None, "receipt_problem": str(error),
                        "write_receipt_with": later},
              f"{where}{subject}: {outcome}, but no receipt ({error}); {details}the erasure "
              f"IS done and recorded in the ledger: write its receipt later with `{later}`")
        return _Outcome(outcome, receipt_missing=True)
    _emit(as_json, {**data, "receipt": str(path)},
          f"{where}{subject}: {outcome}; {details}receipt {path}")
    return _Outcome(outcome)


def _scrubbed_text(receipt: erasure.ErasureReceipt) -> str:
    """Whether the destroyed key's bytes left the database files, when this erasure knows."""
    if receipt.scrubbed is None or not receipt.held_key or receipt.already_erased:
        return ""
    if receipt.scrubbed:
        return "key bytes scrubbed; "
    return "key bytes NOT yet scrubbed from the database files: run `shredstore scrub`; "


def _residue_text(report: ResidueReport | None) -> str:
    return "" if report is None else f"{report.summary()}; "


def _describe_footprint(where: str, state: str, footprint: erasure.Footprint) -> str:
    lines = [f"{where}{footprint.subject_id}: {state}; would make {footprint.events} event(s) "
             f"in {len(footprint.streams)} stream(s) and {footprint.snapshots} snapshot(s) "
             "read as redacted"]
    if footprint.event_types:
        lines.append(f"  event types: {', '.join(footprint.event_types)}")
    if footprint.personal_fields:
        lines.append(f"  personal fields: {', '.join(footprint.personal_fields)}")
    return "\n".join(lines)


def _emit(as_json: bool, data: dict[str, Any], text: str) -> None:
    click.echo(json.dumps(data, ensure_ascii=False) if as_json else text)


def _progress(items: list[ErasureRequest], label: str) -> Iterator[ErasureRequest]:
    """`items`, with a progress bar on an interactive terminal (stderr) for batches."""
    if len(items) < 2 or not sys.stderr.isatty():
        yield from items
        return
    yield from track(items, description=label, transient=True, console=Console(stderr=True))


@contextmanager
def _progress_bar(label: str, *, minimum: int = 0) -> Iterator[Callable[[int, int], None]]:
    """A `progress(done, total)` callback: a bar on an interactive stderr, else a line on
    stderr at each tenth of the way (for logs); nothing for totals under `minimum`."""
    if sys.stderr.isatty():
        with Progress(*Progress.get_default_columns(), MofNCompleteColumn(),
                      console=Console(stderr=True), transient=True) as bar:
            task = bar.add_task(label, total=None)
            yield lambda done, total: bar.update(task, completed=done, total=total)
        return
    last = -1

    def report(done: int, total: int) -> None:
        nonlocal last
        if total < minimum:
            return
        tenth = done * 10 // total if total else 10
        if tenth != last:
            last = tenth
            click.echo(f"{label}: {done}/{total}", err=True)

    yield report


@contextmanager
def _output(path: Path | None) -> Iterator[TextIO]:
    """The file to write, or standard output.

    A file is written under a new temporary name beside it, readable by its owner only (mode
    0600 whatever the umask: reports and exports may hold personal data), and renamed over
    `path` only once complete.
    """
    if path is None:
        yield sys.stdout
        return
    partial: Path | None = None
    try:
        descriptor, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.",
                                            suffix=".partial")
        partial = Path(name)
        os.fchmod(descriptor, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as target:
            yield target
        partial.replace(path)
        partial = None
    except OSError as error:
        raise ConfigurationError(f"cannot write {path}: {error.strerror}") from None
    finally:
        if partial is not None:
            partial.unlink(missing_ok=True)


def _moment(text: str | None, option: str, *, end: bool) -> datetime | None:
    """An ISO date or time as an aware UTC time; a date alone is its first (or last) moment."""
    if text is None:
        return None
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            moment = datetime.combine(day, time.max if end else time.min)
        else:
            moment = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigurationError(f"{option}: {text!r} is not an ISO date or time") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _parse_head(text: str | None) -> LogHead | None:
    if text is None:
        return None
    try:
        return LogHead.parse(text)
    except ValueError as error:
        raise ConfigurationError(f"--expect-head: {error}") from None


@contextmanager
def _errors() -> Iterator[None]:
    """Whatever the library or the system raises becomes one line and an exit code."""
    try:
        yield
    except click.UsageError as error:  # a subcommand's bad option: one line, as the rest
        _fail(EXIT_USAGE, error.format_message())
    except (ConfigurationError, StoreUnavailable, keyvault.VaultConfigurationError,
            keyvault.WrongMasterKeyError, keyvault.VaultUnavailable, keyvault.RotationError
            ) as error:
        _fail(EXIT_USAGE, error)
    except (ShredstoreError, keyvault.KeyVaultError) as error:
        _fail(EXIT_PROBLEM, error)
    except UnicodeError:
        _fail(EXIT_USAGE, "text that is not valid UTF-8 (an argument, an environment value "
              "or a file's content)")
    except OSError as error:
        where = f": {error.filename}" if error.filename is not None else ""
        _fail(EXIT_USAGE, f"{error.strerror or type(error).__name__}{where}")


def _refuse_bad_text(ctx: click.Context) -> None:
    """Exit 2 if an argument, option or environment value of `ctx` is not valid UTF-8.

    Names the parameter, never its value.
    """
    for param in ctx.command.params:
        if param.name is not None and not _is_text(ctx.params.get(param.name)):
            name = param.opts[0] if isinstance(param, click.Option) else \
                param.human_readable_name
            _fail(EXIT_USAGE, f"{name}: not valid UTF-8 text (ids, reasons and file names "
                  "must be UTF-8)")


def _is_text(value: object) -> bool:
    if isinstance(value, tuple | list):
        return all(_is_text(item) for item in value)
    if isinstance(value, str | Path):
        try:
            str(value).encode("utf-8")
        except UnicodeEncodeError:
            return False
    return True


def _fail(code: int, error: Exception | str, echo: Callable[..., Any] = click.echo) -> NoReturn:
    text = " ".join(str(error).split())  # one line
    echo(f"shredstore: {text.encode('utf-8', 'backslashreplace').decode('utf-8')}", err=True)
    sys.exit(code)
