//! AVX2 / AVX-512 kernels of the int8 ops and the depthwise convolution.
