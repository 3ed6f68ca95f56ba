//! Helpers for BERT-style sentence encoders: token batches for calibration and checks, the
//! sentence embedding (last hidden state mean-pooled over the attention mask) and the cosine
//! similarity that compares embeddings of two runs.
//!
//! ```
//! use q8_frontend::models::{cosine_similarity, mean_pool, token_batch};
//! let (ids, mask) = token_batch(2, 8, 100, 7).unwrap();
//! assert_eq!(ids.shape(), &[2, 8]);
//! let hidden = vec![1.0f32; 2 * 8 * 4];
//! let e = mean_pool(&hidden, &mask, 4).unwrap();
//! assert_eq!(e[0], vec![1.0; 4]);
//! assert!((cosine_similarity(&e[0], &e[1]) - 1.0).abs() < 1e-12);
//! ```

use crate::error::{Error, Result};
use crate::ir::{Tensor, TensorData};

/// `batch` sequences of `seq` random token ids in `1..vocab`, each with a random length in
/// `seq / 2..=seq` (the rest padded with id 0 and masked out), deterministic in `seed`.
/// Returns `(input_ids, attention_mask)`, both i64 `[batch, seq]`.
///
/// # Errors
/// [`Error::Input`] for a zero size or `vocab < 2`.
pub fn token_batch(batch: usize, seq: usize, vocab: usize, seed: u64) -> Result<(Tensor, Tensor)> {
    if batch == 0 || seq == 0 || vocab < 2 {
        return Err(Error::Input(format!(
            "token batch {batch} x {seq} over a vocabulary of {vocab}: sizes must be >= 1 and the vocabulary >= 2"
        )));
    }
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let (mut ids, mut mask) = (vec![0i64; batch * seq], vec![0i64; batch * seq]);
    for b in 0..batch {
        let len = seq / 2 + (next() as usize % (seq - seq / 2 + 1));
        for t in 0..len.max(1) {
            ids[b * seq + t] = 1 + (next() % (vocab as u64 - 1)) as i64;
            mask[b * seq + t] = 1;
        }
    }
    let t = |v| Tensor::new(vec![batch, seq], TensorData::I64(v));
    Ok((t(ids)?, t(mask)?))
}

/// Sentence embeddings: the mean of `hidden` (`[batch, seq, width]`, row-major) over the
/// positions where the i64 `mask` (`[batch, seq]`) is non-zero. A sequence without any
/// unmasked position gives zeros.
///
/// # Errors
/// [`Error::Input`] when the mask is not i64 `[batch, seq]` or `hidden` is not
/// `batch * seq * width` values.
pub fn mean_pool(hidden: &[f32], mask: &Tensor, width: usize) -> Result<Vec<Vec<f32>>> {
    let (TensorData::I64(m), &[batch, seq]) = (mask.data(), mask.shape()) else {
        return Err(Error::Input(format!(
            "mean_pool: the mask must be i64 [batch, seq], got {} {:?}",
            mask.dtype(),
            mask.shape()
        )));
    };
    if hidden.len() != batch * seq * width {
        return Err(Error::Input(format!(
            "mean_pool: {} hidden values for [{batch}, {seq}, {width}]",
            hidden.len()
        )));
    }
    Ok((0..batch)
        .map(|b| {
            let mut sum = vec![0f32; width];
            let mut count = 0usize;
            for t in (0..seq).filter(|&t| m[b * seq + t] != 0) {
                let h = &hidden[(b * seq + t) * width..][..width];
                sum.iter_mut().zip(h).for_each(|(s, v)| *s += v);
                count += 1;
            }
            sum.iter().map(|s| s / count.max(1) as f32).collect()
        })
        .collect())
}

/// Cosine similarity of two vectors, in f64 (0 when one of them is all zeros).
pub fn cosine_similarity(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let norm = |v: &[f32]| v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let d = norm(a) * norm(b);
    if d == 0.0 { 0.0 } else { dot / d }
}

/// Mean and minimum of the cosine similarities of paired embeddings.
pub fn mean_min_cosine(a: &[Vec<f32>], b: &[Vec<f32>]) -> (f64, f64) {
    let cos: Vec<f64> = a
        .iter()
        .zip(b)
        .map(|(x, y)| cosine_similarity(x, y))
        .collect();
    let mean = cos.iter().sum::<f64>() / cos.len().max(1) as f64;
    (mean, cos.iter().copied().fold(1.0, f64::min))
}

/// Static int8 quantization of a token encoder (inputs `input_ids`, `attention_mask`, i64)
/// with `config`, calibrated on `batches` random [`token_batch`]es of 4 x `seq` tokens:
/// prepare, observe, convert.
///
/// # Errors
/// As [`crate::quant::prepare`], [`crate::quant::Prepared::observe`] (a graph whose inputs
/// are not the two token tensors fails there) and [`crate::quant::Prepared::convert`].
pub fn quantize_encoder(
    graph: &crate::ir::Graph,
    config: &crate::quant::QuantConfig,
    options: crate::exec::ExecOptions,
    vocab: usize,
    seq: usize,
    batches: usize,
) -> crate::quant::Result<crate::quant::Quantized> {
    let mut prepared = crate::quant::prepare(graph, config, options)?;
    for seed in 0..batches as u64 {
        let (ids, mask) = token_batch(4, seq, vocab, seed)
            .map_err(|e| crate::quant::QuantError::Calibration(e.to_string()))?;
        prepared.observe(&[ids, mask])?;
    }
    prepared.convert()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tokens `benches/peers/encoder_e2e.py` (a port of this generator) draws for the
    /// same arguments: ONNX Runtime and OpenVINO are measured on identical inputs.
    #[test]
    fn token_batch_matches_the_python_port() {
        let (ids, mask) = token_batch(2, 8, 100, 7).unwrap();
        let (TensorData::I64(ids), TensorData::I64(mask)) = (ids.data(), mask.data()) else {
            panic!("token batches are i64");
        };
        assert_eq!(
            ids,
            &[84, 34, 22, 45, 98, 35, 0, 0, 62, 65, 4, 64, 29, 0, 0, 0]
        );
        assert_eq!(mask, &[1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0]);
        assert!(token_batch(0, 8, 100, 7).is_err());
    }
}
