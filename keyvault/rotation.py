"""Master-key rotation: every data key and service key re-wrapped under a new master key.

Sealed values are untouched: only the wrapped keys change. A rotation marks its target in the
state row first (``rotating_to``), re-wraps in batches (each its own transaction, so it can be
interrupted and resumed), and switches ``master_key_id`` only when no key is left under the
old master key, with the state row locked so that no key is created meanwhile.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa

from keyvault import schema
from keyvault.engine import Transactions
from keyvault.errors import RotationError
from keyvault.keys import wrap_context
from keyvault.master import KeyProvider
from keyvault.service_keys import service_context

__all__ = ["RotationResult", "rotate"]

_S = schema.SUBJECTS
_ST = schema.STATE
_K = schema.SERVICE_KEYS


@dataclass(frozen=True, slots=True)
class RotationResult:
    """The outcome of `KeyVault.rotate_master_key`."""

    old_key_id: str
    new_key_id: str
    rewrapped: int
    """Data keys re-wrapped by this call."""
    rewrapped_service_keys: int = 0
    """Service keys (see `KeyVault.service_key`) re-wrapped by this call."""


def rotate(
    transactions: Transactions,
    old: KeyProvider,
    new: KeyProvider,
    *,
    batch_size: int,
    progress: Callable[[int, int], None] | None,
) -> RotationResult:
    """Re-wrap every key from `old` to `new` (see `KeyVault.rotate_master_key`); when it
    returns, the vault answers only to `new`."""
    if new.key_id == old.key_id:
        raise RotationError("the new master key is the one in use")
    with transactions.write() as conn:
        state = conn.execute(sa.select(_ST)).one()
        if state.master_key_id == new.key_id and state.rotating_to is None:
            return RotationResult(old.key_id, new.key_id, 0)
        if state.rotating_to not in (None, new.key_id):
            raise RotationError(
                f"a rotation to master key {state.rotating_to} is in progress; "
                "finish it with that key first"
            )
        conn.execute(_ST.update().values(rotating_to=new.key_id))
    with transactions.read() as conn:
        total = int(conn.execute(sa.select(sa.func.count()).select_from(_S).where(
            _S.c.state == "active", _S.c.wrapped_by != new.key_id)).scalar_one())
    done = services = 0
    while True:
        done += _rewrap_data_keys(transactions, old, new, batch_size=batch_size, done=done,
                                  total=total, progress=progress)
        services += _rewrap_service_keys(transactions, old, new)
        with transactions.write() as conn:
            conn.execute(sa.select(_ST).with_for_update()).one()  # no key creation now
            left = conn.execute(sa.select(sa.func.count()).select_from(_S).where(
                _S.c.state == "active", _S.c.wrapped_by != new.key_id)).scalar_one()
            left += conn.execute(sa.select(sa.func.count()).select_from(_K).where(
                _K.c.wrapped_by != new.key_id)).scalar_one()
            if not left:
                conn.execute(_ST.update().values(master_key_id=new.key_id, rotating_to=None))
        if not left:
            break  # else keys were created meanwhile with the old key: another pass
    return RotationResult(old.key_id, new.key_id, done, services)


def _rewrap_data_keys(
    transactions: Transactions,
    old: KeyProvider,
    new: KeyProvider,
    *,
    batch_size: int,
    done: int,
    total: int,
    progress: Callable[[int, int], None] | None,
) -> int:
    rewrapped = 0
    after = ""
    while True:
        with transactions.read() as conn:
            batch = conn.execute(
                sa.select(_S.c.subject_id, _S.c.key_version, _S.c.wrapped_key,
                          _S.c.wrapped_by)
                .where(_S.c.state == "active", _S.c.wrapped_by != new.key_id,
                       _S.c.subject_id > after)
                .order_by(_S.c.subject_id).limit(batch_size)
            ).all()
        if not batch:
            return rewrapped
        with transactions.write() as conn:
            for row in batch:
                if row.wrapped_by != old.key_id:
                    raise RotationError(
                        f"a key is wrapped by master key {row.wrapped_by}, neither the old "
                        f"({old.key_id}) nor the new one"
                    )
                context = wrap_context(row.subject_id, row.key_version)
                secret = old.unwrap(row.wrapped_key, context=context)
                rewrapped += conn.execute(
                    _S.update()
                    .where(_S.c.subject_id == row.subject_id,
                           _S.c.wrapped_by == old.key_id)
                    .values(wrapped_key=new.wrap(secret, context=context),
                            wrapped_by=new.key_id)
                ).rowcount
        after = batch[-1].subject_id
        if progress is not None:
            progress(min(done + rewrapped, max(total, done + rewrapped)), total)


def _rewrap_service_keys(transactions: Transactions, old: KeyProvider, new: KeyProvider) -> int:
    """Re-wrap the service keys not yet wrapped by `new` (a handful: one transaction)."""
    rewrapped = 0
    with transactions.write() as conn:
        rows = conn.execute(sa.select(_K.c.name, _K.c.wrapped_key, _K.c.wrapped_by)
                            .where(_K.c.wrapped_by != new.key_id)).all()
        for row in rows:
            if row.wrapped_by != old.key_id:
                raise RotationError(
                    f"a service key is wrapped by master key {row.wrapped_by}, neither the "
                    f"old ({old.key_id}) nor the new one")
            context = service_context(row.name)
            secret = old.unwrap(row.wrapped_key, context=context)
            rewrapped += conn.execute(
                _K.update().where(_K.c.name == row.name, _K.c.wrapped_by == old.key_id)
                .values(wrapped_key=new.wrap(secret, context=context),
                        wrapped_by=new.key_id)).rowcount
    return rewrapped
