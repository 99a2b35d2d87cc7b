"""A small TFLite → ONNX converter for the ops MediaPipe's face models use.

`tflite2onnx` 0.4.1 converts BlazeFace but fails on `face_landmark.tflite` (float16 weights
behind DEQUANTIZE feeding PRELU trips its layout pass) and lacks HARD_SWISH. Rather than carry
two converters, this one handles every op of both face models with one rule: activations are
NCHW in ONNX, float16 constants are upcast to float32 at build time (so the runtime graph is
plain float32), and a tensor is transposed back to NHWC only where TFLite semantics depend on
the layout (RESHAPE, graph outputs). Shapes are static in these models, so SAME padding becomes
explicit pads computed exactly as TFLite does.

Build-time only: needs the `tflite` and `onnx` packages (the `[models-build]` extra).
"""

from __future__ import annotations

import numpy as np
import onnx
import tflite
from onnx import TensorProto, helper, numpy_helper

from models.errors import ModelError

OPSET = 14  # HardSwish arrived in opset 14
IR_VERSION = 8  # readable by every onnxruntime from 1.10 on

_NP_TYPES = {
    tflite.TensorType.FLOAT32: np.float32,
    tflite.TensorType.FLOAT16: np.float16,
    tflite.TensorType.INT32: np.int32,
    tflite.TensorType.INT64: np.int64,
}
_NHWC_TO_NCHW_AXIS = {0: 0, 1: 2, 2: 3, 3: 1}


class UnsupportedModel(ModelError, ValueError):
    """The TFLite model uses an op or a feature this converter does not handle."""


def _options(op: tflite.Operator, cls: type) -> object:
    table = op.BuiltinOptions()
    opts = cls()
    opts.Init(table.Bytes, table.Pos)
    return opts


def _same_pads(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TFLite SAME padding: the odd extra pixel goes after, as in TensorFlow."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


class _Converter:
    def __init__(self, data: bytes) -> None:
        self.model = tflite.Model.GetRootAsModel(data, 0)
        if self.model.SubgraphsLength() != 1:
            raise UnsupportedModel("only single-subgraph models are supported")
        self.graph = self.model.Subgraphs(0)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: dict[str, np.ndarray] = {}
        self.consts: dict[int, np.ndarray] = {}  # tensor index → value (float32 after upcast)
        self.nchw: set[int] = set()  # activation tensors held as NCHW in the ONNX graph
        self._n = 0

    # -- tensors ---------------------------------------------------------------
    def name(self, idx: int) -> str:
        return self.graph.Tensors(idx).Name().decode()

    def shape(self, idx: int) -> list[int]:
        return [int(d) for d in self.graph.Tensors(idx).ShapeAsNumpy()]

    def const(self, idx: int) -> np.ndarray | None:
        if idx in self.consts:
            return self.consts[idx]
        t = self.graph.Tensors(idx)
        buf = self.model.Buffers(t.Buffer())
        if buf.DataLength() == 0:
            return None
        dtype = _NP_TYPES.get(t.Type())
        if dtype is None:
            raise UnsupportedModel(f"tensor {self.name(idx)}: type {t.Type()} not supported")
        value = np.frombuffer(buf.DataAsNumpy().tobytes(), dtype=dtype).reshape(self.shape(idx))
        self.consts[idx] = value
        return value

    def init(self, base: str, value: np.ndarray) -> str:
        name = f"{base}__{len(self.inits)}"
        self.inits[name] = value
        return name

    def fresh(self, base: str) -> str:
        self._n += 1
        return f"{base}__t{self._n}"

    def node(self, op: str, inputs: list[str], outputs: list[str], **attrs: object) -> None:
        self.nodes.append(helper.make_node(op, inputs, outputs, **attrs))

    def activation(self, src: str, fused: int, out: str) -> None:
        act = tflite.ActivationFunctionType
        if fused == act.NONE:
            self.node("Identity", [src], [out])
        elif fused == act.RELU:
            self.node("Relu", [src], [out])
        elif fused == act.RELU6:
            lo, hi = self.init("zero", np.float32(0)), self.init("six", np.float32(6))
            self.node("Clip", [src, lo, hi], [out])
        else:
            raise UnsupportedModel(f"fused activation {fused} not supported")

    def act_out(self, out_idx: int, fused: int) -> str:
        """Name the op's raw output; add the fused activation into the TFLite output name."""
        if fused == tflite.ActivationFunctionType.NONE:
            return self.name(out_idx)
        raw = self.fresh(self.name(out_idx))
        self.activation(raw, fused, self.name(out_idx))
        return raw

    def as_nhwc(self, idx: int) -> str:
        if idx not in self.nchw:
            return self.name(idx)
        out = self.fresh(self.name(idx) + "_nhwc")
        self.node("Transpose", [self.name(idx)], [out], perm=[0, 2, 3, 1])
        return out

    # -- ops -------------------------------------------------------------------
    def convert(self) -> onnx.ModelProto:
        for i in range(self.graph.OperatorsLength()):
            op = self.graph.Operators(i)
            code = self.model.OperatorCodes(op.OpcodeIndex())
            name = tflite.opcode2name(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()))
            handler = getattr(self, "op_" + name.lower(), None)
            if handler is None:
                raise UnsupportedModel(f"op {name} not supported")
            handler(op, list(op.InputsAsNumpy()), list(op.OutputsAsNumpy()))
        return self.finish()

    def op_dequantize(self, op: tflite.Operator, ins: list[int], outs: list[int]) -> None:
        value = self.const(ins[0])
        if value is None or value.dtype != np.float16:
            raise UnsupportedModel("DEQUANTIZE is supported only on float16 constants")
        self.consts[outs[0]] = value.astype(np.float32)

    def _conv(self, op: tflite.Operator, ins: list[int], outs: list[int], depthwise: bool) -> None:
        cls = tflite.DepthwiseConv2DOptions if depthwise else tflite.Conv2DOptions
        o = _options(op, cls)
        w = self.const(ins[1])
        if w is None:
            raise UnsupportedModel("convolution weights must be constant")
        w = w.astype(np.float32)
        _, kh, kw, _ = w.shape
        _, h, wd, cin = self.shape(ins[0])
        dil = [o.DilationHFactor(), o.DilationWFactor()]
        pads = [0, 0, 0, 0]
        if o.Padding() == tflite.Padding.SAME:
            t, b = _same_pads(h, kh, o.StrideH(), dil[0])
            left, r = _same_pads(wd, kw, o.StrideW(), dil[1])
            pads = [t, left, b, r]
        # TFLite filters are OHWI (conv) or 1HW(C*m) (depthwise); ONNX wants OIHW.
        w = w.transpose(3, 0, 1, 2) if depthwise else w.transpose(0, 3, 1, 2)
        inputs = [self.name(ins[0]), self.init("w", np.ascontiguousarray(w))]
        if len(ins) > 2 and ins[2] >= 0:
            inputs.append(self.init("b", self.const(ins[2]).astype(np.float32)))
        out = self.act_out(outs[0], o.FusedActivationFunction())
        self.node(
            "Conv",
            inputs,
            [out],
            kernel_shape=[kh, kw],
            strides=[o.StrideH(), o.StrideW()],
            dilations=dil,
            pads=pads,
            group=cin if depthwise else 1,
        )
        self.nchw.add(outs[0])

    def op_conv_2d(self, op: tflite.Operator, ins: list[int], outs: list[int]) -> None:
        self._conv(op, ins, outs, depthwise=False)

    def op_depthwise_conv_2d(self, op: tflite.Operator, ins: list[int], outs: list[int]) -> None:
        self._conv(op, ins, outs, depthwise=True)

    def op_max_pool_2d(self, op: tflite.Operator, ins: list[int], outs: list[int]) -> None:
        o = _options(op, tflite.Pool2DOptions)
        _, h, w, _ = self.shape(ins[0])
        kh, kw = o.FilterHeight(), o.FilterWidth()
        pads = [0, 0, 0, 0]
        if o.Padding() == tflite.Padding.SAME:
            t, b = _same_pads(h, kh, o.StrideH())
            left, r = _same_pads(w, kw, o.StrideW())
            pads = [t, left, b, r]
        out = self.act_out(outs[0], o.FusedActivationFunction())
        self.node(
            "MaxPool",
            [self.name(ins[0])],
            [out],
            kernel_shape=[kh, kw],
            strides=[o.StrideH(), o.StrideW()],
            pads=pads,
        )
        self.nchw.add(outs[0])

    def op_pad(self, op: tflite.Operator, ins: list[int], outs: list[int]) -> None:
        p = self.const(ins[1])
        if p is None or ins[0] not in self.nchw:
            raise UnsupportedModel("PAD needs constant paddings on a 4-D activation")
        order = [0, 3, 1, 2]  # NHWC rows → NCHW order
        pads = np.array([p[i][0] for i in order] + [p[i][1] for i in order], dtype=np.int64)
        self.node("Pad", [self.name(ins[0]), self.init("pads", pads)], [self.name(outs[0])])
        self.nchw.add(outs[0])

    def _operand(self, idx: int, nchw: bool) -> str:
        value = self.const(idx)
        if value is None:
            return self.name(idx)
        value = value.astype(np.float32)
        if nchw and value.ndim >= 1 and value.size > 1:
            value = value.reshape(-1, 1, 1)  # per-channel constant broadcast over H, W
        return self.init("c", value)

    def op_add(self, op: tflite.Operator, ins: list[int], outs: list[int]) -> None:
        o = _options(op, tflite.AddOptions)
        nchw = any(i in self.nchw for i in ins)
        out = self.act_out(outs[0], o.FusedActivationFunction())
        self.node("Add", [self._operand(i, nchw) for i in ins], [out])
        if nchw:
            self.nchw.add(outs[0])

    def _unary(self, onnx_op: str, ins: list[int], outs: list[int]) -> None:
        self.node(onnx_op, [self.name(ins[0])], [self.name(outs[0])])
        if ins[0] in self.nchw:
            self.nchw.add(outs[0])

    def op_relu(self, op: tflite.Operator, ins: list[int], outs: list[int]) -> None:
        self._unary("Relu", ins, outs)

    def op_hard_swish(self, op: tflite.Operator, ins: list[int], outs: list[int]) -> None:
        self._unary("HardSwish", ins, outs)

    def op_logistic(self, op: tflite.Operator, ins: list[int], outs: list[int]) -> None:
        self._unary("Sigmoid", ins, outs)

    def op_prelu(self, op: tflite.Operator, ins: list[int], outs: list[int]) -> None:
        nchw = ins[0] in self.nchw
        self.node("PRelu", [self.name(ins[0]), self._operand(ins[1], nchw)], [self.name(outs[0])])
        if nchw:
            self.nchw.add(outs[0])

    def op_reshape(self, op: tflite.Operator, ins: list[int], outs: list[int]) -> None:
        shape = np.array(self.shape(outs[0]), dtype=np.int64)
        self.node(
            "Reshape", [self.as_nhwc(ins[0]), self.init("shape", shape)], [self.name(outs[0])]
        )

    def op_concatenation(self, op: tflite.Operator, ins: list[int], outs: list[int]) -> None:
        o = _options(op, tflite.ConcatenationOptions)
        layouts = {i in self.nchw for i in ins}
        if len(layouts) != 1:
            raise UnsupportedModel("CONCATENATION of mixed layouts")
        nchw = layouts.pop()
        rank = len(self.shape(outs[0]))
        axis = o.Axis() % rank
        if nchw:
            axis = _NHWC_TO_NCHW_AXIS[axis]
            self.nchw.add(outs[0])
        out = self.act_out(outs[0], o.FusedActivationFunction())
        self.node("Concat", [self.name(i) for i in ins], [out], axis=axis)

    # -- graph -----------------------------------------------------------------
    def finish(self) -> onnx.ModelProto:
        inputs = []
        for k in range(self.graph.InputsLength()):
            idx = self.graph.Inputs(k)
            n, h, w, c = self.shape(idx)
            inputs.append(
                helper.make_tensor_value_info(self.name(idx), TensorProto.FLOAT, [n, c, h, w])
            )
            self.nchw.add(idx)
        outputs = []
        for k in range(self.graph.OutputsLength()):
            idx = self.graph.Outputs(k)
            name = self.name(idx)
            if idx in self.nchw:  # give callers TFLite's NHWC output shape
                internal = self.fresh(name)
                for node in self.nodes:
                    node.output[:] = [internal if o == name else o for o in node.output]
                    node.input[:] = [internal if i == name else i for i in node.input]
                self.node("Transpose", [internal], [name], perm=[0, 2, 3, 1])
            shape = self.shape(idx)
            outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, shape))
        graph = helper.make_graph(
            self.nodes,
            "converted",
            inputs,
            outputs,
            initializer=[numpy_helper.from_array(v, k) for k, v in self.inits.items()],
        )
        model = helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid("", OPSET)],
            producer_name="cuntong-tflite-onnx",
            producer_version="1",
        )
        model.ir_version = IR_VERSION
        onnx.checker.check_model(model)
        return model


def convert(tflite_bytes: bytes) -> bytes:
    """Convert a TFLite flatbuffer to serialized ONNX (NCHW float32 input, TFLite outputs)."""
    return _Converter(tflite_bytes).convert().SerializeToString()
