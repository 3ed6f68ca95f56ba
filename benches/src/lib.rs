//! Shared helpers for q8's criterion benchmarks (model-derived shapes).
