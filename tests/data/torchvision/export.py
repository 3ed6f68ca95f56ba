"""Exports small random-weight torchvision models (opset 17, dynamic batch) and writes ONNX
Runtime fp32 references for tests/tests/torchvision_models.rs.

Run from this directory with torch, torchvision, onnxruntime installed:
`python export.py [name ...]`.
"""
import os
import sys

import numpy as np
import onnxruntime as ort
import torch
from torchvision import models as M
torch.manual_seed(0)
def mk():
    from torchvision.models.convnext import CNBlockConfig
    from torchvision.models.efficientnet import _efficientnet_conf
    return {
      "mobilenet_v3_small_shrunk": lambda: M.mobilenet_v3_small(num_classes=10, width_mult=0.25),
      "shufflenet_v2": lambda: M.ShuffleNetV2([2, 2, 2], [16, 32, 64, 128, 256], num_classes=10),
      "convnext_tiny_shrunk": lambda: M.convnext.ConvNeXt([CNBlockConfig(16, 32, 1), CNBlockConfig(32, 64, 1), CNBlockConfig(64, None, 1)], num_classes=10),
      "densenet_shrunk": lambda: M.DenseNet(growth_rate=8, block_config=(2, 2), num_init_features=16, num_classes=10),
      "efficientnet_b0_shrunk": lambda: M.efficientnet.EfficientNet(_efficientnet_conf("efficientnet_b0", width_mult=0.25, depth_mult=0.25)[0], dropout=0.2, num_classes=10),
      "vit_shrunk": lambda: M.VisionTransformer(image_size=64, patch_size=16, num_layers=2, num_heads=2, hidden_dim=32, mlp_dim=64, num_classes=10),
      "swin_shrunk": lambda: M.SwinTransformer(patch_size=[4,4], embed_dim=16, depths=[1,1], num_heads=[1,2], window_size=[4,4], num_classes=10),
    }
names = sys.argv[1:] or list(mk())
for name in names:
    torch.manual_seed(0)  # per model, so exporting one reproduces the committed file
    m = mk()[name]().eval()
    with torch.no_grad():  # torchvision zero-initializes some heads: make every output count
        for p in m.parameters():
            if not p.any():
                p.normal_(0, 0.1)
    size = 64
    x = torch.randn(2, 3, size, size)
    path = f"{name}.onnx"
    try:
        torch.onnx.export(m, x, path, opset_version=17, input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}}, dynamo=False)
    except Exception as e:
        print(name, "EXPORT FAIL", e); continue
    s = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    y = s.run(None, {"x": x.numpy()})[0]
    np.save(f"{name}.in.npy", x.numpy()); np.save(f"{name}.ort.npy", y)
    print(name, "ok", os.path.getsize(path))
