//! Int8 convolution (NHWC): geometry, packing, implicit GEMM, depthwise.
