"""The tutorial's code runs as written, block after block, so the docs cannot rot."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("page", ["tutorial.md", "keyvault.md", "event-log.md", "sagas.md"])
def test_the_code_in_the_docs_runs(page: str, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Every Python block of the page runs, in order, in one namespace."""
    text = (ROOT / "docs" / page).read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert blocks, f"{page} shows Python code"
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": f"docs.{page.removesuffix('.md')}"}
    for number, block in enumerate(blocks, start=1):
        try:
            code = compile(block, f"{page} block {number}", "exec", dont_inherit=True)
            exec(code, namespace)  # noqa: S102
        except Exception as error:  # noqa: BLE001 - report which block failed
            pytest.fail(f"{page} block {number} failed: {type(error).__name__}: {error}")
