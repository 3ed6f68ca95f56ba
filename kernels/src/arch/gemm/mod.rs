//! AVX2, AVX-VNNI and AVX-512 VNNI GEMM micro-kernels, packing and epilogues.
