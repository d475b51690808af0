"""The house matches its plan: imports only go down (import-linter, see .importlinter), and no
module uses another module's private names.

A private name is one with a leading underscore. A module may use its own (`self._log`, a
helper `_parse`, the `_created` of a class it defines); what it needs of another module, that
module offers publicly. Checked on the source with `ast`: no ``from m import _name`` of one of
our modules, no ``module._name``, and no ``obj._name`` where this module defines no ``_name``.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("shredstore", "keyvault")
ALLOWED = frozenset({
    # Public API of other libraries that happens to start with an underscore.
    "_mapping",  # SQLAlchemy's Row
    "_replace", "_asdict", "_fields", "_make",  # namedtuple
})


def modules() -> Iterator[Path]:
    for package in PACKAGES:
        yield from sorted((ROOT / package).rglob("*.py"))


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def own_private_names(tree: ast.Module) -> set[str]:
    """The private names this module defines: functions, classes, variables, attributes it
    assigns (on any object), and slots."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            names.add(node.value)  # __slots__ entries, getattr names
    return {name for name in names if is_private(name)}


def violations(path: Path) -> Iterator[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    own = own_private_names(tree)
    imported_modules: set[str] = set()
    where = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and \
                node.module.split(".")[0] in PACKAGES:
            for alias in node.names:
                if is_private(alias.name):
                    yield f"{where}:{node.lineno}: imports {node.module}.{alias.name}"
                else:
                    imported_modules.add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                imported_modules.add((alias.asname or alias.name).split(".")[0])
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or not is_private(node.attr) \
                or node.attr in ALLOWED:
            continue
        value = node.value
        if isinstance(value, ast.Name) and value.id in ("self", "cls"):
            continue
        if isinstance(value, ast.Name) and value.id in imported_modules:
            yield f"{where}:{node.lineno}: uses {value.id}.{node.attr}"
        elif node.attr not in own:
            yield f"{where}:{node.lineno}: uses .{node.attr}, a private name of another module"


def test_no_module_uses_another_modules_private_names() -> None:
    found = [problem for path in modules() for problem in violations(path)]
    assert found == [], "\n".join(found)


def test_the_checker_finds_what_it_should(tmp_path: Path) -> None:
    """The check is not vacuous: each kind of reach into another module is reported."""
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from shredstore.store import _shown\n"
        "from shredstore import erasure\n"
        "def f(store):\n"
        "    erasure._canonical(store)\n"
        "    return store._log\n", encoding="utf-8")
    found = sorted(line.split(": ", 1)[1] for line in violations(sample))
    assert found == ["imports shredstore.store._shown",
                     "uses ._log, a private name of another module",
                     "uses erasure._canonical"]


def test_imports_only_go_down() -> None:
    """import-linter's contracts (.importlinter): keyvault imports nothing of shredstore, and
    shredstore's layers import only the layers below them."""
    command = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert command is not None, "import-linter is part of the test extra"
    result = subprocess.run([command, "--config", str(ROOT / ".importlinter")], cwd=ROOT,
                            capture_output=True, text=True, check=False, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
