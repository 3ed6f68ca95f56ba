"""Exports the tiny BERT-like encoder q8 tests and demos use (random weights, seed 0).

vocab 96, hidden 32, 2 heads, FFN 64 (GELU, erf form), 2 layers, post-LayerNorm like BERT, no
position embedding (q8's lowering mislabels the symbolic shape of a position-table Slice);
inputs input_ids / attention_mask (int64, dynamic batch and sequence), output
last_hidden_state. Also writes ONNX Runtime's outputs on a fixed batch as references.

    /work/peers/venv/bin/python tests/data/tiny_bert/export.py
"""
import pathlib

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

HERE = pathlib.Path(__file__).parent
VOCAB, HIDDEN, HEADS, FFN, LAYERS = 96, 32, 2, 64, 2


class Layer(nn.Module):
    def __init__(self):
        super().__init__()
        self.q, self.k, self.v, self.o = (nn.Linear(HIDDEN, HIDDEN) for _ in range(4))
        self.ln1, self.ln2 = nn.LayerNorm(HIDDEN), nn.LayerNorm(HIDDEN)
        self.up, self.down = nn.Linear(HIDDEN, FFN), nn.Linear(FFN, HIDDEN)
        self.act = nn.GELU()

    def forward(self, x, bias):
        b, s, _ = x.shape
        split = lambda t: t.view(b, s, HEADS, HIDDEN // HEADS).transpose(1, 2)
        q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
        scores = q @ k.transpose(-1, -2) / (HIDDEN // HEADS) ** 0.5 + bias
        ctx = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, s, HIDDEN)
        x = self.ln1(x + self.o(ctx))
        return self.ln2(x + self.down(self.act(self.up(x))))


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.tok = nn.Embedding(VOCAB, HIDDEN)
        self.ln = nn.LayerNorm(HIDDEN)
        self.layers = nn.ModuleList(Layer() for _ in range(LAYERS))

    def forward(self, input_ids, attention_mask):
        x = self.ln(self.tok(input_ids))
        bias = (1.0 - attention_mask[:, None, None, :].float()) * -10000.0
        for layer in self.layers:
            x = layer(x, bias)
        return x


def tokens(batch, seq, seed):
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, VOCAB, (batch, seq)).astype(np.int64)
    mask = np.ones((batch, seq), np.int64)
    for b in range(batch):
        n = rng.integers(seq // 2, seq + 1)
        mask[b, n:] = 0
        ids[b, n:] = 0
    return ids, mask


def main():
    torch.manual_seed(0)
    model = Encoder().eval()
    ids, mask = tokens(2, 16, 1)
    path = HERE / "tiny_bert.onnx"
    torch.onnx.export(
        model, (torch.from_numpy(ids), torch.from_numpy(mask)), str(path),
        input_names=["input_ids", "attention_mask"], output_names=["last_hidden_state"],
        dynamic_axes={n: {0: "batch", 1: "sequence"} for n in ["input_ids", "attention_mask"]},
        opset_version=17, dynamo=False,
    )
    sess = ort.InferenceSession(str(path))
    for name, (b, s, seed) in {"2x16": (2, 16, 1), "3x24": (3, 24, 2)}.items():
        ids, mask = tokens(b, s, seed)
        (out,) = sess.run(None, {"input_ids": ids, "attention_mask": mask})
        np.save(HERE / f"ids_{name}.npy", ids)
        np.save(HERE / f"mask_{name}.npy", mask)
        np.save(HERE / f"ort_{name}.npy", out)


if __name__ == "__main__":
    main()
