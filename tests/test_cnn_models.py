"""Convolutional models and Flax conv/pool/BatchNorm modules (linen and nnx): convert, compile, run and
compare with JAX, at batch 1 and 16, with static shapes and with a symbolic batch."""
from __future__ import annotations

import flax.linen as nn
import jax
import numpy as np
import pytest
from flax import nnx

import jax2sofie

BATCHES = [1, 16]


def _x(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _perturbed(variables):
    """Non-trivial batch statistics and biases, so inference-mode BatchNorm is not the identity."""
    leaves, tree = jax.tree_util.tree_flatten(variables)
    rng = np.random.default_rng(7)
    leaves = [v + 0.2 * np.abs(rng.standard_normal(v.shape)).astype(v.dtype) for v in leaves]
    return jax.tree_util.tree_unflatten(tree, leaves)


def _check(model, batches, feature_shape, name, rtol=1e-4, atol=1e-5):
    for batch in batches:
        x = _x((batch,) + feature_shape, seed=batch)
        report = model.check(x, rtol=rtol, atol=atol)
        assert report.passed, f"{name} at batch {batch}:\n{report}\n{model.graph}"
        # the error budget of a whole model (SCALE_BUDGET in jax2sofie/runtime/compare.py)
        assert report.within_budget, f"{name} at batch {batch} exceeds the error budget:\n{report}"


class SmallCNN(nn.Module):
    """28x28x1 -> conv-relu-pool -> conv-BN-relu-pool -> flatten -> dense: a small classifier."""

    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.Conv(8, (3, 3))(x))
        x = nn.max_pool(x, (2, 2), strides=(2, 2))
        x = nn.Conv(16, (3, 3), padding="VALID")(x)
        x = nn.relu(nn.BatchNorm(use_running_average=True)(x))
        x = nn.avg_pool(x, (2, 2), strides=(2, 2))
        x = x.reshape(x.shape[0], -1)
        return nn.Dense(10)(x)


class ResNetBlock(nnx.Module):
    """conv-BN-relu-conv-BN + identity, relu (32x32x16), in nnx."""

    def __init__(self, channels: int, rngs: nnx.Rngs):
        self.conv1 = nnx.Conv(channels, channels, (3, 3), use_bias=False, rngs=rngs)
        self.bn1 = nnx.BatchNorm(channels, rngs=rngs)
        self.conv2 = nnx.Conv(channels, channels, (3, 3), use_bias=False, rngs=rngs)
        self.bn2 = nnx.BatchNorm(channels, rngs=rngs)

    def __call__(self, x):
        y = nnx.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return nnx.relu(y + x)


def _small_cnn():
    module = SmallCNN()
    variables = _perturbed(module.init(jax.random.PRNGKey(0), _x((1, 28, 28, 1))))
    return lambda v, x: module.apply(v, x), variables


def _resnet_block():
    block = ResNetBlock(16, nnx.Rngs(0))
    for bn in (block.bn1, block.bn2):
        bn.mean.value = bn.mean.value + 0.1 * _x(bn.mean.value.shape, 3)
        bn.var.value = bn.var.value + 0.5 * np.abs(_x(bn.var.value.shape, 4))
        bn.scale.value = bn.scale.value + 0.1 * _x(bn.scale.value.shape, 5)
        bn.bias.value = bn.bias.value + 0.1 * _x(bn.bias.value.shape, 6)
    block.eval()
    return block


def _transposes(model) -> int:
    return model.graph.op_counts().get("Transpose", 0)


@pytest.mark.parametrize("batch", BATCHES)
def test_small_cnn_static(batch):
    fn, variables = _small_cnn()
    model = jax2sofie.convert(fn, variables, _x((batch, 28, 28, 1)), name="small_cnn")
    counts = model.graph.op_counts()
    # channels-last convolutions: no Transpose at all; bias and BatchNorm inside the convs
    assert "Transpose" not in counts and counts["J2S_ConvNHWC"] == 2, counts
    assert not {"Sub", "Mul", "Add", "Max", "Relu"} & set(counts), counts
    _check(model, [batch], (28, 28, 1), "small_cnn")


def test_small_cnn_dynamic_batch():
    fn, variables = _small_cnn()
    model = jax2sofie.convert(fn, variables, _x((2, 28, 28, 1)), name="small_cnn_dyn", dynamic_batch=True)
    assert _transposes(model) == 0
    _check(model, BATCHES, (28, 28, 1), "small_cnn_dyn")


@pytest.mark.parametrize("batch", BATCHES)
def test_resnet_block_static(batch):
    model = jax2sofie.convert(_resnet_block(), _x((batch, 32, 32, 16)), name="resnet_block")
    counts = model.graph.op_counts()
    # NHWC in and out, convolutions in NHWC: no Transpose; the skip connection is the second
    # conv's residual, BatchNorms and ReLUs are inside the convs
    assert "Transpose" not in counts and counts["J2S_ConvNHWC"] == 2, counts
    assert not {"Add", "Sub", "Mul", "Max", "Relu"} & set(counts), counts
    _check(model, [batch], (32, 32, 16), "resnet_block")


def test_resnet_block_dynamic_batch():
    model = jax2sofie.convert(_resnet_block(), _x((2, 32, 32, 16)), name="resnet_block_dyn", dynamic_batch=True)
    _check(model, BATCHES, (32, 32, 16), "resnet_block_dyn")


class WideBasicBlock(nn.Module):
    """ResNet-18's last block (32x32 images): 4x4x512, two 3x3 conv-BN over 512 channels, identity skip, ReLU."""

    @nn.compact
    def __call__(self, x):
        def conv_bn(v):
            v = nn.Conv(512, (3, 3), padding="SAME", use_bias=False)(v)
            return nn.BatchNorm(use_running_average=True)(v)
        return nn.relu(x + conv_bn(nn.relu(conv_bn(x))))


@pytest.mark.parametrize("dynamic", [False, True])
def test_wide_basic_block_with_blocked_kernels(dynamic):
    """Its convolutions (9.4 MB kernels over 4-pixel rows) run the direct kernel on kernels stored in blocks
    of 16 output channels (with a computed kernel they would be im2col + sgemm: the catalog's
    conv2d_gemm_* cases), with BatchNorm folded into the blocked weights and ReLU and the skip
    connection into the kernel."""
    module = WideBasicBlock()
    x = _x((2, 4, 4, 512))
    variables = _perturbed(module.init(jax.random.PRNGKey(0), x))
    model = jax2sofie.convert(module.apply, variables, x, name="wide_block", dynamic_batch=dynamic)
    convs = [node for node in model.graph.nodes if node.op == "J2S_ConvNHWC"]
    assert model.graph.op_counts() == {"J2S_ConvNHWC": 2}, model.graph.op_counts()
    assert [(c.attrs["method"], c.attrs["kernel_block"]) for c in convs] == [("direct", 16), ("direct", 16)]
    assert [c.inputs[1].shape for c in convs] == [(32, 3, 3, 512, 16)] * 2
    assert [c.attrs.get("activation") for c in convs] == ["relu", "relu"] and len(convs[1].inputs) == 4
    _check(model, BATCHES if dynamic else [2], (4, 4, 512), "wide_block")


class MobileNetBlock(nn.Module):
    """32x32x3 -> conv 16 3x3/2 -> ReLU6 -> depthwise 3x3 + BatchNorm -> ReLU6 -> separable (depthwise 3x3
    with a channel multiplier of 2, pointwise 1x1 to 32) -> ReLU6 -> global average pool -> dense 10."""

    @nn.compact
    def __call__(self, x):
        x = nn.relu6(nn.Conv(16, (3, 3), strides=(2, 2), padding="VALID")(x))
        x = nn.Conv(16, (3, 3), feature_group_count=16, padding="SAME", use_bias=False)(x)
        x = nn.relu6(nn.BatchNorm(use_running_average=True)(x))
        x = nn.Conv(32, (3, 3), feature_group_count=16, padding="VALID", use_bias=False)(x)
        x = nn.relu6(nn.Conv(32, (1, 1))(x))
        return nn.Dense(10)(x.mean(axis=(1, 2)))


def test_mobilenet_block_dynamic_batch():
    module = MobileNetBlock()
    variables = _perturbed(module.init(jax.random.PRNGKey(0), _x((1, 32, 32, 3))))
    model = jax2sofie.convert(lambda v, x: module.apply(v, x), variables, _x((2, 32, 32, 3)),
                              name="mobilenet_block", dynamic_batch=True)
    counts = model.graph.op_counts()
    # depthwise convolutions in their own channels-last kernel, the BatchNorm folded into it, every
    # ReLU6 (max(x, 0) then min(., 6)) the activation of the conv before it, and no Transpose
    assert counts["J2S_ConvDepthwise"] == 2 and counts["J2S_ConvNHWC"] == 2, counts
    assert not {"Transpose", "J2S_Conv", "Min", "Max", "Relu", "Mul", "Sub"} & set(counts), counts
    _check(model, BATCHES, (32, 32, 3), "mobilenet_block")


# -- Flax modules ---------------------------------------------------------------------------------------------
class LinenConv2D(nn.Module):
    """Conv (strided, SAME) + BatchNorm, depthwise Conv, ConvTranspose, max/avg pools (both count modes)."""

    @nn.compact
    def __call__(self, x):
        y = nn.Conv(6, (3, 2), strides=(2, 1), padding="SAME")(x)
        y = nn.relu(nn.BatchNorm(use_running_average=True)(y))
        y = nn.Conv(12, (3, 3), feature_group_count=6, kernel_dilation=(1, 2), padding="SAME")(y)  # depthwise
        y = nn.ConvTranspose(4, (3, 3), strides=(2, 2), padding="SAME")(y)
        a = nn.max_pool(y, (2, 2), strides=(2, 2), padding="SAME")
        b = nn.avg_pool(y, (3, 3), strides=(2, 2), padding="SAME", count_include_pad=True)
        c = nn.avg_pool(y, (3, 3), strides=(2, 2), padding="SAME", count_include_pad=False)
        return a + b * c


class LinenConv1D(nn.Module):
    @nn.compact
    def __call__(self, x):
        y = nn.Conv(5, (4,), strides=(2,), padding="VALID", kernel_dilation=(2,))(x)
        y = nn.ConvTranspose(3, (3,), strides=(3,), padding="VALID")(nn.tanh(y))
        return nn.max_pool(y, (3,), strides=(2,))


class LinenConv3D(nn.Module):
    @nn.compact
    def __call__(self, x):
        y = nn.Conv(4, (2, 3, 3), padding="SAME")(x)
        y = nn.ConvTranspose(3, (2, 2, 2), strides=(1, 2, 1))(y)
        return nn.avg_pool(y, (2, 2, 2), strides=(2, 2, 2))


class NnxConvNet(nnx.Module):
    """nnx.Conv + nnx.BatchNorm (eval), depthwise, ConvTranspose, pools, Linear + BatchNorm."""

    def __init__(self, rngs: nnx.Rngs):
        self.conv = nnx.Conv(3, 8, (3, 3), strides=2, rngs=rngs)
        self.bn = nnx.BatchNorm(8, rngs=rngs)
        self.depthwise = nnx.Conv(8, 8, (3, 3), feature_group_count=8, padding="VALID", rngs=rngs)
        self.up = nnx.ConvTranspose(8, 4, (2, 2), strides=(2, 2), rngs=rngs)
        self.dense = nnx.Linear(4, 6, rngs=rngs)
        self.bn_dense = nnx.BatchNorm(6, rngs=rngs)

    def __call__(self, x):
        y = nnx.relu(self.bn(self.conv(x)))
        y = self.up(self.depthwise(y))
        y = nnx.max_pool(y, (2, 2), strides=(2, 2)) + nnx.avg_pool(y, (2, 2), strides=(2, 2))
        return self.bn_dense(self.dense(y.mean(axis=(1, 2))))


LINEN_MODULES = {
    "conv2d_family": (LinenConv2D, (9, 7, 3)),
    "conv1d_family": (LinenConv1D, (19, 2)),
    "conv3d_family": (LinenConv3D, (4, 6, 5, 2)),
}


@pytest.mark.parametrize("case", sorted(LINEN_MODULES))
def test_linen_conv_modules(case):
    make, feature_shape = LINEN_MODULES[case]
    module = make()
    variables = _perturbed(module.init(jax.random.PRNGKey(0), _x((1,) + feature_shape)))
    model = jax2sofie.convert(lambda v, x: module.apply(v, x), variables, _x((2,) + feature_shape),
                              name=f"linen_{case}", dynamic_batch=True)
    _check(model, BATCHES, feature_shape, case)


def test_nnx_conv_modules():
    net = NnxConvNet(nnx.Rngs(0))
    for bn in (net.bn, net.bn_dense):
        bn.mean.value = bn.mean.value + 0.1 * _x(bn.mean.value.shape, 3)
        bn.var.value = bn.var.value + 0.5 * np.abs(_x(bn.var.value.shape, 4))
    net.eval()
    model = jax2sofie.convert(net, _x((2, 12, 11, 3)), name="nnx_conv_net", dynamic_batch=True)
    counts = model.graph.op_counts()
    assert not {"Sub", "Mul"} & set(counts), counts  # both BatchNorms folded into the conv / the Gemm
    _check(model, BATCHES, (12, 11, 3), "nnx_conv_net")


class NnxVaeDecoder(nnx.Module):
    """A VAE decoder: Linear 16 -> 7x7x32, two stride-2 4x4 'SAME' ConvTransposes (32 -> 16 with ReLU, 16 -> 1
    with sigmoid): transposed convolutions channels-last, the last with a single output channel."""

    def __init__(self, rngs: nnx.Rngs):
        self.dense = nnx.Linear(16, 7 * 7 * 32, rngs=rngs)
        self.up1 = nnx.ConvTranspose(32, 16, (4, 4), strides=(2, 2), padding="SAME", rngs=rngs)
        self.up2 = nnx.ConvTranspose(16, 1, (4, 4), strides=(2, 2), padding="SAME", rngs=rngs)

    def __call__(self, z):
        x = nnx.relu(self.dense(z)).reshape(z.shape[0], 7, 7, 32)
        return nnx.sigmoid(self.up2(nnx.relu(self.up1(x))))


@pytest.mark.parametrize("dynamic", [False, True])
def test_nnx_vae_decoder(dynamic):
    net = NnxVaeDecoder(nnx.Rngs(0))
    batches = BATCHES if dynamic else [3]
    model = jax2sofie.convert(net, _x((batches[0], 16)), name=f"vae_decoder_{int(dynamic)}", dynamic_batch=dynamic)
    counts = model.graph.op_counts()
    # both transposed convolutions channels-last with bias and ReLU inside: no Transpose, no J2S_Conv
    assert counts.get("J2S_ConvTransposeNHWC") == 2 and "Transpose" not in counts and "J2S_Conv" not in counts, counts
    assert not {"Add", "Max", "Relu"} & set(counts), counts
    _check(model, batches, (16,), f"vae_decoder_{int(dynamic)}")


class ResidualStack(nnx.Module):
    """A 3x3 conv to 32 channels, then residual blocks x + conv(relu(conv(x))) at 16x16x32 (channels-last):
    each output is a dot product of 288 terms, and the residual stream carries every block's rounding on."""

    def __init__(self, blocks, rngs):
        self.stem = nnx.Conv(32, 32, (3, 3), rngs=rngs)
        self.firsts = nnx.List([nnx.Conv(32, 32, (3, 3), rngs=rngs) for _ in range(blocks)])
        self.seconds = nnx.List([nnx.Conv(32, 32, (3, 3), rngs=rngs) for _ in range(blocks)])

    def __call__(self, x):
        x = self.stem(x)
        for first, second in zip(self.firsts, self.seconds):
            x = x + second(nnx.relu(first(x)))
        return x

    def reference(self, x):
        """The same stack in float64 with numpy."""
        def conv(layer, v):
            w, b = np.asarray(layer.kernel[...], np.float64), np.asarray(layer.bias[...], np.float64)
            padded = np.pad(v, ((0, 0), (1, 1), (1, 1), (0, 0)))
            h, wd = v.shape[1:3]
            return sum(padded[:, i:i + h, j:j + wd, :] @ w[i, j] for i in range(3) for j in range(3)) + b

        x = conv(self.stem, np.asarray(x, np.float64))
        for first, second in zip(self.firsts, self.seconds):
            x = x + conv(second, np.maximum(conv(first, x), 0.0))
        return x


def test_residual_conv_stack_is_as_accurate_as_float32_allows():
    """Five residual blocks at 16x16x32: within rtol 1e-4 / atol 1e-5 of JAX, and, against a float64
    reference, no further off than JAX's own float32 result. J2S_ConvNHWC sums each dot product in runs
    of one kernel position (csrc/owned/conv_nhwc.hpp, kMinRun); summed as one chain of 288 terms, its rms
    error on such a stack (6 blocks) was 1.4x JAX's, and 0.6x in runs."""
    module = ResidualStack(5, nnx.Rngs(0))
    x = _x((2, 16, 16, 32), seed=3)
    model = jax2sofie.convert(module, x)
    assert model.graph.op_counts() == {"J2S_ConvNHWC": 11}, model.graph.op_counts()
    report = model.check(x)
    assert report.passed, str(report)
    exact = module.reference(x)
    ours = model.run(x)[0].astype(np.float64)
    theirs = np.asarray(module(x), np.float64)
    scale = np.sqrt(np.mean(exact ** 2))

    def rms(error):
        return float(np.sqrt(np.mean(error ** 2)))

    ours_error, jax_error = rms(ours - exact), rms(theirs - exact)
    print(f"output rms {scale:.3g}; error rms relative to it: ours {ours_error / scale:.2e}, "
          f"JAX {jax_error / scale:.2e}; max abs: ours {np.abs(ours - exact).max():.2e}, "
          f"JAX {np.abs(theirs - exact).max():.2e}")
    assert ours_error <= jax_error, (ours_error, jax_error)
    assert ours_error / scale < 1e-6  # a few float32 roundings (6e-8) of the output's size
