"""Parameter and MAC counts of a Keras model, in the two conventions the LitePose numbers use.

The paper's MACs (LitePose 1.2/5.0/7.8/13.7 G) come from ptflops 0.6.x, which counts a transposed
convolution at its *output* resolution (4x too many for stride 2); ptflops 0.7.x counts it at its
*input* resolution, which is what the layer computes (spec §2.6). Both conventions also count the
element-wise modules ptflops hooks: BatchNorm 2 per element (affine), ReLU/ReLU6 1 per output element,
pooling 1 per input element, nearest upsampling 1 per output element. Functional operations (adds,
concatenation, multiplications, padding) are not counted, as in ptflops.

`count_cost(model)` -> `ModelCost(params, macs_paper_convention, macs_correct, macs_conv_only)`.
Parameters are the trainable weights (what `sum(p.numel() for p in model.parameters())` gives in
PyTorch: BN gamma/beta, not its running statistics).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

# Layers that exist only in the Keras port (input normalisation) and are absent from the PyTorch models.
_NOT_IN_REFERENCE = ("Normalization", "InputLayer")
_ACTIVATIONS_COUNTED = ("relu", "relu6", "leaky_relu", "elu")


@dataclass(frozen=True)
class ModelCost:
    params: int
    macs_paper_convention: int  # ptflops 0.6.x: deconv at output resolution (the paper's numbers)
    macs_correct: int           # ptflops 0.7.x: deconv at input resolution
    macs_conv_only: int         # convolutions and deconvolutions only (correct convention)

    def as_dict(self) -> dict:
        return asdict(self)


def _numel(shape) -> int:
    return int(math.prod(int(d) for d in shape if d is not None))


def _spatial(shape) -> int:
    return int(shape[1]) * int(shape[2])


def _io_shapes(layer):
    """(input shapes, output shape) of a layer used once in the graph."""
    inp = layer.input
    inputs = inp if isinstance(inp, (list, tuple)) else [inp]
    return [tuple(t.shape) for t in inputs], tuple(layer.output.shape)


def layer_cost(layer) -> tuple[int, int, int]:
    """(paper-convention MACs, correct MACs, conv-only MACs) of one layer."""
    kind = type(layer).__name__
    if kind in _NOT_IN_REFERENCE:
        return 0, 0, 0
    nodes = getattr(layer, "_inbound_nodes", [])
    if len(nodes) > 1:
        raise ValueError(f"layer {layer.name} is called {len(nodes)} times; count_cost needs single-use layers")
    (in_shape, *rest), out_shape = _io_shapes(layer)
    if kind == "DepthwiseConv2D":
        kh, kw = layer.kernel_size
        macs = kh * kw * int(in_shape[-1]) * int(layer.depth_multiplier) * _spatial(out_shape)
        bias = _numel(out_shape[1:]) if layer.use_bias else 0
        return macs + bias, macs + bias, macs
    if kind == "Conv2D":
        kh, kw = layer.kernel_size
        groups = int(getattr(layer, "groups", 1))
        macs = kh * kw * (int(in_shape[-1]) // groups) * int(out_shape[-1]) * _spatial(out_shape)
        bias = _numel(out_shape[1:]) if layer.use_bias else 0
        return macs + bias, macs + bias, macs
    if kind == "Conv2DTranspose":
        kh, kw = layer.kernel_size
        per_position = kh * kw * int(in_shape[-1]) * int(out_shape[-1])
        bias = _numel(out_shape[1:]) if layer.use_bias else 0
        at_input = per_position * _spatial(in_shape)
        return per_position * _spatial(out_shape) + bias, at_input + bias, at_input
    if kind == "BatchNormalization":
        n = _numel(in_shape[1:]) * (2 if (layer.center or layer.scale) else 1)
        return n, n, 0
    if kind in ("ReLU", "LeakyReLU", "ELU", "PReLU"):
        n = _numel(out_shape[1:])
        return n, n, 0
    if kind == "Activation":
        name = getattr(layer.activation, "__name__", "")
        n = _numel(out_shape[1:]) if name in _ACTIVATIONS_COUNTED else 0
        return n, n, 0
    if kind in ("MaxPooling2D", "AveragePooling2D", "GlobalAveragePooling2D", "GlobalMaxPooling2D"):
        n = _numel(in_shape[1:])
        return n, n, 0
    if kind == "UpSampling2D":
        n = _numel(out_shape[1:])
        return n, n, 0
    if kind == "Dense":
        n = _numel(in_shape[1:]) * int(out_shape[-1]) + (int(out_shape[-1]) if layer.use_bias else 0)
        return n, n, n
    return 0, 0, 0


def count_params(model) -> int:
    return int(sum(_numel(w.shape) for w in model.trainable_weights))


def count_cost(model) -> ModelCost:
    """Params and MACs of a functional Keras model (batch 1, its fixed input size)."""
    paper = correct = conv = 0
    for layer in model.layers:
        p, c, k = layer_cost(layer)
        paper, correct, conv = paper + p, correct + c, conv + k
    return ModelCost(count_params(model), paper, correct, conv)


def activation_elements(model) -> int:
    """Elements of every layer output for one image: what the conversion's memory grows with (calibration and
    range measurement keep every activation of a float pass)."""
    total = 0
    for layer in model.layers:
        for out in layer.output if isinstance(layer.output, (list, tuple)) else [layer.output]:
            total += _numel(out.shape[1:])
    return total
