"""What an auditor runs: `verify` (tamper evidence), `report` (what the log holds) and
`export` (everything held about one subject). `verify` and masked reports open the store
read-only, so they also work on a copy on a read-only mount."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

import click

from shredstore.audit.export import write_export
from shredstore.audit.report import FORMATS, write_report
from shredstore.cli.command import EXIT_PROBLEM, Command
from shredstore.cli.options import subject_ids
from shredstore.cli.output import output_file, progress_bar
from shredstore.cli.paint import verdict
from shredstore.cli.settings import Settings
from shredstore.errors import ConfigurationError
from shredstore.records import Scope
from shredstore.storage.chain import LogHead

__all__ = ["export", "report", "verify"]


@click.command(cls=Command)
@click.option("--expect-head", metavar="POSITION:HASH",
              help="An anchored log head kept from earlier; the log must still hold it.")
@click.pass_obj
def verify(settings: Settings, expect_head: str | None) -> None:
    """Check the hash chain, the immutability triggers, and that no erased key is back."""
    anchor = _parse_head(expect_head)
    with settings.store(read_only=True) as store:
        found = store.verify(expected_head=anchor)
    if settings.as_json:
        click.echo(json.dumps({"ok": found.ok, "events_checked": found.events_checked,
                               "head": str(found.head),
                               "findings": [str(finding) for finding in found.findings],
                               "unauthenticated": found.unauthenticated}, ensure_ascii=False))
        if not found.ok:
            sys.exit(EXIT_PROBLEM)
        return
    for finding in found.findings:
        click.echo(str(finding))
    click.echo(f"{found.events_checked} events checked, head {found.head}: "
               + (verdict("intact") if found.ok else
                  f"{len(found.findings)} {verdict('problem(s)')}"))
    if found.unauthenticated is None:
        click.echo("row authenticators not checked: give the master key to check them")
    elif found.unauthenticated:
        click.echo(f"{found.unauthenticated} row(s) without an authenticator (appended "
                   "without the master key, e.g. by a key-less erase): only an anchored head "
                   "vouches for them")
    if not found.ok:
        sys.exit(EXIT_PROBLEM)


@click.command(cls=Command)
@click.option("--subject", callback=subject_ids, help="Only events that name this subject.")
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
    personal field (held, masked unless --reveal; or erased). Exit 1 if the log was altered.
    The summary goes to stderr (as one JSON object with --json)."""
    if purpose is not None and not reveal:
        raise click.UsageError("--purpose is recorded with a reveal: add --reveal, or leave "
                               "out --purpose")
    scope = Scope(stream_id=stream, event_type=event_type, subject_id=subject,
                  since=_moment(since, "--since", end=False),
                  until=_moment(until, "--until", end=True))
    if scope.since is not None and scope.until is not None and scope.until < scope.since:
        raise click.UsageError(f"--until ({until}) is before --since ({since}): nothing "
                               "could be in that scope")
    with settings.store(needs_key=reveal, read_only=None if reveal else True) as store, \
            output_file(out) as target, \
            _progress(settings, "reporting", minimum=10_000) as tick:
        result = write_report(store, target, scope=scope, fmt=fmt, reveal=reveal,
                              purpose=purpose, progress=tick)
    summary = result.summary
    _summary(settings, {
        "events": summary["events"], "erased_subjects": summary["erased_subjects"],
        "personal_fields_redacted": summary["personal_fields_redacted"],
        "integrity": "intact" if result.ok else "failed",
        "out": str(out) if out else None},
        f"{summary['events']} event(s), {summary['erased_subjects']} erased subject(s), "
        f"{summary['personal_fields_redacted']} redacted field(s); integrity: "
        + (verdict("intact") if result.ok else
           f"{verdict('FAILED')} (see the report's findings)")
        + (f"; written to {out}" if out else ""))
    if not result.ok:
        sys.exit(EXIT_PROBLEM)


@click.command(cls=Command)
@click.argument("subject", callback=subject_ids)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="File to write (default: standard output).")
@click.option("--purpose", help="Why (e.g. 'Art. 15 request 2026-7'); recorded with the access.")
@click.pass_obj
def export(settings: Settings, subject: str, out: Path | None, purpose: str | None) -> None:
    """Everything the log holds about SUBJECT, as JSON, with its personal data opened
    (GDPR Art. 15/20). Recorded in the $access stream. Exit 1 for an unknown subject. With
    --out, a line on stderr says what was written (one JSON object with --json)."""
    with settings.store(needs_key=True, read_only=None) as store, output_file(out) as target:
        count = write_export(store, subject, target, purpose=purpose)
    if out is not None or settings.as_json:
        _summary(settings, {"subject": subject, "events": count,
                            "out": str(out) if out else None},
                 f"{count} event(s) of {subject} written to {out}")


def _summary(settings: Settings, data: dict[str, Any], text: str) -> None:
    """The line on stderr that says what a report or an export wrote (its document has
    standard output), as JSON with --json."""
    click.echo(json.dumps(data, ensure_ascii=False) if settings.as_json else text, err=True)


def _progress(settings: Settings, label: str, *, minimum: int
              ) -> AbstractContextManager[Callable[[int, int], None] | None]:
    """`progress_bar`, or nothing with --quiet."""
    return nullcontext() if settings.quiet else progress_bar(label, minimum=minimum)


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
