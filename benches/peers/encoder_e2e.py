"""The MiniLM-style encoder in ONNX Runtime and OpenVINO, beside `q8 bench encoder` and the
`minilm_int8` test on the same machine and the same inputs.

Usage (with the peers' venv from ../shared/peers/requirements.txt):
    python encoder_e2e.py prepare MODEL.onnx OUT_DIR   # ORT quantize_dynamic and quantize_static
                                                       # (QDQ, calibrated on the same 4 batches
                                                       # of 4 x 128 tokens q8 uses)
    python encoder_e2e.py accuracy MODEL.onnx OUT_DIR  # mean / min cosine of mean-pooled
                                                       # last_hidden_state, int8 vs fp32
    python encoder_e2e.py bench MODEL.onnx OUT_DIR [--batches 1,8] [--threads 1,2]

Tokens come from the same generator as `q8_frontend::models::token_batch` (xorshift64, ported
bit for bit), so q8 and the peers see identical input_ids / attention_mask.
Each (impl, threads) is timed in its own child process; median ms per batch.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

M64 = (1 << 64) - 1
SEQ, VOCAB = 128, 30522


def token_batch(batch, seq, vocab, seed):
    """`q8_frontend::models::token_batch`, bit for bit."""
    s = ((seed * 0x9E3779B97F4A7C15) & M64) | 1

    def nxt():
        nonlocal s
        s ^= (s << 13) & M64
        s ^= s >> 7
        s ^= (s << 17) & M64
        return s

    ids = np.zeros((batch, seq), np.int64)
    mask = np.zeros((batch, seq), np.int64)
    for b in range(batch):
        n = seq // 2 + nxt() % (seq - seq // 2 + 1)
        for t in range(max(n, 1)):
            ids[b, t] = 1 + nxt() % (vocab - 1)
            mask[b, t] = 1
    return ids, mask


def paths(out):
    return {k: os.path.join(out, f"encoder.{k}.onnx") for k in ("ort_dynamic", "ort_static")}


def prepare(model, out):
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                          quantize_dynamic, quantize_static)
    os.makedirs(out, exist_ok=True)
    p = paths(out)
    quantize_dynamic(model, p["ort_dynamic"], weight_type=QuantType.QInt8, per_channel=True)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([token_batch(4, SEQ, VOCAB, s) for s in range(4)])

        def get_next(self):
            b = next(self.batches, None)
            return None if b is None else {"input_ids": b[0], "attention_mask": b[1]}

    quantize_static(model, p["ort_static"], Reader(), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    per_channel=True, op_types_to_quantize=["MatMul"])


def mean_pool(hidden, mask):
    m = mask[..., None].astype(np.float64)
    return (hidden * m).sum(1) / np.maximum(m.sum(1), 1)


def cosines(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def accuracy(model, out):
    import onnxruntime as ort
    ids, mask = token_batch(8, SEQ, VOCAB, 7)
    feed = {"input_ids": ids, "attention_mask": mask}

    def embed(path):
        s = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        return mean_pool(s.run(None, feed)[2], mask)

    want = embed(model)
    for name, path in paths(out).items():
        c = cosines(want, embed(path))
        print(json.dumps({"impl": name, "mean_cosine": round(float(c.mean()), 5),
                          "min_cosine": round(float(c.min()), 5)}))


def child(impl, model, out, threads, batches):
    ids_masks = {b: token_batch(b, SEQ, VOCAB, 7) for b in batches}
    path = model if impl == "ort_fp32" else paths(out)["ort_static" if impl.startswith("ov") else impl]
    if impl.startswith("ov"):
        import openvino as ov
        core = ov.Core()
        compiled = core.compile_model(path, "CPU", {"INFERENCE_NUM_THREADS": threads,
                                                     "PERFORMANCE_HINT": "LATENCY"})
        run = lambda feed: compiled(feed)
    else:
        import onnxruntime as ort
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        run = lambda feed: s.run(None, feed)
    for b, (ids, mask) in ids_masks.items():
        feed = {"input_ids": ids, "attention_mask": mask}
        for _ in range(3):
            run(feed)
        times, t0 = [], time.perf_counter()
        while len(times) < 5 or (time.perf_counter() - t0 < 1.0 and len(times) < 200):
            s0 = time.perf_counter()
            run(feed)
            times.append(time.perf_counter() - s0)
        print(json.dumps({"impl": impl, "threads": threads, "batch": b, "seq": SEQ,
                          "median_ms": round(statistics.median(times) * 1e3, 3)}), flush=True)


def bench(model, out, batches, threads, impls):
    for impl in impls:
        for t in threads:
            env = dict(os.environ, OMP_NUM_THREADS=str(t))
            subprocess.run([sys.executable, __file__, "child", model, out, impl, str(t),
                            ",".join(map(str, batches))], env=env, check=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["prepare", "accuracy", "bench", "child"])
    ap.add_argument("model")
    ap.add_argument("out")
    ap.add_argument("rest", nargs="*")
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--impls", default="ort_fp32,ort_dynamic,ort_static,ov_static")
    a = ap.parse_args()
    if a.cmd == "prepare":
        prepare(a.model, a.out)
    elif a.cmd == "accuracy":
        accuracy(a.model, a.out)
    elif a.cmd == "bench":
        bench(a.model, a.out, [int(x) for x in a.batches.split(",")],
              [int(x) for x in a.threads.split(",")], a.impls.split(","))
    else:
        impl, t, b = a.rest
        child(impl, a.model, a.out, int(t), [int(x) for x in b.split(",")])


if __name__ == "__main__":
    main()
