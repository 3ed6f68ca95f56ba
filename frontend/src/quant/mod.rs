//! Quantization: configuration, observers and qparams (the X86 recipe).
