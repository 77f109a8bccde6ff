"""The package's layers only point down: a module imports from its own part or from a part
on a lower layer, never from a sibling or from above (docs/architecture.md, "The layers")."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "reconciliation"

LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"_domain"}),
    frozenset({"_columnar", "_wire", "adapters", "paper"}),
    frozenset({"_publishing", "audit", "files"}),
    frozenset({"_runtime"}),
    frozenset({"metrics", "testing", "__init__"}),
    frozenset({"_cli"}),
    frozenset({"__main__"}),
)
"""Each part of the package (a subpackage, or a module at the top) on its layer, lowest first."""

RANK = {part: rank for rank, parts in enumerate(LAYERS) for part in parts}


def part_of(module: str) -> str:
    """`reconciliation._runtime.service` -> `_runtime`; the package itself -> `__init__`."""
    names = module.split(".")
    return names[1] if len(names) > 1 else "__init__"


def imports(path: Path) -> list[tuple[int, str]]:
    """Every `reconciliation...` module the file imports, with its line (type-checking ones too)."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.extend((node.lineno, name) for name in [node.module] if name.split(".")[0] == "reconciliation")
        elif isinstance(node, ast.Import):
            found.extend((node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "reconciliation")
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_part_of_the_package_is_on_a_layer() -> None:
    parts = {path.relative_to(PACKAGE).parts[0].removesuffix(".py") for path in MODULES}

    assert parts == set(RANK)


@pytest.mark.parametrize("path", MODULES, ids=lambda path: str(path.relative_to(PACKAGE)))
def test_a_module_imports_only_its_own_part_or_a_lower_layer(path: Path) -> None:
    own = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
    upward = [
        f"line {line}: {module} ({part_of(module)}, layer {RANK[part_of(module)]})"
        for line, module in imports(path)
        if part_of(module) != own and RANK[part_of(module)] >= RANK[own]
    ]

    assert upward == [], f"{own} is on layer {RANK[own]}"
