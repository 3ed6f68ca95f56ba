//! Physical layouts of run-time tensors and the transposes between them.

/// How a value's elements are laid out in its buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Row-major in the logical (ONNX, NCHW) axis order.
    Plain,
    /// A rank-4 NCHW value stored channels-last, `[N][H][W][C]`.
    Nhwc,
}

/// `[N][H][W][C]` -> `[N][C][H][W]` for logical shape `[n, c, h, w]`.
pub fn nhwc_to_nchw<T: Copy>(src: &[T], [n, c, h, w]: [usize; 4], dst: &mut [T]) {
    let hw = h * w;
    for b in 0..n {
        let s = &src[b * hw * c..][..hw * c];
        let d = &mut dst[b * hw * c..][..hw * c];
        for (p, pixel) in s.chunks_exact(c).enumerate() {
            for (ch, &v) in pixel.iter().enumerate() {
                d[ch * hw + p] = v;
            }
        }
    }
}

/// `[N][C][H][W]` -> `[N][H][W][C]` for logical shape `[n, c, h, w]`.
pub fn nchw_to_nhwc<T: Copy>(src: &[T], [n, c, h, w]: [usize; 4], dst: &mut [T]) {
    let hw = h * w;
    for b in 0..n {
        let s = &src[b * hw * c..][..hw * c];
        let d = &mut dst[b * hw * c..][..hw * c];
        for (ch, plane) in s.chunks_exact(hw).enumerate() {
            for (p, &v) in plane.iter().enumerate() {
                d[p * c + ch] = v;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transposes_round_trip() {
        let shape = [2, 3, 2, 5];
        let x: Vec<u32> = (0..60).collect();
        let mut nhwc = vec![0; 60];
        let mut back = vec![0; 60];
        nchw_to_nhwc(&x, shape, &mut nhwc);
        // image 0, pixel (0, 1), channel 2 = NCHW index (2 * 2 + 0) * 5 + 1
        assert_eq!(nhwc[3 + 2], 21);
        nhwc_to_nchw(&nhwc, shape, &mut back);
        assert_eq!(back, x);
    }
}
