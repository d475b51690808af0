"""One run of `shredstore erase`: each request handled in full, its result as a JSON object and
as a line, and the counts for the summary line.

`erase_one` turns what the library decides into an `Outcome`: `erasure.plan` (a dry run) or
`erasure.erase`, each refusing a subject the store knows nothing of unless asked for
(`UnknownSubjectError`), then `erasure.write_receipt`; a receipt that cannot be written fails
only its evidence, never the erasure (which is done and in the ledger). Nothing here prints:
the command writes each `Outcome` as it comes.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keyvault
from shredstore import erasure
from shredstore.cli.paint import verdict
from shredstore.erasure.requests import ErasureRequest
from shredstore.erasure.residue import ResidueReport
from shredstore.errors import ConfigurationError
from shredstore.store import EventStore

__all__ = ["Batch", "ErasureOptions", "Outcome", "Residue", "erase_one"]


@dataclass(frozen=True, slots=True)
class Residue:
    """What --verify-residue asks for."""

    read_models: str | None
    timeout: float


@dataclass(frozen=True, slots=True)
class ErasureOptions:
    """How each request of a run is handled."""

    dry_run: bool
    receipt_dir: Path
    signing_key: Any
    allow_unknown: bool
    residue: Residue | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """What came of one request: its result for the summary, whether its receipt is missing
    (the erasure itself being done), and what to show: a JSON object or a line."""

    result: str
    data: dict[str, Any]
    text: str
    receipt_missing: bool = False


@dataclass(slots=True)
class Batch:
    """How far a run of `erase` got: the requests handled in full, the last of them, and
    their outcomes counted for the summary line."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(
        ("erased", "already erased", "would erase", "residue found", "failed"), 0))
    receipts_missing: int = 0
    done: int = 0
    last: ErasureRequest | None = None

    def add(self, request: ErasureRequest, outcome: Outcome) -> None:
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


def erase_one(store: EventStore, request: ErasureRequest, options: ErasureOptions) -> Outcome:
    """Handle one request in full: refused, described (dry run), or erased with its receipt
    written."""
    subject, where = request.subject, request.where()
    residue = options.residue
    try:
        if options.dry_run:
            return _dry_run(where, erasure.plan(store, subject,
                                                allow_unknown=options.allow_unknown))
        receipt = erasure.erase(
            store, subject, reason=request.reason, request_id=request.request_id,
            signing_key=options.signing_key, verify_residue=residue is not None,
            read_models=residue.read_models if residue is not None else None,
            residue_timeout=residue.timeout if residue is not None else 0.0,
            allow_unknown=options.allow_unknown)
    except erasure.UnknownSubjectError:
        return Outcome("failed", {"subject": subject, "request_id": request.request_id,
                                  "result": "failed", "problem": "unknown subject"},
                       f"{where}{subject}: {verdict('unknown subject')}: nothing held "
                       "(--allow-unknown records the erasure anyway)")
    except (ConfigurationError, keyvault.VaultConfigurationError) as error:
        return Outcome("failed", {"subject": subject, "result": "failed", "problem": str(error)},
                       f"{where}{subject}: {error}")
    result = _result(receipt)
    data = {"subject": subject, "request_id": receipt.request_id, "result": result,
            "events": receipt.footprint.events, "streams": len(receipt.footprint.streams),
            "check": receipt.check.to_dict()["result"], "scrubbed": receipt.scrubbed,
            **({"residue": receipt.residue.to_dict()} if receipt.residue else {})}
    details = (f"{receipt.footprint.events} event(s) in {len(receipt.footprint.streams)} "
               f"stream(s); {receipt.check.to_dict()['result']}; {_scrubbed_text(receipt)}"
               f"{_residue_text(receipt.residue)}")
    try:
        path = erasure.write_receipt(options.receipt_dir, receipt)
    except ConfigurationError as error:
        # The erasure is done and recorded: only its evidence is missing, and the ledger
        # holds what is needed to write it later.
        later = f"shredstore receipt from-ledger {shlex.quote(subject)}"
        return Outcome(result, {**data, "receipt": None, "receipt_problem": str(error),
                                "write_receipt_with": later},
                       f"{where}{subject}: {verdict(result)}, but no receipt ({error}); "
                       f"{details}the "
                       "erasure IS done and recorded in the ledger: write its receipt later "
                       f"with `{later}`", receipt_missing=True)
    return Outcome(result, {**data, "receipt": str(path)},
                   f"{where}{subject}: {verdict(result)}; {details}receipt {path}")


def _result(receipt: erasure.ErasureReceipt) -> str:
    """The summary's word for an erasure: a failed check or a residue outranks the rest."""
    if not receipt.check.ok:
        return "failed"
    if receipt.residue is not None and not receipt.residue.clean:
        return "residue found"
    return "already erased" if receipt.already_erased else "erased"


def _scrubbed_text(receipt: erasure.ErasureReceipt) -> str:
    """Whether the destroyed key's bytes left the database files, when this erasure knows."""
    if receipt.scrubbed is None or not receipt.held_key or receipt.already_erased:
        return ""
    if receipt.scrubbed:
        return "key bytes scrubbed; "
    return "key bytes NOT yet scrubbed from the database files: run `shredstore scrub`; "


def _residue_text(report: ResidueReport | None) -> str:
    return "" if report is None else f"{report.summary()}; "


def _dry_run(where: str, found: erasure.ErasurePlan) -> Outcome:
    """What a dry run says of a subject: what would read as redacted, or, for a subject erased
    before, when that was and that nothing is left to do."""
    status, erased = found.status, found.already_erased
    erased_at = status.erased_at.isoformat() if erased and status.erased_at else None
    data = {"subject": found.subject_id, "result": "dry run", "state": found.state,
            "erased_at": erased_at, "erasure_request_id": status.request_id if erased else None,
            **found.footprint.to_dict()}
    if not erased:
        return Outcome("would erase", data,
                       _describe_footprint(where, found.state, found.footprint))
    when = f" at {erased_at}" if erased_at else ""
    request = f" (request {status.request_id})" if status.request_id else ""
    return Outcome("already erased", data,
                   f"{where}{found.subject_id}: {verdict('already erased')}{when}{request}; "
                   "nothing to do")


def _describe_footprint(where: str, state: str, footprint: erasure.Footprint) -> str:
    lines = [f"{where}{footprint.subject_id}: {verdict(state)}; would make {footprint.events} "
             f"event(s) in {len(footprint.streams)} stream(s) and {footprint.snapshots} "
             "snapshot(s) read as redacted"]
    if footprint.event_types:
        lines.append(f"  event types: {', '.join(footprint.event_types)}")
    if footprint.personal_fields:
        lines.append(f"  personal fields: {', '.join(footprint.personal_fields)}")
    return "\n".join(lines)
