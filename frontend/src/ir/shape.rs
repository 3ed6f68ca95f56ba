//! Shapes with known and symbolic dimensions, and the element-count cap.

use std::fmt;
use std::sync::Arc;

use crate::error::{Error, Result};

/// Largest element count any tensor may have (2^30, 4 GiB of f32): declared shapes beyond
/// it are rejected before anything is allocated.
pub const MAX_ELEMENTS: usize = 1 << 30;

/// Largest value a single dimension, kernel size, stride, pad or dilation may take.
pub const MAX_DIM: usize = 1 << 24;

/// One dimension: a known size, or a named symbol bound at run time (e.g. `batch`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Dim {
    /// A size known when the graph is built.
    Known(usize),
    /// A size known only when the graph runs; equal names are equal sizes.
    Sym(Arc<str>),
}

impl Dim {
    /// A symbolic dimension named `name`.
    pub fn sym(name: &str) -> Dim {
        Dim::Sym(Arc::from(name))
    }

    /// The size, if known.
    pub fn known(&self) -> Option<usize> {
        match self {
            Dim::Known(n) => Some(*n),
            Dim::Sym(_) => None,
        }
    }
}

impl From<usize> for Dim {
    fn from(n: usize) -> Dim {
        Dim::Known(n)
    }
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dim::Known(n) => write!(f, "{n}"),
            Dim::Sym(s) => f.write_str(s),
        }
    }
}

/// The shape of a value: one [`Dim`] per axis (rank 0 = scalar).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Shape(pub Vec<Dim>);

impl Shape {
    /// A fully known shape.
    pub fn known(dims: &[usize]) -> Shape {
        Shape(dims.iter().map(|&d| Dim::Known(d)).collect())
    }

    /// Number of axes.
    pub fn rank(&self) -> usize {
        self.0.len()
    }

    /// The dimensions.
    pub fn dims(&self) -> &[Dim] {
        &self.0
    }

    /// All sizes, if every dimension is known.
    pub fn to_known(&self) -> Option<Vec<usize>> {
        self.0.iter().map(Dim::known).collect()
    }
}

impl<const N: usize> From<[Dim; N]> for Shape {
    fn from(dims: [Dim; N]) -> Shape {
        Shape(dims.to_vec())
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{d}")?;
        }
        f.write_str("]")
    }
}

/// Product of `dims`, checked against overflow and [`MAX_ELEMENTS`].
///
/// # Errors
/// [`Error::Graph`] when the product exceeds the cap.
pub fn checked_numel(dims: &[usize]) -> Result<usize> {
    dims.iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .filter(|&n| n <= MAX_ELEMENTS)
        .ok_or_else(|| {
            Error::Graph(format!(
                "shape {dims:?} has more than {MAX_ELEMENTS} elements"
            ))
        })
}
