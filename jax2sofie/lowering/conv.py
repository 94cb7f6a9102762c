"""conv_general_dilated, lowered to one of jax2sofie's own convolutions between layout Transposes.

- J2S_ConvNHWC (csrc/owned/conv_nhwc.hpp), a direct convolution in the channels-last layout of JAX,
  Flax and Keras (input N,spatial,C; kernel spatial,I,O: Flax's HWIO kernel as it is), for every
  convolution without groups, input dilation or negative pads: the common case, and the fast one.
  A constant kernel is stored in blocks of 16 output channels (passes/conv_kernels.py). Where a
  kernel computed at run time outgrows L2 over short rows it computes by im2col + sgemm instead, still
  channels-last (attribute method="gemm", csrc/owned/conv_nhwc_gemm.hpp; see nhwc_method).
- J2S_ConvTransposeNHWC (csrc/owned/conv_transpose_nhwc.hpp), channels-last too, for transposed
  convolutions (input dilation with unit window strides and no kernel dilation, as Flax's ConvTranspose
  and Keras' Conv2DTranspose trace; any pads): one stride-1 direct convolution per output phase, no
  zero-inserted work.
- J2S_ConvDepthwise (csrc/owned/conv_depthwise.hpp), a direct channels-last kernel vectorised over
  channels, for depthwise convolutions (one input channel per group, any channel multiplier; the
  kernel re-packed to spatial,M,C) without input dilation or negative pads.
- J2S_Conv (csrc/owned/conv.hpp), im2col + sgemm in N,C,spatial layout, for the rest: grouped
  convolutions with several input channels per group, input dilation with window strides or kernel
  dilation, negative pads.
Either way the input and kernel are transposed to the operator's layout and the output back to the one
the jaxpr asks for; for channels-last models these Transposes are identities and vanish, otherwise the
layout pass (passes/layout.py) cancels them between layers and constant kernels fold at conversion.
Not SOFIE's Conv/ConvTranspose: SOFIE's Conv gets its output size wrong without explicit pads, its
grouped ConvTranspose is wrong, and its code is slow.
"""
from __future__ import annotations

import numpy as np

from ..ir import Value
from ..passes.conv_kernels import KERNEL_BLOCK
from .context import LoweringContext
from .registry import register


def nhwc_method(channels: int, features: int, kernel: list[int], out_spatial: list[int], blocked: bool) -> str:
    """How J2S_ConvNHWC computes a convolution: "direct" (its register-tiled kernel) or "gemm" (im2col + sgemm).

    The direct kernel reads the whole kernel once per output tile of (at most) 8 pixels of one row,
    per batch element: one vector of kernel row per 8 (or fewer) multiply-adds. `blocked`: the kernel
    is a constant that passes/conv_kernels.py stores in blocks of 16 output channels, so those vectors
    are consecutive; the direct kernel is then ahead everywhere measured (AVX-512, one thread:
    ResNet-18's 3x3 convolutions over 512 channels at 4x4, 9.4 MB of kernel over 4-pixel rows, 1.6x
    faster than sgemm at batch 1 and level at batch 16; the whole ResNet-18 4-6% faster than with
    those four by sgemm). Otherwise (a kernel computed at run time) the vectors are a row of O floats
    apart; where the kernel is larger than L2 and the rows are shorter than a tile, that ran at about
    a fifth of its speed on 64 channels at 32x32, and sgemm, which packs the kernel and blocks for the
    caches, was 1.8-2.9x faster per layer.
    """
    kernel_bytes = 4 * channels * features * int(np.prod(kernel))
    if not blocked and kernel_bytes > _L2_BYTES and out_spatial[-1] < _DIRECT_TILE:
        return "gemm"
    return "direct"


# about the L2 cache of one core, and the output pixels of one tile of the direct kernel
# (ConvNHWCOperator::kTile in csrc/owned/conv_nhwc.hpp)
_L2_BYTES = 1 << 20
_DIRECT_TILE = 8


@register("conv_general_dilated")
def conv_general_dilated(ctx: LoweringContext, lhs: Value, rhs: Value, *, window_strides, padding, lhs_dilation,
                         rhs_dilation, dimension_numbers, feature_group_count, batch_group_count,
                         preferred_element_type=None, **_params) -> Value:
    """J2S_ConvNHWC (direct, channels-last), J2S_ConvTransposeNHWC (lhs dilation, unit strides: phases) or J2S_Conv."""
    if lhs.dtype != np.float32 or rhs.dtype != np.float32:
        raise ctx.error(f"conv_general_dilated is lowered for float32 only, got {lhs.dtype} x {rhs.dtype}")
    if preferred_element_type is not None and np.dtype(preferred_element_type) != np.float32:
        raise ctx.error(f"conv_general_dilated with preferred_element_type={preferred_element_type} is not supported")
    if batch_group_count != 1:
        raise ctx.error(f"conv_general_dilated with batch_group_count={batch_group_count} is not supported "
                        "(it appears in gradients of grouped convolutions, not in inference)")
    spatial = lhs.rank - 2
    if not 1 <= spatial <= 3:
        raise ctx.error(f"conv_general_dilated with {spatial} spatial dimensions is not supported (1, 2 or 3)")
    if isinstance(padding, str):
        raise ctx.error(f"conv_general_dilated with padding '{padding}' unresolved (expected explicit pairs)")
    if dimension_numbers is None:
        lhs_spec = rhs_spec = out_spec = tuple(range(lhs.rank))
    else:
        lhs_spec, rhs_spec, out_spec = (tuple(int(a) for a in s) for s in dimension_numbers)

    pads = [int(lo) for lo, _ in padding] + [int(hi) for _, hi in padding]
    n, c = lhs.shape[lhs_spec[0]], lhs.shape[lhs_spec[1]]
    o = rhs.shape[rhs_spec[0]]
    y_spatial = []
    for i in range(spatial):
        dilated_in = (lhs.shape[lhs_spec[2 + i]] - 1) * lhs_dilation[i] + 1
        dilated_k = (rhs.shape[rhs_spec[2 + i]] - 1) * rhs_dilation[i] + 1
        y_spatial.append((dilated_in + pads[i] + pads[spatial + i] - dilated_k) // window_strides[i] + 1)
    if min(y_spatial) <= 0 or 0 in lhs.shape or 0 in rhs.shape:
        raise ctx.error(f"conv_general_dilated with an empty output {[n, o] + y_spatial} is not supported")
    attrs = dict(dtype="float32", strides=[int(s) for s in window_strides], pads=pads,
                 dilations=[int(d) for d in rhs_dilation], lhs_dilations=[int(d) for d in lhs_dilation],
                 group=int(feature_group_count))
    # y_axes[a]: the axis of the operator's output (N, C, spatial in its own order) that is axis
    # `a` of the (N, C, spatial...) description out_spec refers to
    direct = feature_group_count == 1 and all(d == 1 for d in lhs_dilation) and min(pads) >= 0
    # a transposed convolution (input dilation) with unit window strides and no kernel dilation: the
    # phase form, channels-last (any pads)
    transposed = (feature_group_count == 1 and any(d > 1 for d in lhs_dilation)
                  and all(s == 1 for s in window_strides) and all(d == 1 for d in rhs_dilation))
    # one input channel per group (any channel multiplier): the channels-last depthwise kernel
    depthwise = 1 < feature_group_count == c and all(d == 1 for d in lhs_dilation) and min(pads) >= 0
    if depthwise:
        x = ctx.transpose(lhs, (lhs_spec[0], *lhs_spec[2:], lhs_spec[1]))  # N, spatial..., C
        w = ctx.transpose(rhs, (*rhs_spec[2:], rhs_spec[1], rhs_spec[0]))  # spatial..., 1, C*M
        if o != c:  # a channel multiplier M > 1: output channel c*M + j is [..., c, j]
            w = ctx.reshape(w, [*w.shape[:spatial], c, o // c])
            w = ctx.transpose(w, (*range(spatial), spatial + 1, spatial))  # spatial..., M, C
        y = ctx.op("J2S_ConvDepthwise", [x, w], [n, *y_spatial, o], np.float32, hint="conv", **attrs)
        y_axes = [0, spatial + 1, *range(1, spatial + 1)]
    elif direct or transposed:
        x = ctx.transpose(lhs, (lhs_spec[0], *lhs_spec[2:], lhs_spec[1]))  # N, spatial..., C
        w = ctx.transpose(rhs, (*rhs_spec[2:], rhs_spec[1], rhs_spec[0]))  # spatial..., I, O
        op = "J2S_ConvNHWC" if direct else "J2S_ConvTransposeNHWC"
        if direct:
            blocked = rhs.is_const and o > KERNEL_BLOCK  # what block_conv_kernels will store blocked
            attrs["method"] = nhwc_method(c, o, [rhs.shape[a] for a in rhs_spec[2:]], y_spatial, blocked)
        y = ctx.op(op, [x, w], [n, *y_spatial, o], np.float32, hint="conv", **attrs)
        y_axes = [0, spatial + 1, *range(1, spatial + 1)]
    else:
        x = ctx.transpose(lhs, lhs_spec)  # N, C, spatial...
        w = ctx.transpose(rhs, rhs_spec)  # O, I, spatial...
        y = ctx.op("J2S_Conv", [x, w], [n, o, *y_spatial], np.float32, hint="conv", **attrs)
        y_axes = list(range(spatial + 2))
    # output axis out_spec[i] holds axis y_axes[i] of y
    perm = [0] * y.rank
    for i, axis in enumerate(out_spec):
        perm[axis] = y_axes[i]
    return ctx.transpose(y, perm)


# -- catalog cases -------------------------------------------------------------------------------------------
import jax  # noqa: E402
from jax import lax  # noqa: E402

from .catalog import case, f32  # noqa: E402

_NHWC = ("NHWC", "HWIO", "NHWC")


def _conv(x, w, **kw):
    return lax.conv_general_dilated(x, w, **kw)


case("conv2d_nhwc_same", lambda p, x: _conv(x, p["w"], window_strides=(1, 1), padding="SAME",
                                            dimension_numbers=_NHWC), f32(2, 7, 9, 3), params={"w": f32(3, 3, 3, 5)})
case("conv2d_nhwc_valid_strided", lambda p, x: _conv(x, p["w"], window_strides=(2, 3), padding="VALID",
                                                     dimension_numbers=_NHWC),
     f32(1, 11, 10, 2), params={"w": f32(3, 2, 2, 4)})
case("conv2d_nchw_explicit_pads", lambda p, x: _conv(x, p["w"], window_strides=(1, 2), padding=((2, 0), (1, 3))),
     f32(2, 3, 6, 5), params={"w": f32(4, 3, 3, 2)})
# (padding ((-1, 1), (0, -1)) is avoided: XLA's CPU convolution gets it wrong, eagerly and jitted)
case("conv2d_negative_pad", lambda p, x: _conv(x, p["w"], window_strides=(1, 1), padding=((1, -1), (-1, 2))),
     f32(1, 2, 6, 6), params={"w": f32(3, 2, 2, 2)})
case("conv2d_rhs_dilation", lambda p, x: _conv(x, p["w"], window_strides=(1, 1), padding="SAME", rhs_dilation=(2, 3),
                                               dimension_numbers=_NHWC), f32(1, 9, 10, 2), params={"w": f32(3, 3, 2, 3)})
case("conv2d_lhs_dilation", lambda p, x: _conv(x, p["w"], window_strides=(1, 1), padding=((2, 2), (1, 1)),
                                               lhs_dilation=(2, 3), dimension_numbers=_NHWC),
     f32(2, 4, 5, 3), params={"w": f32(3, 2, 3, 2)})
case("conv2d_grouped", lambda p, x: _conv(x, p["w"], window_strides=(1, 1), padding="SAME", feature_group_count=3,
                                          dimension_numbers=_NHWC), f32(1, 5, 6, 6), params={"w": f32(3, 3, 2, 9)})
case("conv2d_depthwise", lambda p, x: _conv(x, p["w"], window_strides=(2, 2), padding="SAME", feature_group_count=4,
                                            dimension_numbers=_NHWC), f32(2, 7, 7, 4), params={"w": f32(3, 3, 1, 8)})
# J2S_ConvDepthwise: channel multipliers 1-3, channel counts with full and partial vectors at every
# level (19 = 16 + 3, 6 = 4 + 2, 3), strides, dilations, kernels 1-5, SAME / VALID / asymmetric pads
case("depthwise2d_same_m1", lambda p, x: _conv(x, p["w"], window_strides=(1, 1), padding="SAME",
                                               feature_group_count=19, dimension_numbers=_NHWC),
     f32(2, 9, 11, 19), params={"w": f32(3, 3, 1, 19)})
case("depthwise2d_valid_strided_m2", lambda p, x: _conv(x, p["w"], window_strides=(2, 2), padding="VALID",
                                                        feature_group_count=6, dimension_numbers=_NHWC),
     f32(2, 12, 13, 6), params={"w": f32(5, 4, 1, 12)})
case("depthwise2d_dilated_asymmetric_m3", lambda p, x: _conv(x, p["w"], window_strides=(1, 2),
                                                             padding=((2, 0), (1, 3)), rhs_dilation=(2, 1),
                                                             feature_group_count=3, dimension_numbers=_NHWC),
     f32(1, 8, 10, 3), params={"w": f32(3, 2, 1, 9)})
case("depthwise2d_1x1_m2", lambda p, x: _conv(x, p["w"], window_strides=(1, 1), padding="VALID",
                                              feature_group_count=5, dimension_numbers=_NHWC),
     f32(2, 4, 3, 5), params={"w": f32(1, 1, 1, 10)})
case("depthwise2d_nchw", lambda p, x: _conv(x, p["w"], window_strides=(1, 1), padding="SAME", feature_group_count=4),
     f32(2, 4, 7, 6), params={"w": f32(8, 1, 3, 3)})
case("depthwise2d_kernel_as_input_m2", lambda p, x, w: _conv(x, w, window_strides=(1, 1), padding="SAME",
                                                             feature_group_count=3, dimension_numbers=_NHWC),
     f32(1, 6, 5, 3), f32(3, 3, 1, 6), batch=False)
case("depthwise1d_m2", lambda p, x: _conv(x, p["w"], window_strides=(2,), padding="SAME", rhs_dilation=(2,),
                                          feature_group_count=7, dimension_numbers=("NWC", "WIO", "NWC")),
     f32(2, 17, 7), params={"w": f32(4, 1, 14)})
case("depthwise3d", lambda p, x: _conv(x, p["w"], window_strides=(1, 2, 1), padding="SAME", feature_group_count=5,
                                       dimension_numbers=("NDHWC", "DHWIO", "NDHWC")),
     f32(1, 4, 6, 5, 5), params={"w": f32(3, 3, 2, 1, 5)})
case("depthwise2d_bias_relu6", lambda p, x: jax.nn.relu6(
        _conv(x, p["w"], window_strides=(1, 1), padding="SAME", feature_group_count=19, dimension_numbers=_NHWC)
        + p["b"]), f32(2, 6, 9, 19), params={"w": f32(3, 3, 1, 19), "b": f32(19)})
case("depthwise2d_batchnorm_relu_m2", lambda p, x: jax.nn.relu(
        _conv(x, p["w"], window_strides=(1, 1), padding="VALID", feature_group_count=3, dimension_numbers=_NHWC)
        * p["scale"] + p["shift"]), f32(2, 6, 7, 3), params={"w": f32(3, 3, 1, 6), "scale": f32(6), "shift": f32(6)})
case("conv2d_relu6", lambda p, x: jax.nn.relu6(_conv(x, p["w"], window_strides=(1, 1), padding="SAME",
                                                     dimension_numbers=_NHWC) * 4.0),
     f32(2, 5, 6, 3), params={"w": f32(3, 3, 3, 5)})
case("conv2d_1x1", lambda p, x: _conv(x, p["w"], window_strides=(1, 1), padding="VALID", dimension_numbers=_NHWC),
     f32(3, 4, 5, 6), params={"w": f32(1, 1, 6, 7)})
case("conv1d_nwc", lambda p, x: _conv(x, p["w"], window_strides=(2,), padding="SAME",
                                      dimension_numbers=("NWC", "WIO", "NWC")), f32(2, 13, 3), params={"w": f32(4, 3, 5)})
case("conv3d_ndhwc", lambda p, x: _conv(x, p["w"], window_strides=(1, 2, 1), padding="SAME",
                                        dimension_numbers=("NDHWC", "DHWIO", "NDHWC")),
     f32(1, 5, 6, 4, 2), params={"w": f32(3, 2, 3, 2, 3)})
case("conv3d_ncdhw_dilated", lambda p, x: _conv(x, p["w"], window_strides=(1, 1, 1), padding=((0, 0), (1, 0), (0, 1)),
                                                rhs_dilation=(1, 2, 1), lhs_dilation=(2, 1, 1)),
     f32(1, 2, 3, 7, 4), params={"w": f32(2, 2, 2, 2, 2)})
case("conv2d_mixed_layout", lambda p, x: _conv(x, p["w"], window_strides=(1, 1), padding="SAME",
                                               dimension_numbers=("NCHW", "OIHW", "NHWC")),
     f32(2, 3, 5, 4), params={"w": f32(2, 3, 3, 3)})
case("conv2d_kernel_as_input", lambda p, x, w: _conv(x, w, window_strides=(1, 1), padding="VALID",
                                                     dimension_numbers=_NHWC), f32(1, 5, 5, 2), f32(2, 2, 2, 3),
     batch=False)
# Large kernels: constant ones are stored blocked (passes/conv_kernels.py) and run the direct kernel;
# padded 3x3 with batch norm and ReLU; strided with a residual and ReLU6; a dilated 1-D kernel without
# bias; a 1x1 kernel; output channels that are not a multiple of 16 (230, 300, 520: a zero-padded last
# block). Kernels scaled by 1/sqrt(fan-in) like a trained layer's, so outputs are O(1) and the
# rtol/atol defaults hold.
def _scaled(w):
    return w * (1.0 / np.sqrt(np.prod(w.shape[:-1])))


case("conv2d_wide_batchnorm_relu", lambda p, x: jax.nn.relu(
        _conv(x, _scaled(p["w"]), window_strides=(1, 1), padding="SAME", dimension_numbers=_NHWC) * p["scale"]
        + p["shift"]), f32(2, 4, 5, 128), params={"w": f32(3, 3, 128, 230), "scale": f32(230), "shift": f32(230)})
case("conv2d_wide_strided_residual_relu6", lambda p, x, r: jax.nn.relu6(
        _conv(x, _scaled(p["w"]), window_strides=(2, 2), padding="SAME", dimension_numbers=_NHWC) + p["b"] + r),
     f32(2, 7, 6, 120), f32(2, 4, 3, 256), params={"w": f32(3, 3, 120, 256), "b": f32(256)})
case("conv1d_wide_dilated", lambda p, x: _conv(x, _scaled(p["w"]), window_strides=(1,), padding="SAME",
                                               rhs_dilation=(2,), dimension_numbers=("NWC", "WIO", "NWC")),
     f32(2, 6, 300), params={"w": f32(3, 300, 300)})
case("conv2d_wide_1x1", lambda p, x: _conv(x, _scaled(p["w"]), window_strides=(1, 1), padding="VALID",
                                           dimension_numbers=_NHWC) + p["b"],
     f32(3, 40, 2, 512), params={"w": f32(1, 1, 512, 520), "b": f32(520)})
# J2S_ConvNHWC by im2col + sgemm (method "gemm"): a kernel of more than 1 MiB on rows shorter than a
# tile, computed at run time (scaled by a function of the input's sum, as a modulated convolution's
# kernel is, so it is not a constant and keeps its layout; a sum and not a mean, whose 1/N would make
# the model's structure depend on the batch). Padded 3x3 with bias and ReLU; strided with
# a residual and ReLU6; a 1x1 kernel (no patch matrix). At the dynamic batches 7 and 16 they run in
# several sgemm chunks, the last one partial.
def _modulated(w, x):
    return _scaled(w) * jax.nn.sigmoid(1e-3 * jnp.sum(x))


case("conv2d_gemm_modulated_relu", lambda p, x: jax.nn.relu(
        _conv(x, _modulated(p["w"], x), window_strides=(1, 1), padding="SAME", dimension_numbers=_NHWC) + p["b"]),
     f32(2, 4, 5, 128), params={"w": f32(3, 3, 128, 230), "b": f32(230)})
case("conv2d_gemm_modulated_strided_residual_relu6", lambda p, x, r: jax.nn.relu6(
        _conv(x, _modulated(p["w"], x), window_strides=(2, 2), padding="SAME", dimension_numbers=_NHWC)
        + p["b"] + r), f32(2, 7, 6, 120), f32(2, 4, 3, 256), params={"w": f32(3, 3, 120, 256), "b": f32(256)})
case("conv2d_gemm_modulated_1x1", lambda p, x: _conv(x, _modulated(p["w"], x), window_strides=(1, 1),
                                                     padding="VALID", dimension_numbers=_NHWC),
     f32(3, 40, 2, 512), params={"w": f32(1, 1, 512, 520)})
# A Concat along channels folded into the direct convolution that reads it (passes/conv_concat.py):
# a U-Net's skip concat before a padded 3x3 with bias and ReLU; three parts of 5, 16 and 3 channels
# into an unpadded 1x1 (the buffer a padded conv has anyway is made for the copy) with a residual;
# a conv without bias (it gets zeros, since the parts come after B); a 1-D strided one.
case("conv2d_concat_skip_relu", lambda p, x, skip: jax.nn.relu(
        _conv(jnp.concatenate([x, skip], axis=-1), _scaled(p["w"]), window_strides=(1, 1), padding="SAME",
              dimension_numbers=_NHWC) + p["b"]), f32(2, 6, 9, 12), f32(2, 6, 9, 20),
     params={"w": f32(3, 3, 32, 24), "b": f32(24)})
case("conv2d_concat_three_parts_1x1_residual", lambda p, a, b, c, r: _conv(
        jnp.concatenate([a, b, c], axis=-1), _scaled(p["w"]), window_strides=(1, 1), padding="VALID",
        dimension_numbers=_NHWC) + p["b"] + r, f32(2, 4, 5, 5), f32(2, 4, 5, 16), f32(2, 4, 5, 3), f32(2, 4, 5, 40),
     params={"w": f32(1, 1, 24, 40), "b": f32(40)})
case("conv1d_concat_strided_no_bias", lambda p, a, b: _conv(
        jnp.concatenate([a, b], axis=-1), _scaled(p["w"]), window_strides=(2,), padding=((1, 2),),
        dimension_numbers=("NWC", "WIO", "NWC")), f32(3, 11, 4), f32(3, 11, 7), params={"w": f32(4, 11, 18)})
case("conv_transpose_2d", lambda p, x: lax.conv_transpose(x, p["w"], strides=(2, 2), padding="SAME",
                                                          dimension_numbers=_NHWC), f32(2, 5, 4, 3),
     params={"w": f32(3, 3, 3, 4)})
case("conv_transpose_1d_valid", lambda p, x: lax.conv_transpose(x, p["w"], strides=(3,), padding="VALID",
                                                                dimension_numbers=("NWC", "WIO", "NWC")),
     f32(1, 6, 2), params={"w": f32(4, 2, 3)})


# Transposed convolutions (J2S_ConvTransposeNHWC): strides 1..3, kernels 1..5, odd and even input sizes,
# 'SAME' / 'VALID' / explicit pads (asymmetric, negative), one output channel and several (a full vector
# block and a partial one), bias and ReLU fused; each case returns several outputs to share one compile.
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402


def _layouts(d):
    s = "DHW"[3 - d:]
    return ("N" + s + "C", s + "IO", "N" + s + "C")


def _conv_transposes(configs):
    """fn(p, x): relu(conv_transpose(x, w) + b) for each (strides, padding) and p's w and b."""
    def fn(p, x):
        outs = []
        for (stride, pad), w, b in zip(configs, p["w"], p["b"]):
            if isinstance(pad, str):
                y = lax.conv_transpose(x, w, strides=stride, padding=pad, dimension_numbers=_layouts(len(stride)))
            else:
                y = lax.conv_general_dilated(x, w, (1,) * len(stride), pad, lhs_dilation=stride,
                                             dimension_numbers=_layouts(len(stride)))
            outs.append(jax.nn.relu(y + b))
        return tuple(outs)
    return fn


# (strides, padding, kernel size, output channels)
_CT_2D = [((2, 2), "SAME", 4, 1), ((2, 2), "VALID", 3, 5), ((3, 3), "SAME", 5, 19), ((3, 2), "VALID", 2, 1),
          ((2, 3), "SAME", 1, 4), ((2, 2), ((1, 3), (0, 2)), 5, 17), ((3, 3), ((3, 0), (2, 1)), 4, 1),
          ((2, 2), ((-1, 1), (0, -1)), 3, 6), ((3, 1), ((4, 4), (0, 0)), 2, 3)]
case("conv_transpose_2d_strides_kernels_pads", _conv_transposes([(s, p) for s, p, _, _ in _CT_2D]), f32(2, 5, 6, 3),
     params={"w": [f32(k, k, 3, o) for _, _, k, o in _CT_2D], "b": [f32(o) for _, _, _, o in _CT_2D]})
# one output channel over 16 and 20 input channels: vectors over the input channels, a partial one for 20
case("conv_transpose_2d_one_output_channel",
     lambda p, x: (lax.conv_transpose(x, p["w16"], strides=(2, 2), padding="SAME", dimension_numbers=_NHWC),
                   jax.nn.sigmoid(lax.conv_transpose(jnp.concatenate([x, x[..., :4]], axis=-1), p["w20"],
                                                     strides=(3, 3), padding="VALID", dimension_numbers=_NHWC)
                                  + p["b"])),
     f32(2, 7, 6, 16), params={"w16": f32(4, 4, 16, 1), "w20": f32(3, 2, 20, 1), "b": f32(1)})
case("conv_transpose_1d_3d",
     lambda p, x1, x3: (*_conv_transposes([((2,), "SAME"), ((3,), ((2, 1),))])(
         {"w": [p["w1"], p["w1b"]], "b": [p["b1"], p["b1"]]}, x1),
         lax.conv_transpose(x3, p["w3"], strides=(2, 1, 2), padding="SAME",
                            dimension_numbers=("NDHWC", "DHWIO", "NDHWC"))),
     f32(2, 7, 3), f32(2, 3, 4, 3, 2),
     params={"w1": f32(4, 3, 5), "w1b": f32(3, 3, 5), "b1": f32(5), "w3": f32(3, 2, 3, 2, 4)})
# a skip connection added after the transposed convolution: the conv's fused residual input
case("conv_transpose_2d_residual_relu",
     lambda p, x, skip: jax.nn.relu(lax.conv_transpose(x, p["w"], strides=(2, 2), padding="SAME",
                                                       dimension_numbers=_NHWC) + p["b"] + skip),
     f32(2, 4, 5, 6), f32(2, 8, 10, 8), params={"w": f32(3, 3, 6, 8), "b": f32(8)})
case("conv_transpose_2d_one_output_channel_residual",
     lambda p, x, skip: jax.nn.relu(lax.conv_transpose(x, p["w"], strides=(2, 2), padding="VALID",
                                                       dimension_numbers=_NHWC) + skip),
     f32(2, 4, 5, 8), f32(2, 9, 11, 1), params={"w": f32(3, 3, 8, 1)})
