//! Reuse of f32 buffers between nodes: a value's buffer returns here after its last reader
//! and the next node of similar size takes it, so a run allocates little after warm-up.

/// A small pool of f32 buffers.
#[derive(Debug, Default)]
pub(crate) struct Buffers {
    free: Vec<Vec<f32>>,
}

/// Most buffers kept for reuse.
const MAX_KEPT: usize = 16;

impl Buffers {
    /// A buffer of `len` elements whose contents are unspecified (stale values of an earlier
    /// tensor, or zeros): the smallest free buffer that fits, else a fresh allocation.
    /// Every kernel overwrites all elements of its output, so recycled buffers are not
    /// cleared.
    pub fn take(&mut self, len: usize) -> Vec<f32> {
        let best = self
            .free
            .iter()
            .enumerate()
            .filter(|(_, b)| b.capacity() >= len)
            .min_by_key(|(_, b)| b.capacity())
            .map(|(i, _)| i);
        let mut v = match best {
            Some(i) => self.free.swap_remove(i),
            None => Vec::with_capacity(len),
        };
        if v.len() >= len {
            v.truncate(len);
        } else {
            v.resize(len, 0.0);
        }
        v
    }

    /// Returns a buffer for reuse (the smallest is dropped when the pool is full).
    pub fn give(&mut self, v: Vec<f32>) {
        if v.capacity() == 0 {
            return;
        }
        self.free.push(v);
        if self.free.len() > MAX_KEPT
            && let Some(i) = self
                .free
                .iter()
                .enumerate()
                .min_by_key(|(_, b)| b.capacity())
                .map(|(i, _)| i)
        {
            self.free.swap_remove(i);
        }
    }
}
