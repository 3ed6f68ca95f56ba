//! Packed u8 x s8 GEMM: weights packed once per layer, called many times, any tier.
