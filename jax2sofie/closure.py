"""Readable names for the arrays a converted function closes over.

Arrays the function captures instead of taking them as params (`functools.partial(module.apply,
variables)`, a lambda's free variables, a module's fields reached through `self`, a global) become
consts of the jaxpr, and a const carries nothing but its value. They are weights like params
(lowering.context.LoweringContext.closure_constant), and to name them after their pytree path
(`Dense_0/kernel`) as params are, the objects the function can reach are searched for the very same
array objects. The search is best effort: a const it does not find is named `const`.
"""
from __future__ import annotations

import functools
import inspect
import types
from typing import Any, Iterator

import jax
import numpy as np
from jax.extend import core as jcore

# how many calls deep to follow functions reached from the converted one (a lambda calling a partial
# of a bound method is three); deeper ones are rarely where weights are held
_MAX_DEPTH = 4
# packages whose functions are not searched (their objects are: a bound `module.apply`'s module is)
_LIBRARIES = {"jax", "jaxlib", "flax", "numpy", "keras", "equinox", "optax", "jax2sofie"}


def name_consts(closed: jcore.ClosedJaxpr, fn: Any) -> dict[int, str]:
    """id(const) -> readable name, for the consts of `closed` and of the closed jaxprs inside it (a
    jitted function keeps its own) that are arrays `fn` holds. The ids are those of the jaxpr's own
    const objects, which live as long as `closed`."""
    arrays = captured_arrays(fn)
    names: dict[int, str] = {}
    for const in _consts(closed):
        # a captured numpy array becomes a const that is a view of it (JAX wraps it in its own ndarray type)
        found = arrays.get(id(const)) or arrays.get(id(getattr(const, "base", None)))
        if found is not None:
            names[id(const)] = found[0]
    return names


def captured_arrays(fn: Any) -> dict[int, tuple[str, Any]]:
    """id(array) -> (readable name, array), for every array `fn` reaches through partial arguments, a
    bound method's object, closure cells, the globals it names, and the functions it reaches that way.
    The objects are kept with their ids (here and in `seen`): a leaf that flattening makes anew must
    not be freed and its id reused by another array while the search runs."""
    found: dict[int, tuple[str, Any]] = {}
    seen: dict[int, Any] = {}

    def add_tree(tree: Any, prefix: str, bare: str, depth: int) -> None:
        """The arrays of a pytree, named `prefix/path` (`bare` for a lone array without a prefix)."""
        for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
            if isinstance(leaf, (jax.Array, np.ndarray)):
                name = "/".join(part for part in (prefix, _path_name(path)) if part) or bare
                found.setdefault(id(leaf), (name, leaf))
            elif callable(leaf):
                visit(leaf, depth + 1)

    def visit(obj: Any, depth: int) -> None:
        if depth > _MAX_DEPTH or id(obj) in seen:
            return
        seen[id(obj)] = obj
        if isinstance(obj, functools.partial):
            for index, arg in enumerate(obj.args):
                add_tree(arg, "", f"arg{index}", depth)
            for key, arg in obj.keywords.items():
                add_tree(arg, key, key, depth)
            visit(obj.func, depth)
        elif inspect.ismethod(obj):
            add_tree(obj.__self__, "", "self", depth)
            visit(obj.__func__, depth)
        elif isinstance(obj, types.FunctionType):
            if _is_library(obj):  # the arrays are the user's: library code only passes them along
                return
            for name, value in _referenced_variables(obj):
                add_tree(value, name, name, depth)
        elif hasattr(obj, "__wrapped__"):  # jax.jit and functools.wraps wrappers
            visit(obj.__wrapped__, depth)
        elif not isinstance(obj, type):  # a callable object: its fields (an Equinox-style module) and __call__
            if _is_pytree_node(obj):
                add_tree(obj, "", "self", depth)
            call = getattr(type(obj), "__call__", None)
            if isinstance(call, types.FunctionType):
                visit(call, depth)

    visit(fn, 0)
    return found


def _referenced_variables(fn: types.FunctionType) -> Iterator[tuple[str, Any]]:
    """(name, value) of a function's closure cells and of the globals its code names."""
    for name, cell in zip(fn.__code__.co_freevars, fn.__closure__ or ()):
        try:
            yield name, cell.cell_contents
        except ValueError:  # a cell not yet assigned
            continue
    for name in _global_names(fn.__code__):
        value = fn.__globals__.get(name)
        if value is not None and not isinstance(value, types.ModuleType):
            yield name, value


def _global_names(code: types.CodeType) -> Iterator[str]:
    """The global names a code object uses, with those of the functions defined inside it (a loop body
    defined in the converted function reads the weights, not the function itself)."""
    yield from code.co_names
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _global_names(const)


def _is_library(fn: types.FunctionType) -> bool:
    package = (getattr(fn, "__module__", None) or "").split(".")[0]
    return package in _LIBRARIES


def _is_pytree_node(obj: Any) -> bool:
    """Whether flattening `obj` looks inside it (a registered pytree), rather than giving obj itself."""
    leaves = jax.tree_util.tree_leaves(obj)
    return not (len(leaves) == 1 and leaves[0] is obj)


def _consts(closed: jcore.ClosedJaxpr) -> Iterator[Any]:
    """The consts of a closed jaxpr and of every closed jaxpr nested in its equations."""
    yield from closed.consts
    yield from _nested_consts(closed.jaxpr)


def _nested_consts(jaxpr: jcore.Jaxpr) -> Iterator[Any]:
    for eqn in jaxpr.eqns:
        for param in eqn.params.values():
            for sub in param if isinstance(param, (tuple, list)) else (param,):
                if isinstance(sub, jcore.ClosedJaxpr):
                    yield from _consts(sub)
                elif isinstance(sub, jcore.Jaxpr):
                    yield from _nested_consts(sub)


def _path_name(path) -> str:
    from .trace import path_name  # imported here: trace.py imports this module
    return path_name(path) if path else ""
