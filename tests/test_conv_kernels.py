"""block_conv_kernels (passes/conv_kernels.py): the constant kernels of direct J2S_ConvNHWC nodes are
stored blocked by 16 output channels, and J2S_ConvNHWC reads them so (checked against JAX by the
catalog's conv cases and tests/test_native.py's blocked case; here the layout and when it applies)."""
from __future__ import annotations

import numpy as np
import pytest

from jax2sofie._native_loader import native
from jax2sofie.ir import GraphBuilder
from jax2sofie.passes.conv_kernels import block_conv_kernels, blocked_kernel

import sofie

_CONV = dict(strides=[1, 1], pads=[1, 1, 1, 1], dilations=[1, 1], lhs_dilations=[1, 1], group=1, dtype="float32")


def test_blocked_layout_puts_output_channel_o_at_block_o_div_16_lane_o_mod_16():
    w = np.random.default_rng(0).standard_normal((3, 2, 5, 37)).astype(np.float32)
    blocked = blocked_kernel(w)
    assert blocked.shape == (3, 3, 2, 5, 16) and blocked.flags.c_contiguous
    for o in range(37):
        np.testing.assert_array_equal(blocked[o // 16, ..., o % 16], w[..., o])
    assert not blocked[2, ..., 5:].any()  # the last block's channels past 37 are zero


def _conv_graph(features: int, *, method: str = "direct", also_read_by: str | None = None):
    b = GraphBuilder("g")
    x = b.input("x", (1, 6, 6, 4), np.float32)
    w = b.constant(np.ones((3, 3, 4, features), np.float32), origin="Conv_0_kernel")
    y = b.op("J2S_ConvNHWC", [x, w], (1, 6, 6, features), np.float32, method=method, **_CONV)
    outputs = [y]
    if also_read_by:
        outputs.append(b.op(also_read_by, [w], w.shape, np.float32))
    b.graph.outputs = outputs
    return b.graph, w


def test_a_constant_kernel_of_more_than_16_outputs_is_blocked_and_keeps_its_origin():
    graph, w = _conv_graph(40)
    conv = block_conv_kernels(graph).nodes[0]
    assert conv.attrs["kernel_block"] == 16 and conv.attrs["features"] == 40
    assert conv.inputs[1].shape == (3, 3, 3, 4, 16) and conv.inputs[1].origin == "Conv_0_kernel"


@pytest.mark.parametrize("features, method, reader", [
    (16, "direct", None),      # one block: the rows are consecutive already
    (40, "gemm", None),        # im2col + sgemm reads [K..., C, O]
    (40, "direct", "Relu"),    # another node reads the kernel as it is
])
def test_other_kernels_keep_their_layout(features, method, reader):
    graph, w = _conv_graph(features, method=method, also_read_by=reader)
    conv = block_conv_kernels(graph).nodes[0]
    assert conv.inputs[1] is w and "kernel_block" not in conv.attrs


def test_a_blocked_kernel_of_the_wrong_shape_is_refused_with_both_shapes():
    m = sofie.RModel("err", "now")
    m.add_input_tensor_info("x", sofie.ETensorType.FLOAT, [1, 6, 6, 4])
    m.add_input_tensor_name("x")
    m.add_initialized_tensor("w", sofie.ETensorType.FLOAT, [2, 3, 3, 4, 16], np.zeros(2 * 3 * 3 * 4 * 16, np.float32))
    native.push(m, [{"op": "J2S_ConvNHWC", "name": "c", "inputs": ["x", "w"], "outputs": ["y"], "attrs": {
        **_CONV, "kernel_block": 16, "features": 40}}])
    m.add_output_tensor_name_list(["y"])
    with pytest.raises(Exception, match=r"blocked by 16 for 40 output channels must be \[3, K\.\.\., C, 16\], "
                                        r"not \{ 2 , 3 , 3 , 4 , 16 \}"):
        m.generate()
