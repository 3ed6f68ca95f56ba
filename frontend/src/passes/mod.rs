//! Graph rewrites.

mod fold_bn;

pub use fold_bn::{BnFoldReport, fold_batch_norm};
