//! Reading and writing NumPy `.npy` arrays and `.npz` archives.
//!
//! Supported: format versions 1.0, 2.0 and 3.0; `f32`, `f64`, `i64`, `i32`, `u8`, `i8` and
//! `bool` of either byte order in C order. Fortran order, object arrays and structured dtypes
//! are rejected with an [`NpyError`] naming the problem. Elements are decoded and encoded by
//! the `npyz` crate. The header (preamble and dict) is validated here before `npyz` sees any
//! of it, because `npyz` cannot be handed hostile input: it allocates the declared header
//! length up front (up to 4 GiB) and multiplies shape entries without overflow checks (a
//! panic in debug builds, a wrapped element count in release), and it does not read Python 2
//! `2L` shapes. So parsing never panics: every declared size is checked against the bytes
//! actually present before anything is allocated. `.npz` archives are read with the `zip`
//! crate (npyz's own `npz` feature pins an old `zip` and has no member-size limit).
//!
//! ```
//! use q8_frontend::npy::{self, NpyArray};
//! let a = NpyArray::new(vec![2, 3], vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
//! let bytes = npy::to_bytes(&a);
//! let b = npy::from_bytes(&bytes).unwrap();
//! assert_eq!(b.shape(), &[2, 3]);
//! assert_eq!(b.values::<f32>().unwrap()[4], 5.0);
//! assert!(b.values::<i64>().is_err()); // dtype is checked
//! ```

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

/// Largest header a file may declare (NumPy itself refuses headers over 10 000 bytes by default).
const MAX_HEADER_BYTES: usize = 1 << 20;

/// Largest decompressed member an `.npz` archive may hand us (guards against zip bombs).
const MAX_NPZ_MEMBER_BYTES: u64 = 1 << 33;

/// Most dimensions an array may have (NumPy's `NPY_MAXDIMS`).
pub const MAX_DIMS: usize = 64;

const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// Errors of `.npy` / `.npz` reading and writing.
#[derive(Debug, thiserror::Error)]
pub enum NpyError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// File involved.
        path: String,
        /// Underlying I/O error.
        source: std::io::Error,
    },
    /// The bytes are not a well-formed `.npy` file.
    #[error("malformed .npy: {0}")]
    Format(String),
    /// Well-formed, but a feature q8 does not read (dtype, byte order, Fortran order).
    #[error("unsupported .npy: {0}")]
    Unsupported(String),
    /// The array holds another element type than the one asked for.
    #[error("array has dtype {actual}, expected {expected}")]
    Dtype {
        /// Element type asked for.
        expected: DType,
        /// Element type present.
        actual: DType,
    },
    /// Shape and data length disagree.
    #[error("shape {shape:?} needs {expected} elements, got {actual}")]
    Shape {
        /// Declared shape.
        shape: Vec<usize>,
        /// Product of the shape.
        expected: usize,
        /// Number of values supplied.
        actual: usize,
    },
    /// The `.npz` archive is unreadable or a member is bad.
    #[error("malformed .npz: {0}")]
    Npz(String),
}

/// Result alias for this module.
pub type Result<T, E = NpyError> = std::result::Result<T, E>;

/// Element types q8 reads and writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DType {
    /// `<f4`
    F32,
    /// `<f8`
    F64,
    /// `<i8`
    I64,
    /// `<i4`
    I32,
    /// `|u1`
    U8,
    /// `|i1`
    I8,
    /// `|b1` (bytes 0 or 1)
    Bool,
}

impl DType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::F64 | DType::I64 => 8,
            DType::F32 | DType::I32 => 4,
            DType::U8 | DType::I8 | DType::Bool => 1,
        }
    }

    /// The NumPy `descr` string written for this type.
    pub fn descr(self) -> &'static str {
        match self {
            DType::F32 => "<f4",
            DType::F64 => "<f8",
            DType::I64 => "<i8",
            DType::I32 => "<i4",
            DType::U8 => "|u1",
            DType::I8 => "|i1",
            DType::Bool => "|b1",
        }
    }

    /// Parses a `descr` (any byte order) into the q8 type and the `npyz` type that decodes it.
    fn parse_descr(descr: &str) -> Result<(DType, npyz::DType)> {
        use npyz::TypeChar;
        let unsupported = || {
            NpyError::Unsupported(format!(
                "dtype {descr:?} (q8 reads f4, f8, i8, i4, u1, i1, b1)"
            ))
        };
        // `=` (native order, which NumPy never writes but other tools may) is `npyz`'s `<`
        // on the little-endian targets q8 runs on.
        let spelled = match descr.strip_prefix('=') {
            Some(rest) if cfg!(target_endian = "little") => format!("<{rest}"),
            _ => descr.to_string(),
        };
        let ts: npyz::TypeStr = spelled.parse().map_err(|_| unsupported())?;
        let dtype = match (ts.type_char(), ts.size_field()) {
            (TypeChar::Float, 4) => DType::F32,
            (TypeChar::Float, 8) => DType::F64,
            (TypeChar::Int, 8) => DType::I64,
            (TypeChar::Int, 4) => DType::I32,
            (TypeChar::Uint, 1) => DType::U8,
            (TypeChar::Int, 1) => DType::I8,
            (TypeChar::Bool, 1) => DType::Bool,
            _ => return Err(unsupported()),
        };
        Ok((dtype, npyz::DType::new_scalar(ts)))
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self {
            DType::F32 => "f32",
            DType::F64 => "f64",
            DType::I64 => "i64",
            DType::I32 => "i32",
            DType::U8 => "u8",
            DType::I8 => "i8",
            DType::Bool => "bool",
        };
        f.write_str(name)
    }
}

/// The values of an array, one variant per [`DType`].
#[derive(Clone, Debug, PartialEq)]
pub enum NpyData {
    /// `f32` values.
    F32(Vec<f32>),
    /// `f64` values.
    F64(Vec<f64>),
    /// `i64` values.
    I64(Vec<i64>),
    /// `i32` values.
    I32(Vec<i32>),
    /// `u8` values.
    U8(Vec<u8>),
    /// `i8` values.
    I8(Vec<i8>),
    /// `bool` values.
    Bool(Vec<bool>),
}

impl NpyData {
    /// Element type of these values.
    pub fn dtype(&self) -> DType {
        match self {
            NpyData::F32(_) => DType::F32,
            NpyData::F64(_) => DType::F64,
            NpyData::I64(_) => DType::I64,
            NpyData::I32(_) => DType::I32,
            NpyData::U8(_) => DType::U8,
            NpyData::I8(_) => DType::I8,
            NpyData::Bool(_) => DType::Bool,
        }
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        match self {
            NpyData::F32(v) => v.len(),
            NpyData::F64(v) => v.len(),
            NpyData::I64(v) => v.len(),
            NpyData::I32(v) => v.len(),
            NpyData::U8(v) => v.len(),
            NpyData::I8(v) => v.len(),
            NpyData::Bool(v) => v.len(),
        }
    }

    /// True when there are no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A Rust element type stored in `.npy` files (decoded and encoded by `npyz`).
pub trait Element: Copy + Sized + npyz::Deserialize + npyz::AutoSerialize {
    /// The matching [`DType`].
    const DTYPE: DType;
    /// Wraps values into [`NpyData`].
    fn wrap(values: Vec<Self>) -> NpyData;
    /// Borrows the values if `data` holds this type.
    fn peek(data: &NpyData) -> Option<&[Self]>;
}

macro_rules! element {
    ($t:ty, $variant:ident) => {
        impl Element for $t {
            const DTYPE: DType = DType::$variant;
            fn wrap(values: Vec<Self>) -> NpyData {
                NpyData::$variant(values)
            }
            fn peek(data: &NpyData) -> Option<&[Self]> {
                match data {
                    NpyData::$variant(v) => Some(v),
                    _ => None,
                }
            }
        }
    };
}

element!(f32, F32);
element!(f64, F64);
element!(i64, I64);
element!(i32, I32);
element!(u8, U8);
element!(i8, I8);
element!(bool, Bool);

/// An n-dimensional array in C (row-major) order.
#[derive(Clone, Debug, PartialEq)]
pub struct NpyArray {
    shape: Vec<usize>,
    data: NpyData,
}

impl NpyArray {
    /// Builds an array, checking that `values.len()` is the product of `shape`
    /// (an empty shape is a scalar holding one value).
    ///
    /// # Errors
    /// As [`NpyArray::from_data`].
    pub fn new<T: Element>(shape: Vec<usize>, values: Vec<T>) -> Result<NpyArray> {
        NpyArray::from_data(shape, T::wrap(values))
    }

    /// As [`NpyArray::new`], from already-wrapped data.
    ///
    /// # Errors
    /// [`NpyError::Shape`] on a length mismatch or an overflowing shape, [`NpyError::Format`]
    /// for more than [`MAX_DIMS`] dimensions.
    pub fn from_data(shape: Vec<usize>, data: NpyData) -> Result<NpyArray> {
        if shape.len() > MAX_DIMS {
            return Err(fmt_err(format!(
                "{} dimensions exceed the maximum of {MAX_DIMS}",
                shape.len()
            )));
        }
        let expected = element_count(&shape);
        if expected != Some(data.len()) {
            return Err(NpyError::Shape {
                shape,
                expected: expected.unwrap_or(usize::MAX),
                actual: data.len(),
            });
        }
        Ok(NpyArray { shape, data })
    }

    /// Dimensions, outermost first.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Element type.
    pub fn dtype(&self) -> DType {
        self.data.dtype()
    }

    /// The values, whatever their type.
    pub fn data(&self) -> &NpyData {
        &self.data
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// True when the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The values as `T`.
    ///
    /// # Errors
    /// [`NpyError::Dtype`] when the array holds another type.
    pub fn values<T: Element>(&self) -> Result<&[T]> {
        T::peek(&self.data).ok_or(NpyError::Dtype {
            expected: T::DTYPE,
            actual: self.dtype(),
        })
    }

    /// Splits into shape and data.
    pub fn into_parts(self) -> (Vec<usize>, NpyData) {
        (self.shape, self.data)
    }
}

/// Product of the dimensions, `None` on overflow.
fn element_count(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

fn fmt_err(msg: impl Into<String>) -> NpyError {
    NpyError::Format(msg.into())
}

/// Parses a whole `.npy` file held in memory. Trailing bytes after the data are an error.
///
/// # Errors
/// [`NpyError::Format`] for anything malformed, [`NpyError::Unsupported`] for Fortran order,
/// big-endian or other dtypes.
pub fn from_bytes(bytes: &[u8]) -> Result<NpyArray> {
    let (header, data) = split_header(bytes)?;
    let header = parse_header(header)?;
    if header.fortran_order {
        return Err(NpyError::Unsupported(
            "fortran_order is True; save the array in C order (np.ascontiguousarray)".into(),
        ));
    }
    let count = element_count(&header.shape)
        .ok_or_else(|| fmt_err(format!("shape {:?} overflows", header.shape)))?;
    let expected = count
        .checked_mul(header.dtype.size())
        .ok_or_else(|| fmt_err(format!("shape {:?} overflows", header.shape)))?;
    if data.len() != expected {
        return Err(fmt_err(format!(
            "shape {:?} of {} needs {expected} data bytes, file has {}",
            header.shape,
            header.dtype,
            data.len()
        )));
    }
    let file = &header.file_dtype;
    let values = match header.dtype {
        DType::F32 => decode::<f32>(file, data),
        DType::F64 => decode::<f64>(file, data),
        DType::I64 => decode::<i64>(file, data),
        DType::I32 => decode::<i32>(file, data),
        DType::U8 => decode::<u8>(file, data),
        DType::I8 => decode::<i8>(file, data),
        DType::Bool => decode::<bool>(file, data),
    }?;
    NpyArray::from_data(header.shape, values)
}

/// Decodes `data` (exactly the array's bytes) as `T` stored as `file` (its byte order).
fn decode<T: Element>(file: &npyz::DType, data: &[u8]) -> Result<NpyData> {
    use npyz::TypeRead;
    let reader = T::reader(file).map_err(|e| fmt_err(e.to_string()))?;
    let values = data
        .chunks_exact(T::DTYPE.size())
        .enumerate()
        .map(|(i, b)| {
            reader
                .read_one(b)
                .map_err(|e| fmt_err(format!("element {i} is not a valid {}: {e}", T::DTYPE)))
        })
        .collect::<Result<Vec<T>>>()?;
    Ok(T::wrap(values))
}

/// Reads a `.npy` file.
///
/// # Errors
/// [`NpyError::Io`] naming the path, or as [`from_bytes`].
pub fn read(path: impl AsRef<Path>) -> Result<NpyArray> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| NpyError::Io {
        path: path.display().to_string(),
        source,
    })?;
    from_bytes(&bytes)
}

/// Serializes an array as a version 1.0 `.npy` file, the header padded so that the data starts
/// on a 64-byte boundary, as NumPy writes it.
pub fn to_bytes(array: &NpyArray) -> Vec<u8> {
    let shape = match array.shape.as_slice() {
        [d] => format!("({d},)"),
        dims => {
            let parts: Vec<String> = dims.iter().map(usize::to_string).collect();
            format!("({})", parts.join(", "))
        }
    };
    let dict = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': {shape}, }}",
        array.dtype().descr()
    );
    // Preamble: magic (6) + version (2) + u16 length (2). Shapes have at most `MAX_DIMS`
    // entries, so the header always fits version 1.0.
    let padded = (10 + dict.len() + 1).next_multiple_of(64);
    let header_len = u16::try_from(padded - 10).unwrap_or(u16::MAX);
    let mut out = Vec::with_capacity(padded + array.len() * array.dtype().size());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&header_len.to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out.resize(padded - 1, b' ');
    out.push(b'\n');
    match &array.data {
        NpyData::F32(v) => encode_all(v, &mut out),
        NpyData::F64(v) => encode_all(v, &mut out),
        NpyData::I64(v) => encode_all(v, &mut out),
        NpyData::I32(v) => encode_all(v, &mut out),
        NpyData::U8(v) => encode_all(v, &mut out),
        NpyData::I8(v) => encode_all(v, &mut out),
        NpyData::Bool(v) => encode_all(v, &mut out),
    }
    out
}

/// Appends `values` in `T`'s default (little-endian) `.npy` encoding, as `npyz` writes it.
fn encode_all<T: Element>(values: &[T], out: &mut Vec<u8>) {
    use npyz::TypeWrite;
    // A primitive's writer for its own default dtype exists, and writing to a Vec cannot fail.
    let writer = T::writer(&T::default_dtype()).expect("npyz writes its primitives");
    for v in values {
        writer
            .write_one(&mut *out, v)
            .expect("writing to a Vec cannot fail");
    }
}

/// Writes an array to a `.npy` file.
///
/// # Errors
/// [`NpyError::Io`] naming the path.
pub fn write(path: impl AsRef<Path>, array: &NpyArray) -> Result<()> {
    let path = path.as_ref();
    std::fs::write(path, to_bytes(array)).map_err(|source| NpyError::Io {
        path: path.display().to_string(),
        source,
    })
}

/// Splits a file into its header text and its data bytes.
fn split_header(bytes: &[u8]) -> Result<(&str, &[u8])> {
    let rest = bytes
        .strip_prefix(MAGIC)
        .ok_or_else(|| fmt_err("missing the \\x93NUMPY magic string"))?;
    let (version, rest) = rest
        .split_first_chunk::<2>()
        .ok_or_else(|| fmt_err("truncated before the version"))?;
    let (header_len, rest, utf8) = match version[0] {
        1 => {
            let (len, rest) = rest
                .split_first_chunk::<2>()
                .ok_or_else(|| fmt_err("truncated header length"))?;
            (usize::from(u16::from_le_bytes(*len)), rest, false)
        }
        2 | 3 => {
            let (len, rest) = rest
                .split_first_chunk::<4>()
                .ok_or_else(|| fmt_err("truncated header length"))?;
            let len = usize::try_from(u32::from_le_bytes(*len)).unwrap_or(usize::MAX);
            (len, rest, version[0] == 3)
        }
        v => {
            return Err(NpyError::Unsupported(format!(
                "format version {v}.{} (q8 reads 1.0, 2.0, 3.0)",
                version[1]
            )));
        }
    };
    if header_len > MAX_HEADER_BYTES {
        return Err(fmt_err(format!(
            "header length {header_len} exceeds the {MAX_HEADER_BYTES}-byte cap"
        )));
    }
    if rest.len() < header_len {
        return Err(fmt_err(format!(
            "header declares {header_len} bytes, only {} present",
            rest.len()
        )));
    }
    let (header, data) = rest.split_at(header_len);
    if !utf8 && !header.is_ascii() {
        return Err(fmt_err("header of a version 1.0/2.0 file is not ASCII"));
    }
    let header = std::str::from_utf8(header).map_err(|_| fmt_err("header is not valid UTF-8"))?;
    Ok((header, data))
}

/// The three fields of a `.npy` header.
struct Header {
    dtype: DType,
    /// The stored type as `npyz` decodes it (byte order included).
    file_dtype: npyz::DType,
    fortran_order: bool,
    shape: Vec<usize>,
}

/// One value of the header's Python dict literal.
enum Literal {
    Str(String),
    Bool(bool),
    Tuple(Vec<usize>),
}

/// Parses `{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }`.
fn parse_header(text: &str) -> Result<Header> {
    let mut p = Cursor {
        rest: text.trim_end_matches(['\n', ' ', '\0']),
    };
    p.expect('{')?;
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    loop {
        if p.eat('}') {
            break;
        }
        let key = p.string()?;
        p.expect(':')?;
        let value = p.literal()?;
        match (key.as_str(), value) {
            ("descr", Literal::Str(s)) if descr.is_none() => descr = Some(s),
            ("fortran_order", Literal::Bool(b)) if fortran.is_none() => fortran = Some(b),
            ("shape", Literal::Tuple(t)) if shape.is_none() => shape = Some(t),
            ("descr" | "fortran_order" | "shape", _) => {
                return Err(fmt_err(format!(
                    "header key {key:?} is repeated or has the wrong type"
                )));
            }
            _ => return Err(fmt_err(format!("unexpected header key {key:?}"))),
        }
        if !p.eat(',') {
            p.expect('}')?;
            break;
        }
    }
    if !p.rest.trim().is_empty() {
        return Err(fmt_err("text after the header dict"));
    }
    let (dtype, file_dtype) =
        DType::parse_descr(&descr.ok_or_else(|| fmt_err("header lacks 'descr'"))?)?;
    Ok(Header {
        dtype,
        file_dtype,
        fortran_order: fortran.ok_or_else(|| fmt_err("header lacks 'fortran_order'"))?,
        shape: shape.ok_or_else(|| fmt_err("header lacks 'shape'"))?,
    })
}

/// A tiny recursive-descent reader over the header text.
struct Cursor<'a> {
    rest: &'a str,
}

impl Cursor<'_> {
    fn skip_space(&mut self) {
        self.rest = self.rest.trim_start();
    }

    fn eat(&mut self, c: char) -> bool {
        self.skip_space();
        match self.rest.strip_prefix(c) {
            Some(r) => {
                self.rest = r;
                true
            }
            None => false,
        }
    }

    fn expect(&mut self, c: char) -> Result<()> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(fmt_err(format!(
                "header: expected {c:?} at {:?}",
                self.rest.chars().take(16).collect::<String>()
            )))
        }
    }

    fn string(&mut self) -> Result<String> {
        self.skip_space();
        let quote = match self.rest.chars().next() {
            Some(q @ ('\'' | '"')) => q,
            _ => return Err(fmt_err("header: expected a quoted string")),
        };
        let body = &self.rest[1..];
        let end = body
            .find(quote)
            .ok_or_else(|| fmt_err("header: unterminated string"))?;
        self.rest = &body[end + 1..];
        Ok(body[..end].to_string())
    }

    fn literal(&mut self) -> Result<Literal> {
        self.skip_space();
        if self.rest.starts_with(['\'', '"']) {
            return Ok(Literal::Str(self.string()?));
        }
        for (word, value) in [("True", true), ("False", false)] {
            if let Some(r) = self.rest.strip_prefix(word) {
                self.rest = r;
                return Ok(Literal::Bool(value));
            }
        }
        if self.eat('(') {
            let mut dims = Vec::new();
            loop {
                if self.eat(')') {
                    break;
                }
                if dims.len() == MAX_DIMS {
                    return Err(fmt_err(format!(
                        "shape has more than {MAX_DIMS} dimensions"
                    )));
                }
                dims.push(self.dim()?);
                if !self.eat(',') {
                    self.expect(')')?;
                    break;
                }
            }
            return Ok(Literal::Tuple(dims));
        }
        Err(fmt_err(format!(
            "header: unsupported value at {:?}",
            self.rest.chars().take(16).collect::<String>()
        )))
    }

    /// A non-negative integer (a trailing `L` from Python 2 headers is accepted).
    fn dim(&mut self) -> Result<usize> {
        self.skip_space();
        let digits = self.rest.len()
            - self
                .rest
                .trim_start_matches(|c: char| c.is_ascii_digit())
                .len();
        if digits == 0 {
            return Err(fmt_err(
                "header: shape entries must be non-negative integers",
            ));
        }
        let value = self.rest[..digits]
            .parse::<usize>()
            .map_err(|_| fmt_err("header: shape entry too large"))?;
        self.rest = &self.rest[digits..];
        self.rest = self.rest.strip_prefix('L').unwrap_or(self.rest);
        Ok(value)
    }
}

/// The arrays of an `.npz` archive, by name (the `.npy` suffix removed).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Npz {
    arrays: BTreeMap<String, NpyArray>,
}

impl Npz {
    /// The array stored under `name`.
    ///
    /// # Errors
    /// [`NpyError::Npz`] naming the missing key.
    pub fn get(&self, name: &str) -> Result<&NpyArray> {
        self.arrays
            .get(name)
            .ok_or_else(|| NpyError::Npz(format!("no array named {name:?}")))
    }

    /// Names of all arrays, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.arrays.keys().map(String::as_str)
    }

    /// Number of arrays.
    pub fn len(&self) -> usize {
        self.arrays.len()
    }

    /// True for an archive without arrays.
    pub fn is_empty(&self) -> bool {
        self.arrays.is_empty()
    }
}

/// Parses an `.npz` archive (stored or deflate-compressed, as `np.savez` /
/// `np.savez_compressed` write them).
///
/// # Errors
/// [`NpyError::Npz`] for a bad archive or member (naming the member), or a member's
/// [`from_bytes`] error.
pub fn npz_from_bytes(bytes: &[u8]) -> Result<Npz> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| NpyError::Npz(e.to_string()))?;
    let mut arrays = BTreeMap::new();
    for i in 0..archive.len() {
        let mut file = archive
            .by_index(i)
            .map_err(|e| NpyError::Npz(format!("member {i}: {e}")))?;
        let name = file
            .name()
            .map_err(|e| NpyError::Npz(format!("member {i}: {e}")))?
            .to_string();
        if file.is_dir() {
            continue;
        }
        let mut buf = Vec::new();
        (&mut file)
            .take(MAX_NPZ_MEMBER_BYTES + 1)
            .read_to_end(&mut buf)
            .map_err(|e| NpyError::Npz(format!("member {name:?}: {e}")))?;
        if buf.len() as u64 > MAX_NPZ_MEMBER_BYTES {
            return Err(NpyError::Npz(format!(
                "member {name:?} exceeds {MAX_NPZ_MEMBER_BYTES} bytes"
            )));
        }
        let array = from_bytes(&buf).map_err(|e| NpyError::Npz(format!("member {name:?}: {e}")))?;
        let key = name.strip_suffix(".npy").unwrap_or(&name).to_string();
        if arrays.insert(key, array).is_some() {
            return Err(NpyError::Npz(format!("member {name:?} appears twice")));
        }
    }
    Ok(Npz { arrays })
}

/// Reads an `.npz` file.
///
/// # Errors
/// [`NpyError::Io`] naming the path, or as [`npz_from_bytes`].
pub fn read_npz(path: impl AsRef<Path>) -> Result<Npz> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| NpyError::Io {
        path: path.display().to_string(),
        source,
    })?;
    npz_from_bytes(&bytes)
}
