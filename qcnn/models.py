"""The networks of the experiments, classical and quantum, built from one seed.

One builder per architecture, each ``builder(seed=1, dtype=float32, *, input_shape=(1, 28, 28),
classes=10) -> Sequential`` (classical); its quantum version is ``quantize(builder(...), config)``
(:func:`qcnn.quantum.quantize`: every conv + ReLU [+ pooling] becomes a quantum layer):

- :func:`paper_cnn`: the KLP19 network (model §5): conv 1->5 7x7, conv 5->10 7x7,
  dense 2560-300-50-10, no pooling;
- :func:`lenet5`: LeNet-style, modern: conv 5x5 'same' + ReLU + max pool, conv 5x5 + ReLU + max
  pool, dense 400-120-84-10;
- :func:`lenet5_1998`: LeCun et al. (1998) as the primer describes it: C1 6@5x5 on the input
  padded by 2 (28 -> 32), S2 trainable subsampling, C3 16@5x5 with the original partial
  connection table, S4, C5 120@5x5, F6 84, output 10; tanh (or sigmoid) squashing;
- :func:`alexnet_small`: AlexNet's ideas at 28x28: five 3x3 conv + ReLU, local response
  normalisation after the first two, three max pools (the last overlapping, 3x3 stride 2),
  dropout 0.5 in the two hidden dense layers; ``groups=2``: AlexNet's two-GPU split as grouped
  convolutions (conv 2, 4, 5);
- :func:`inception_small`: a stem conv and two Inception v1 blocks (1x1; 1x1->3x3; 1x1->5x5;
  3x3 max pool->1x1, concatenated), global average pooling, dense.

:data:`MODELS` maps the ``--arch`` names to the builders; :func:`build_model` builds one,
quantum when given a config. Also: :func:`make_optimizer` (SGD with the quantum backprop noise
hook), :func:`transfer_weights` (a CNN's weights into its QCNN twin, the paper's "CNN weights
with the quantum forward pass", or back), :func:`architecture_info` (parameters, kernel volumes).

Seeding: every builder spawns its layers' generators from ``seed_stream(seed, "init")`` in a
fixed order, so a seed fixes the weights (and the dropout streams); the quantum layers' noise
streams follow from the same seed (see :mod:`qcnn.quantum.quantize`). The classical and quantum
versions have the same parameters in the same order and start from the same weights.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import DTypeLike

from qcnn.checks import check_int
from qcnn.nn import (
    SGD,
    AvgPool2D,
    Concat,
    Conv2D,
    Dense,
    Dropout,
    EuclideanRBF,
    Flatten,
    GlobalAvgPool2D,
    LocalResponseNorm,
    MaxPool2D,
    ReLU,
    Sequential,
    Sigmoid,
    Subsampling2D,
    Tanh,
)
from qcnn.nn.init import kaiming_uniform
from qcnn.nn.layers import Layer, walk
from qcnn.quantum import QuantumConfig, QuantumConv2D, QuantumGradientNoise, quantize
from qcnn.seeding import seed_stream, spawn_generators

__all__ = [
    "paper_cnn",
    "paper_qcnn",
    "lenet5",
    "lenet5_quantum",
    "lenet5_1998",
    "rbf_codes",
    "LENET5_C3_TABLE",
    "simple_convnet",
    "conv_stack",
    "alexnet_small",
    "inception_small",
    "build_model",
    "MODELS",
    "make_optimizer",
    "transfer_weights",
    "quantum_layers",
    "architecture_info",
]

Seed = int | np.random.SeedSequence
Shape = tuple[int, int, int]
MNIST_SHAPE: Shape = (1, 28, 28)


def _check_shape(input_shape: Shape, classes: int) -> tuple[int, int, int]:
    if len(input_shape) != 3 or any(
        isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1 for v in input_shape
    ):
        raise ValueError(f"input_shape must be (C, H, W) of positive ints, got {input_shape!r}")
    if isinstance(classes, bool) or not isinstance(classes, (int, np.integer)) or classes < 2:
        raise ValueError(f"classes must be an integer >= 2, got {classes!r}")
    c, h, w = (int(v) for v in input_shape)
    return c, h, w


def _features_shape(arch: str, layers: list[Layer], input_shape: Shape) -> tuple[int, ...]:
    """Output shape of ``layers`` on one ``input_shape`` sample; a clear error naming the
    smallest square input the architecture fits when it does not fit this one."""

    def run(shape: tuple[int, ...]) -> tuple[int, ...]:
        for layer in layers:
            shape = layer.output_shape(shape)
        return shape

    try:
        return run(tuple(input_shape))
    except ValueError as exc:
        c = input_shape[0]
        fits = [s for s in range(1, 257) if _fits(run, (c, s, s))]
        hint = f"the smallest square input it fits is {fits[0]}x{fits[0]}" if fits else ""
        raise ValueError(
            f"architecture {arch!r} does not fit inputs of shape {tuple(input_shape)} (C, H, W): "
            f"{hint} ({exc})"
        ) from None


def _fits(run: Callable, shape: tuple[int, ...]) -> bool:
    try:
        run(shape)
    except ValueError:
        return False
    return True


def _he_init(model: Sequential, seq: np.random.SeedSequence) -> Sequential:
    """He initialisation of every Conv2D and Dense of ``model`` (walk order, one generator each
    from further children of ``seq``): weights ``U(-b, b)``, ``b = sqrt(6 / fan_in)`` (Kaiming-
    uniform with ReLU's gain), biases 0. The PyTorch default (``a = sqrt(5)``, variance
    ``1 / (3 fan_in)``) shrinks the signal about 6x per ReLU layer, which leaves the 8-layer
    networks at chance after hundreds of SGD steps at the paper's learning rate."""
    layers = [layer for layer in walk(model) if isinstance(layer, (Conv2D, Dense))]
    for layer, g in zip(layers, spawn_generators(seq, len(layers)), strict=True):
        w = layer.weight.data
        layer.weight.data = kaiming_uniform(w.shape, g, a=0.0, dtype=w.dtype)
        if isinstance(layer, Conv2D) and layer.connections is not None:
            layer.weight.data *= layer._mask()
        if layer.bias is not None:
            layer.bias.data = np.zeros_like(layer.bias.data)
    return model


def _classifier(r: list[np.random.Generator], sizes: list[int], dtype, dropout=None) -> list[Layer]:
    """Dense layers ``sizes[0] -> ... -> sizes[-1]`` with ReLU between (and Dropout before each
    hidden Dense when ``dropout`` gives its generators)."""
    out: list[Layer] = []
    for k in range(len(sizes) - 1):
        if dropout is not None and k < len(dropout):
            out.append(Dropout(0.5, rng=dropout[k]))
        out.append(Dense(sizes[k], sizes[k + 1], rng=r[k], dtype=dtype))
        if k < len(sizes) - 2:
            out.append(ReLU())
    return out


# ----------------------------------------------------------------------------------------------
# KLP19's network and the modern LeNet-5
# ----------------------------------------------------------------------------------------------


def paper_cnn(
    seed: Seed = 1,
    dtype: DTypeLike = np.float32,
    *,
    input_shape: Shape = MNIST_SHAPE,
    classes: int = 10,
) -> Sequential:
    """KLP19's classical CNN on ``(N, 1, 28, 28)``: 28 -> 22 -> 16, 2560 -> 300 -> 50 -> 10."""
    c, _, _ = _check_shape(input_shape, classes)
    r = spawn_generators(seed_stream(seed, "init"), 5)
    convs = [
        Conv2D(c, 5, 7, rng=r[0], dtype=dtype),
        ReLU(),
        Conv2D(5, 10, 7, rng=r[1], dtype=dtype),
        ReLU(),
    ]
    features = math.prod(_features_shape("paper", convs, input_shape))
    return Sequential(*convs, Flatten(), *_classifier(r[2:], [features, 300, 50, classes], dtype))


def paper_qcnn(config: QuantumConfig, seed: Seed = 1, dtype: DTypeLike = np.float32) -> Sequential:
    """KLP19's QCNN: ``quantize(paper_cnn(seed, dtype), config)``, both conv + ReLU quantum."""
    return quantize(paper_cnn(seed, dtype), config)


def lenet5(
    seed: Seed = 1,
    dtype: DTypeLike = np.float32,
    *,
    input_shape: Shape = MNIST_SHAPE,
    classes: int = 10,
) -> Sequential:
    """LeNet-5 style: conv 1->6 5x5 'same', pool 2, conv 6->16 5x5, pool 2, dense 400-120-84-10."""
    c, _, _ = _check_shape(input_shape, classes)
    r = spawn_generators(seed_stream(seed, "init"), 5)
    convs = [
        Conv2D(c, 6, 5, padding="same", rng=r[0], dtype=dtype),
        ReLU(),
        MaxPool2D(2),
        Conv2D(6, 16, 5, padding=0, rng=r[1], dtype=dtype),
        ReLU(),
        MaxPool2D(2),
    ]
    features = math.prod(_features_shape("lenet5", convs, input_shape))
    return Sequential(*convs, Flatten(), *_classifier(r[2:], [features, 120, 84, classes], dtype))


def lenet5_quantum(
    config: QuantumConfig, seed: Seed = 1, dtype: DTypeLike = np.float32
) -> Sequential:
    """``quantize(lenet5(seed, dtype), config)``: quantum convs that max-pool during the write."""
    return quantize(lenet5(seed, dtype), config)


# ----------------------------------------------------------------------------------------------
# LeNet-5 as in LeCun, Bottou, Bengio, Haffner (1998)
# ----------------------------------------------------------------------------------------------


def _c3_table() -> np.ndarray:
    """Table I of LeCun et al. (1998): which S2 maps (columns here: rows of the paper) feed each
    of C3's 16 maps: maps 0-5 three contiguous S2 maps, 6-11 four contiguous, 12-14 four
    non-contiguous, 15 all six."""
    table = np.zeros((16, 6), dtype=bool)
    for j in range(6):
        table[j, [(j + t) % 6 for t in range(3)]] = True
        table[6 + j, [(j + t) % 6 for t in range(4)]] = True
    for j, maps in enumerate(([0, 1, 3, 4], [1, 2, 4, 5], [0, 2, 3, 5])):
        table[12 + j, maps] = True
    table[15] = True
    return table


LENET5_C3_TABLE = _c3_table()  # (16 C3 maps, 6 S2 maps); 60 connections, 1,516 parameters


def lenet5_1998(
    seed: Seed = 1,
    dtype: DTypeLike = np.float32,
    *,
    input_shape: Shape = MNIST_SHAPE,
    classes: int = 10,
    activation: str = "tanh",
    output: str = "dense",
) -> Sequential:
    """LeNet-5 of LeCun et al. (1998) on MNIST as the primer describes it.

    C1: 6 maps 5x5 on the input padded by 2 (MNIST 28x28 -> the paper's 32x32; the padding is
    the convolution's zeros, in normalised units) -> 28x28; S2: 2x2 trainable subsampling
    (average x coefficient + bias per map); C3: 16 maps 5x5 with the partial connection table
    :data:`LENET5_C3_TABLE` -> 10x10; S4 -> 5x5; C5: 120 maps 5x5 -> 1x1; F6: 84; output:
    ``classes``: ``output='dense'`` (default) a dense layer and softmax, or ``output='rbf'`` the
    paper's Euclidean RBF units (:class:`~qcnn.nn.EuclideanRBF`) at the fixed class codes
    :func:`rbf_codes` (no parameters; the softmax cross-entropy on the negated distances is the
    paper's criterion). Every conv, subsampling and F6 is followed by the squashing function:
    ``activation`` ``'tanh'`` (the paper's ``1.7159 tanh(2a/3)`` without its scaling),
    ``'sigmoid'``, or ``'relu'`` (not the paper; the variant :func:`~qcnn.quantum.quantize` can
    make quantum).
    """
    c, _, _ = _check_shape(input_shape, classes)
    acts = {"tanh": Tanh, "sigmoid": Sigmoid, "relu": ReLU}
    if activation not in acts:
        raise ValueError(f"activation must be one of {sorted(acts)}, got {activation!r}")
    if output not in ("dense", "rbf"):
        raise ValueError(f"output must be 'dense' or 'rbf', got {output!r}")
    act = acts[activation]
    r = spawn_generators(seed_stream(seed, "init"), 5)
    convs = [
        Conv2D(c, 6, 5, padding=2, rng=r[0], dtype=dtype),
        act(),  # C1
        Subsampling2D(6, 2, dtype=dtype),
        act(),  # S2
        Conv2D(6, 16, 5, rng=r[1], dtype=dtype, connections=LENET5_C3_TABLE),
        act(),  # C3
        Subsampling2D(16, 2, dtype=dtype),
        act(),  # S4
        Conv2D(16, 120, 5, rng=r[2], dtype=dtype),
        act(),  # C5
    ]
    features = math.prod(_features_shape("lenet5-1998", convs, input_shape))
    head: Layer = Dense(84, classes, rng=r[4], dtype=dtype)
    if output == "rbf":  # codes in the range of F6's squashing: {0, 1} for sigmoid, else +-1
        head = EuclideanRBF(rbf_codes(classes, 84, low=0.0 if activation == "sigmoid" else -1.0))
    return Sequential(
        *convs,
        Flatten(),
        Dense(features, 84, rng=r[3], dtype=dtype),  # F6
        act(),
        head,
    )


def rbf_codes(classes: int, dim: int = 84, low: float = -1.0) -> np.ndarray:
    """Fixed class codes ``(classes, dim)`` for :class:`~qcnn.nn.EuclideanRBF`: values ``low``
    and 1, row i the Walsh function ``(-1)^popcount((i + 1) & j)``, j < dim. Deterministic (no
    seed: the paper's codes were fixed by hand, 7x12 bitmaps of the characters); Walsh rows of
    a power-of-two length are orthogonal, and truncated to 84 the ten digits' codes still differ
    pairwise in 40-42 places. Distinct rows for ``classes < 2^ceil(log2 dim)``.
    """
    limit = 2 ** math.ceil(math.log2(max(dim, 2)))
    if isinstance(classes, bool) or not 1 <= classes < limit:
        raise ValueError(f"rbf_codes: need 1 <= classes < {limit} for codes of length {dim}")
    i = np.arange(1, classes + 1)[:, None]
    j = np.arange(dim)[None, :]
    parity = np.vectorize(lambda v: bin(int(v)).count("1") % 2)(i & j)
    return np.where(parity == 0, 1.0, low)


# ----------------------------------------------------------------------------------------------
# AlexNet and Inception, scaled to 28x28
# ----------------------------------------------------------------------------------------------

ALEXNET_CHANNELS = (32, 64, 96, 96, 64)
ALEXNET_HIDDEN = 256


def alexnet_small(
    seed: Seed = 1,
    dtype: DTypeLike = np.float32,
    *,
    input_shape: Shape = MNIST_SHAPE,
    classes: int = 10,
    groups: int = 1,
) -> Sequential:
    """AlexNet's ideas at MNIST scale (28 -> 14 -> 7 -> 3):

    conv 3x3 'same' with channels 32, 64, 96, 96, 64, each followed by ReLU; max pool 2 after the
    first two, each then followed by local response normalisation (AlexNet's ``k=2, n=5,
    alpha=1e-4, beta=0.75``: ``alpha`` divides by n here, as in PyTorch, so ``5e-4``; pool
    before LRN as in CaffeNet, so the pooling merges into a quantum layer's write); an
    overlapping 3x3 stride-2 max pool after the fifth ('valid': any input >= 12x12 fits); then
    dropout 0.5 -> dense 256 -> ReLU -> dropout 0.5 -> dense 256 -> ReLU -> dense ``classes``
    (torchvision's AlexNet classifier). He initialisation (:func:`_he_init`).

    ``groups=2``: AlexNet's split over two GPUs as grouped convolutions (``Conv2D(groups=2)``):
    as in Krizhevsky et al. (2012), the second, fourth and fifth convolutions see only the maps
    of their own half, the third sees all maps of the second (the layer where the two GPUs
    talk), and the first has one input map (MNIST), nothing to split. ``groups=1`` (default)
    is the network above, weights bit for bit as before.
    """
    c, _, _ = _check_shape(input_shape, classes)
    if groups not in (1, 2):
        raise ValueError(f"alexnet_small: groups must be 1 or 2, got {groups!r}")
    init = seed_stream(seed, "init")
    r = spawn_generators(init, 10)
    ch = (c, *ALEXNET_CHANNELS)
    split = {1: groups, 3: groups, 4: groups}  # conv index -> groups (AlexNet's conv2, 4, 5)

    def conv(i: int) -> list[Layer]:
        g = split.get(i, 1)
        return [
            Conv2D(ch[i], ch[i + 1], 3, padding="same", rng=r[i], dtype=dtype, groups=g),
            ReLU(),
        ]

    def lrn() -> LocalResponseNorm:
        return LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0)

    convs = [
        *conv(0),
        MaxPool2D(2),
        lrn(),
        *conv(1),
        MaxPool2D(2),
        lrn(),
        *conv(2),
        *conv(3),
        *conv(4),
        MaxPool2D(3, 2, "valid"),
    ]
    features = math.prod(_features_shape("alexnet-small", convs, input_shape))
    sizes = [features, ALEXNET_HIDDEN, ALEXNET_HIDDEN, classes]
    model = Sequential(*convs, Flatten(), *_classifier(r[5:8], sizes, dtype, dropout=r[8:10]))
    return _he_init(model, init)


# (1x1, (3x3 reduce, 3x3), (5x5 reduce, 5x5), pool projection) per block, as in GoogLeNet's table
INCEPTION_BLOCKS = ((24, (32, 48), (8, 16), 16), (48, (64, 96), (12, 24), 24))
INCEPTION_STEM = 32


def _inception_block(c_in: int, spec, r: list[np.random.Generator], dtype) -> Concat:
    n1, (n3r, n3), (n5r, n5), npool = spec

    def cr(c_i: int, c_o: int, k: int, g: np.random.Generator) -> list[Layer]:
        return [Conv2D(c_i, c_o, k, padding="same", rng=g, dtype=dtype), ReLU()]

    return Concat(
        Sequential(*cr(c_in, n1, 1, r[0])),
        Sequential(*cr(c_in, n3r, 1, r[1]), *cr(n3r, n3, 3, r[2])),
        Sequential(*cr(c_in, n5r, 1, r[3]), *cr(n5r, n5, 5, r[4])),
        Sequential(MaxPool2D(3, 1, "same"), *cr(c_in, npool, 1, r[5])),
    )


def inception_small(
    seed: Seed = 1,
    dtype: DTypeLike = np.float32,
    *,
    input_shape: Shape = MNIST_SHAPE,
    classes: int = 10,
) -> Sequential:
    """Inception v1 ideas at MNIST scale (28 -> 14 -> 7 -> 1):

    stem conv 3x3 'same' 32 + ReLU + max pool 2; Inception block (branches 1x1: 24;
    1x1 32 -> 3x3 48; 1x1 8 -> 5x5 16; 3x3/1 max pool -> 1x1 16; every conv + ReLU; 104
    channels); max pool 2; Inception block (48; 64 -> 96; 12 -> 24; 24: 192 channels); global
    average pooling; dense ``classes``. About the training cost of :func:`alexnet_small`. He
    initialisation (:func:`_he_init`).
    """
    c, _, _ = _check_shape(input_shape, classes)
    init = seed_stream(seed, "init")
    r = spawn_generators(init, 14)
    widths = [sum((b[0], b[1][1], b[2][1], b[3])) for b in INCEPTION_BLOCKS]
    features_layers = [
        Conv2D(c, INCEPTION_STEM, 3, padding="same", rng=r[0], dtype=dtype),
        ReLU(),
        MaxPool2D(2),
        _inception_block(INCEPTION_STEM, INCEPTION_BLOCKS[0], r[1:7], dtype),
        MaxPool2D(2),
        _inception_block(widths[0], INCEPTION_BLOCKS[1], r[7:13], dtype),
        GlobalAvgPool2D(),
    ]
    (features,) = _features_shape("inception-small", features_layers, input_shape)
    model = Sequential(*features_layers, Dense(features, classes, rng=r[13], dtype=dtype))
    return _he_init(model, init)


# ----------------------------------------------------------------------------------------------
# The primer's networks by their numbers: SimpleConvNet and N x (M conv + pool) + K dense
# ----------------------------------------------------------------------------------------------

ACTIVATIONS: dict[str, Callable[[], Layer]] = {"relu": ReLU, "sigmoid": Sigmoid, "tanh": Tanh}


def init_std(weight_init_std: float | str, fan_in: int) -> float:
    """Standard deviation of a Gaussian initialisation: a number as it is, or by name
    (the primer's / *Deep Learning from Scratch*'s names): ``'he'`` / ``'relu'``
    ``sqrt(2 / fan_in)`` (He et al. 2015), ``'xavier'`` / ``'sigmoid'`` ``sqrt(1 / fan_in)``
    (Glorot & Bengio 2010, as the book simplifies it)."""
    if isinstance(weight_init_std, str):
        gains = {"he": 2.0, "relu": 2.0, "xavier": 1.0, "sigmoid": 1.0}
        if weight_init_std.lower() not in gains:
            raise ValueError(
                f"weight_init_std must be a positive number or one of {sorted(gains)}, "
                f"got {weight_init_std!r}"
            )
        return math.sqrt(gains[weight_init_std.lower()] / fan_in)
    std = float(weight_init_std)
    if not (math.isfinite(std) and std > 0) or isinstance(weight_init_std, bool):
        raise ValueError(f"weight_init_std must be a positive number, got {weight_init_std!r}")
    return std


def _gaussian_init(model: Sequential, seq: np.random.SeedSequence, weight_init_std) -> Sequential:
    """Every Conv2D and Dense of ``model``: weights ``N(0, init_std(weight_init_std, fan_in)^2)``
    (fan_in = the weight's size per output), biases 0; one generator each (walk order) from
    further children of ``seq``."""
    layers = [layer for layer in walk(model) if isinstance(layer, (Conv2D, Dense))]
    for layer, g in zip(layers, spawn_generators(seq, len(layers)), strict=True):
        w = layer.weight.data
        std = init_std(weight_init_std, w[0].size)
        layer.weight.data = (std * g.standard_normal(w.shape)).astype(w.dtype)
        if layer.bias is not None:
            layer.bias.data = np.zeros_like(layer.bias.data)
    return model


SIMPLE_CONV_PARAM = {"filter_num": 30, "filter_size": 5, "pad": 0, "stride": 1}


def simple_convnet(
    seed: Seed = 1,
    dtype: DTypeLike = np.float32,
    *,
    input_shape: Shape = MNIST_SHAPE,
    classes: int = 10,
    conv_param: dict[str, int] | None = None,
    hidden_size: int = 100,
    weight_init_std: float | str = 0.01,
) -> Sequential:
    """The primer's *SimpleConvNet* (after *Deep Learning from Scratch*, ch. 7): conv - ReLU -
    max pool 2x2 - dense ``hidden_size`` - ReLU - dense ``classes`` (softmax in the loss).

    ``conv_param``: ``filter_num``, ``filter_size``, ``pad``, ``stride`` (the book's keys;
    missing ones from :data:`SIMPLE_CONV_PARAM`: 30 filters 5x5, no padding, stride 1).
    ``weight_init_std``: Gaussian weights of this standard deviation (the book's 0.01), or
    ``'he'`` / ``'xavier'`` by name (:func:`init_std`); biases 0. On MNIST with the defaults:
    30 x 24 x 24 -> 30 x 12 x 12 = 4,320 features, 100 hidden units.
    """
    c, _, _ = _check_shape(input_shape, classes)
    unknown = set(conv_param or {}) - set(SIMPLE_CONV_PARAM)
    if unknown:
        raise ValueError(
            f"conv_param: unknown keys {sorted(unknown)}; use {list(SIMPLE_CONV_PARAM)}"
        )
    p = {**SIMPLE_CONV_PARAM, **(conv_param or {})}
    hidden_size = check_int(hidden_size, "hidden_size", min=1)
    init_std(weight_init_std, 1)  # checked before anything is built
    init = seed_stream(seed, "init")
    r = spawn_generators(init, 3)
    convs = [
        Conv2D(c, p["filter_num"], p["filter_size"], p["stride"], p["pad"], rng=r[0], dtype=dtype),
        ReLU(),
        MaxPool2D(2),
    ]
    features = math.prod(_features_shape("simple-convnet", convs, input_shape))
    model = Sequential(
        *convs, Flatten(), *_classifier(r[1:], [features, hidden_size, classes], dtype)
    )
    return _gaussian_init(model, init, weight_init_std)


def conv_stack(
    blocks: int = 2,
    convs_per_block: int = 2,
    dense_layers: int = 2,
    seed: Seed = 1,
    dtype: DTypeLike = np.float32,
    *,
    input_shape: Shape = MNIST_SHAPE,
    classes: int = 10,
    channels: int | tuple[int, ...] = 16,
    kernel_size: int = 3,
    pool: str = "max",
    hidden_size: int = 128,
    activation: str = "relu",
    weight_init_std: float | str = "he",
) -> Sequential:
    """The primer's pattern ``N x (M conv + pool) + K dense``: ``blocks`` N times
    (``convs_per_block`` M convolutions ``kernel_size`` 'same' + ``activation``, then a 2x2
    ``pool`` ``'max'`` or ``'avg'``), then ``dense_layers`` K dense layers (K - 1 hidden of
    ``hidden_size`` units + ``activation``, and the output layer of ``classes``).

    ``channels``: the maps of each block's convolutions, a tuple of N, or an int c for
    ``c, 2c, 4c, ...`` (doubling per block as VGG does). ``weight_init_std`` as in
    :func:`simple_convnet` (default He). The MNIST input allows N <= 4 blocks (28 -> 14 -> 7 ->
    3 -> 1).
    """
    c, _, _ = _check_shape(input_shape, classes)
    n = check_int(blocks, "blocks", min=1)
    m = check_int(convs_per_block, "convs_per_block", min=1)
    k = check_int(dense_layers, "dense_layers", min=1)
    hidden_size = check_int(hidden_size, "hidden_size", min=1)
    if isinstance(channels, tuple):
        if len(channels) != n:
            raise ValueError(f"channels: need one count per block ({n}), got {channels!r}")
        widths = tuple(check_int(w, "channels", min=1) for w in channels)
    else:
        widths = tuple(check_int(channels, "channels", min=1) * 2**b for b in range(n))
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    if pool not in ("max", "avg"):
        raise ValueError(f"pool must be 'max' or 'avg', got {pool!r}")
    init_std(weight_init_std, 1)
    init = seed_stream(seed, "init")
    r = spawn_generators(init, n * m + k)
    act, pooling = ACTIVATIONS[activation], MaxPool2D if pool == "max" else AvgPool2D
    layers: list[Layer] = []
    c_in = c
    for b in range(n):
        for j in range(m):
            g = r[b * m + j]
            layers += [Conv2D(c_in, widths[b], kernel_size, padding="same", rng=g, dtype=dtype)]
            layers += [act()]
            c_in = widths[b]
        layers.append(pooling(2, 2, "valid"))  # floor on odd sizes: 7 -> 3
    features = math.prod(_features_shape(f"conv-stack {n}x({m} conv + pool)", layers, input_shape))
    sizes = [features, *([hidden_size] * (k - 1)), classes]
    dense: list[Layer] = []
    for i in range(k):
        dense.append(Dense(sizes[i], sizes[i + 1], rng=r[n * m + i], dtype=dtype))
        if i < k - 1:
            dense.append(act())
    return _gaussian_init(Sequential(*layers, Flatten(), *dense), init, weight_init_std)


# ----------------------------------------------------------------------------------------------
# Registry
# ----------------------------------------------------------------------------------------------

MODELS: dict[str, Callable[..., Sequential]] = {
    "paper": paper_cnn,
    "lenet5": lenet5,
    "lenet5-1998": lenet5_1998,
    "alexnet-small": alexnet_small,
    "inception-small": inception_small,
}


# architectures whose builder takes ``activation`` (the CLI's --activation), and its choices
ACTIVATION_ARCHS: dict[str, tuple[str, ...]] = {"lenet5-1998": ("tanh", "sigmoid", "relu")}


def build_model(
    arch: str,
    config: QuantumConfig | None = None,
    seed: Seed = 1,
    dtype: DTypeLike = np.float32,
    *,
    input_shape: Shape = MNIST_SHAPE,
    classes: int = 10,
    activation: str | None = None,
) -> Sequential:
    """``MODELS[arch](seed, dtype, input_shape=..., classes=...)``, made quantum with
    :func:`~qcnn.quantum.quantize` when ``config`` is given.

    ``activation`` (None: the architecture's own) goes to a builder that takes one
    (:data:`ACTIVATION_ARCHS`: ``lenet5-1998``'s squashing function); ValueError for the others.
    """
    if arch not in MODELS:
        raise ValueError(f"unknown architecture {arch!r}; choose from {', '.join(MODELS)}")
    options: dict[str, Any] = {}
    if activation is not None:
        if arch not in ACTIVATION_ARCHS:
            raise ValueError(
                f"--activation applies to {', '.join(ACTIVATION_ARCHS)}, not to --arch {arch}"
            )
        options["activation"] = activation
    model = MODELS[arch](seed, dtype, input_shape=tuple(input_shape), classes=classes, **options)
    return model if config is None else quantize(model, config)


def quantum_layers(model: Layer) -> list[QuantumConv2D]:
    """The quantum layers of ``model``, nested ones included, in :func:`qcnn.nn.walk` order."""
    return [layer for layer in walk(model) if isinstance(layer, QuantumConv2D)]


def _conv_rows(layer: Layer, path: str, shape: tuple[int, ...], rows: list) -> tuple[int, ...]:
    """Append one row per Conv2D (quantum or not) under ``layer``; return its output shape."""
    out = layer.output_shape(shape)
    if isinstance(layer, Conv2D):
        kh, kw = layer.kernel_size
        rows.append(
            {
                "path": path,
                "layer": type(layer).__name__,
                "quantum": isinstance(layer, QuantumConv2D),
                "input_shape": list(shape),
                "output_shape": list(out),
                "kernel": [layer.in_channels // layer.groups, kh, kw],
                "kernel_volume": layer.kernel_volume(),
                "parameters": sum(p.data.size for p in layer.parameters()),
            }
        )
    prefix = f"{path}." if path else ""
    sub_shape = shape
    for i, sub in enumerate(layer.sublayers()):
        sub_out = _conv_rows(sub, f"{prefix}{i}", sub_shape, rows)
        if isinstance(layer, Sequential):
            sub_shape = sub_out
    return out


def architecture_info(model: Sequential, input_shape: Shape) -> dict[str, Any]:
    """Parameter count and, per convolution (in walk order), kernel ``(D, kh, kw)``, kernel
    volume ``kh kw D`` (connected input maps only), shapes and whether it is quantum."""
    rows: list[dict[str, Any]] = []
    _conv_rows(model, "", tuple(input_shape), rows)
    return {
        "parameters": model.num_parameters(),
        "input_shape": list(input_shape),
        "conv_layers": rows,
    }


def make_optimizer(
    model: Sequential,
    lr: float = 0.01,
    momentum: float = 0.0,
    config: QuantumConfig | None = None,
    seed: Seed = 1,
) -> SGD:
    """SGD; with ``config`` (delta > 0) the quantum backprop noise hook is attached."""
    hooks = []
    if config is not None and config.delta > 0:
        rng = np.random.default_rng(seed_stream(seed, "gradient_noise"))
        hooks.append(
            QuantumGradientNoise(
                config.delta,
                rng,
                on=config.gradient_on,
                model=config.gradient_model,
                signs=config.gradient_signs,
                norm_ae=config.gradient_norm_ae,
            )
        )
    return SGD(model.parameters(), lr=lr, momentum=momentum, grad_hooks=hooks)


def transfer_weights(source: Sequential, target: Sequential) -> None:
    """Copy every parameter of ``source`` into ``target``, matched in order.

    A CNN and its QCNN twin list the same parameters in the same order (the quantum layer
    absorbs the ReLU, so layer indices and hence names differ); shapes must match one to one.
    """
    src, dst = source.parameters(), target.parameters()
    if len(src) != len(dst) or any(a.shape != b.shape for a, b in zip(src, dst, strict=False)):
        raise ValueError(
            "cannot transfer weights: parameter shapes differ: "
            f"{[p.shape for p in src]} vs {[p.shape for p in dst]}"
        )
    for a, b in zip(src, dst, strict=True):
        b.data = a.data.astype(b.data.dtype, copy=True)
