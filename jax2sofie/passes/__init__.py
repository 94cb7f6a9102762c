"""Graph passes, run in the order of PIPELINE; the verifier runs after each one.

Why this order:
1. eliminate_broadcasts before fold_constants: an Expand of a constant that a broadcasting reader
   does not need is dropped instead of being folded into a big weight.
2. fold_constants next: what is left on constants (reshaped/transposed weights) becomes weights, so
   the fusions below see a bias as the constant it is.
3. eliminate_common_subexpressions: after folding, so that equal folded constants and the nodes
   reading them are merged; before the rewrites below, which then see each computation once.
4. sink_transposes (layout) once constants are weights, so permuting a constant operand is a plain
   numpy transpose, and before every fusion, which needs a conv and its bias/BatchNorm constants
   next to each other with no Transpose between them.
4b. fold_product_transposes: once sink_transposes has placed the Transposes, those that only move
   the heads of attention around a J2S_BatchedMatMul fold into its strides (before DCE drops them).
5. fuse_conv_affine: per-channel Add/Sub/Mul/Div after a J2S_Conv (bias, inference BatchNorm) fold
   into its weights, then ReLU becomes its activation. Before fuse_relu, which would otherwise turn
   the Max into a Relu node first.
6. fuse_gemm_bias: Gemm + bias Add -> one Gemm with a C operand; then fuse_relu, which needs the
   bias already inside the Gemm to fuse max(x, 0) as its activation (and turns the other max(x, 0)
   into Relu nodes).
7. fuse_dense: Gemms on a constant weight become J2S_Dense, taking the bias and activation the
   passes above put in (or next to) them and folding the per-column shifts and scales after them (an
   inference BatchNorm); last of the fusions, as it leaves no Gemm to fuse into.
7b. fuse_softmax: what jax.nn.softmax traces to (max, subtract, exp, sum, divide) becomes one
    J2S_Softmax; before fuse_elementwise, which would merge its subtract and exp into an expression
    this pass cannot read.
7b'. fuse_layernorm: what Flax's and Keras' LayerNorm trace to (two sum reductions, the variance, an
    rsqrt, scale and bias) becomes one J2S_LayerNorm; before fuse_elementwise for the same reason.
7c. fold_gather_index_wrap: numpy's negative-index wrap select(i < 0, i + n, i) before a J2S_Gather
    becomes the gather's wrap_negative flag; before fuse_elementwise, which would otherwise take the
    select into a loop of its own and hide the pattern.
8. fuse_elementwise: chains of elementwise nodes become one J2S_Elementwise loop; after every fusion
   above, which look for single Add/Max nodes next to their Gemm/Conv.
8b. fold_concat_into_conv: a Concat along channels whose one reader is a direct J2S_ConvNHWC becomes
    that conv's input parts (a U-Net's skip concat); after fuse_conv_affine, which reads a conv's
    inputs by position, and before eliminate_dead_code, which drops the Concat.
9. eliminate_dead_code: removes what the rewrites above left unused.
9b. block_conv_kernels: the constant kernels of direct channels-last convolutions are stored in
    blocks of 16 output channels; after every fold into a kernel, and after dead-code elimination,
    so that it counts a kernel's real readers.
10. store_large_constants: once no pass folds anything more, every float32 constant of more than
    LITERAL_MAX_ELEMENTS elements left is made a weight, so it goes to the weight file.
11. name_weights last: only once unused tensors are gone are the readable names free to take.
"""
from __future__ import annotations

from typing import Callable

from ..ir import Graph, verify
from .broadcasts import eliminate_broadcasts
from .constant_folding import fold_constants
from .cse import eliminate_common_subexpressions
from .elementwise_fusion import fuse_elementwise
from .gather_index_wrap import fold_gather_index_wrap
from .dense import fuse_dense
from .dce import eliminate_dead_code
from .activations import fuse_relu
from .gemm_bias import fuse_gemm_bias
from .conv_fusion import fuse_conv_affine
from .conv_concat import fold_concat_into_conv
from .conv_kernels import block_conv_kernels
from .layout import sink_transposes
from .product_transposes import fold_product_transposes
from .softmax import fuse_softmax
from .layernorm import fuse_layernorm
from .naming import name_weights
from .weights import store_large_constants

Pass = Callable[[Graph], Graph]

PIPELINE: list[Pass] = [
    eliminate_broadcasts,
    fold_constants,
    eliminate_common_subexpressions,
    sink_transposes,
    fold_product_transposes,
    fuse_conv_affine,
    fuse_gemm_bias,
    fuse_relu,
    fuse_dense,
    fuse_softmax,
    fuse_layernorm,
    fold_gather_index_wrap,
    fuse_elementwise,
    fold_concat_into_conv,
    eliminate_dead_code,
    block_conv_kernels,
    store_large_constants,
    name_weights,
]


def run_passes(graph: Graph, known_ops: set[str] | None = None, pipeline: list[Pass] | None = None) -> Graph:
    for graph_pass in PIPELINE if pipeline is None else pipeline:
        graph = graph_pass(graph)
        verify(graph, known_ops)
    return graph
