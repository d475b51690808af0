"""The right to be forgotten: `erase` subjects (one by one or a batch file), see a subject's
`status`, `reconcile` the vault with the erasure ledger, and `scrub` what erased keys and
forgotten rows left in the database files."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from shredstore import erasure
from shredstore.cli.batch import Batch, ErasureOptions, Residue, erase_one
from shredstore.cli.command import EXIT_PROBLEM, Command, fail
from shredstore.cli.interrupts import signals_deferred, stopped
from shredstore.cli.options import receipts_option, signing_key_option, subject_ids
from shredstore.cli.output import emit, progress
from shredstore.cli.paint import verdict
from shredstore.cli.settings import Settings
from shredstore.erasure import scrubbing
from shredstore.erasure.requests import ErasureRequest, read_requests

__all__ = ["erase", "reconcile", "scrub", "status"]


@click.command(cls=Command)
@click.argument("subject", callback=subject_ids)
@click.pass_obj
def status(settings: Settings, subject: str) -> None:
    """What the vault and the log hold of SUBJECT; exit 1 if the store knows nothing of it, or
    if the vault disagrees with the erasure ledger (a vault restored from a backup)."""
    with settings.store(read_only=True) as store:
        found = erasure.plan(store, subject)
        disagreement = erasure.consistency(store, subject)
    state, footprint = found.status, found.footprint
    if settings.as_json:
        click.echo(json.dumps({
            "subject": subject, "state": state.state if found.known else "unknown",
            "erased_at": state.erased_at.isoformat() if state.erased_at else None,
            "request_id": state.request_id, "key_fingerprint": state.key_fingerprint,
            "events": footprint.events, "streams": len(footprint.streams),
            "problem": disagreement.message if disagreement is not None else None},
            ensure_ascii=False))
    else:
        click.echo(f"{subject}: {verdict(state.state)}")
        if state.state == "erased" and state.erased_at is not None:
            click.echo(f"  erased at {state.erased_at.isoformat()}"
                       + (f", request {state.request_id}" if state.request_id else ""))
        if state.key_fingerprint:
            click.echo(f"  key fingerprint {state.key_fingerprint}")
        click.echo(f"  {footprint.events} event(s) in {len(footprint.streams)} stream(s) hold "
                   "its personal data")
    if not found.known:
        fail(EXIT_PROBLEM, "unknown subject: no key, no erasure record, no events")
    if disagreement is not None:
        fail(EXIT_PROBLEM, f"{disagreement.message}: run `shredstore reconcile`")


@click.command(cls=Command)
@click.argument("subjects", nargs=-1, callback=subject_ids)
@click.option("--reason", help="Why (e.g. 'GDPR Art. 17'); stored: no personal data.")
@click.option("--request-id", help="The erasure request's id; stored: no personal data.")
@click.option("--from-file", "request_file", type=click.Path(dir_okay=False, path_type=Path),
              help="A batch of requests: CSV (subject,request_id,reason) or JSON lines.")
@click.option("--start-line", type=click.IntRange(min=1),
              help="Skip the file's requests before this line (to resume a stopped batch).")
@click.option("--dry-run", is_flag=True, help="Show what would be erased; change nothing.")
@receipts_option
@signing_key_option
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
          dry_run: bool, receipt_dir: Path, signing_key_file: Path | None,
          allow_unknown: bool, verify_residue: bool, read_model_url: str | None,
          residue_timeout: float) -> None:
    """Erase SUBJECT...: destroy their keys, record it in the log, write receipts.
    Exit 1 if an erasure failed, a receipt could not be written, or --verify-residue found
    the subject in a read model; 2 if a batch file holds no request, or none from
    --start-line on.

    SIGINT (Ctrl-C) or SIGTERM stops a batch between two subjects, never inside one: the
    subject in hand is finished (its key destroyed and recorded together), the run says how
    far it got and how to resume, and exits 130 (SIGINT) or 143 (SIGTERM).
    """
    as_json = settings.as_json
    requests = [ErasureRequest(0, subject, request_id, reason) for subject in subjects]
    bad: list[str] = []
    if start_line is not None and request_file is None:
        raise click.UsageError("--start-line needs --from-file")
    if request_file is not None:
        parsed, bad = read_requests(request_file)
        kept = [r for r in parsed if start_line is None or r.line >= start_line]
        if parsed and not kept and not bad:
            raise click.UsageError(f"--start-line {start_line}: {request_file} holds no "
                                   f"request from line {start_line} on (its last is line "
                                   f"{parsed[-1].line}): nothing to resume")
        requests += kept
    if not requests and not bad:
        raise click.UsageError("name at least one SUBJECT, or --from-file")
    options = ErasureOptions(
        dry_run=dry_run, receipt_dir=receipt_dir, allow_unknown=allow_unknown,
        signing_key=(erasure.load_signing_key(signing_key_file)
                     if signing_key_file is not None and not dry_run else None),
        residue=Residue(read_model_url, residue_timeout) if verify_residue else None)
    if not dry_run:
        erasure.prepare_receipt_folder(receipt_dir)  # before any key is destroyed
    for problem in bad:
        emit(as_json, {"result": "invalid", "problem": problem}, f"skipped: {problem}")
    batch = Batch()
    with settings.store(needs_key=verify_residue and not dry_run) as store, \
            signals_deferred() as stop, \
            progress(requests, "erasing" if not dry_run else "checking",
                     quiet=settings.quiet) as (each, echo):
        for request in each:
            if stop.signal is not None:
                break
            outcome = erase_one(store, request, options)
            emit(as_json, outcome.data, outcome.text, echo=echo)
            batch.add(request, outcome)
    click.echo(batch.summary(bad) or "nothing to do", err=as_json)
    if stop.signal is not None and batch.done < len(requests):
        stopped(stop.signal, batch, requests, as_json=as_json)
    if batch.problems or bad:
        sys.exit(EXIT_PROBLEM)


@click.command(cls=Command)
@click.option("--read-model-url", envvar="SHREDSTORE_READ_MODEL_URL",
              help="The read models' database, if not --url (its registered projections' "
                   "tables are scrubbed too).")
@click.option("--wait", type=click.FloatRange(min=0), default=erasure.SCRUB_WAIT_SECONDS,
              show_default=True, help="Seconds to wait for a reader or a lock, each time.")
@click.pass_obj
def scrub(settings: Settings, read_model_url: str | None, wait: float) -> None:
    """Make erased keys, rotation's old key wrappings and forgotten read-model rows leave the
    live database files, as far as the backend allows (SQLite: WAL checkpoint over
    secure_delete; PostgreSQL: VACUUM FULL and CHECKPOINT). Exit 1 if it could not complete
    (a reader, a lock, a missing privilege): it says why; run it again."""
    with settings.store() as store:
        found = scrubbing.scrub(store, read_models=read_model_url, wait=wait)
    if settings.as_json:
        click.echo(json.dumps(found.to_dict(), ensure_ascii=False))
    else:
        for line in found.lines():
            click.echo(line)
    if not found.complete:
        sys.exit(EXIT_PROBLEM)


@click.command(cls=Command)
@click.pass_obj
def reconcile(settings: Settings) -> None:
    """Erase again every key the vault holds for a subject the log's ledger says is erased."""
    with settings.store() as store:
        done = erasure.reconcile(store)
    if settings.as_json:
        click.echo(json.dumps({"ledger_entries": done.ledger_entries,
                               "re_erased": list(done.re_erased),
                               "recorded": list(done.recorded), "changed": done.changed},
                              ensure_ascii=False))
        return
    for subject in done.re_erased:
        click.echo(f"re-erased {subject}: the vault held its key again or had no tombstone")
    for subject in done.recorded:
        click.echo(f"recorded {subject} in the ledger: erased in the vault, missing from the log")
    click.echo(f"{done.ledger_entries} ledger entries checked: "
               + (verdict("nothing to do") if not done.changed else
                  f"{len(done.re_erased)} re-erased, {len(done.recorded)} recorded"))
