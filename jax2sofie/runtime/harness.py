"""C++ harness exposing a SOFIE-generated ``Session`` through a small ``extern "C"`` API.

What SOFIE (PyPI ``sofie`` 0.1.0) generates, and what the harness relies on:

* ``namespace SOFIE_<name> { struct Session { Session(std::string path = "<name>.dat",
  size_t p1 = 0, ...); ... infer(...); }; }``. The constructor always takes a string first,
  even with ``kNoWeightFile`` or with no weights at all (``Session(std::string = "")``); with
  ``kSafetensorsWeightFile`` there is also a ``Session(SafetensorsBlob, ...)`` overload.
* The constructor's shape parameters are the model's dynamic dims in *sorted* (byte-wise) order,
  they are the *maximum* sizes, and default to 0.
* ``infer`` interleaves shape parameters and input pointers: for each input, the symbolic dims
  not seen in an earlier input come first, then ``T const*``; e.g. inputs ``x[n,bs]``,
  ``z[bs,m]`` give ``infer(size_t n, size_t bs, float const* x, size_t m, float const* z)``
  while the constructor is ``Session(std::string, size_t bs, size_t m, size_t n)``.
* ``infer`` returns ``std::vector<T>`` for one output, ``std::vector<std::vector<T>>`` for
  several outputs of one type and ``std::tuple<std::vector<T1>, ...>`` for mixed types. Bool
  tensors are ``uint8_t``.

The harness is generic C++17: the argument types of ``Session::infer`` and its return type are
deduced with templates (pointer arguments take inputs, others take shape parameters); only the
mapping of size_t arguments to shape-parameter *names* comes from Python, which reads the names
from the header (:func:`parse_session_signature`) or, failing that, applies the convention above.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Optional, Sequence, Union

import numpy as np

from .templates import fill_template

__all__ = [
    "TensorSpec",
    "SessionSignature",
    "parse_session_signature",
    "conventional_signature",
    "generate_harness_source",
    "HARNESS_ABI_VERSION",
    "KIND_CODES",
]

HARNESS_ABI_VERSION = 1

Dim = Union[int, str]


@dataclass(frozen=True)
class TensorSpec:
    """An input or output tensor of a model: name, numpy dtype and shape.

    Dims are ints or strings; a string is a shape parameter name (``"bs"``) or an arithmetic
    expression of shape parameters (``"bs*3"``, ``"(n + 1) // 2"``).
    """

    name: str
    dtype: np.dtype
    shape: tuple = ()

    def __post_init__(self):
        object.__setattr__(self, "dtype", np.dtype(self.dtype))
        shape = tuple(d if isinstance(d, str) else int(d) for d in self.shape)
        for d in shape:
            if isinstance(d, int) and d < 0:
                raise ValueError(f"TensorSpec {self.name!r}: negative dim {d} in {shape}")
        object.__setattr__(self, "shape", shape)

    def symbols(self) -> list:
        """Names of the shape parameters used by this spec's dims, in order of appearance."""
        out = []
        for d in self.shape:
            if isinstance(d, str):
                for s in _expr_names(d):
                    if s not in out:
                        out.append(s)
        return out

    def resolve(self, shape_values: dict) -> tuple:
        """The concrete shape, with symbolic dims evaluated from ``shape_values``."""
        return tuple(d if isinstance(d, int) else eval_dim(d, shape_values, self.name) for d in self.shape)


# --------------------------------------------------------------------------------------------
# symbolic dims
# --------------------------------------------------------------------------------------------

import ast as _ast
import operator as _op

_BINOPS = {
    _ast.Add: _op.add,
    _ast.Sub: _op.sub,
    _ast.Mult: _op.mul,
    _ast.FloorDiv: _op.floordiv,
    _ast.Div: _op.floordiv,  # dims are integers; SOFIE's size_t division truncates
    _ast.Mod: _op.mod,
}


def _expr_names(expr: str) -> list:
    try:
        tree = _ast.parse(expr.strip(), mode="eval")
    except SyntaxError:
        raise ValueError(f"cannot parse symbolic dim {expr!r}") from None
    return [n.id for n in _ast.walk(tree) if isinstance(n, _ast.Name)]


def eval_dim(expr: str, values: dict, what: str = "") -> int:
    """Evaluate a symbolic dim (a name or + - * / // % expression of names and ints)."""

    def ev(node):
        if isinstance(node, _ast.Expression):
            return ev(node.body)
        if isinstance(node, _ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, _ast.Name):
            if node.id not in values:
                raise KeyError(node.id)
            return int(values[node.id])
        if isinstance(node, _ast.BinOp) and type(node.op) in _BINOPS:
            return _BINOPS[type(node.op)](ev(node.left), ev(node.right))
        if isinstance(node, _ast.UnaryOp) and isinstance(node.op, (_ast.UAdd, _ast.USub)):
            v = ev(node.operand)
            return v if isinstance(node.op, _ast.UAdd) else -v
        raise ValueError(f"unsupported symbolic dim expression {expr!r}")

    try:
        tree = _ast.parse(expr.strip(), mode="eval")
    except SyntaxError:
        raise ValueError(f"cannot parse symbolic dim {expr!r}") from None
    try:
        v = ev(tree)
    except KeyError as e:
        where = f" of {what!r}" if what else ""
        raise ValueError(
            f"shape parameter {e.args[0]!r} (in dim {expr!r}{where}) has no value; pass it as "
            f"run(..., {e.args[0]}=N) or give an input that has it"
        ) from None
    if v < 0:
        raise ValueError(f"symbolic dim {expr!r} evaluates to {v} < 0 with {values}")
    return int(v)


# --------------------------------------------------------------------------------------------
# reading the generated header
# --------------------------------------------------------------------------------------------


@dataclass
class SessionSignature:
    """What the harness needs to know about ``Session``'s constructor and ``infer``.

    ``ctor_shape_params``: names of the constructor's size_t parameters, in order.
    ``infer_shape_params``: names of infer's non-pointer parameters, in order.
    ``n_infer_inputs``: number of pointer parameters of infer.
    ``default_weight_file``: default of the constructor's string parameter ("" if none).
    ``parsed``: True when read from the header, False when derived by convention.
    """

    ctor_shape_params: list
    infer_shape_params: list
    n_infer_inputs: int
    default_weight_file: str = ""
    parsed: bool = True
    namespaces: list = field(default_factory=list)

    @property
    def shape_params(self) -> list:
        out = list(self.ctor_shape_params)
        out += [p for p in self.infer_shape_params if p not in out]
        return out


_RE_NAMESPACE = re.compile(r"\bnamespace\s+SOFIE_(\w+)\s*\{")
_RE_CTOR = re.compile(r"\bSession\s*\(([^()]*)\)\s*(?::|\{)")
_RE_INFER = re.compile(r"\binfer\s*\(([^()]*)\)\s*(?:const\s*)?(?:noexcept\s*)?\{")
_RE_IDENT_TAIL = re.compile(r"([A-Za-z_]\w*)\s*$")


def _split_params(text: str) -> list:
    text = text.strip()
    if not text or text == "void":
        return []
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch in "<([{":
            depth += 1
        elif ch in ">)]}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return [p.strip() for p in parts]


def _param_decl(p: str):
    """(type, name or None, default or None) of one parameter declaration."""
    default = None
    if "=" in p:
        p, default = p.split("=", 1)
        default = default.strip()
    p = p.strip()
    m = _RE_IDENT_TAIL.search(p)
    typ, name = p, None
    if m:
        head = p[: m.start()].strip()
        # "size_t bs" -> name bs; "std::string" alone -> no name; "float const* x" -> name x
        if head and not head.endswith("::"):
            typ, name = head, m.group(1)
    return typ, name, default


_SIZE_TYPES = {"size_t", "std::size_t", "int", "int64_t", "std::int64_t", "long", "unsigned",
               "unsigned long", "uint64_t", "std::uint64_t", "int32_t", "std::int32_t"}


def _session_body(text: str, model_name: Optional[str]) -> str:
    start = 0
    if model_name:
        m = re.search(r"\bnamespace\s+SOFIE_" + re.escape(model_name) + r"\s*\{", text)
        if m:
            start = m.end()
    m = re.search(r"\bstruct\s+Session\s*\{", text[start:])
    if not m:
        return ""
    body_start = start + m.end()
    end = text.find("end of Session", body_start)
    if end < 0:
        # fall back to brace matching
        depth, i = 1, body_start
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        end = i
    return text[body_start:end]


def parse_session_signature(header_text: str, model_name: Optional[str] = None) -> Optional[SessionSignature]:
    """Read the Session constructor's and infer's parameters from a SOFIE header (None if not found)."""
    namespaces = list(dict.fromkeys(_RE_NAMESPACE.findall(header_text)))
    body = _session_body(header_text, model_name)
    if not body:
        return None
    ctor = None
    for m in _RE_CTOR.finditer(body):
        params = [_param_decl(p) for p in _split_params(m.group(1))]
        if not params or "string" in params[0][0] or all(t in _SIZE_TYPES for t, _, _ in params):
            ctor = params
            break
    inf = _RE_INFER.search(body)
    if ctor is None or inf is None:
        return None
    default_file = ""
    ctor_shapes = []
    for typ, name, default in ctor:
        if "string" in typ:
            if default and default.startswith('"') and default.endswith('"'):
                default_file = default[1:-1]
        elif typ in _SIZE_TYPES and name:
            ctor_shapes.append(name)
        else:
            return None
    infer_shapes, n_inputs = [], 0
    for typ, name, _ in (_param_decl(p) for p in _split_params(inf.group(1))):
        if "*" in typ:
            n_inputs += 1
        elif typ in _SIZE_TYPES and name:
            infer_shapes.append(name)
        else:
            return None
    return SessionSignature(ctor_shapes, infer_shapes, n_inputs, default_file, True, namespaces)


def conventional_signature(inputs: Sequence[TensorSpec], shape_params: Sequence[str] = ()) -> SessionSignature:
    """SOFIE's convention: constructor takes the params sorted, infer interleaves them with inputs."""
    infer_order = []
    for spec in inputs:
        for s in spec.symbols():
            if s not in infer_order:
                infer_order.append(s)
    for s in shape_params:
        if s not in infer_order:
            infer_order.append(s)
    return SessionSignature(sorted(infer_order), infer_order, len(inputs), "", False)


# --------------------------------------------------------------------------------------------
# harness source
# --------------------------------------------------------------------------------------------

# kind codes reported by the harness: 'f' floating, 'i' signed integer, 'u' unsigned, 'b' bool
KIND_CODES = {ord("f"): "f", ord("i"): "i", ord("u"): "u", ord("b"): "b", ord("?"): "?"}

# the C++ of the harness, with @NAME@ placeholders that generate_harness_source fills in (package data)
_HARNESS_TEMPLATE = "harness.cpp.in"


def generate_harness_source(
    model_name: str,
    header_include: str,
    shape_params: Sequence[str],
    signature: SessionSignature,
    n_inputs: int,
) -> str:
    """C++ source of the harness for ``SOFIE_<model_name>::Session`` declared in ``header_include``.

    ``shape_params`` is the canonical order of shape-parameter values passed at run time; the
    signature maps the constructor's and infer's size_t arguments onto it.
    """
    if not re.fullmatch(r"[A-Za-z_]\w*", model_name):
        raise ValueError(f"invalid model name {model_name!r}")
    if '"' in header_include or "\n" in header_include:
        raise ValueError(f"invalid header include {header_include!r}")
    idx = {p: i for i, p in enumerate(shape_params)}
    missing = [p for p in list(signature.ctor_shape_params) + list(signature.infer_shape_params) if p not in idx]
    if missing:
        raise ValueError(f"shape parameters {missing} of the Session are not among {list(shape_params)}")
    ctor = ", ".join(str(idx[p]) for p in signature.ctor_shape_params)
    infer = ", ".join(str(idx[p]) for p in signature.infer_shape_params)
    return fill_template(_HARNESS_TEMPLATE, {
        "abi": HARNESS_ABI_VERSION,
        "header": header_include,
        "model": model_name,
        "nshape": len(shape_params),
        "nin": n_inputs,
        "nctor": len(signature.ctor_shape_params),
        "ctor": ctor,
        "ninfer": len(signature.infer_shape_params),
        "infer": infer,
    })
