"""fold_concat_into_conv (passes/conv_concat.py): when a Concat along channels becomes the parts of the
direct J2S_ConvNHWC reading it, and when it stays (the numbers: the catalog's conv*_concat_* cases and
tests/test_native.py's concatenated-input case, against JAX and numpy)."""
from __future__ import annotations

import numpy as np
import pytest
import sofie

from jax2sofie._native_loader import native
from jax2sofie.ir import GraphBuilder
from jax2sofie.passes.conv_concat import fold_concat_into_conv

_CONV = dict(strides=[1, 1], pads=[1, 1, 1, 1], dilations=[1, 1], lhs_dilations=[1, 1], group=1, dtype="float32")


def _graph(*, axis=3, method="direct", second_reader=None, bias=True):
    b = GraphBuilder("g")
    a = b.input("a", (1, 6, 6, 4), np.float32)
    s = b.input("s", (1, 6, 6, 4), np.float32)
    joined = b.op("Concat", [a, s], (1, 6, 6, 8) if axis == 3 else (1, 6, 12, 4), np.float32, axis=axis)
    w = b.constant(np.ones((3, 3, joined.shape[-1], 5), np.float32))
    inputs = [joined, w] + ([b.constant(np.ones(5, np.float32))] if bias else [])
    y = b.op("J2S_ConvNHWC", inputs, (1, 6, joined.shape[2], 5), np.float32, method=method, **_CONV)
    b.graph.outputs = [y] + ([b.op(second_reader, [joined], joined.shape, np.float32)] if second_reader else [])
    return b.graph, a, s


@pytest.mark.parametrize("bias", [True, False])
def test_a_channel_concat_read_by_one_direct_conv_becomes_its_parts(bias):
    graph, a, s = _graph(bias=bias)
    conv = fold_concat_into_conv(graph).nodes[-1]
    assert conv.attrs["input_channels"] == [4, 4]
    assert conv.inputs[0] is a and conv.inputs[-1] is s and len(conv.inputs) == 4  # X, W, B (zeros if none), X1
    if not bias:
        assert not conv.inputs[2].const.any() and conv.inputs[2].shape == (5,)


@pytest.mark.parametrize("kw", [dict(axis=2), dict(method="gemm"), dict(second_reader="Relu")])
def test_other_concats_stay(kw):
    graph, _, _ = _graph(**kw)
    conv = next(n for n in fold_concat_into_conv(graph).nodes if n.op == "J2S_ConvNHWC")
    assert "input_channels" not in conv.attrs and conv.inputs[0].name.startswith("concat")


def test_a_part_of_the_wrong_shape_is_refused_by_name():
    m = sofie.RModel("err", "now")
    for name, shape in (("a", [1, 6, 6, 4]), ("s", [1, 6, 5, 4])):
        m.add_input_tensor_info(name, sofie.ETensorType.FLOAT, shape)
        m.add_input_tensor_name(name)
    m.add_initialized_tensor("w", sofie.ETensorType.FLOAT, [3, 3, 8, 5], np.zeros(3 * 3 * 8 * 5, np.float32))
    m.add_initialized_tensor("b", sofie.ETensorType.FLOAT, [5], np.zeros(5, np.float32))
    native.push(m, [{"op": "J2S_ConvNHWC", "name": "c", "inputs": ["a", "w", "b", "s"], "outputs": ["y"],
                     "attrs": {**_CONV, "input_channels": [4, 4]}}])
    m.add_output_tensor_name_list(["y"])
    with pytest.raises(Exception, match=r"part 1 of the concatenated input is \{ 1 , 6 , 5 , 4 \}; every part must be "
                                        r"float32 \[N, S\.\.\., c_i\] with the first part's N and S"):
        m.generate()
