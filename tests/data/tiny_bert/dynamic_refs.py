"""References for tests/tests/dynamic_quant.rs (ONNX Runtime 1.32, CPU):

* tiny_bert_ort_dynamic.onnx: ONNX Runtime's own `quantize_dynamic` of tiny_bert.onnx (s8
  weights per channel), and ort_ort_dynamic_2x16.npy its output on ids/mask_2x16;
* ort_dynamic_2x16.npy: ONNX Runtime's output, on the same inputs, of the model q8 writes for
  `q8 quantize tiny_bert.onnx --dynamic -o /tmp/tb_dyn.onnx` (pass that path).

    target/release/q8 quantize tests/data/tiny_bert/tiny_bert.onnx --dynamic -o /tmp/tb_dyn.onnx
    /work/peers/venv/bin/python tests/data/tiny_bert/dynamic_refs.py /tmp/tb_dyn.onnx
"""
import pathlib
import sys

import numpy as np
import onnxruntime as ort
from onnxruntime.quantization import QuantType, quantize_dynamic

HERE = pathlib.Path(__file__).parent


def run(model):
    s = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    feeds = {
        "input_ids": np.load(HERE / "ids_2x16.npy"),
        "attention_mask": np.load(HERE / "mask_2x16.npy"),
    }
    return s.run(None, feeds)[0].astype(np.float32)


ort_model = HERE / "tiny_bert_ort_dynamic.onnx"
quantize_dynamic(HERE / "tiny_bert.onnx", ort_model, weight_type=QuantType.QInt8, per_channel=True)
np.save(HERE / "ort_ort_dynamic_2x16.npy", run(ort_model))
if len(sys.argv) > 1:
    np.save(HERE / "ort_dynamic_2x16.npy", run(sys.argv[1]))
