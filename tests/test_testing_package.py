"""`shredstore.testing` ships the contract suites without touching the application's events.

Each check runs in a fresh interpreter: in this test run, `tests.store.events` and
`tests.shredding.events` have registered the suites' events in the default registry on
purpose, for the tests outside the contracts.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

IMPORT_THE_SUITES = """
import json, sys
from shredstore import default_registry
before = sorted(default_registry)
import shredstore.testing
lazy = "hypothesis" not in sys.modules
from shredstore.testing import EventStoreContract, KeyProviderContract, ShreddingContract
from shredstore.testing import event_store, shredding
print(json.dumps({"before": before, "after": sorted(default_registry), "lazy": lazy,
                  "loaded": "hypothesis" in sys.modules}))
"""

OWN_EVENTS_OF_THE_SAME_NAMES = """
from shredstore import Event, EventStore, default_registry
from shredstore.testing import EventStoreContract, ShreddingContract

class Noted(Event, type_name="test.Noted"):
    mine: str

class CustomerRegistered(Event, type_name="test.shredding.CustomerRegistered"):
    mine: str

assert default_registry.get("test.Noted") is Noted
assert default_registry.get("test.shredding.CustomerRegistered") is CustomerRegistered
with EventStore("sqlite://") as store:
    store.append("s", [Noted(mine="x")])
    (record,) = store.read_all()
    assert record.event == Noted(mine="x").model_copy(update={"event_id": record.event_id})
print("ok")
"""


def run(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, check=False, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_importing_the_suites_leaves_the_default_registry_unchanged() -> None:
    """Importing shredstore.testing and both store suites registers no event type in
    shredstore.default_registry."""
    seen = json.loads(run(IMPORT_THE_SUITES))
    assert seen["after"] == seen["before"]
    assert not any(name.startswith("test.") for name in seen["after"])


def test_the_store_suites_load_hypothesis_only_when_asked_for() -> None:
    """`import shredstore.testing` does not need hypothesis (KeyProviderContract needs only
    pytest); asking for a store suite loads it."""
    seen = json.loads(run(IMPORT_THE_SUITES))
    assert seen["lazy"] is True
    assert seen["loaded"] is True


def test_an_application_may_name_its_events_like_the_suites() -> None:
    """With the suites imported, an application's own events may take their type names and
    work in a store of the default registry."""
    assert run(OWN_EVENTS_OF_THE_SAME_NAMES).strip() == "ok"


def test_the_suites_store_their_events_in_a_registry_of_their_own() -> None:
    """Each suite's registry holds its events, and is not the default registry."""
    from shredstore import default_registry
    from shredstore.testing import _shredding_events, _store_events

    assert {"test.Registered", "test.Ordered", "test.Noted"} <= set(_store_events.REGISTRY)
    assert "test.shredding.CustomerRegistered" in _shredding_events.REGISTRY
    assert "test.shredding.CustomerRegistered" not in _store_events.REGISTRY
    assert _store_events.REGISTRY is not default_registry
    assert _shredding_events.REGISTRY is not default_registry


def test_unknown_names_are_attribute_errors() -> None:
    """The lazy exports answer only for the two suites."""
    import shredstore.testing

    with pytest.raises(AttributeError, match="NoSuchContract"):
        getattr(shredstore.testing, "NoSuchContract")  # noqa: B009
