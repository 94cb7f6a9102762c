"""The layout pass (transpose sinking) and the conv/Gemm affine folding: graphs before/after, numbers
unchanged; and the clear errors of the conv and pooling rules."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import jax2sofie
from jax2sofie import passes
from jax2sofie.errors import ConversionError
from jax2sofie.ir import GraphBuilder, verify
from jax2sofie.passes.conv_fusion import fuse_conv_affine
from jax2sofie.passes.layout import sink_transposes

NHWC = ("NHWC", "HWIO", "NHWC")


def _rng_arrays(*shapes, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(np.float32) for s in shapes]


def _cnn(p, x, group=1):
    """conv-relu-pool-conv-relu-pool-flatten-dense, as plain lax."""
    for w, b in ((p["w1"], p["b1"]), (p["w2"], p["b2"])):
        x = lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=NHWC, feature_group_count=group) + b
        x = jax.nn.relu(x)
        x = lax.reduce_window(x, -jnp.inf, lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
    return x.reshape(x.shape[0], -1) @ p["wd"]


def _cnn_params(group=1, channels=2):
    w1, b1, w2, b2, wd = _rng_arrays((3, 3, channels // group, 4), (4,), (3, 3, 4 // group, 6), (6,), (2 * 2 * 6, 3))
    return {"w1": w1, "b1": b1, "w2": w2, "b2": b2, "wd": wd}


def test_cnn_keeps_one_transpose_at_the_input_and_one_before_the_flatten(monkeypatch):
    # grouped convolutions (two input channels per group): J2S_Conv, in NC layout, between Transposes
    # the pass has to cancel
    def grouped(p, x):
        return _cnn(p, x, group=2)

    params, (x,) = _cnn_params(group=2, channels=4), _rng_arrays((3, 9, 8, 4), seed=1)
    after = jax2sofie.convert(grouped, params, x, name="layout_cnn")
    monkeypatch.setattr(passes, "PIPELINE", [p for p in passes.PIPELINE if p is not sink_transposes])
    before = jax2sofie.convert(grouped, params, x, name="layout_cnn_before")
    assert before.graph.op_counts()["Transpose"] == 4  # two around each conv
    counts = after.graph.op_counts()
    assert counts["Transpose"] == 2, after.graph
    ops = [n.op for n in after.graph.nodes]
    assert ops[0] == "Transpose" and ops[ops.index("Reshape") - 1] == "Transpose"
    # bias and ReLU inside both convs once no Transpose stands between them
    assert ops.count("J2S_Conv") == 2 and "Add" not in counts and "Max" not in counts
    assert after.check(x).passed and before.check(x).passed


def test_channels_last_cnn_has_no_transpose():
    params, (x,) = _cnn_params(), _rng_arrays((3, 9, 8, 2), seed=1)
    model = jax2sofie.convert(_cnn, params, x, name="nhwc_cnn")
    counts = model.graph.op_counts()
    assert "Transpose" not in counts and counts["J2S_ConvNHWC"] == 2, model.graph
    assert "Add" not in counts and "Max" not in counts, model.graph
    assert model.check(x).passed


def test_channels_first_convs_keep_one_transpose_each_way():
    # an NCHW model on the channels-last kernel: Transposes at the input and the output only
    w1, w2 = _rng_arrays((4, 2, 3, 3), (5, 4, 3, 3), seed=2)

    def fn(p, x):
        y = jax.nn.relu(lax.conv_general_dilated(x, p["w1"], (1, 1), "SAME"))
        return lax.conv_general_dilated(y, p["w2"], (2, 1), "SAME")

    x, = _rng_arrays((2, 2, 7, 6), seed=4)
    model = jax2sofie.convert(fn, {"w1": w1, "w2": w2}, x, name="nchw_cnn")
    counts = model.graph.op_counts()
    assert counts["Transpose"] == 2 and counts["J2S_ConvNHWC"] == 2, model.graph
    assert model.check(x).passed


def _graph(shape=(2, 3, 4, 5)):
    b = GraphBuilder("g")
    return b, b.input("x", shape, np.float32)


def test_inverse_pair_cancels_through_elementwise_ops():
    b, x = _graph()
    t = b.op("Transpose", [x], (2, 4, 5, 3), np.float32, perm=[0, 2, 3, 1])
    r = b.op("Relu", [t], t.shape, np.float32)
    c = b.constant(np.arange(3, dtype=np.float32), "c")  # per channel, last axis in NHWC
    a = b.op("Add", [r, c], t.shape, np.float32)
    back = b.op("Transpose", [a], x.shape, np.float32, perm=[0, 3, 1, 2])
    b.graph.outputs = [back]
    graph = sink_transposes(b.graph)
    verify(graph)
    assert [n.op for n in graph.nodes] == ["Relu", "Add"]
    assert graph.nodes[1].inputs[1].shape == (1, 3, 1, 1)  # the constant moved to the channel axis


def test_pool_attributes_are_permuted_and_output_keeps_its_layout():
    b, x = _graph((2, 3, 6, 5))
    t = b.op("Transpose", [x], (2, 6, 5, 3), np.float32, perm=[0, 2, 3, 1])
    pool = b.op("J2S_Pool", [t], (2, 3, 2, 3), np.float32, window=[1, 2, 2, 1], strides=[1, 2, 2, 1],
                pads=[0, 0, 0, 0, 0, 0, 0, 0], dilations=[1, 1, 1, 1], mode="max", init=-np.inf)
    b.graph.outputs = [pool]
    graph = sink_transposes(b.graph)
    verify(graph)
    assert [n.op for n in graph.nodes] == ["J2S_Pool", "Transpose"]
    assert graph.nodes[0].attrs["window"] == [1, 1, 2, 2] and graph.nodes[0].outputs[0].shape == (2, 3, 3, 2)
    assert graph.outputs == [pool]  # the graph output is still the NHWC value


def test_transpose_read_by_a_layout_specific_op_is_not_duplicated():
    """Sinking through Relu would need a second Transpose for the Reshape: the graph stays as it was."""
    b, x = _graph()
    t = b.op("Transpose", [x], (2, 4, 5, 3), np.float32, perm=[0, 2, 3, 1])
    r = b.op("Relu", [t], t.shape, np.float32)
    flat = b.op("Reshape", [t, b.constant(np.array([2, 60]), "shape")], (2, 60), np.float32)
    b.graph.outputs = [r, flat]
    ops_before = [n.op for n in b.graph.nodes]
    graph = sink_transposes(b.graph)
    verify(graph)
    assert [n.op for n in graph.nodes] == ops_before


@pytest.mark.parametrize("group, channels, conv_op", [(1, 2, "J2S_ConvNHWC"), (2, 4, "J2S_Conv"),
                                                     (2, 2, "J2S_ConvDepthwise")])
def test_batch_norm_after_conv_and_dense_folds_and_numbers_do_not_change(group, channels, conv_op):
    # group 1 is the direct channels-last conv (channel axis last), 2 groups of 2 input channels the NC
    # im2col one (axis 1), 2 groups of one input channel the depthwise one (channel multiplier 3: the
    # BatchNorm scale of output channel c*3 + j goes to its kernel's [..., j, c])
    w, bias, mean, var, scale, shift, wd, bd, mean_d = _rng_arrays((3, 3, channels // group, 6), (6,), (6,), (6,),
                                                                   (6,), (6,), (6, 4), (4,), (4,))
    params = {"w": w, "b": bias, "mean": mean, "var": np.abs(var) + 0.5, "scale": scale, "shift": shift,
              "wd": wd, "bd": bd, "mean_d": mean_d}

    def fn(p, x):
        y = lax.conv_general_dilated(x, p["w"], (2, 2), "SAME", dimension_numbers=NHWC,
                                     feature_group_count=group) + p["b"]
        y = (y - p["mean"]) * lax.rsqrt(p["var"] + 1e-5) * p["scale"] + p["shift"]
        y = jax.nn.relu(y).mean(axis=(1, 2))
        z = y @ p["wd"] + p["bd"]
        return (z - p["mean_d"]) / 1.5

    x, = _rng_arrays((2, 7, 6, channels), seed=3)
    model = jax2sofie.convert(fn, params, x, name="bn_fold")
    counts = model.graph.op_counts()
    assert counts[conv_op] == 1 and counts["J2S_Dense"] == 1, model.graph
    assert not {"Add", "Sub", "Mul", "Max", "Relu"} & set(counts), model.graph
    assert "Div" not in [n.op for n in model.graph.nodes[-1:]]  # the /1.5 went into the dense layer
    assert model.check(x).passed


def test_conv_affine_needs_per_channel_constants():
    b, x = _graph((1, 2, 4, 4))
    w = b.constant(np.ones((3, 2, 1, 1), np.float32), "w", origin="w")
    y = b.op("J2S_Conv", [x, w], (1, 3, 4, 4), np.float32, strides=[1, 1], pads=[0, 0, 0, 0], dilations=[1, 1],
             lhs_dilations=[1, 1], group=1)
    per_pixel = b.constant(np.ones((1, 1, 4, 4), np.float32), "per_pixel")
    out = b.op("Add", [y, per_pixel], y.shape, np.float32)
    b.graph.outputs = [out]
    graph = fuse_conv_affine(b.graph)
    assert [n.op for n in graph.nodes] == ["J2S_Conv", "Add"]


def test_conv_errors_are_clear():
    x, w = _rng_arrays((2, 5, 5, 4), (3, 3, 4, 4))

    def grouped_batch(p, x):
        return lax.conv_general_dilated(x, p, (1, 1), "SAME", dimension_numbers=NHWC, batch_group_count=2)

    with pytest.raises(ConversionError, match="batch_group_count=2"):
        jax2sofie.convert(grouped_batch, w, x)


def test_window_reduction_with_another_body_is_refused():
    x, = _rng_arrays((2, 6))
    with pytest.raises(ConversionError, match="single max, min or add"):
        jax2sofie.convert(lambda p, x: lax.reduce_window(x, 1.0, lax.mul, (1, 2), (1, 1), "VALID"), None, x)
