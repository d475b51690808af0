"""The C modules' tests run where they were built: skipped with a reason elsewhere, and failed
under ``SHREDSTORE_REQUIRE_NATIVE=1`` (.ci/run), unless ``SHREDSTORE_PURE_PYTHON`` is set."""

from __future__ import annotations

import os
from types import ModuleType

import pytest


def require(module: ModuleType | None, name: str) -> ModuleType:
    """`module` (the configured C module `name`), or the calling test module skipped."""
    if module is not None:
        return module
    if os.environ.get("SHREDSTORE_REQUIRE_NATIVE") and not os.environ.get(
            "SHREDSTORE_PURE_PYTHON"):
        pytest.fail(f"{name} was not built, and SHREDSTORE_REQUIRE_NATIVE is set",
                    pytrace=False)
    pytest.skip(f"{name} is not in use (not built, for want of a C compiler at install, or "
                "SHREDSTORE_PURE_PYTHON is set)", allow_module_level=True)
