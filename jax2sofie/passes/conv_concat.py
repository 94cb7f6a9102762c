"""Fold a Concat along channels into the direct J2S_ConvNHWC that is its only reader.

A U-Net's decoder concatenates the upsampled features with the skip connection and convolves the
result: SOFIE's Concat is a pass over both tensors (8% of the benchmark's U-Net at batch 64), and the
padded convolution then copies the concatenation once more into its zero-bordered buffer. With the
parts as inputs of the convolution (attribute input_channels, inputs [X, W, B, R?, X1, ...]; see
csrc/owned/conv_nhwc.hpp), that copy puts the parts side by side and the Concat is gone.

Only for a Concat along the last (channel) axis of float32 tensors whose one reader is a direct
J2S_ConvNHWC taking it as its input (not as its residual), and which is not a model output. Runs after
fuse_conv_affine, which reads a conv's inputs by position (bias third, residual fourth), and before
eliminate_dead_code, which removes the Concat.
"""
from __future__ import annotations

import numpy as np

from ..ir import Graph, Node
from .conv_fusion import new_weight, tensor_names


def _is_channel_concat(node: Node) -> bool:
    if node.op != "Concat" or node.outputs[0].dtype != np.float32:
        return False
    rank = node.outputs[0].rank
    return int(node.attrs.get("axis", 0)) in (rank - 1, -1) and len(node.inputs) >= 2


def fold_concat_into_conv(graph: Graph) -> Graph:
    consumers = graph.consumers()
    graph_outputs = {id(v) for v in graph.outputs}
    taken = tensor_names(graph)
    for concat in graph.nodes:
        if not _is_channel_concat(concat):
            continue
        joined = concat.outputs[0]
        readers = consumers.get(id(joined), [])
        if len(readers) != 1 or id(joined) in graph_outputs:
            continue
        conv = readers[0]
        if (conv.op != "J2S_ConvNHWC" or conv.attrs.get("method", "direct") != "direct"
                or "input_channels" in conv.attrs or conv.inputs[0] is not joined
                or any(v is joined for v in conv.inputs[1:])):
            continue
        if len(conv.inputs) == 2:  # the parts come after B: a conv without one gets zeros
            features = conv.outputs[0].shape[-1]
            conv.inputs.append(new_weight(np.zeros(features, np.float32), None, f"{conv.name}_bias", taken))
        parts = list(concat.inputs)
        conv.inputs = [parts[0]] + conv.inputs[1:] + parts[1:]
        conv.attrs["input_channels"] = [int(p.shape[-1]) for p in parts]
    return graph

