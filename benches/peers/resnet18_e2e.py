"""ResNet-18 int8 end to end in the peers, beside `q8 bench model` on the same machine.

Usage (with the peers' venv from ../shared/peers/requirements.txt):
    python resnet18_e2e.py prepare OUT_DIR        # resnet18.onnx (fp32, random weights, seed 0),
                                                  # calib.npy, resnet18.ort_qdq.onnx (ORT quantize_static)
    q8 quantize OUT_DIR/resnet18.onnx --calib OUT_DIR/calib.npy -o OUT_DIR/resnet18.q8.onnx
    python resnet18_e2e.py bench OUT_DIR [--batches 1,16] [--threads 1,2] [--impls ...]

Impls: ort_ortqdq (ONNX Runtime on its own QDQ model), ort_q8qdq (ONNX Runtime on q8's QDQ model),
ov_q8qdq (OpenVINO on q8's QDQ model), ov_ortqdq (OpenVINO on ORT's QDQ model).
Each (impl, threads) runs in its own child process; median ms per batch of the whole model.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time


def prepare(out):
    import numpy as np
    import torch
    import torchvision
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None).eval()
    x = torch.randn(1, 3, 224, 224)
    path = os.path.join(out, "resnet18.onnx")
    torch.onnx.export(model, x, path, opset_version=17, input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False)
    rng = np.random.default_rng(0)
    calib = rng.standard_normal((16, 3, 224, 224), dtype=np.float32)
    np.save(os.path.join(out, "calib.npy"), calib)
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter([{"input": calib[i:i + 4]} for i in range(0, 16, 4)])

        def get_next(self):
            return next(self.it, None)

    quantize_static(path, os.path.join(out, "resnet18.ort_qdq.onnx"), Reader(), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True)
    print("prepared", out)


def run_one(impl, out, batch, threads):
    import numpy as np
    model = {"ort_ortqdq": "resnet18.ort_qdq.onnx", "ov_ortqdq": "resnet18.ort_qdq.onnx"}.get(impl, "resnet18.q8.onnx")
    path = os.path.join(out, model)
    x = np.random.default_rng(1).standard_normal((batch, 3, 224, 224), dtype=np.float32)
    if impl.startswith("ort"):
        import onnxruntime as ort
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        fn = lambda: sess.run(None, {name: x})
    else:
        import openvino as ov
        core = ov.Core()
        compiled = core.compile_model(path, "CPU", {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY",
                                                    "NUM_STREAMS": 1})
        req = compiled.create_infer_request()
        fn = lambda: req.infer({0: x})
    for _ in range(3):
        fn()
    ts = []
    t_end = time.perf_counter() + 1.0
    while len(ts) < 7 or (time.perf_counter() < t_end and len(ts) < 200):
        s = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - s)
    return statistics.median(ts) * 1e3


def bench(out, impls, batches, threads_list):
    rows = []
    for impl in impls:
        for threads in threads_list:
            env = dict(os.environ, OMP_NUM_THREADS=str(threads))
            args = [sys.executable, __file__, "child", out, impl, str(threads), ",".join(map(str, batches))]
            p = subprocess.run(args, env=env, capture_output=True, text=True, timeout=1200)
            line = [l for l in p.stdout.splitlines() if l.startswith("RESULT_JSON ")]
            if not line:
                print(f"{impl} threads={threads} failed:\n{p.stderr[-2000:]}", file=sys.stderr)
                continue
            for batch, ms in json.loads(line[0][12:]).items():
                rows.append((impl, int(batch), threads, ms))
                print(f"{impl:12} batch {batch:>3} threads {threads}: {ms:8.2f} ms", flush=True)
    print("RESULTS " + json.dumps(rows))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["prepare", "bench", "child"])
    ap.add_argument("out")
    ap.add_argument("rest", nargs="*")
    ap.add_argument("--impls", default="ort_ortqdq,ort_q8qdq,ov_q8qdq,ov_ortqdq")
    ap.add_argument("--batches", default="1,16")
    ap.add_argument("--threads", default="1,2")
    a = ap.parse_args()
    if a.cmd == "prepare":
        prepare(a.out)
    elif a.cmd == "bench":
        bench(a.out, a.impls.split(","), [int(b) for b in a.batches.split(",")], [int(t) for t in a.threads.split(",")])
    else:
        impl, threads, batches = a.rest[0], int(a.rest[1]), [int(b) for b in a.rest[2].split(",")]
        res = {b: run_one(impl, a.out, b, threads) for b in batches}
        print("RESULT_JSON " + json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
