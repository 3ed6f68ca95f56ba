//! AMX-INT8 (`tdpbusd`) GEMM micro-kernel, tile configuration and packing.
