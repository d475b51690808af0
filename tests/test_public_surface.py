"""The public surface is closed: a documented set of public modules, each with an `__all__`
that equals its public names, whose functions and methods take and return only public types;
and the docs, the README and the examples import nothing else.

Every other module is an implementation detail that may move between releases (docs/
architecture.md lists them for contributors). `__all__` equality is httpx's rule: a name a
public module holds without an underscore is exported, or it is an accident.
"""

from __future__ import annotations

import ast
import enum
import importlib
import inspect
import pkgutil
import re
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]

PUBLIC_MODULES = (
    "keyvault",
    "shredstore",
    "shredstore.audit",
    "shredstore.erasure",
    "shredstore.projections",
    "shredstore.relay",
    "shredstore.sagas",
    "shredstore.testing",
)
"""The modules users import from (docs/architecture.md, "The public surface")."""

DUNDERS_KEPT = frozenset({"__version__"})


def public_names(module: types.ModuleType) -> list[str]:
    """The names the module holds without an underscore, other than modules (a package holds
    its imported submodules as attributes) and ``from __future__`` features."""
    return sorted(
        name for name, value in vars(module).items()
        if (not name.startswith("_") or name in DUNDERS_KEPT)
        and not isinstance(value, types.ModuleType)
        and not (name == "annotations" and type(value).__name__ == "_Feature"))


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_all_equals_the_public_names(name: str) -> None:
    """`__all__` is sorted, holds no name twice, and is exactly what the module holds
    publicly: nothing exported is missing, nothing public is left out by accident."""
    module = importlib.import_module(name)
    exported = list(module.__all__)
    assert exported in (sorted(exported), sorted(exported, key=isort_style)), \
        f"{name}.__all__ is not sorted"
    assert len(set(exported)) == len(exported), f"{name}.__all__ names something twice"
    for attribute in exported:  # also loads lazily exported names
        getattr(module, attribute)
    assert sorted(exported) == public_names(module)


def isort_style(name: str) -> tuple[int, str]:
    """Ruff's (RUF022) order: CONSTANTS, then Classes, then the rest, each alphabetical."""
    return (0 if name.isupper() else 1 if name[:1].isupper() else 2, name)


def exported_objects() -> dict[int, str]:
    """Every object the public modules export, by identity: where a user imports it from."""
    found: dict[int, str] = {}
    for name in PUBLIC_MODULES:
        module = importlib.import_module(name)
        for attribute in module.__all__:
            found.setdefault(id(getattr(module, attribute)), f"{name}.{attribute}")
    return found


def our_classes(annotation: object) -> Iterator[type]:
    """The classes of shredstore and keyvault an annotation names, however nested."""
    if isinstance(annotation, type) and annotation.__module__.split(".")[0] in (
            "shredstore", "keyvault"):
        yield annotation
    for argument in typing.get_args(annotation):
        yield from our_classes(argument)


def signatures() -> Iterator[tuple[str, Any]]:
    """(where, callable) for every public function, method and property of the exported
    classes and functions."""
    seen: set[int] = set()
    for name in PUBLIC_MODULES:
        module = importlib.import_module(name)
        for attribute in module.__all__:
            value = getattr(module, attribute)
            if id(value) in seen:
                continue
            seen.add(id(value))
            if inspect.isfunction(value):
                yield f"{name}.{attribute}", value
            elif inspect.isclass(value) and value.__module__.split(".")[0] in (
                    "shredstore", "keyvault") and not issubclass(value, enum.Enum):
                for member_name, member in vars(value).items():
                    if member_name.startswith("_") and member_name != "__init__":
                        continue
                    if isinstance(member, property) and member.fget is not None:
                        yield f"{name}.{attribute}.{member_name}", member.fget
                    elif isinstance(member, staticmethod | classmethod):
                        yield f"{name}.{attribute}.{member_name}", member.__func__
                    elif inspect.isfunction(member):
                        yield f"{name}.{attribute}.{member_name}", member


def annotation_namespace() -> dict[str, Any]:
    """The names every module of both packages holds, imports made only for type checking
    included (by running them): what an annotation string may name."""
    namespace: dict[str, Any] = {}
    for package in ("shredstore", "keyvault"):
        root = importlib.import_module(package)
        for info in pkgutil.walk_packages(root.__path__, f"{package}."):
            if info.name.endswith("__main__"):
                continue
            module = importlib.import_module(info.name)
            namespace.update(vars(module))
            if not (module.__file__ or "").endswith(".py"):
                continue  # compiled (shredstore.storage.native): its types are in a stub
            source = inspect.getsource(module)
            for node in ast.walk(ast.parse(source)):
                if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                    exec(compile(ast.Module(node.body, []), info.name, "exec"), namespace)  # noqa: S102
    return namespace


def test_public_callables_take_and_return_public_types() -> None:
    """A type a public function or method takes or returns is importable from a public module
    (measured before: `ErasureReceipt` and `Footprint` were returned and not exported)."""
    exported = exported_objects()
    namespace = annotation_namespace()
    hidden: set[str] = set()
    checked = 0
    for where, function in signatures():
        hints = typing.get_type_hints(function, globalns={**namespace, **function.__globals__})
        for hint in hints.values():
            for cls in our_classes(hint):
                checked += 1
                if id(cls) not in exported:
                    hidden.add(f"{where} names {cls.__module__}.{cls.__qualname__}")
    assert checked > 50, "the walk found too few annotations to be checking anything"
    assert sorted(hidden) == []


FENCE = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def documented_code() -> Iterator[tuple[str, str]]:
    """(where, source) of each Python block of the docs and the README, and each example."""
    for path in sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")]):
        for n, block in enumerate(FENCE.findall(path.read_text(encoding="utf-8")), 1):
            yield f"{path.relative_to(ROOT)} block {n}", block
    for path in sorted((ROOT / "examples").rglob("*.py")):
        yield str(path.relative_to(ROOT)), path.read_text(encoding="utf-8")


def imports_of(source: str) -> Iterator[tuple[str, str | None]]:
    """(module, name) for each import of shredstore or keyvault (name None: the module)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:  # a shell session or a fragment: it has no imports to check
        return
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                yield node.module, alias.name
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None


def test_docs_and_examples_import_only_public_names() -> None:
    """What users copy from the docs, the README and the examples imports public modules and
    names in their `__all__`, nothing deeper."""
    wrong: list[str] = []
    found = 0
    for where, source in documented_code():
        for module, name in imports_of(source):
            if module.split(".")[0] not in ("shredstore", "keyvault"):
                continue
            found += 1
            if module not in PUBLIC_MODULES:
                wrong.append(f"{where}: imports {module}")
            elif name is not None and name not in importlib.import_module(module).__all__:
                wrong.append(f"{where}: imports {module}.{name}, which it does not export")
    assert found > 10, "the docs' imports were not found: is the fence pattern right?"
    assert wrong == []


def test_the_checks_are_not_vacuous() -> None:
    """Each check reports what it should: an unlisted public name, a hidden type, a deep
    import."""
    module = types.ModuleType("sample")
    module.__all__ = ["shown"]  # type: ignore[attr-defined]
    module.shown = 1  # type: ignore[attr-defined]
    module.forgotten = 2  # type: ignore[attr-defined]
    module.os = importlib.import_module("os")  # type: ignore[attr-defined]
    assert public_names(module) == ["forgotten", "shown"]
    from shredstore.subject import Footprint
    assert list(our_classes(list[Footprint] | None)) == [Footprint]
    assert list(imports_of("from shredstore.records import Scope\nimport keyvault")) == [
        ("shredstore.records", "Scope"), ("keyvault", None)]
