"""The customer-directory example runs, on both backends, and shows the whole pattern."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from keyvault import MasterKey
from shredstore import EventStore

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "customer_directory.py"


def test_the_example_walks_through_on_each_backend(any_url: str,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("customer_directory_example", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = example  # pydantic resolves the annotations through it
    spec.loader.exec_module(example)
    with EventStore(any_url, master_key=MasterKey.generate()) as store:
        assert example.walk_through(store) == 0
    out = capsys.readouterr().out
    assert "welcome emails queued: 3 for 6 deliveries" in out
    assert "residue check clean" in out
    assert "the erased customer is in no read model" in out
    assert "Bo Example" not in out
    assert "bo@example.com" not in out


def test_the_example_runs_as_a_script() -> None:
    done = subprocess.run([sys.executable, str(EXAMPLE)], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "the erased customer is in no read model" in done.stdout
