"""ONNX Runtime 1.32 fp32 references for tests/tests/minilm_int8.rs: the MiniLM encoder
(../shared/models/fetch.sh) on `token_batch` ids (benches/peers/encoder_e2e.py, the generator of
q8_frontend::models::token_batch bit for bit). Usage: python make_refs.py MODEL.onnx"""
import os
import sys

import numpy as np
import onnxruntime as ort

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "../../../benches/peers"))
from encoder_e2e import token_batch  # noqa: E402

session = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
for batch, seq, seed in [(2, 40, 5), (3, 128, 9)]:
    ids, mask = token_batch(batch, seq, 30522, seed)
    out = session.run(None, {"input_ids": ids, "attention_mask": mask})
    np.save(os.path.join(here, f"ort_{batch}x{seq}_embedding.npy"), out[3].astype(np.float32))
    if seq == 40:
        np.save(os.path.join(here, f"ort_{batch}x{seq}_hidden.npy"), out[2].astype(np.float32))
