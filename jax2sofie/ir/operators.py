"""The operator table: every operator a jax2sofie graph may hold, and what the Python side knows about it.

The names are the ones `jax2sofie._native.push` understands (csrc/op_table.cpp); each entry says
- kind: what the operator does, which decides how the passes treat it:
    unary       one input, output of its shape, element by element (layout-agnostic: sink_transposes
                moves Transposes through it; the verifier checks the output keeps the input's shape);
    arithmetic  element by element over inputs broadcast like numpy;
    comparison  as arithmetic, bool output;
    select      Where(cond, x, y), broadcast like numpy;
    expression  J2S_Elementwise: a C++ expression of broadcast inputs (a fused loop);
    movement    reshapes, transposes, copies, slices, gathers;
    reduction   reductions, scans, sorts;
    linalg      products, decompositions, solvers;
    conv        convolutions and pooling;
    control     loops over sub-models;
- inputs: how many inputs the native factory accepts, (least, most), most None for any number (the
  verifier, ir/verify.py, refuses a node of another count, and a node whose operator is not here);
- dtypes: the values of the `dtype` attribute (the input element type) the factory accepts, or None
  where the factory reads its types otherwise (see its comment in csrc/);
- broadcasting: whether its inputs broadcast against each other like numpy (passes/broadcasts.py
  drops an Expand before such a reader);
- fusion: its float32 C++ expression for passes/elementwise_fusion.py, over the argument expressions
  {0}, {1}, ... (or {all}: all of them, comma-separated), written as SOFIE's own generated code
  computes it; an argument used twice is computed once. "@name" names a function of
  ops/expressions.py instead (tanh, exp, sigmoid: vectorisable forms of the libm calls);
- fused_alone: fuse_elementwise rewrites it as J2S_Elementwise even when nothing fuses with it (the
  expression is faster than SOFIE's own operator);
- primitives: the JAX primitives lowering/elementwise.py lowers straight to it (unary, arithmetic and
  comparison operators only).

Adding an operator:
1. its factory in csrc/ (ops_*.cpp), registered in OpTable() of csrc/op_table.cpp; rebuild _native;
2. one entry in _TABLE below (name as registered, kind, inputs; dtypes where the factory reads a
   `dtype` attribute; fusion only for float32 element-by-element operators);
3. a lowering or pass that emits it, with a catalog case (lowering/catalog.py) whose conversion
   does, and a case in tests/test_native.py: tests/test_operators.py fails for a native operator that
   no conversion emits, and for a name that is in one of the two tables but not the other.
A new kind (one the passes must treat differently) goes into KINDS, and into the users that decide by
kind: ir/verify.py (OP_CHECKS), passes/layout.py.
"""
from __future__ import annotations

from dataclasses import dataclass

FLOAT = ("float32",)
NUMERIC = ("float32", "int32", "int64")
ANY = ("float32", "float64", "int32", "int64", "bool")

KINDS = ("unary", "arithmetic", "comparison", "select", "expression", "movement", "reduction", "linalg",
         "conv", "control")
# the kinds computed element by element over numpy-broadcast inputs: layout-agnostic, and their output
# shape is the broadcast of the input shapes (the verifier checks it)
ELEMENTWISE_BROADCASTING_KINDS = ("arithmetic", "comparison", "select")


@dataclass(frozen=True)
class Operator:
    name: str
    kind: str
    inputs: tuple[int, int | None]
    dtypes: tuple[str, ...] | None = None
    broadcasting: bool = False
    fusion: str | None = None
    fused_alone: bool = False
    primitives: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"operator '{self.name}': kind '{self.kind}' is not one of {KINDS}")
        if self.fused_alone and self.fusion is None:
            raise ValueError(f"operator '{self.name}': fused_alone needs a fusion expression")
        if self.primitives and self.kind not in ("unary", "arithmetic", "comparison"):
            raise ValueError(f"operator '{self.name}': only unary, arithmetic and comparison operators "
                             "list the primitives lowered straight to them")

    def accepts_inputs(self, count: int) -> bool:
        least, most = self.inputs
        return count >= least and (most is None or count <= most)


def _unary(name: str, fusion: str | None = None, dtypes=FLOAT, **more) -> Operator:
    return Operator(name, "unary", (1, 1), dtypes, fusion=fusion, **more)


def _arithmetic(name: str, fusion: str | None, inputs=(2, 2), **more) -> Operator:
    return Operator(name, "arithmetic", inputs, NUMERIC, broadcasting=True, fusion=fusion, **more)


def _comparison(name: str, primitive: str) -> Operator:
    return Operator(name, "comparison", (2, 2), NUMERIC, broadcasting=True, primitives=(primitive,))


def _project(name: str, kind: str, inputs: tuple[int, int | None], dtypes=None) -> Operator:
    return Operator(name, kind, inputs, dtypes)


_TABLE = [
    # element-wise unary (SOFIE's operators, float32)
    _unary("Neg", "(-{0})", primitives=("neg",)),
    _unary("Exp", "@exp", fused_alone=True, primitives=("exp",)),
    _unary("Log", "std::log({0})", primitives=("log",)),
    _unary("Sqrt", "std::sqrt({0})", primitives=("sqrt",)),
    _unary("Reciprocal", "(1.0f / {0})"),
    _unary("Abs", "std::abs({0})"),
    _unary("Sin", "std::sin({0})"),
    _unary("Cos", "std::cos({0})"),
    _unary("Floor", "std::floor({0})"),
    _unary("Atan", "std::atan({0})"),
    _unary("Asinh", "std::asinh({0})"),
    _unary("Acosh", "std::acosh({0})"),
    _unary("Atanh", "std::atanh({0})"),
    _unary("Erf", "@erf", fused_alone=True),
    _unary("Tanh", "@tanh", fused_alone=True, primitives=("tanh",)),
    _unary("Sigmoid", "@sigmoid", fused_alone=True, primitives=("logistic",)),
    _unary("Relu", "({0} > 0 ? {0} : 0.0f)"),  # SOFIE's Relu: ((x > 0) ? x : 0)
    _unary("Identity", dtypes=("float32", "int32", "int64", "bool")),
    _unary("Cast", dtypes=ANY),
    _unary("Not", dtypes=("bool",)),
    # element-wise, broadcasting (SOFIE's operators; add_any: the sum of two tangents or cotangents,
    # left by jax.jvp, jax.linearize and jax.grad)
    _arithmetic("Add", "({0} + {1})", fused_alone=True, primitives=("add", "add_any")),
    _arithmetic("Sub", "({0} - {1})", fused_alone=True, primitives=("sub",)),
    _arithmetic("Mul", "({0} * {1})", fused_alone=True, primitives=("mul",)),
    _arithmetic("Div", "({0} / {1})", fused_alone=True, primitives=("div",)),
    _arithmetic("Pow", None, primitives=("pow",)),
    _arithmetic("Max", "std::max({{{all}}})", inputs=(1, None), primitives=("max",)),
    _arithmetic("Min", "std::min({{{all}}})", inputs=(1, None), primitives=("min",)),
    _comparison("Equal", "eq"),
    _comparison("Less", "lt"),
    _comparison("LessOrEqual", "le"),
    _comparison("Greater", "gt"),
    _comparison("GreaterOrEqual", "ge"),
    Operator("Where", "select", (3, 3), NUMERIC, broadcasting=True),
    Operator("J2S_Elementwise", "expression", (1, None), broadcasting=True),
    # data movement
    Operator("Reshape", "movement", (2, 2), ANY),
    Operator("Transpose", "movement", (1, 1), ANY),
    Operator("Expand", "movement", (2, 2), NUMERIC),
    Operator("Concat", "movement", (1, None), ANY),
    _project("J2S_Gather", "movement", (2, 2), ANY),
    _project("J2S_Scatter", "movement", (3, 3), ANY),
    _project("J2S_Pad", "movement", (2, 2)),
    _project("J2S_Reverse", "movement", (1, 1)),
    _project("J2S_Tile", "movement", (1, 1)),
    _project("J2S_Split", "movement", (1, 1)),
    _project("J2S_Slice", "movement", (1, 1)),
    _project("J2S_DynamicSlice", "movement", (1, None)),
    _project("J2S_DynamicUpdateSlice", "movement", (2, None)),
    _project("J2S_BroadcastTo", "movement", (1, 1)),
    _project("J2S_BatchReshape", "movement", (1, 1)),
    # reductions, scans, sorts
    Operator("ReduceSum", "reduction", (1, 1), FLOAT),
    _project("J2S_Reduce", "reduction", (1, 1)),
    _project("J2S_ArgMax", "reduction", (1, 1)),
    _project("J2S_ArgMin", "reduction", (1, 1)),
    _project("J2S_Cumulative", "reduction", (1, 1)),
    _project("J2S_Sort", "reduction", (1, None)),
    Operator("J2S_Softmax", "reduction", (1, 1), FLOAT),  # passes/softmax.py: a softmax over the last axis
    Operator("J2S_LayerNorm", "reduction", (1, 3), FLOAT),  # passes/layernorm.py: a layer norm over the last axis
    _project("J2S_TopK", "reduction", (1, 1)),
    # products, decompositions and solvers
    Operator("Gemm", "linalg", (2, 3), FLOAT),
    _project("J2S_Dense", "linalg", (2, 3), FLOAT),
    _project("J2S_BatchedMatMul", "linalg", (2, 2), FLOAT),
    _project("J2S_Cholesky", "linalg", (1, 1)),
    _project("J2S_TriangularSolve", "linalg", (2, 2)),
    _project("J2S_Lu", "linalg", (1, 1)),
    _project("J2S_LuPivotsToPermutation", "linalg", (1, 1)),
    _project("J2S_Geqrf", "linalg", (1, 1)),
    _project("J2S_HouseholderProduct", "linalg", (2, 2)),
    _project("J2S_Ormqr", "linalg", (3, 3)),
    _project("J2S_Qr", "linalg", (1, 1)),
    _project("J2S_Geqp3", "linalg", (2, 2)),
    _project("J2S_Hessenberg", "linalg", (1, 1)),
    _project("J2S_Schur", "linalg", (1, 1)),
    _project("J2S_Eigh", "linalg", (1, 1)),
    _project("J2S_Svd", "linalg", (1, 1)),
    # convolution and pooling
    _project("J2S_Conv", "conv", (2, 4)),
    _project("J2S_ConvNHWC", "conv", (2, None)),  # [X, W, B?, R?] and the parts of a concatenated X
    _project("J2S_ConvDepthwise", "conv", (2, 3)),
    _project("J2S_ConvTransposeNHWC", "conv", (2, 4)),
    _project("J2S_Pool", "conv", (1, 1)),
    # control flow
    _project("J2S_While", "control", (1, None)),
]

OPERATORS: dict[str, Operator] = {}
for _op in _TABLE:
    if _op.name in OPERATORS:
        raise ValueError(f"operator '{_op.name}' is listed twice in jax2sofie/ir/operators.py")
    OPERATORS[_op.name] = _op


def names(*kinds: str, fusion: bool = False, fused_alone: bool = False, broadcasting: bool = False) -> set[str]:
    """The names of the operators of the given kinds (all kinds when none is given) that have every
    property asked for (a fusion expression, fused_alone, broadcasting)."""
    for kind in kinds:
        if kind not in KINDS:
            raise ValueError(f"unknown operator kind '{kind}' (kinds: {', '.join(KINDS)})")
    return {op.name for op in OPERATORS.values()
            if (not kinds or op.kind in kinds) and (op.fusion is not None or not fusion)
            and (op.fused_alone or not fused_alone) and (op.broadcasting or not broadcasting)}


def lowered_primitives(kind: str) -> dict[str, str]:
    """JAX primitive -> the operator of `kind` lowering/elementwise.py lowers it to."""
    return {primitive: op.name for op in OPERATORS.values() if op.kind == kind for primitive in op.primitives}
