"""The CNN ensemble as one ONNX graph (the runner, which needs no torch, is
:class:`notsure.models.onnx_session.OnnxEnsemble`).

The graph takes raw pixels ``images`` ``(N, H, W)`` float32 (0..255, as every notsure network)
and returns ``logits`` ``(K, N, C)``: every member's logits stacked, which is what
``SelectivePredictor.decide_logits`` turns into decisions. It is written node by node from the
inference-ready (BatchNorm-folded) networks with ``onnx.helper``, so it needs neither
torch's deprecated TorchScript exporter nor ``onnxscript``, and any layer it does not know is
refused by name rather than exported wrong.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from torch import nn

from notsure.errors import ConfigError, DataError
from notsure.models.cnn import ConvNet
from notsure.models.inference import predict_logits, prepare_for_inference
from notsure.models.onnx_session import FEATURES, INPUT, OUTPUT, OnnxEnsemble

OPSET = 17
#: Largest logit difference allowed between ONNX Runtime and torch when a graph is checked.
TOLERANCE = 1e-3


def ensemble_to_onnx(models: Sequence[nn.Module], image_shape: tuple[int, int]):
    """An ``onnx.ModelProto``: pixels ``(N, H, W)`` in, all members' logits ``(K, N, C)`` out."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes: list = []
    weights: list = []

    def const(name: str, value: np.ndarray) -> str:
        weights.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def node(op: str, inputs: list[str], name: str, **attrs) -> str:
        nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        return name

    axis0 = const("axis0", np.array([0], np.int64))
    x4 = node("Unsqueeze", [INPUT, const("axis1", np.array([1], np.int64))], "x4")
    stacked, features = [], []
    for k, model in enumerate(models):
        if not isinstance(model, ConvNet):
            raise ConfigError(f"member {k} is a {type(model).__name__}; ONNX export knows ConvNet")
        net = prepare_for_inference(model)
        p = f"m{k}_"
        scale = net.scale
        # PixelScale: (x / 255 - mean) / std
        h = node("Mul", [x4, const(p + "inv255", np.array(1 / 255, np.float32))], p + "unit")
        h = node("Sub", [h, const(p + "mean", scale.mean.detach().numpy().astype(np.float32))],
                 p + "centred")
        h = node("Div", [h, const(p + "std", scale.std.detach().numpy().astype(np.float32))],
                 p + "scaled")
        for i, layer in enumerate(net.features):
            name = f"{p}f{i}"
            if isinstance(layer, nn.Conv2d):
                ins = [h, const(name + "_w", layer.weight.detach().numpy())]
                if layer.bias is not None:
                    ins.append(const(name + "_b", layer.bias.detach().numpy()))
                pad_h, pad_w = _pair(layer.padding)
                h = node("Conv", ins, name, kernel_shape=list(layer.kernel_size),
                         strides=list(layer.stride), dilations=list(layer.dilation),
                         group=layer.groups, pads=[pad_h, pad_w, pad_h, pad_w])
            elif isinstance(layer, nn.ReLU):
                h = node("Relu", [h], name)
            elif isinstance(layer, nn.MaxPool2d) and not layer.ceil_mode:
                kh, kw = _pair(layer.kernel_size)
                sh, sw = _pair(layer.stride or layer.kernel_size)
                ph, pw = _pair(layer.padding)
                h = node("MaxPool", [h], name, kernel_shape=[kh, kw], strides=[sh, sw],
                         pads=[ph, pw, ph, pw])
            else:
                raise ConfigError(f"member {k}: layer {i} ({layer}) has no ONNX translation here")
        pool = net.pool
        if not (isinstance(pool, nn.AdaptiveAvgPool2d) and _pair(pool.output_size) == (1, 1)):
            raise ConfigError(f"member {k}: pooling {net.pool} has no ONNX translation here")
        h = node("GlobalAveragePool", [h], p + "pool")
        h = node("Flatten", [h], p + "flat", axis=1)
        features.append(node("Unsqueeze", [h, axis0], p + "features"))
        head_w = const(p + "head_w", net.head.weight.detach().numpy())
        head_b = const(p + "head_b", net.head.bias.detach().numpy())
        h = node("Gemm", [h, head_w, head_b], p + "head", transB=1)
        stacked.append(node("Unsqueeze", [h, axis0], p + "logits"))
    node("Concat", stacked, OUTPUT, axis=0)
    node("Concat", features, FEATURES, axis=0)
    n_classes = models[0].head.out_features
    n_features = models[0].head.in_features
    graph = helper.make_graph(
        nodes, "notsure_ensemble",
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["N", *image_shape])],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, [len(models), "N", n_classes]),
         helper.make_tensor_value_info(FEATURES, TensorProto.FLOAT,
                                       [len(models), "N", n_features])],
        initializer=weights)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="notsure")
    proto.ir_version = 8  # readable by ONNX Runtime releases of the last years
    onnx.checker.check_model(proto)
    return proto


def _pair(value) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def faithful_graph(models: Sequence[nn.Module], image_shape: tuple[int, int]):
    """``(proto, gap)``: the graph of ``models`` and the largest difference between its ONNX
    Runtime logits and torch's on 64 random images; DataError if over :data:`TOLERANCE`."""
    proto = ensemble_to_onnx(models, image_shape)
    probe = np.random.default_rng(0).integers(0, 256, (64, *image_shape), np.uint8)
    gap = float(np.abs(OnnxEnsemble(proto).logits(probe)
                       - predict_logits(list(models), probe, precision="fp32")).max())
    if not gap <= TOLERANCE:
        raise DataError(f"ONNX Runtime's logits differ from torch's by {gap:.2g} (more than "
                        f"{TOLERANCE}); the graph is not faithful")
    return proto, gap
