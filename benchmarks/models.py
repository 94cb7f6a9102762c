"""The benchmark models with their inputs (without the batch) and a short family tag (which of the
issue's targets applies to it).

Each entry of MODELS is a BenchModel: a name, a family tag, the per-example input specs (shape, dtype,
how valid values are drawn: token ids in range, padding masks with real padding) and a builder that
returns the model as `apply(variables, *inputs)` + its variables, and how our converter takes it (a
linen module's apply, an nnx module, or a Keras model through keras_frontend). Weights are initialised
from a fixed seed; batch-norm statistics are set to non-trivial values so that folding them is
actually exercised.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import jax2sofie


class TinyMLP(nn.Module):
    """16 -> 64 -> 64 -> 4 with ReLU."""

    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.Dense(64)(x))
        x = nn.relu(nn.Dense(64)(x))
        return nn.Dense(4)(x)


class JetTagger(nn.Module):
    """64 -> 4 x 256 ReLU -> 1 sigmoid."""

    @nn.compact
    def __call__(self, x):
        for _ in range(4):
            x = nn.relu(nn.Dense(256)(x))
        return nn.sigmoid(nn.Dense(1)(x))


class SmallCNN(nn.Module):
    """28x28x1 -> two (conv 3x3 + ReLU + 2x2 max-pool) -> dense 10."""

    @nn.compact
    def __call__(self, x):
        x = nn.max_pool(nn.relu(nn.Conv(8, (3, 3), padding="SAME")(x)), window_shape=(2, 2), strides=(2, 2))
        x = nn.max_pool(nn.relu(nn.Conv(16, (3, 3), padding="SAME")(x)), window_shape=(2, 2), strides=(2, 2))
        return nn.Dense(10)(x.reshape(x.shape[0], -1))


class ResNetBlock(nn.Module):
    """32x32x16: conv-BN-ReLU-conv-BN + skip, ReLU (inference-mode batch norm)."""

    @nn.compact
    def __call__(self, x):
        y = nn.Conv(16, (3, 3), padding="SAME", use_bias=False)(x)
        y = nn.relu(nn.BatchNorm(use_running_average=True)(y))
        y = nn.Conv(16, (3, 3), padding="SAME", use_bias=False)(y)
        y = nn.BatchNorm(use_running_average=True)(y)
        return nn.relu(x + y)


class LSTMTagger(nn.Module):
    """A sequence of 20 steps x 8 features -> LSTM(32) -> last state -> 1 sigmoid."""

    @nn.compact
    def __call__(self, x):
        h = nn.RNN(nn.LSTMCell(32))(x)
        return nn.sigmoid(nn.Dense(1)(h[:, -1]))


class TransformerBlock(nn.Module):
    """Pre-norm encoder block: seq 16, d 64, 4 heads, MLP 128 with GELU."""

    @nn.compact
    def __call__(self, x):
        y = nn.LayerNorm()(x)
        x = x + nn.MultiHeadDotProductAttention(num_heads=4, qkv_features=64)(y, y)
        y = nn.LayerNorm()(x)
        y = nn.Dense(64)(nn.gelu(nn.Dense(128)(y)))
        return x + y


class DeepSets(nn.Module):
    """30 particles x 4 features: phi (64, 64 ReLU) per particle, sum, rho (64 ReLU, 1)."""

    @nn.compact
    def __call__(self, x):
        h = nn.relu(nn.Dense(64)(x))
        h = nn.relu(nn.Dense(64)(h))
        h = jnp.sum(h, axis=1)
        h = nn.relu(nn.Dense(64)(h))
        return nn.Dense(1)(h)


class UNet(nn.Module):
    """32x32x1: conv 16 -> max-pool -> conv 32 -> max-pool -> conv 64 -> two (ConvTranspose x2, concat
    the skip, conv) -> 1x1 conv."""

    @nn.compact
    def __call__(self, x):
        def conv(features, x):
            return nn.relu(nn.Conv(features, (3, 3), padding="SAME")(x))

        def pool(x):
            return nn.max_pool(x, window_shape=(2, 2), strides=(2, 2))

        skip32 = conv(16, x)
        skip16 = conv(32, pool(skip32))
        y = conv(64, pool(skip16))
        y = nn.ConvTranspose(32, (2, 2), strides=(2, 2))(y)
        y = conv(32, jnp.concatenate([y, skip16], axis=-1))
        y = nn.ConvTranspose(16, (2, 2), strides=(2, 2))(y)
        y = conv(16, jnp.concatenate([y, skip32], axis=-1))
        return nn.Conv(1, (1, 1))(y)


class BasicBlock(nn.Module):
    """ResNet-18's block: two 3x3 conv-BN, a 1x1 conv-BN projection where the shape changes."""
    features: int
    strides: int = 1

    @nn.compact
    def __call__(self, x):
        y = nn.Conv(self.features, (3, 3), strides=self.strides, padding="SAME", use_bias=False)(x)
        y = nn.relu(nn.BatchNorm(use_running_average=True)(y))
        y = nn.Conv(self.features, (3, 3), padding="SAME", use_bias=False)(y)
        y = nn.BatchNorm(use_running_average=True)(y)
        if self.strides != 1 or x.shape[-1] != self.features:
            x = nn.Conv(self.features, (1, 1), strides=self.strides, use_bias=False)(x)
            x = nn.BatchNorm(use_running_average=True)(x)
        return nn.relu(x + y)


class ResNet18(nn.Module):
    """ResNet-18 for 32x32x3 images (CIFAR stem: one 3x3 conv, no max-pool), stages 64/128/256/512 of
    two blocks each, global mean, dense 10."""

    @nn.compact
    def __call__(self, x):
        x = nn.Conv(64, (3, 3), padding="SAME", use_bias=False)(x)
        x = nn.relu(nn.BatchNorm(use_running_average=True)(x))
        for stage, features in enumerate((64, 128, 256, 512)):
            x = BasicBlock(features, strides=1 if stage == 0 else 2)(x)
            x = BasicBlock(features)(x)
        return nn.Dense(10)(jnp.mean(x, axis=(1, 2)))


class EmbedClassifier(nn.Module):
    """int32 tokens (seq 32, vocabulary 1000) -> embedding 32 -> mean over the sequence -> dense 5."""

    @nn.compact
    def __call__(self, tokens):
        return nn.Dense(5)(jnp.mean(nn.Embed(VOCAB, 32)(tokens), axis=1))


class EdgeConv(nn.Module):
    """A point cloud of 32 points x 3 features: each point's k=8 nearest neighbours (lax.top_k on minus
    the pairwise squared distances; a point is its own nearest), edge features [x_i, x_j - x_i]
    through an MLP (32, 32 ReLU), max over the neighbours, mean over the points, dense 4."""
    k: int = 8

    @nn.compact
    def __call__(self, points):
        squared = jnp.sum(points * points, axis=-1)
        distances = squared[:, :, None] - 2.0 * points @ jnp.swapaxes(points, 1, 2) + squared[:, None, :]
        _, neighbours = jax.lax.top_k(-distances, self.k)  # (batch, points, k)
        x_j = jax.vmap(lambda p, i: p[i])(points, neighbours)  # (batch, points, k, features)
        x_i = jnp.broadcast_to(points[:, :, None, :], x_j.shape)
        edges = jnp.concatenate([x_i, x_j - x_i], axis=-1)
        h = nn.relu(nn.Dense(32)(nn.relu(nn.Dense(32)(edges))))
        return nn.Dense(4)(jnp.mean(jnp.max(h, axis=2), axis=1))


# ---- Flax nnx models ----

class VAEDecoder(nnx.Module):
    """latent 16 -> linear -> 7x7x32 -> ConvTranspose 16 (4x4, stride 2) ReLU -> ConvTranspose 1 (4x4,
    stride 2) sigmoid: a 28x28x1 image."""

    def __init__(self, rngs: nnx.Rngs):
        self.dense = nnx.Linear(16, 7 * 7 * 32, rngs=rngs)
        self.up1 = nnx.ConvTranspose(32, 16, (4, 4), strides=(2, 2), padding="SAME", rngs=rngs)
        self.up2 = nnx.ConvTranspose(16, 1, (4, 4), strides=(2, 2), padding="SAME", rngs=rngs)

    def __call__(self, z):
        x = self.dense(z).reshape(z.shape[0], 7, 7, 32)
        return nnx.sigmoid(self.up2(nnx.relu(self.up1(x))))


class MaskedSelfAttention(nnx.Module):
    """BERT's attention: heads by reshape and matmul, padded keys masked by adding -1e9 to their logits."""

    def __init__(self, d: int, heads: int, rngs: nnx.Rngs):
        self.heads = heads
        self.qkv = nnx.Linear(d, 3 * d, rngs=rngs)
        self.out = nnx.Linear(d, d, rngs=rngs)

    def __call__(self, x, mask):
        b, s, d = x.shape
        dh = d // self.heads
        qkv = self.qkv(x).reshape(b, s, 3, self.heads, dh).transpose(2, 0, 3, 1, 4)  # (3, b, heads, s, dh)
        q, k, v = qkv[0], qkv[1], qkv[2]
        logits = q @ jnp.swapaxes(k, -1, -2) / np.sqrt(dh) + (mask[:, None, None, :] - 1.0) * 1e9
        y = jax.nn.softmax(logits, axis=-1) @ v
        return self.out(y.transpose(0, 2, 1, 3).reshape(b, s, d))


class BertLayer(nnx.Module):
    """Post-norm BERT layer: attention + residual, LayerNorm, erf-GELU MLP + residual, LayerNorm."""

    def __init__(self, d: int, heads: int, hidden: int, rngs: nnx.Rngs):
        self.attention = MaskedSelfAttention(d, heads, rngs)
        self.norm1 = nnx.LayerNorm(d, rngs=rngs)
        self.up = nnx.Linear(d, hidden, rngs=rngs)
        self.down = nnx.Linear(hidden, d, rngs=rngs)
        self.norm2 = nnx.LayerNorm(d, rngs=rngs)

    def __call__(self, x, mask):
        x = self.norm1(x + self.attention(x, mask))
        return self.norm2(x + self.down(jax.nn.gelu(self.up(x), approximate=False)))


class BertEncoder(nnx.Module):
    """int32 tokens (seq 32, vocabulary 1000) + a float padding mask (1 token, 0 padding): token and
    position embeddings, LayerNorm, 2 BertLayers (d 64, 4 heads, MLP 128)."""

    def __init__(self, rngs: nnx.Rngs, seq: int = 32, d: int = 64, heads: int = 4, hidden: int = 128):
        self.tokens = nnx.Embed(VOCAB, d, rngs=rngs)
        self.positions = nnx.Param(jax.random.normal(rngs.params(), (seq, d)) * 0.02)
        self.norm = nnx.LayerNorm(d, rngs=rngs)
        self.layers = nnx.List([BertLayer(d, heads, hidden, rngs) for _ in range(2)])

    def __call__(self, tokens, mask):
        x = self.norm(self.tokens(tokens) + self.positions[None])
        for layer in self.layers:
            x = layer(x, mask)
        return x


class ViTBlock(nnx.Module):
    def __init__(self, d: int, heads: int, hidden: int, rngs: nnx.Rngs):
        self.norm1 = nnx.LayerNorm(d, rngs=rngs)
        self.attention = nnx.MultiHeadAttention(num_heads=heads, in_features=d, decode=False, rngs=rngs)
        self.norm2 = nnx.LayerNorm(d, rngs=rngs)
        self.up = nnx.Linear(d, hidden, rngs=rngs)
        self.down = nnx.Linear(hidden, d, rngs=rngs)

    def __call__(self, x):
        x = x + self.attention(self.norm1(x))
        return x + self.down(nnx.gelu(self.up(self.norm2(x))))


class ViTTiny(nnx.Module):
    """32x32x3 -> 4x4 patches by a strided conv (d 64, 64 patches) + positions -> 2 pre-norm blocks
    (nnx.MultiHeadAttention, 4 heads; MLP 128 GELU) -> LayerNorm -> mean over patches -> linear 10."""

    def __init__(self, rngs: nnx.Rngs, d: int = 64):
        self.patches = nnx.Conv(3, d, (4, 4), strides=(4, 4), padding="VALID", rngs=rngs)
        self.positions = nnx.Param(jax.random.normal(rngs.params(), (64, d)) * 0.02)
        self.blocks = nnx.List([ViTBlock(d, 4, 128, rngs) for _ in range(2)])
        self.norm = nnx.LayerNorm(d, rngs=rngs)
        self.head = nnx.Linear(d, 10, rngs=rngs)

    def __call__(self, images):
        x = self.patches(images)
        x = x.reshape(x.shape[0], -1, x.shape[-1]) + self.positions[None]
        for block in self.blocks:
            x = block(x)
        return self.head(jnp.mean(self.norm(x), axis=1))


# ---- Keras 3 models (built on Keras' JAX backend: keras_frontend is imported first) ----

def mobilenet_block():
    """32x32x3 -> Conv2D 16 (3x3, stride 2) -> ReLU6 -> DepthwiseConv2D 3x3 -> ReLU6 -> SeparableConv2D 32
    -> ReLU6 -> global average pooling -> Dense 10."""
    keras = _keras()
    layers = keras.layers
    inputs = keras.Input((32, 32, 3), name="images")
    x = layers.ReLU(6.0)(layers.Conv2D(16, 3, strides=2, padding="same")(inputs))
    x = layers.ReLU(6.0)(layers.DepthwiseConv2D(3, padding="same")(x))
    x = layers.ReLU(6.0)(layers.SeparableConv2D(32, 3, padding="same")(x))
    outputs = layers.Dense(10)(layers.GlobalAveragePooling2D()(x))
    return keras.Model(inputs, outputs, name="mobilenet_block")


def keras_mha():
    """seq 16, d 64: causal self-attention (keras.layers.MultiHeadAttention, 4 heads of 16) + residual,
    LayerNorm."""
    keras = _keras()
    layers = keras.layers
    inputs = keras.Input((16, 64), name="sequence")
    y = layers.MultiHeadAttention(num_heads=4, key_dim=16)(inputs, inputs, use_causal_mask=True)
    outputs = layers.LayerNormalization()(layers.Add()([inputs, y]))
    return keras.Model(inputs, outputs, name="keras_mha")


def _keras():
    import keras_frontend  # noqa: F401  (before Keras: Keras then runs on JAX)
    import keras
    if keras.backend.backend() != "jax":
        raise RuntimeError(f"the Keras benchmark models need Keras on JAX; this process runs it on "
                           f"{keras.backend.backend()} (set KERAS_BACKEND=jax or import keras_frontend first)")
    keras.utils.set_random_seed(0)
    return keras


# ---- what the benchmark runs ----

VOCAB = 1000  # the token models' vocabulary


@dataclass(frozen=True)
class Input:
    """One input of a model, per example (without the batch): its shape, dtype and values drawn as
    "normal" (standard normal floats), "tokens" (int32 ids in [0, VOCAB)) or "mask" (a float padding
    mask over the last axis: 1 for a token, 0 for padding, every example padded after a random length
    of at least a quarter)."""
    shape: tuple
    dtype: str = "float32"
    values: str = "normal"

    def sample(self, rng: np.random.Generator, batch: int) -> np.ndarray:
        shape = (batch,) + self.shape
        if self.values == "normal":
            return rng.normal(size=shape).astype(self.dtype)
        if self.values == "tokens":
            return rng.integers(0, VOCAB, size=shape).astype(self.dtype)
        if self.values == "mask":
            length = shape[-1]
            kept = rng.integers(max(1, length // 4), length, size=shape[:-1])  # always some padding
            return (np.arange(length) < kept[..., None]).astype(self.dtype)
        raise ValueError(f"Input.values: unknown kind {self.values!r} (normal, tokens, mask)")


@dataclass
class Built:
    """A model ready to run: `apply(variables, *inputs)` (what jax.jit and jax2onnx trace) and
    `convert(inputs, name)`, how our converter takes it (the linen apply, the nnx module, the Keras
    model through keras_frontend)."""
    apply: Callable
    variables: Any
    convert: Callable


@dataclass(frozen=True)
class BenchModel:
    name: str
    family: str  # "mlp" (dense chains), "conv", "rnn", "attention", "embedding", "graph"
    inputs: tuple  # of Input
    build: Callable[[], Built]  # called once per run of the model (weights from a fixed seed)

    def examples(self, batch: int, seed: int = 1) -> list[np.ndarray]:
        rng = np.random.default_rng(seed)
        return [spec.sample(rng, batch) for spec in self.inputs]


def linen(name: str, module: nn.Module, input_shape: tuple, family: str, inputs: tuple = ()) -> BenchModel:
    """A linen module of one float input of `input_shape` (or of `inputs`), initialised from seed 0."""
    inputs = inputs or (Input(input_shape),)

    def build(seed: int = 0) -> Built:
        examples = [jnp.zeros((1,) + spec.shape, spec.dtype) for spec in inputs]
        variables = module.init(jax.random.PRNGKey(seed), *examples)
        if "batch_stats" in variables:  # non-trivial running statistics
            variables = {**variables, "batch_stats": _random_statistics(variables["batch_stats"], seed)}
        return Built(module.apply, variables,
                     lambda xs, name: jax2sofie.convert(module.apply, variables, *xs, name=name))
    return BenchModel(name, family, inputs, build)


def _random_statistics(batch_stats, seed: int):
    """Every BatchNorm's mean ~ N(0, 0.1) and var ~ U(0.5, 1.5), so that folding them is exercised."""
    rng = np.random.default_rng(seed)

    def fill(tree):
        if "mean" in tree and "var" in tree and not isinstance(tree["mean"], dict):
            return {**tree, "mean": rng.normal(0, 0.1, tree["mean"].shape).astype(np.float32),
                    "var": rng.uniform(0.5, 1.5, tree["var"].shape).astype(np.float32)}
        return {key: fill(value) for key, value in tree.items()}
    return fill(jax.tree_util.tree_map(np.asarray, batch_stats))


def nnx_model(name: str, make: Callable[[nnx.Rngs], nnx.Module], inputs: tuple, family: str) -> BenchModel:
    """An nnx module (`make(rngs)`, seed 0): jax2sofie converts the module itself; jax.jit and jax2onnx
    run the pure function of its split state."""
    def build() -> Built:
        module = make(nnx.Rngs(0))
        graphdef, state = nnx.split(module)

        def apply(state, *xs):
            return nnx.merge(graphdef, state)(*xs)
        return Built(apply, state, lambda xs, name: jax2sofie.convert(module, *xs, name=name))
    return BenchModel(name, family, inputs, build)


def keras_model(name: str, make: Callable[[], Any], inputs: tuple, family: str) -> BenchModel:
    """A Keras 3 model on the JAX backend: jax2sofie converts it through keras_frontend; jax.jit and
    jax2onnx run the same function keras_frontend traces, `model.stateless_call`."""
    def build() -> Built:
        import keras_frontend
        model = make()
        variables = ([v.value for v in model.trainable_variables], [v.value for v in model.non_trainable_variables])

        def apply(variables, *xs):
            outputs, _ = model.stateless_call(variables[0], variables[1], xs[0] if len(xs) == 1 else list(xs),
                                              training=False)
            return outputs
        return Built(apply, variables,
                     lambda xs, name: keras_frontend.convert(model, example_input=list(xs), name=name))
    return BenchModel(name, family, inputs, build)


TOKENS = Input((32,), "int32", "tokens")

MODELS = [
    linen("tiny_mlp", TinyMLP(), (16,), "mlp"),
    linen("jet_tagger", JetTagger(), (64,), "mlp"),
    linen("small_cnn", SmallCNN(), (28, 28, 1), "conv"),
    linen("resnet_block", ResNetBlock(), (32, 32, 16), "conv"),
    linen("lstm_tagger", LSTMTagger(), (20, 8), "rnn"),
    linen("transformer_block", TransformerBlock(), (16, 64), "attention"),
    linen("deep_sets", DeepSets(), (30, 4), "mlp"),
    # the architectures deployed now
    nnx_model("vae_decoder", VAEDecoder, (Input((16,)),), "conv"),
    linen("unet", UNet(), (32, 32, 1), "conv"),
    keras_model("mobilenet_block", mobilenet_block, (Input((32, 32, 3)),), "conv"),
    nnx_model("bert_encoder", BertEncoder, (TOKENS, Input((32,), "float32", "mask")), "attention"),
    nnx_model("vit_tiny", ViTTiny, (Input((32, 32, 3)),), "attention"),
    keras_model("keras_mha", keras_mha, (Input((16, 64)),), "attention"),
    linen("embed_classifier", EmbedClassifier(), None, "embedding", inputs=(TOKENS,)),
    linen("resnet18", ResNet18(), (32, 32, 3), "conv"),
    linen("edgeconv", EdgeConv(), (32, 3), "graph"),
]


def deep_chain(n_equations: int):
    """A synthetic deep model of about `n_equations` jaxpr equations: repeated dense-free
    elementwise layers `x = tanh(x * w + b)` over a (1, 16) input (3 equations per layer: w and b
    have the input's shape, so no broadcast_in_dim is traced between them)."""
    layers = max(1, n_equations // 3)
    rng = np.random.default_rng(0)
    params = {"w": rng.normal(0, 0.5, size=(1, 16)).astype(np.float32),
              "b": rng.normal(size=(1, 16)).astype(np.float32)}

    def fn(params, x):
        for _ in range(layers):
            x = jnp.tanh(x * params["w"] + params["b"])
        return x

    return fn, params, np.zeros((1, 16), np.float32)
