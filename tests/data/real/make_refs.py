"""Writes the ONNX Runtime fp32 reference outputs the real-model tests compare against.

Run from this directory with onnxruntime and numpy installed: `python make_refs.py`.
Inputs are synthetic pages (white background, dark text-like blocks, normalized as
PaddleOCR does), so the detector finds text and the classifier is confident.
"""
import numpy as np
import onnxruntime as ort

CASES = [
    ("ch_PP-OCRv4_det_infer.onnx", [(1, 3, 96, 128), (1, 3, 128, 160)]),
    ("ch_ppocr_mobile_v2.0_cls_infer.onnx", [(1, 3, 48, 192), (2, 3, 48, 160)]),
]


def page(shape, rng):
    x = np.full(shape, 0.9, np.float32)
    n, _, h, w = shape
    for b in range(n):
        for i in range(4, h - 14, 20):
            for j in range(4, w - 30, 40):
                x[b, :, i : i + 10, j : j + 28] = -0.9 * (rng.random((10, 28)) > 0.5)
    return (x + rng.normal(0, 0.02, shape)).astype(np.float32)


def main():
    rng = np.random.default_rng(0)
    for model, shapes in CASES:
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        s = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
        stem = model.removesuffix("_infer.onnx")
        for shape in shapes:
            x = page(shape, rng)
            (y,) = s.run(None, {s.get_inputs()[0].name: x})
            tag = f"{stem}_{'x'.join(map(str, shape))}"
            np.save(f"{tag}.in.npy", x)
            np.save(f"{tag}.ort.npy", y)
            print(tag, y.shape, float(np.abs(y).max()))


if __name__ == "__main__":
    main()
