"""Writes the small already-quantized models (QLinearConv, QLinearMatMul, ConvInteger) and
their ONNX Runtime outputs that tests/tests/qlinear.rs checks q8 against.

Run from this directory with onnx, onnxruntime and numpy installed: `python make.py`.
Each model `<stem>.onnx` gets `<stem>.in.npz` (one array per graph input) and
`<stem>.ort.npz` (one array per graph output).
"""
import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

rng = np.random.default_rng(0)


def const(name, a):
    return numpy_helper.from_array(np.asarray(a), name)


def qlinear_conv():
    w1 = rng.integers(-127, 128, (8, 3, 3, 3), dtype=np.int8)
    w1_scale = rng.uniform(0.002, 0.01, 8).astype(np.float32)
    bias = rng.integers(-2000, 2000, 8, dtype=np.int32)
    w2 = rng.integers(-127, 128, (4, 8, 3, 3), dtype=np.int8)
    inits = [
        const("xs", np.float32(0.02)), const("xz", np.uint8(128)),
        const("w1", w1), const("w1s", w1_scale), const("w1z", np.zeros(8, np.int8)),
        const("b1", bias),
        const("y1s", np.float32(0.05)), const("y1z", np.uint8(100)),
        const("w2", w2), const("w2s", np.float32(0.004)), const("w2z", np.int8(0)),
        const("y2s", np.float32(0.08)), const("y2z", np.uint8(120)),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"], name="q_x"),
        helper.make_node("QLinearConv", ["xq", "xs", "xz", "w1", "w1s", "w1z", "y1s", "y1z", "b1"],
                         ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("QLinearConv", ["c1", "y1s", "y1z", "w2", "w2s", "w2z", "y2s", "y2z"],
                         ["c2"], name="conv2", strides=[2, 2], kernel_shape=[3, 3]),
        helper.make_node("DequantizeLinear", ["c2", "y2s", "y2z"], ["y"], name="dq_y"),
    ]
    graph = helper.make_graph(
        nodes, "qlinear_conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 8, 8])],
        [helper.make_tensor_value_info("c2", TensorProto.UINT8, ["batch", 4, 3, 3]),
         helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4, 3, 3])],
        inits)
    feeds = {"x": rng.normal(0, 1, (2, 3, 8, 8)).astype(np.float32)}
    return graph, feeds


def conv_integer():
    w = rng.integers(0, 256, (2, 3, 3, 3), dtype=np.uint8)
    inits = [const("xs", np.float32(0.02)), const("xz", np.uint8(128)),
             const("w", w), const("wz", np.uint8(3))]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"], name="q_x"),
        helper.make_node("ConvInteger", ["xq", "w", "xz", "wz"], ["z"], name="conv_int",
                         pads=[0, 1, 0, 1]),
    ]
    graph = helper.make_graph(
        nodes, "conv_integer",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 8, 8])],
        [helper.make_tensor_value_info("z", TensorProto.INT32, ["batch", 2, 6, 8])],
        inits)
    feeds = {"x": rng.normal(0, 1, (2, 3, 8, 8)).astype(np.float32)}
    return graph, feeds


def qlinear_matmul():
    b = rng.integers(-127, 128, (16, 8), dtype=np.int8)
    inits = [
        const("as", np.float32(0.03)), const("az", np.uint8(120)),
        const("b", b), const("bs", np.float32(0.006)), const("bz", np.int8(0)),
        const("ys", np.float32(0.1)), const("yz", np.uint8(128)),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["a", "as", "az"], ["aq"], name="q_a"),
        helper.make_node("QLinearMatMul", ["aq", "as", "az", "b", "bs", "bz", "ys", "yz"],
                         ["mq"], name="matmul"),
        helper.make_node("DequantizeLinear", ["mq", "ys", "yz"], ["y"], name="dq_y"),
    ]
    graph = helper.make_graph(
        nodes, "qlinear_matmul",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, ["batch", 16])],
        [helper.make_tensor_value_info("mq", TensorProto.UINT8, ["batch", 8]),
         helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 8])],
        inits)
    feeds = {"a": rng.normal(0, 1, (6, 16)).astype(np.float32)}
    return graph, feeds


def main():
    for make in (qlinear_conv, conv_integer, qlinear_matmul):
        graph, feeds = make()
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
        model.ir_version = 8
        onnx.checker.check_model(model)
        stem = graph.name
        onnx.save(model, f"{stem}.onnx")
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        s = ort.InferenceSession(f"{stem}.onnx", opts, providers=["CPUExecutionProvider"])
        outs = s.run(None, feeds)
        np.savez(f"{stem}.in.npz", **feeds)
        np.savez(f"{stem}.ort.npz", **{o.name: v for o, v in zip(s.get_outputs(), outs)})
        print(stem, [(o.name, v.shape, v.dtype) for o, v in zip(s.get_outputs(), outs)])


if __name__ == "__main__":
    main()
