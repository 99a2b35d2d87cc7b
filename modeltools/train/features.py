"""The passive baseline as an ONNX graph: fixed texture and colour features, then a small MLP.

Features (all computed inside the ONNX graph, so training and the terminal use the very same
arithmetic): mean absolute and mean squared responses of a fixed bank of Laplacian-of-Gaussian
and Gabor filters on the grey image (halftone dots and moiré add energy at fine scales and
particular orientations; recapture blur removes it), per-channel mean and spread, saturation
(gamut), and soft fractions of blown-out (glare) and deep-black pixels (raised blacks).
Only the MLP head is trained; `build(head)` writes the weights in as initialisers.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

SIZE = 96
K = 7


def _log_kernel(sigma: float) -> np.ndarray:
    r = np.arange(K) - K // 2
    yy, xx = np.meshgrid(r, r, indexing="ij")
    q = (xx**2 + yy**2) / (2 * sigma**2)
    k = (q - 1) * np.exp(-q)
    return k - k.mean()


def _gabor(freq: float, theta: float, sigma: float = 1.8) -> np.ndarray:
    r = np.arange(K) - K // 2
    yy, xx = np.meshgrid(r, r, indexing="ij")
    u = xx * np.cos(theta) + yy * np.sin(theta)
    k = np.exp(-(xx**2 + yy**2) / (2 * sigma**2)) * np.cos(2 * np.pi * freq * u)
    k = k - k.mean()
    return k / np.abs(k).sum()


def filter_bank() -> np.ndarray:
    """(F, 1, 7, 7) float32: 3 LoG scales, then Gabor at 3 frequencies × 4 orientations."""
    kernels = [_log_kernel(s) / np.abs(_log_kernel(s)).sum() for s in (0.7, 1.2, 2.0)]
    kernels += [
        _gabor(f, np.deg2rad(t)) for f in (0.22, 0.32, 0.45) for t in (0.0, 45.0, 90.0, 135.0)
    ]
    return np.stack(kernels)[:, None].astype(np.float32)


class _G:
    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.n = 0

    def c(self, value: np.ndarray | float) -> str:
        self.n += 1
        name = f"c{self.n}"
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=np.float32), name))
        return name

    def op(self, kind: str, *inputs: str, **attrs: object) -> str:
        self.n += 1
        out = f"{kind.lower()}{self.n}"
        self.nodes.append(helper.make_node(kind, list(inputs), [out], **attrs))
        return out


def _features(g: _G, x: str) -> str:
    """x: N×3×96×96 in [0, 1] → N×F features."""
    grey = g.op("Conv", x, g.c(np.float32([0.299, 0.587, 0.114]).reshape(1, 3, 1, 1)))
    bank = g.op("Conv", grey, g.c(filter_bank()))
    eps = g.c(1e-6)
    feats = [
        g.op("Log", g.op("Add", g.op("GlobalAveragePool", g.op("Abs", bank)), eps)),
        g.op("Log", g.op("Add", g.op("GlobalAveragePool", g.op("Mul", bank, bank)), eps)),
    ]
    mean = g.op("GlobalAveragePool", x)
    centred = g.op("Sub", x, mean)
    feats += [mean, g.op("Sqrt", g.op("GlobalAveragePool", g.op("Mul", centred, centred)))]
    sat = g.op(
        "Sub",
        g.op("ReduceMax", x, axes=[1], keepdims=1),
        g.op("ReduceMin", x, axes=[1], keepdims=1),
    )
    sat_mean = g.op("GlobalAveragePool", sat)
    sat_c = g.op("Sub", sat, sat_mean)
    feats += [sat_mean, g.op("Sqrt", g.op("GlobalAveragePool", g.op("Mul", sat_c, sat_c)))]
    # Soft pixel fractions: glare (grey above 0.92) and true blacks (grey below 0.08).
    bright = g.op("Sigmoid", g.op("Mul", g.op("Sub", grey, g.c(0.92)), g.c(40.0)))
    dark = g.op("Sigmoid", g.op("Mul", g.op("Sub", g.c(0.08), grey), g.c(40.0)))
    feats += [g.op("GlobalAveragePool", bright), g.op("GlobalAveragePool", dark)]
    return g.op("Flatten", g.op("Concat", *feats, axis=1), axis=1)


def build(head: dict[str, np.ndarray] | None = None) -> onnx.ModelProto:
    """The features graph alone (head None, output `features`) or the full classifier.

    The head standardises features with `mu`/`sd`, then `W1`/`b1`, ReLU, `W2`/`b2` → logits
    (N×2: attack, bona fide).
    """
    g = _G()
    f = _features(g, "input")
    if head is None:
        g.op("Identity", f)
        name, width = "features", None
    else:
        z = g.op("Div", g.op("Sub", f, g.c(head["mu"])), g.c(head["sd"]))
        hid = g.op("Relu", g.op("Gemm", z, g.c(head["W1"]), g.c(head["b1"])))
        g.op("Gemm", hid, g.c(head["W2"]), g.c(head["b2"]))
        name, width = "logits", 2
    g.nodes[-1].output[0] = name  # the last node's output is the graph's output
    graph = helper.make_graph(
        g.nodes,
        "cuntong_passive_baseline",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, SIZE, SIZE])],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", width])],
        initializer=g.inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="cuntong-train"
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model
