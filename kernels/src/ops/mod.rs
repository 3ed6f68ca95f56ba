//! Int8 element-wise, pooling, concat and quantize / dequantize ops (u8 in, u8 out).
