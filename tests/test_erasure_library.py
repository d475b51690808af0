"""What the command line decides about an erasure, a service can ask the library for: a dry run
(`erasure.plan`), the refusal of subjects the store knows nothing of (``allow_unknown=False``),
one subject's ledger against its vault (`erasure.consistency`), and scrub's default wait."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from keyvault import MasterKey
from shredstore import EventStore, erasure
from shredstore.cli.erasing import scrub as scrub_command
from shredstore.erasure import scrubbing
from shredstore.errors import UnknownSubjectError
from tests.shredding.events import CustomerRegistered, ReferralMade

NAME, EMAIL = "Mirela-Quokka-7301", "mirela.quokka7301@example.org"


@pytest.fixture
def store(any_url: str) -> Iterator[EventStore]:
    """A store on each backend with c-1 (personal data in two events) and c-9, only named."""
    with EventStore(any_url, master_key=MasterKey.generate()) as opened:
        opened.append("customer-1", [
            CustomerRegistered(customer_id="c-1", name=NAME, email=EMAIL, credit_limit=1),
            CustomerRegistered(customer_id="c-1", name=NAME, email=EMAIL, credit_limit=2)])
        opened.append("referrals", [ReferralMade(referrer_id="c-9", code="R-1")])
        yield opened


@pytest.fixture
def separate(separate_urls: tuple[str, str]) -> Iterator[EventStore]:
    """A store whose vault has a database of its own, on each backend, with c-1 and c-2."""
    url, vault_url = separate_urls
    with EventStore(url, vault_url=vault_url, master_key=MasterKey.generate()) as opened:
        for n in (1, 2):
            opened.append(f"customer-{n}", [CustomerRegistered(
                customer_id=f"c-{n}", name=NAME, email=EMAIL, credit_limit=n)])
        yield opened


# plan: a dry run


def test_plan_shows_what_an_erasure_would_touch_and_changes_nothing(store: EventStore) -> None:
    """The plan of an active subject is its state and footprint; the subject stays active and
    the ledger stays empty."""
    found = erasure.plan(store, "c-1")
    assert (found.subject_id, found.state, found.known, found.already_erased) == (
        "c-1", "active", True, False)
    assert (found.footprint.events, found.footprint.streams) == (2, ("customer-1",))
    assert found.footprint == store.subject_footprint("c-1")
    assert store.subject_status("c-1").state == "active"
    assert erasure.ledger(store) == {}
    assert found.to_dict()["footprint"]["events"] == 2


def test_plan_after_an_erasure_says_already_erased_with_the_same_footprint(
    store: EventStore,
) -> None:
    """An erased subject plans as "already erased": its events still hold its (sealed) data."""
    store.erase_subject("c-1", request_id="REQ-1")
    found = erasure.plan(store, "c-1", allow_unknown=False)
    assert (found.state, found.known, found.already_erased) == ("erased", True, True)
    assert found.footprint.events == 2
    assert found.status.request_id == "REQ-1"


def test_a_subject_only_named_by_events_is_known(store: EventStore) -> None:
    """A subject no key belongs to, but that an event names, is known: not refused."""
    found = erasure.plan(store, "c-9", allow_unknown=False)
    assert (found.state, found.known, found.footprint.mentions) == ("unknown", True, 1)


def test_plan_refuses_an_unknown_subject_only_when_asked(store: EventStore) -> None:
    """With allow_unknown=False an unknown subject raises UnknownSubjectError (a LookupError
    whose message names no subject); by default the plan says it is not known."""
    assert erasure.plan(store, "nobody").known is False
    with pytest.raises(UnknownSubjectError, match="unknown subject") as raised:
        erasure.plan(store, "nobody", allow_unknown=False)
    assert isinstance(raised.value, LookupError)
    assert "nobody" not in str(raised.value)
    assert erasure.UnknownSubjectError is UnknownSubjectError


# erase(allow_unknown=)


def test_erase_refuses_an_unknown_subject_before_changing_anything(store: EventStore) -> None:
    """erase(allow_unknown=False) of a subject the store knows nothing of raises, and leaves no
    tombstone and no ledger entry."""
    with pytest.raises(UnknownSubjectError):
        erasure.erase(store, "nobody", request_id="REQ-2", allow_unknown=False)
    assert store.subject_status("nobody").state == "unknown"
    assert erasure.ledger_entry(store, "nobody") is None


def test_erase_of_a_known_subject_is_not_refused(store: EventStore) -> None:
    """allow_unknown=False erases known subjects (with or without a key), and again."""
    first = erasure.erase(store, "c-1", allow_unknown=False)
    again = erasure.erase(store, "c-1", allow_unknown=False)
    named = erasure.erase(store, "c-9", allow_unknown=False)
    assert (first.already_erased, again.already_erased, named.already_erased) == (
        False, True, False)
    assert first.check.ok
    assert {store.subject_status(s).state for s in ("c-1", "c-9")} == {"erased"}


def test_erase_records_an_unknown_subject_by_default(store: EventStore) -> None:
    """As before: erase and EventStore.erase_subject record a tombstone for an unknown
    subject, so that data arriving later for it is refused."""
    receipt = erasure.erase(store, "nobody")
    assert (receipt.already_erased, receipt.held_key) == (False, False)
    assert store.subject_status("nobody").state == "erased"
    assert erasure.ledger_entry(store, "nobody") is not None


# consistency: one subject's ledger against its vault


def test_ledger_and_vault_agree_after_ordinary_use(store: EventStore) -> None:
    """Active, erased, only named and unknown subjects: no disagreement."""
    store.erase_subject("c-1")
    assert [erasure.consistency(store, s) for s in ("c-1", "c-9", "nobody")] == [None] * 3


def test_a_key_held_again_for_an_erased_subject_is_resurrected(separate: EventStore) -> None:
    """The ledger names the subject while the vault still holds its key (as after restoring
    the vault from a backup): "resurrected", at the ledger entry's position."""
    position = separate.record_erasure(erasure.SubjectErased(
        subject_id="c-1", erased_at=datetime.now(UTC)))
    found = erasure.consistency(separate, "c-1")
    assert found == erasure.LedgerDisagreement("c-1", "resurrected", position)
    assert "holds its key again" in found.message
    assert erasure.consistency(separate, "c-2") is None


def test_a_lost_tombstone_is_untombstoned(separate: EventStore) -> None:
    """The ledger names a subject the vault knows nothing of: "untombstoned"."""
    separate.record_erasure(erasure.SubjectErased(subject_id="c-7",
                                                  erased_at=datetime.now(UTC)))
    found = erasure.consistency(separate, "c-7")
    assert found is not None
    assert found.kind == "untombstoned"
    assert "has no tombstone" in found.message


def test_an_interrupted_erasure_is_unrecorded_until_reconciled(separate: EventStore) -> None:
    """The vault erased the key, the ledger has no entry (an erasure interrupted between the
    two databases): "unrecorded"; after reconcile they agree."""
    separate.erase_key("c-2")
    found = erasure.consistency(separate, "c-2")
    assert found == erasure.LedgerDisagreement("c-2", "unrecorded", None)
    assert "does not record it" in found.message
    assert "c-2" not in found.message
    erasure.reconcile(separate)
    assert erasure.consistency(separate, "c-2") is None


# scrub's default wait


def test_scrub_waits_by_the_librarys_public_default() -> None:
    """SCRUB_WAIT_SECONDS is scrub's default wait and the command's --wait default."""
    assert inspect.signature(scrubbing.scrub).parameters["wait"].default == \
        erasure.SCRUB_WAIT_SECONDS
    (wait,) = [option for option in scrub_command.params if option.name == "wait"]
    assert wait.default == erasure.SCRUB_WAIT_SECONDS > 0
