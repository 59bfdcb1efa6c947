"""The layers of DESIGN.md hold: engines sit below operations, the API imports no torch."""

from __future__ import annotations

import ast
from pathlib import Path

SERVER = Path(__file__).resolve().parents[2] / "server" / "aiedit"


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def _offenders(package: str, forbidden) -> dict[str, list[str]]:
    found = {}
    for path in (SERVER / package).rglob("*.py"):
        bad = sorted(name for name in _imports(path) if forbidden(name))
        if bad:
            found[str(path.relative_to(SERVER))] = bad
    return found


def test_no_engine_imports_an_operation():
    assert _offenders("engines", lambda name: name.startswith("aiedit.ops")) == {}


def test_errors_are_shared_not_copied():
    from aiedit import errors
    from aiedit.ops import base

    assert base.OperationError is errors.OperationError
    assert base.Canceled is errors.Canceled


def test_api_imports_no_torch():
    heavy = {"torch", "diffusers", "transformers"}
    assert _offenders("api", lambda name: name.split(".")[0] in heavy) == {}
