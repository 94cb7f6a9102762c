"""Dense layers become J2S_Dense: `act(A W + b)` in one project-owned operator.

A Gemm whose B is a constant (K, N) matrix and whose A is read untransposed is a dense layer. It is
rewritten to J2S_Dense (csrc/owned/dense.hpp), taking with it the bias (Gemm's C operand, or an Add
of a constant over the last axis right after it) and the activation that follows (Relu, Sigmoid),
when nothing else reads the values in between; constant shifts after it fold into the bias
and constant scales into the weight (so Dense + inference BatchNorm is one J2S_Dense), and a reshape that keeps each row's N values together (a DenseGeneral's heads) is looked through. J2S_Dense treats all leading axes of A as rows
(one product instead of SOFIE's loop of one sgemm per leading index), uses inline vector code or
sgemv for a few rows (SOFIE's Gemm always calls sgemm, several times slower at batch 1) and, from
PANEL_ROWS rows, a register-tiled product over the weight stored in panels (below), and applies bias
and activation with the product, sigmoid included (SOFIE's Gemm drops it).
"""
from __future__ import annotations

import numpy as np

from ..ir import Graph, Node, Value

# Not Tanh: J2S_Dense's tanh is libm's, a call per element; left apart, fuse_elementwise makes it the
# vectorised rational tanh, a loop over the (cache-hot) output that costs less than those calls.
ACTIVATIONS = {"Relu": "relu", "Sigmoid": "sigmoid"}
# From PANEL_ROWS rows, a weight whose N is a multiple of PANEL is stored in panels of PANEL columns
# (each K x PANEL row-major) for J2S_Dense's register-tiled product (csrc/owned/dense.hpp), whatever
# the number of rows and the weight's size: BLAS packs the weight again at every call, and a BLAS
# whose kernels predate the CPU runs narrower vectors than the tiles (OpenBLAS 0.3.21 runs its
# Haswell AVX2 sgemm on AVX-512 Zen 5). Measured there, one thread, -O2, the fastest of 20 to 500 calls:
# jet tagger at batch 256 0.43 ms in panels against 0.92 ms through sgemm (the tiles capped at
# AVX2: 0.84 ms); 512 rows of a 512 x 512, 1024 x 256 or 2048 x 256 weight ~260 GFLOP/s against
# ~125; 256 rows of 4096 x 1024 1.9x faster; the VAE decoder's 16 x 1568 over 256 rows 3.3x. Capped
# below AVX2 (sgemm per panel) up to 7% slower than one sgemm. Fewer rows (an event at a time) keep
# the row-major weight of the inline-vector and sgemv paths. A symbolic batch is traced at 5 and 7
# (dynamic.TRACE_BATCHES), both at least PANEL_ROWS, so both traces decide alike.
PANEL, PANEL_ROWS = 32, 5


def _per_column(value: Value, tail: tuple, n: int) -> np.ndarray | None:
    """A constant read elementwise against a (rows..., *tail) value, as the (N,) vector it applies to
    each row, or None if it varies along the rows (or is not a float32 constant)."""
    if not value.is_const or value.dtype != np.float32 or not all(isinstance(d, int) for d in tail):
        return None
    data = np.asarray(value.const, np.float32)
    extra = data.ndim - len(tail)
    if extra > 0:
        if any(d != 1 for d in data.shape[:extra]):
            return None
        data = data.reshape(data.shape[extra:])
    try:
        if tuple(np.broadcast_shapes(data.shape, tail)) != tuple(tail):
            return None
    except ValueError:
        return None
    return np.ascontiguousarray(np.broadcast_to(data, tail).reshape(n))


def _split_tail(before: tuple, after: tuple, n: int) -> tuple | None:
    """For a reshape from `before` (rows..., N) to `after` that keeps each row's N values together
    (rows may be regrouped, N split, as in a DenseGeneral's heads): the axes of `after` that hold N;
    else None."""
    for k in range(len(after) - 1, -1, -1):
        tail = after[k:]
        if not all(isinstance(d, int) for d in tail) or int(np.prod(tail)) > n:
            return None
        if int(np.prod(tail)) == n:
            rows_before, rows_after = tuple(before[:-1]), tuple(after[:k])
            if rows_before == rows_after:
                return tuple(tail)
            ints = all(isinstance(d, int) for d in rows_before + rows_after)
            return tuple(tail) if ints and int(np.prod(rows_before)) == int(np.prod(rows_after)) else None
    return None


def in_panels(w: np.ndarray) -> np.ndarray:
    """A (K, N) weight's data in panels of PANEL columns, each (K, PANEL) row-major (same shape)."""
    k, n = w.shape
    return np.ascontiguousarray(np.asarray(w, np.float32).reshape(k, n // PANEL, PANEL).transpose(1, 0, 2)).reshape(k, n)


def _rows(a: Value) -> float:
    """The rows of a dense layer's input (its leading axes); infinite for a symbolic size."""
    dims = a.shape[:-1]
    return float(np.prod(dims)) if all(isinstance(d, int) for d in dims) else float("inf")


def _weight_kn(gemm: Node, derived) -> Value | None:
    """B of the Gemm as a constant (K, N) matrix (transposed at conversion time if transB)."""
    b = gemm.inputs[1]
    if not b.is_const or b.rank != 2 or b.dtype != np.float32:
        return None
    if not gemm.attrs.get("transB"):
        return b
    return derived(b, np.ascontiguousarray(np.asarray(b.const).T), "_kn")


def _derived_constants():
    """A maker of constants computed from `like` (keeping its weight status and readable origin) that
    hands back the same Value for the same source and data: the unrolled steps of an RNN share one
    folded weight or bias instead of one copy per step."""
    made: dict[tuple, Value] = {}

    def derived(like: Value, data: np.ndarray, suffix: str) -> Value:
        data = np.ascontiguousarray(data, dtype=np.float32)
        key = (str(like.origin), like.is_weight, suffix, data.shape, data.tobytes())
        if key not in made:
            made[key] = Value(f"{like.name}{suffix}", data.shape, np.dtype(np.float32), const=data,
                              is_weight=like.is_weight, origin=like.origin)
        return made[key]

    return derived


def fuse_dense(graph: Graph) -> Graph:
    _derived = _derived_constants()
    consumers = graph.consumers()
    graph_outputs = {id(v) for v in graph.outputs}
    removed: set[int] = set()

    def sole_reader(value: Value) -> Node | None:
        readers = consumers.get(id(value), [])
        if id(value) in graph_outputs or len(readers) != 1:
            return None
        return readers[0]

    for gemm in graph.nodes:
        if gemm.op != "Gemm" or gemm.attrs.get("transA") or float(gemm.attrs.get("alpha", 1.0)) != 1.0:
            continue
        a, y = gemm.inputs[0], gemm.outputs[0]
        activation = gemm.attrs.get("activation") or ""
        if activation not in ("", "relu") or a.is_const or a.dtype != np.float32 or a.rank < 1:
            continue
        w = _weight_kn(gemm, _derived)
        if w is None or a.shape[-1] != w.shape[0] or y.shape[-1] != w.shape[1]:
            continue
        n = w.shape[1]
        bias = None  # the bias Value, or None
        if len(gemm.inputs) == 3:
            data = _per_column(gemm.inputs[2], (n,), n)
            if data is None or float(gemm.attrs.get("beta", 1.0)) != 1.0:
                continue
            bias = gemm.inputs[2] if gemm.inputs[2].shape == (n,) else _derived(gemm.inputs[2], data, "_n")
        # Absorb what follows, as long as nothing else reads the values it replaces: one reshape that
        # keeps each row's N values together (DenseGeneral's heads; before or after the bias), constant
        # adds/subtractions (bias),
        # constant scales (folded into W and the bias) and one activation, which ends the chain.
        view, reshape, tail = y, None, (n,)
        while not activation:
            reader = sole_reader(view)
            if reader is None:
                break
            out = reader.outputs[0]
            if reader.op == "Reshape" and reshape is None and _split_tail(y.shape, out.shape, n):
                reshape, view, tail = reader, out, _split_tail(y.shape, out.shape, n)
                continue
            if reader.op in ("Add", "Sub", "Mul", "Div") and len(reader.inputs) == 2 and out.shape == view.shape:
                first, second = reader.inputs
                if reader.op in ("Sub", "Div") and first is not view:
                    break
                other = second if first is view else first
                vec = _per_column(other, tail, n) if other is not view else None
                if vec is None or (reader.op == "Div" and not np.all(vec != 0)):
                    break
                if reader.op in ("Add", "Sub"):  # y - c is y + (-c): an inference BatchNorm's mean
                    vec = vec if reader.op == "Add" else -vec
                    bias = _derived(other, vec, "_n") if bias is None else _derived(bias, bias.const + vec, "_b")
                else:
                    factor = vec if reader.op == "Mul" else np.float32(1) / vec
                    w = _derived(w, (w.const * factor[None, :]).astype(np.float32), "_s")
                    if bias is not None:
                        bias = _derived(bias, (bias.const * factor).astype(np.float32), "_s")
            elif reader.op in ACTIVATIONS and out.shape == view.shape:
                activation = ACTIVATIONS[reader.op]
            else:
                break
            removed.add(id(reader))
            view = out
        gemm.op = "J2S_Dense"
        gemm.inputs = [a, w] + ([bias] if bias is not None else [])
        gemm.attrs = {"dtype": "float32", "activation": activation}
        if reshape is not None:  # the reshape now relabels the finished output
            # it may have read an absorbed Add's output (Dense bias added before the heads reshape):
            # it reads the product itself now, which holds what that Add computed
            gemm.outputs = [y]
            reshape.inputs = [y] + reshape.inputs[1:]
            reshape.outputs = [view]
        else:
            gemm.outputs = [view]
    graph.nodes = [node for node in graph.nodes if id(node) not in removed]
    _store_in_panels(graph, _derived)
    return graph


def _store_in_panels(graph: Graph, derived) -> None:
    """Weights that only J2S_Dense nodes of many rows read (see PANEL) go into panels (panel=PANEL);
    a weight that something else reads too stays as it is, so that it is not stored twice."""
    def wants_panels(node: Node, weight: Value) -> bool:
        """Whether `node` is a J2S_Dense of many rows that reads `weight` as its W, and only there."""
        if node.op != "J2S_Dense" or node.inputs[1] is not weight or sum(v is weight for v in node.inputs) != 1:
            return False
        return _rows(node.inputs[0]) >= PANEL_ROWS

    consumers = graph.consumers()
    weights = {id(n.inputs[1]): n.inputs[1] for n in graph.nodes if n.op == "J2S_Dense"}
    for weight in weights.values():
        readers = consumers[id(weight)]
        if not weight.is_const or weight.shape[1] % PANEL or not all(wants_panels(r, weight) for r in readers):
            continue
        packed = derived(weight, in_panels(weight.const), f"_p{PANEL}")
        for reader in readers:
            reader.inputs[1] = packed
            reader.attrs["panel"] = PANEL
