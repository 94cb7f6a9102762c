"""conv_general_dilated, lowered to jax2sofie's own J2S_Conv (im2col + sgemm) in NC<spatial> layout.

Every convolution becomes Transpose(input to N,C,spatial) -> J2S_Conv -> Transpose(to the output
layout the jaxpr asks for); the kernel is transposed to O,I,spatial, which folds into the weight at
conversion time. The layout pass (passes/layout.py) then cancels the transposes between layers.
J2S_Conv (csrc/owned/conv.hpp) and not SOFIE's Conv/ConvTranspose: SOFIE's Conv gets its output size
wrong without explicit pads, its grouped ConvTranspose is wrong, and its code is slow. Input (lhs)
dilation is done inside J2S_Conv, so a transposed convolution as Flax's ConvTranspose traces it is
the same operator.
"""
from __future__ import annotations

import numpy as np

from ..ir import Value
from .context import LoweringContext
from .registry import register


@register("conv_general_dilated")
def conv_general_dilated(ctx: LoweringContext, lhs: Value, rhs: Value, *, window_strides, padding, lhs_dilation,
                         rhs_dilation, dimension_numbers, feature_group_count, batch_group_count,
                         preferred_element_type=None, **_params) -> Value:
    """J2S_Conv (im2col + sgemm, groups, strides, pads, lhs/rhs dilation) between layout Transposes."""
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

    x = ctx.transpose(lhs, lhs_spec)      # N, C, spatial...
    w = ctx.transpose(rhs, rhs_spec)      # O, I, spatial...
    pads = [int(lo) for lo, _ in padding] + [int(hi) for _, hi in padding]
    y_shape = [x.shape[0], w.shape[0]]
    for i in range(spatial):
        dilated_in = (x.shape[2 + i] - 1) * lhs_dilation[i] + 1
        dilated_k = (w.shape[2 + i] - 1) * rhs_dilation[i] + 1
        y_shape.append((dilated_in + pads[i] + pads[spatial + i] - dilated_k) // window_strides[i] + 1)
    if min(y_shape[2:]) <= 0 or 0 in x.shape or 0 in w.shape:
        raise ctx.error(f"conv_general_dilated with an empty output {y_shape} is not supported")
    y = ctx.op("J2S_Conv", [x, w], y_shape, np.float32, hint="conv", dtype="float32",
               strides=[int(s) for s in window_strides], pads=pads, dilations=[int(d) for d in rhs_dilation],
               lhs_dilations=[int(d) for d in lhs_dilation], group=int(feature_group_count))
    # output axis out_spec[i] holds axis i of y (N, C, spatial...)
    perm = [0] * y.rank
    for i, axis in enumerate(out_spec):
        perm[axis] = i
    return ctx.transpose(y, perm)


# -- catalog cases -------------------------------------------------------------------------------------------
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
case("conv_transpose_2d", lambda p, x: lax.conv_transpose(x, p["w"], strides=(2, 2), padding="SAME",
                                                          dimension_numbers=_NHWC), f32(2, 5, 4, 3),
     params={"w": f32(3, 3, 3, 4)})
case("conv_transpose_1d_valid", lambda p, x: lax.conv_transpose(x, p["w"], strides=(3,), padding="VALID",
                                                                dimension_numbers=("NWC", "WIO", "NWC")),
     f32(1, 6, 2), params={"w": f32(4, 2, 3)})
