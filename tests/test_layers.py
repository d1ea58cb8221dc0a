"""The architecture, checked: imports only go down the layers of DESIGN.md, and
no module reads a private name that another module defines."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "acid"

#: Bottom-up; a module may import modules of its own layer or below.
LAYERS: list[set[str]] = [
    {"acid.errors"},
    {
        "acid.keylib",
        "acid._keylib_py",
        "acid._keylib_groups",
        "acid._keylib_exact",
        "acid._keylib",
    },
    {"acid.engines", "acid.encoders", "acid._query", "acid._txn", "acid._retry"},
    {"acid._text", "acid._fields"},
    {"acid._spec", "acid._plan"},
    {"acid._layout", "acid._ttl"},
    {"acid.store", "acid._schema", "acid._ops"},
    {"acid.index", "acid._atomic", "acid._expiry"},
    # Collection.query() returns a Query; query.py knows Collection by type only.
    {"acid.query", "acid._facade"},
    {"acid.collection", "acid.blobs", "acid._bulk", "acid._online", "acid._writepath"},
    {"acid.aio", "acid._aio_threads"},
    {"acid.core", "acid.testing", "acid.tools"},
    {"acid"},
    {"acid.cli", "acid.__main__"},
]
#: Upward imports the design allows: add_collection creates a Collection.
ALLOWED_UPWARD = {("acid.store", "acid.collection"), ("acid.store", "acid.blobs")}


def layer_of(module: str) -> int:
    for level, names in enumerate(LAYERS):
        for name in names:
            if module == name or module.startswith(name + "."):
                return level
    raise AssertionError(f"{module} is in no layer of tests/test_layers.py")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def runtime_imports(tree: ast.Module) -> list[tuple[str, int]]:
    """``acid`` imports outside ``if TYPE_CHECKING:`` blocks."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for child in node.body for n in ast.walk(child))
    found = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "acid":
                found += [(f"acid.{a.name}", node.lineno) for a in node.names]
            elif node.module.startswith("acid."):
                found.append((node.module, node.lineno))
        elif isinstance(node, ast.Import):
            found += [
                (a.name, node.lineno) for a in node.names if a.name.startswith("acid")
            ]
    return found


@pytest.mark.parametrize("path", sources(), ids=lambda p: module_name(p))
def test_imports_go_down(path: Path) -> None:
    me = module_name(path)
    mine = layer_of(me)
    for target, line in runtime_imports(ast.parse(path.read_text())):
        if target in {"acid.errors", "acid.keylib"} or target.startswith(me):
            continue
        if (me, target) in ALLOWED_UPWARD:
            continue
        assert layer_of(target) <= mine, f"{me}:{line} imports {target} (upward)"


def is_module(package: str, name: str) -> bool:
    """Whether ``package.name`` is a module of acid (private modules are fine)."""
    base = PACKAGE.parent.joinpath(*package.split("."))
    return (base / f"{name}.py").exists() or any(base.glob(f"{name}.*.so"))


def defined_private_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            names.add(node.value)  # __slots__ entries
    return {n for n in names if n.startswith("_")}


@pytest.mark.parametrize("path", sources(), ids=lambda p: module_name(p))
def test_no_foreign_private_names(path: Path) -> None:
    tree = ast.parse(path.read_text())
    own = defined_private_names(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                private = alias.name.startswith("_") and not alias.name.startswith("__")
                assert not private or is_module(node.module, alias.name), (
                    f"{module_name(path)}:{node.lineno} imports private "
                    f"{alias.name} from {node.module}"
                )
        if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
            attr = node.attr
            if not attr.startswith("_") or attr.startswith("__") or attr in own:
                continue
            raise AssertionError(
                f"{module_name(path)}:{node.lineno} reads {ast.unparse(node)}, "
                "a private name defined in another module"
            )


def test_the_layer_table_names_every_module() -> None:
    for path in sources():
        layer_of(module_name(path))
