"""`shredstore sagas`: what sagas are doing, and operators' resume and cancel.

Works from the stored step events alone (no application class): a saga is named by its
stream's suffix, ``NAME-ID`` (``fulfilment-8`` is stream ``saga-fulfilment-8``). Personal
fields of a saga's state are masked unless ``--reveal``, which is recorded in ``$access``
first. ``resume`` and ``cancel`` record an operator's request (`SagaOperation`), which a
runner of that saga applies once.
"""

from __future__ import annotations

import json
from typing import Any

import click

from shredstore.audit.report import MASK
from shredstore.cli.command import Group, fail
from shredstore.cli.output import emit
from shredstore.cli.settings import Settings
from shredstore.records import audit_events, current_user, record_access
from shredstore.sagas import OPERATIONS_STREAM, SagaOperation
from shredstore.storage.scope import Scope
from shredstore.store import EventStore

__all__ = ["sagas"]

STATES = ("running", "completed", "compensated", "failed", "cancelled")
_PREFIX = "saga-"


@click.group(cls=Group)
def sagas() -> None:
    """Sagas: list them, show one, resume or cancel one."""


@sagas.command("list")
@click.option("--state", type=click.Choice(STATES), help="Only sagas in this state.")
@click.pass_obj
def list_sagas(settings: Settings, state: str | None) -> None:
    """Every saga with its state, its last step and, if it ended badly, why."""
    with settings.store(read_only=True) as store:
        found = _latest_steps(store)
    as_json = settings.as_json
    shown = [entry for entry in found.values() if state is None or entry["state"] == state]
    for entry in shown:
        emit(as_json, entry, f"{entry['saga']:<32} {entry['state']:<12} step "
                             f"{entry['steps']:<4} {entry['updated_at']}"
                             + (f"  {entry['reason']}" if entry["reason"] else ""))
    if not shown and not as_json:
        click.echo("no sagas" + (f" {state}" if state else ""))


@sagas.command("show")
@click.argument("saga")
@click.option("--reveal", is_flag=True,
              help="Show personal values in the clear (needs the master key; recorded).")
@click.option("--purpose", help="Why the values are revealed; recorded with the access.")
@click.pass_obj
def show(settings: Settings, saga: str, reveal: bool, purpose: str | None) -> None:
    """SAGA (NAME-ID, as `sagas list` names it): its state, personal fields masked unless
    --reveal, and its steps."""
    if purpose and not reveal:
        fail(2, "--purpose is recorded with a reveal: add --reveal")
    stream = _stream(saga)
    with settings.store(needs_key=reveal, read_only=None if reveal else True) as store:
        if reveal:
            record_access(store, "saga", {"saga": saga}, purpose=purpose)
        steps = list(audit_events(store, Scope(stream_id=stream), reveal=reveal))
    if not steps:
        fail(1, f"no saga {saga!r}")
    last = steps[-1]
    fields: dict[str, Any] = {}
    for item in last.personal:
        if item.state == "erased":
            fields[item.path] = {"state": "erased",
                                 "erased_at": item.erased_at.isoformat()
                                 if item.erased_at else None}
        else:
            fields[item.path] = {"state": "held",
                                 "value": item.value if reveal else MASK}
    data = {"saga": saga, "state": last.plain.get("status"),
            "reason": last.plain.get("reason", ""), "version": last.version,
            "fields": last.plain.get("state", {}), "personal": fields,
            "tampered": last.tampered,
            "steps": [{"version": step.version, "handled": step.plain.get("handled_type"),
                       "state": step.plain.get("status"),
                       "at": step.recorded_at.isoformat()} for step in steps]}
    if settings.as_json:
        click.echo(json.dumps(data, ensure_ascii=False, default=str))
        return
    click.echo(f"{saga}: {data['state']}" + (f" ({data['reason']})" if data["reason"] else ""))
    for name, value in sorted(data["fields"].items()):
        click.echo(f"  {name} = {value!r}")
    for path, shown in sorted(fields.items()):
        text = (f"erased {shown['erased_at']}" if shown["state"] == "erased"
                else repr(shown["value"]) if reveal else MASK)
        click.echo(f"  {path} = {text}")
    click.echo("steps:")
    for step in data["steps"]:
        click.echo(f"  {step['version']:>4}  {step['at']}  {step['handled']}  -> {step['state']}")


@sagas.command("resume")
@click.argument("saga")
@click.pass_obj
def resume(settings: Settings, saga: str) -> None:
    """Ask the runners to run the failed SAGA again (it sends again what it waited for)."""
    _request(settings, saga, "resume", ("failed",))


@sagas.command("cancel")
@click.argument("saga")
@click.pass_obj
def cancel(settings: Settings, saga: str) -> None:
    """Ask the runners to end the running or failed SAGA as cancelled (no compensation)."""
    _request(settings, saga, "cancel", ("running", "failed"))


def _request(settings: Settings, saga: str, action: str, allowed: tuple[str, ...]) -> None:
    name, _, saga_id = saga.partition("-")
    with settings.store() as store:
        entry = _latest_steps(store, stream=_stream(saga)).get(saga)
        if entry is None:
            fail(1, f"no saga {saga!r}")
        if entry["state"] not in allowed:
            fail(1, f"saga {saga} is {entry['state']}: only a {' or '.join(allowed)} saga can "
                    f"be {'resumed' if action == 'resume' else 'cancelled'}")
        result = store.append(OPERATIONS_STREAM, [SagaOperation(
            saga=name, saga_id=saga_id, action=action,
            actor=current_user())])
    emit(settings.as_json, {"saga": saga, "requested": action, "position": result.positions[0]},
         f"{action} of {saga} requested (position {result.positions[0]}): a runner of saga "
         f"{name} applies it")


def _stream(saga: str) -> str:
    name, dash, saga_id = saga.partition("-")
    if not name or not dash or not saga_id:
        fail(2, f"{saga!r} is not a saga's name: NAME-ID, as `shredstore sagas list` shows")
    return _PREFIX + saga


def _latest_steps(store: EventStore, *, stream: str | None = None
                  ) -> dict[str, dict[str, Any]]:
    """Each saga's last step, by NAME-ID, from the stored rows (nothing opened)."""
    found: dict[str, dict[str, Any]] = {}
    for page in store.scan(Scope(stream_id=stream)):
        for row in page:
            if not (row.stream_id.startswith(_PREFIX) and row.event_type.startswith("saga:")):
                continue
            try:
                payload = json.loads(row.payload)
            except ValueError:
                continue  # verify reports it
            saga = row.stream_id.removeprefix(_PREFIX)
            found[saga] = {"saga": saga, "state": payload.get("status", "running"),
                           "reason": payload.get("reason", ""), "steps": row.version,
                           "updated_at": row.recorded_at.isoformat()}
    return found
