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

_HARNESS_TEMPLATE = r"""// jax2sofie runtime harness, ABI @ABI@ -- generated, do not edit
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "@HEADER@"

#define J2S_API extern "C" __attribute__((visibility("default")))

namespace j2s_harness {

using Session = ::SOFIE_@MODEL@::Session;

constexpr int kNumShapeParams = @NSHAPE@;
constexpr int kNumInputs = @NIN@;
// canonical shape-parameter index of each size_t argument of the constructor / of infer
constexpr std::array<int, @NCTOR@> kCtorShape{{@CTOR@}};
constexpr std::array<int, @NINFER@> kInferShape{{@INFER@}};

template <class...> constexpr bool dependent_false = false;

template <class F> struct Fn;
template <class R, class C, class... A> struct Fn<R (C::*)(A...)> {
   using Ret = R;
   using Args = std::tuple<A...>;
};
template <class R, class C, class... A> struct Fn<R (C::*)(A...) const> : Fn<R (C::*)(A...)> {};
template <class R, class C, class... A> struct Fn<R (C::*)(A...) noexcept> : Fn<R (C::*)(A...)> {};
template <class R, class C, class... A> struct Fn<R (C::*)(A...) const noexcept> : Fn<R (C::*)(A...)> {};

using InferFn = Fn<decltype(&Session::infer)>;
using InferArgs = typename InferFn::Args;
using InferRet = std::decay_t<typename InferFn::Ret>;
constexpr std::size_t kInferArity = std::tuple_size<InferArgs>::value;

template <std::size_t I> using ArgT = std::decay_t<std::tuple_element_t<I, InferArgs>>;

template <std::size_t... I>
constexpr std::array<bool, sizeof...(I)> input_mask(std::index_sequence<I...>)
{
   return {{std::is_pointer<ArgT<I>>::value...}};
}
constexpr std::array<bool, kInferArity> kIsInput = input_mask(std::make_index_sequence<kInferArity>{});

constexpr std::size_t count_before(std::size_t pos, bool input)
{
   std::size_t n = 0;
   for (std::size_t i = 0; i < pos; ++i)
      if (kIsInput[i] == input)
         ++n;
   return n;
}

static_assert(count_before(kInferArity, true) == kNumInputs,
              "jax2sofie: Session::infer takes a different number of input tensors than the input specs given");
static_assert(count_before(kInferArity, false) == kInferShape.size(),
              "jax2sofie: Session::infer takes a different number of shape parameters than expected");

template <class T> constexpr int kind_code()
{
   using U = std::remove_cv_t<T>;
   if constexpr (std::is_same<U, bool>::value)
      return 'b';
   else if constexpr (std::is_floating_point<U>::value)
      return 'f';
   else if constexpr (std::is_integral<U>::value && std::is_signed<U>::value)
      return 'i';
   else if constexpr (std::is_integral<U>::value)
      return 'u';
   else
      return '?';
}

template <std::size_t I>
auto infer_arg(const std::int64_t *sp, const void *const *in)
{
   using A = ArgT<I>;
   if constexpr (std::is_pointer<A>::value) {
      return static_cast<A>(const_cast<void *>(in[count_before(I, true)]));
   } else {
      static_assert(std::is_arithmetic<A>::value, "jax2sofie: unsupported argument type of Session::infer");
      return static_cast<A>(sp[kInferShape[count_before(I, false)]]);
   }
}

template <std::size_t... I>
InferRet call_infer(Session &s, const std::int64_t *sp, const void *const *in, std::index_sequence<I...>)
{
   return s.infer(infer_arg<I>(sp, in)...);
}

template <std::size_t I> void input_meta_one(int *kinds, int *sizes)
{
   using A = ArgT<I>;
   if constexpr (std::is_pointer<A>::value) {
      using E = std::remove_pointer_t<A>;
      kinds[count_before(I, true)] = kind_code<E>();
      sizes[count_before(I, true)] = static_cast<int>(sizeof(E));
   }
}
template <std::size_t... I> void input_meta(int *kinds, int *sizes, std::index_sequence<I...>)
{
   (void)kinds;
   (void)sizes;
   (input_meta_one<I>(kinds, sizes), ...);
}

// ---- outputs: std::vector<T> | std::vector<std::vector<T>> | std::tuple<std::vector<T>...>
template <class T> struct is_vec : std::false_type {};
template <class T, class A> struct is_vec<std::vector<T, A>> : std::true_type {};
template <class T> struct is_tup : std::false_type {};
template <class... T> struct is_tup<std::tuple<T...>> : std::true_type {};
template <class T> struct is_vec_of_vec : std::false_type {};
template <class T, class A> struct is_vec_of_vec<std::vector<T, A>> : is_vec<T> {};

template <class R> constexpr int static_num_outputs()
{
   if constexpr (is_vec_of_vec<R>::value) {
      return -1; // known at run time only
   } else if constexpr (is_vec<R>::value) {
      return 1;
   } else if constexpr (is_tup<R>::value) {
      return static_cast<int>(std::tuple_size<R>::value);
   } else {
      static_assert(dependent_false<R>, "jax2sofie: unsupported return type of Session::infer");
      return 0;
   }
}

template <class V> void output_meta_one(int i, int *kind, int *size)
{
   using E = typename V::value_type;
   (void)i;
   *kind = kind_code<E>();
   *size = static_cast<int>(sizeof(E));
}

template <class Tup, std::size_t... I> void tuple_output_meta(int i, int *kind, int *size, std::index_sequence<I...>)
{
   ((i == static_cast<int>(I) ? output_meta_one<std::tuple_element_t<I, Tup>>(i, kind, size) : void()), ...);
}

template <class R> void output_meta(int i, int *kind, int *size)
{
   *kind = '?';
   *size = 0;
   if constexpr (is_vec_of_vec<R>::value)
      output_meta_one<typename R::value_type>(i, kind, size);
   else if constexpr (is_vec<R>::value)
      output_meta_one<R>(i, kind, size);
   else if constexpr (is_tup<R>::value)
      tuple_output_meta<R>(i, kind, size, std::make_index_sequence<std::tuple_size<R>::value>{});
}

struct OutBufs {
   void *const *ptr;
   const std::int64_t *cap;
   std::int64_t *size;
   int n;
   std::string err;
};

template <class V> void copy_one(const V &v, int i, OutBufs &o)
{
   if (i >= o.n)
      return;
   const auto n = static_cast<std::int64_t>(v.size());
   o.size[i] = n;
   if (n > o.cap[i]) {
      if (o.err.empty())
         o.err = "output " + std::to_string(i) + " has " + std::to_string(n) +
                 " elements but its buffer holds " + std::to_string(o.cap[i]);
      return;
   }
   using E = typename V::value_type;
   std::copy(v.begin(), v.end(), static_cast<E *>(o.ptr[i]));
}

template <class R> void copy_outputs(const R &r, OutBufs &o)
{
   int count = 0;
   if constexpr (is_vec_of_vec<R>::value) {
      count = static_cast<int>(r.size());
      for (int i = 0; i < count; ++i)
         copy_one(r[i], i, o);
   } else if constexpr (is_vec<R>::value) {
      count = 1;
      copy_one(r, 0, o);
   } else if constexpr (is_tup<R>::value) {
      count = static_cast<int>(std::tuple_size<R>::value);
      int i = 0;
      std::apply([&](const auto &...v) { (copy_one(v, i++, o), ...); }, r);
   }
   if (count != o.n)
      o.err = "Session::infer returned " + std::to_string(count) + " outputs but " + std::to_string(o.n) +
              " output specs were given";
}

template <std::size_t... I> Session *create(const char *path, const std::int64_t *sp, std::index_sequence<I...>)
{
   (void)sp;
   if constexpr (std::is_constructible<Session, std::string, decltype((void)I, std::size_t{})...>::value)
      return new Session(std::string(path ? path : ""), static_cast<std::size_t>(sp[kCtorShape[I]])...);
   else if constexpr (std::is_constructible<Session, decltype((void)I, std::size_t{})...>::value)
      return new Session(static_cast<std::size_t>(sp[kCtorShape[I]])...);
   else  // the condition must depend on I: Clang evaluates a non-dependent one when it parses the template
      static_assert(dependent_false<std::index_sequence<I...>>,
                    "jax2sofie: Session can be constructed neither from (std::string, size_t...) nor (size_t...)");
}

constexpr bool ctor_takes_path()
{
   return std::is_constructible<Session, std::string>::value;
}

void set_err(char *buf, std::size_t cap, const std::string &msg)
{
   if (!buf || cap == 0)
      return;
   std::size_t n = std::min(cap - 1, msg.size());
   std::memcpy(buf, msg.data(), n);
   buf[n] = '\0';
}

} // namespace j2s_harness

using namespace j2s_harness;

J2S_API int j2s_abi_version() { return @ABI@; }
J2S_API int j2s_num_shape_params() { return kNumShapeParams; }
J2S_API int j2s_num_inputs() { return kNumInputs; }
J2S_API int j2s_num_outputs() { return static_num_outputs<InferRet>(); }
J2S_API int j2s_ctor_takes_path() { return ctor_takes_path() ? 1 : 0; }

J2S_API void j2s_input_type(int i, int *kind, int *size)
{
   int kinds[kNumInputs + 1] = {0};
   int sizes[kNumInputs + 1] = {0};
   input_meta(kinds, sizes, std::make_index_sequence<kInferArity>{});
   *kind = (i >= 0 && i < kNumInputs) ? kinds[i] : 0;
   *size = (i >= 0 && i < kNumInputs) ? sizes[i] : 0;
}

J2S_API void j2s_output_type(int i, int *kind, int *size)
{
   output_meta<InferRet>(i, kind, size);
}

J2S_API void *j2s_create(const char *weight_path, const std::int64_t *shape_values, char *err, std::size_t errcap)
{
   try {
      return create(weight_path, shape_values, std::make_index_sequence<kCtorShape.size()>{});
   } catch (const std::exception &e) {
      set_err(err, errcap, e.what());
   } catch (...) {
      set_err(err, errcap, "unknown C++ exception in the Session constructor");
   }
   return nullptr;
}

J2S_API int j2s_infer(void *session, const std::int64_t *shape_values, const void *const *inputs,
                      void *const *outputs, const std::int64_t *capacities, std::int64_t *sizes, int n_outputs,
                      char *err, std::size_t errcap)
{
   if (!session) {
      set_err(err, errcap, "null session");
      return 3;
   }
   try {
      InferRet r = call_infer(*static_cast<Session *>(session), shape_values, inputs,
                              std::make_index_sequence<kInferArity>{});
      OutBufs o{outputs, capacities, sizes, n_outputs, {}};
      copy_outputs<InferRet>(r, o);
      if (!o.err.empty()) {
         set_err(err, errcap, o.err);
         return 1;
      }
      return 0;
   } catch (const std::exception &e) {
      set_err(err, errcap, e.what());
   } catch (...) {
      set_err(err, errcap, "unknown C++ exception in Session::infer");
   }
   return 2;
}

J2S_API void j2s_destroy(void *session)
{
   try {
      delete static_cast<Session *>(session);
   } catch (...) {
   }
}
"""


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
    src = _HARNESS_TEMPLATE
    for k, v in {
        "@ABI@": str(HARNESS_ABI_VERSION),
        "@HEADER@": header_include,
        "@MODEL@": model_name,
        "@NSHAPE@": str(len(shape_params)),
        "@NIN@": str(n_inputs),
        "@NCTOR@": str(len(signature.ctor_shape_params)),
        "@CTOR@": ctor,
        "@NINFER@": str(len(signature.infer_shape_params)),
        "@INFER@": infer,
    }.items():
        src = src.replace(k, v)
    return src
