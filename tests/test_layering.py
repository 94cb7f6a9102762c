"""The package's layers import downwards only (docs/architecture.md).

Lowest first: errors; ir (the graph); ops (what lowering and passes both build on: C++ expressions,
constant folding); passes (graph to graph); lowering (jaxpr to graph; a while loop's body runs the
passes on its own graph). runtime (compile, load and compare generated C++) stands beside them and
knows none of them. Everything else (trace, convert, emit, model, cli, rdf, ...) sits on top.
Every import is read from the source with `ast`, also the ones inside functions.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "jax2sofie"

# layer -> the layers of jax2sofie it may import (besides itself)
MAY_IMPORT = {
    "errors": set(),
    "ir": {"errors"},
    "ops": {"ir", "errors"},
    "passes": {"ops", "ir", "errors"},
    "lowering": {"passes", "ops", "ir", "errors"},
    "runtime": {"errors"},
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(source: str, package: str) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in `source`, a module of `package` (relative
    imports resolved as Python does); `from X import y` gives X.y too, since y may be a module."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            found.append((node.lineno, target))
            found += [(node.lineno, f"{target}.{alias.name}") for alias in node.names]
    return found


def _layer(module: str) -> str | None:
    """The layer of a jax2sofie module: its first component under jax2sofie when that is a module or
    package of it (not a name the package exports), None for anything else."""
    parts = module.split(".")
    if parts[0] != "jax2sofie" or len(parts) == 1:
        return None
    name = parts[1]
    if (PACKAGE / name).is_dir() or (PACKAGE / f"{name}.py").is_file() or any(PACKAGE.glob(f"{name}.*.so")):
        return name
    return None


def _layer_files(layer: str) -> list[Path]:
    directory = PACKAGE / layer
    return sorted(directory.rglob("*.py")) if directory.is_dir() else [PACKAGE / f"{layer}.py"]


def _wrong_imports(layer: str) -> list[str]:
    allowed = MAY_IMPORT[layer] | {layer}
    wrong = []
    for path in _layer_files(layer):
        module = _module_name(path)
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for line, imported in imported_modules(path.read_text(), package):
            target = _layer(imported)
            if target is not None and target not in allowed:
                wrong.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {imported}")
    return wrong


@pytest.mark.parametrize("layer", sorted(MAY_IMPORT))
def test_layer_imports_only_the_layers_below(layer):
    files = _layer_files(layer)
    assert files and all(f.is_file() for f in files), f"no sources for the layer {layer}"
    wrong = _wrong_imports(layer)
    assert not wrong, f"the layer {layer} may import only {sorted(MAY_IMPORT[layer])}:\n" + "\n".join(wrong)


def test_the_reader_resolves_relative_imports_and_sees_an_upward_one():
    source = "from ..lowering.context import LoweringContext\nfrom .. import convert\nfrom .cse import x\n" \
             "def f():\n    from jax2sofie.runtime import find_blas\n"
    layers = {_layer(m) for _, m in imported_modules(source, "jax2sofie.passes")}
    assert layers == {"lowering", "convert", "passes", "runtime", None}
    # `from jax2sofie import ConversionError` names an export, not a module: no layer
    assert _layer("jax2sofie.ConversionError") is None
