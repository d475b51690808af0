"""Declaring personal data: forward references never let personal data through in the clear."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
from pydantic import BaseModel

from keyvault import MasterKey
from shredstore import ConfigurationError, EventStore
from shredstore.personal import plan_of

MODULE = '''
from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel

from shredstore import Event, PersonalData, SubjectId


class ForwardRegistered(Event, type_name="test.declarations.ForwardRegistered"):
    customer_id: SubjectId
    name: Annotated[str, PersonalData()]
    shipping: Annotated[Address, PersonalData()]   # Address is defined below


class Address(BaseModel):
    street: str
'''


def load_module(folder: Path, name: str) -> ModuleType:
    path = folder / f"{name}.py"
    path.write_text(MODULE)
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_a_class_completed_after_its_definition_still_seals_personal_data(
    tmp_path: Path,
) -> None:
    """A forward reference resolved after the class statement does not store data in clear."""
    module = load_module(tmp_path, "shredstore_test_forward_module")
    try:
        event = module.ForwardRegistered(customer_id="1", name="Zelda-Quokka-7741",
                                         shipping=module.Address(street="Quokka-Lane-99"))
        database = tmp_path / "e.db"
        with EventStore(f"sqlite:///{database}", master_key=MasterKey.generate()) as store:
            store.append("s", [event])
            (record,) = store.read_all()
            assert record.event.name == "Zelda-Quokka-7741"  # type: ignore[attr-defined]
            assert record.personal_fields == {"name", "shipping"}
        wal = database.with_name("e.db-wal")
        on_disk = database.read_bytes() + (wal.read_bytes() if wal.exists() else b"")
        assert b"Zelda-Quokka-7741" not in on_disk
        assert b"Quokka-Lane-99" not in on_disk
        assert b"test.declarations.ForwardRegistered" in on_disk  # the scan sees stored text
    finally:
        sys.modules.pop("shredstore_test_forward_module", None)


def test_a_class_that_cannot_be_completed_has_no_plan() -> None:
    """Asking for the plan of a class with unresolvable references is a clear error."""

    class Dangling(BaseModel):
        other: Missing  # type: ignore[name-defined]  # noqa: F821

    with pytest.raises(ConfigurationError, match="not fully defined"):
        plan_of(Dangling)
