"""Fold per-channel affine ops and ReLU into the J2S_Conv / J2S_ConvNHWC / J2S_ConvDepthwise before them.

A Flax Conv traces to conv + bias add, and an inference-mode BatchNorm after it to
(y - mean) * (scale / sqrt(var + eps)) + bias, all with constants once the walker has folded the
parameter arithmetic. After the layout pass those constants broadcast along the conv's channel
axis only (axis 1 of J2S_Conv, the last of J2S_ConvNHWC), so they fold into its weights at
conversion time:
  Add/Sub c -> bias +/- c;  Mul c -> W * c (per output channel), bias * c;  Div c -> Mul 1/c;
an Add of a computed tensor of the output's own shape (a ResNet skip connection) becomes the conv's
residual input (added before the activation, in the same pass over the output), then a following Relu becomes the conv's fused
activation, and a min(., 6) after that ReLU (jax.nn.relu6, Keras' ReLU6) makes it "relu6" in the
direct kernels (J2S_ConvNHWC, J2S_ConvDepthwise). J2S_ConvDepthwise takes no residual.
(The same folds after a dense layer are fuse_dense's, in passes/dense.py.)
Runs after the layout pass (which puts the constants in the conv's layout) and before
fuse_gemm_bias and fuse_relu.
"""
from __future__ import annotations

import numpy as np

from ..ir import Graph, Node, Value

_AFFINE = {"Add", "Sub", "Mul", "Div"}
# the output channel's axis in the output, and in the kernel, of each convolution
# (J2S_ConvDepthwise's kernel [K..., M, C] holds output channel c*M + j at [..., j, c]: see _scale_kernel)
_CHANNEL_AXES = {"J2S_Conv": (1, 0), "J2S_ConvNHWC": (-1, -1), "J2S_ConvDepthwise": (-1, -1),
                 "J2S_ConvTransposeNHWC": (-1, -1)}
# the convolutions whose activation may be "relu6" (clamp(0, 6)), and those that take a residual
_RELU6_CONVS = {"J2S_ConvNHWC", "J2S_ConvDepthwise"}
_RESIDUAL_CONVS = {"J2S_Conv", "J2S_ConvNHWC", "J2S_ConvTransposeNHWC"}


def _per_channel(value: Value, rank: int, axis: int, channels: int) -> np.ndarray | None:
    """The constant as a vector over `axis` of a rank-`rank` output, if it broadcasts only along it."""
    if not value.is_const or value.rank > rank or value.dtype != np.float32:
        return None
    shape = (1,) * (rank - value.rank) + tuple(value.shape)
    if any(n != 1 for i, n in enumerate(shape) if i != axis) or shape[axis] not in (1, channels):
        return None
    return np.broadcast_to(np.asarray(value.const, np.float32).reshape(shape[axis]), (channels,)).astype(np.float32)


def tensor_names(graph: Graph) -> set[str]:
    """The names a new weight must not take: the graph's inputs, constants and node outputs."""
    return {v.name for v in graph.inputs + graph.constants()} | {v.name for n in graph.nodes for v in n.outputs}


def new_weight(data: np.ndarray, like: Value | None, name: str, taken: set[str]) -> Value:
    base, k = name, 0
    while name in taken:
        k += 1
        name = f"{base}_{k}"
    taken.add(name)
    # a folded tensor is a weight of the model (kept in the weight file) even where a literal went in
    return Value(name, data.shape, np.dtype(np.float32), const=np.ascontiguousarray(data, np.float32),
                 is_weight=True, origin=like.origin if like is not None else None)


def _affine_operand(node: Node, y: Value) -> tuple[str, Value] | None:
    """(op, constant) if `node` is y op c (or c + y, c * y)."""
    if node.op not in _AFFINE or len(node.inputs) != 2 or node.outputs[0].shape != y.shape:
        return None
    a, b = node.inputs
    if a is y and b is not y:
        return node.op, b
    if b is y and a is not y and node.op in ("Add", "Mul"):
        return node.op, a
    return None


def fuse_conv_affine(graph: Graph) -> Graph:
    taken = tensor_names(graph)
    changed = True
    while changed:
        changed = False
        consumers = graph.consumers()
        graph_outputs = {id(v) for v in graph.outputs}
        # where each value is computed: a residual must exist before the conv that reads it
        position = {id(out): i for i, n in enumerate(graph.nodes) for out in n.outputs}
        for index, node in enumerate(graph.nodes):
            if node.op not in _CHANNEL_AXES:
                continue
            y = node.outputs[0]
            readers = consumers.get(id(y), [])
            if len(readers) != 1 or id(y) in graph_outputs:
                continue
            reader = readers[0]
            if (_fold_into_conv(node, reader, y, taken)
                    or _fold_residual(node, reader, y, position, index, taken)):
                node.outputs = [reader.outputs[0]]
                graph.nodes.remove(reader)
                changed = True
                break
    return graph


def _is_scalar_op_of(node: Node, y: Value, op: str, scalar: float) -> bool:
    """op(y, c) or op(c, y) for a constant scalar c == `scalar`, of y's own shape."""
    if node.op != op or len(node.inputs) != 2 or node.outputs[0].shape != y.shape:
        return False
    other = node.inputs[1] if node.inputs[0] is y else node.inputs[0] if node.inputs[1] is y else None
    return (other is not None and other.is_const and other.size == 1
            and float(np.asarray(other.const).ravel()[0]) == scalar)


def _is_relu_of(node: Node, y: Value) -> bool:
    """Relu(y), or max(y, 0) as jax.nn.relu traces."""
    if node.op == "Relu":
        return node.inputs[0] is y
    return _is_scalar_op_of(node, y, "Max", 0.0)


def _is_min_six_of(node: Node, y: Value) -> bool:
    """min(y, 6) (the upper half of jax.nn.relu6 = min(max(x, 0), 6))."""
    return _is_scalar_op_of(node, y, "Min", 6.0)


def _scale_kernel(conv: Node, w: Value, scale: np.ndarray) -> np.ndarray:
    """The kernel's data with output channel o multiplied by scale[o]."""
    if conv.op == "J2S_ConvDepthwise":  # [K..., M, C]: output channel c*M + j at [..., j, c]
        m, c = w.shape[-2], w.shape[-1]
        return w.const * scale.reshape(c, m).T
    along = [1] * w.rank
    along[_CHANNEL_AXES[conv.op][1]] = -1
    return w.const * scale.reshape(along)


def _fold_into_conv(conv: Node, reader: Node, y: Value, taken: set[str]) -> bool:
    if _is_relu_of(reader, y):
        if conv.attrs.get("activation"):
            return False
        conv.attrs["activation"] = "relu"
        return True
    if conv.attrs.get("activation") == "relu" and conv.op in _RELU6_CONVS and _is_min_six_of(reader, y):
        conv.attrs["activation"] = "relu6"
        return True
    if conv.attrs.get("activation"):
        return False
    found = _affine_operand(reader, y)
    if found is None:
        return False
    op, c = found
    w = conv.inputs[1]
    y_axis = _CHANNEL_AXES[conv.op][0]
    channels = y.shape[y_axis]
    vec = _per_channel(c, y.rank, y_axis % y.rank, channels)
    if vec is None or (op in ("Mul", "Div") and not w.is_const):
        return False
    bias = conv.inputs[2].const if len(conv.inputs) == 3 else np.zeros(channels, np.float32)
    like = conv.inputs[2] if len(conv.inputs) == 3 else None
    if op in ("Mul", "Div"):
        scale = vec if op == "Mul" else 1.0 / vec
        conv.inputs[1] = new_weight(_scale_kernel(conv, w, scale), w, w.name + "_scaled", taken)
        bias = bias * scale
    else:
        bias = bias + vec if op == "Add" else bias - vec
    b = new_weight(bias, like if like is not None else c, (like or c).name + "_bias", taken)
    conv.inputs = conv.inputs[:2] + [b]
    return True


def _fold_residual(conv: Node, reader: Node, y: Value, position: dict[int, int], index: int,
                   taken: set[str]) -> bool:
    if (reader.op != "Add" or len(reader.inputs) != 2 or conv.attrs.get("activation") or len(conv.inputs) == 4
            or conv.op not in _RESIDUAL_CONVS):
        return False
    a, b = reader.inputs
    other = b if a is y else a if b is y else None
    if (other is None or other is y or other.is_const or other.shape != y.shape or other.dtype != np.float32
            or position.get(id(other), -1) >= index):
        return False
    if len(conv.inputs) == 2:
        channels = y.shape[_CHANNEL_AXES[conv.op][0]]
        conv.inputs.append(new_weight(np.zeros(channels, np.float32), None, f"{conv.name}_bias", taken))
    conv.inputs.append(other)
    return True

