//! Built-in model architectures with deterministic random weights, and helpers for the
//! sentence encoders q8 checks (token batches, mean-pooled embeddings, cosine similarity).

mod encoder;
mod resnet18;

pub use encoder::{cosine_similarity, mean_min_cosine, mean_pool, quantize_encoder, token_batch};
pub use resnet18::{ResNet18Config, resnet18};
