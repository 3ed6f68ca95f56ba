//! Typed, range-checked access to a node's attributes.

use super::proto::{AttributeProto, NodeProto};
use crate::error::{Error, Result};
use crate::ir::MAX_DIM;

/// The attributes of one node, with the node's identity for error messages.
pub(crate) struct Attrs<'a> {
    node: &'a NodeProto,
    name: &'a str,
}

impl<'a> Attrs<'a> {
    pub fn new(node: &'a NodeProto, name: &'a str) -> Attrs<'a> {
        Attrs { node, name }
    }

    /// An error naming this node.
    pub fn err(&self, message: impl Into<String>) -> Error {
        Error::node(&self.node.op_type, self.name, message)
    }

    fn get(&self, key: &str) -> Option<&'a AttributeProto> {
        self.node.attribute.iter().find(|a| a.name == key)
    }

    /// An int attribute, or `default`.
    pub fn int(&self, key: &str, default: i64) -> i64 {
        self.get(key).map_or(default, |a| a.i)
    }

    /// A 0/1 flag.
    pub fn flag(&self, key: &str, default: bool) -> Result<bool> {
        match self.int(key, default as i64) {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(self.err(format!("attribute {key} = {v} must be 0 or 1"))),
        }
    }

    /// A float attribute, or `default`.
    pub fn float(&self, key: &str, default: f32) -> f32 {
        self.get(key).map_or(default, |a| a.f)
    }

    /// A string attribute, or `default`.
    pub fn string(&self, key: &str, default: &str) -> String {
        self.get(key).map_or(default.to_string(), |a| {
            String::from_utf8_lossy(&a.s).into_owned()
        })
    }

    /// An ints attribute, if present.
    pub fn ints(&self, key: &str) -> Option<&'a [i64]> {
        self.get(key).map(|a| a.ints.as_slice())
    }

    /// An ints attribute of exactly `n` entries, each in `min..=MAX_DIM`, or `default`.
    pub fn sizes<const N: usize>(
        &self,
        key: &str,
        default: [usize; N],
        min: usize,
    ) -> Result<[usize; N]> {
        let Some(v) = self.ints(key) else {
            return Ok(default);
        };
        if v.len() != N {
            return Err(self.err(format!(
                "attribute {key} has {} entries, expected {N} (q8 supports 2-D windows, and 1-D for Conv)",
                v.len()
            )));
        }
        let mut out = [0usize; N];
        for (o, &x) in out.iter_mut().zip(v) {
            *o = usize::try_from(x)
                .ok()
                .filter(|&x| x >= min && x <= MAX_DIM)
                .ok_or_else(|| {
                    self.err(format!(
                        "attribute {key} = {v:?} out of range [{min}, {MAX_DIM}]"
                    ))
                })?;
        }
        Ok(out)
    }

    /// True when the attribute is present.
    pub fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// The tensor-valued attribute `key`.
    pub fn tensor(&self, key: &str) -> Option<&'a super::proto::TensorProto> {
        self.get(key).and_then(|a| a.t.as_ref())
    }
}
