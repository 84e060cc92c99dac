//! A small, fast reader for `.npy` arrays (format versions 1–3, C order, little-endian numbers
//! and numpy unicode strings). Written by hand because ~20 000 tiny files per scan must load in
//! well under a second, and because every failure has to name the file and what was expected.

use super::error::DataError;
use std::path::Path;

/// The element values of an `.npy` array, widened to a few working types.
#[derive(Debug, Clone, PartialEq)]
pub enum NpyData {
    F32(Vec<f32>),
    F64(Vec<f64>),
    /// Any signed/unsigned integer or bool dtype (u64 values above i64::MAX are rejected).
    Int(Vec<i64>),
    /// numpy unicode (`<U..`) or byte strings (`|S..`), trailing NULs stripped.
    Str(Vec<String>),
}

/// One array: dtype descriptor as written in the header, shape, values.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyArray {
    pub descr: String,
    pub shape: Vec<usize>,
    pub data: NpyData,
}

fn err(path: &Path, message: impl Into<String>) -> DataError {
    DataError::Npy {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Pull the value text of `'key': value` out of the header dict.
fn header_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let pos = header.find(&format!("'{key}'"))?;
    let rest = header[pos + key.len() + 2..]
        .trim_start()
        .strip_prefix(':')?
        .trim_start();
    Some(rest)
}

/// Parse an `.npy` byte buffer; `path` is only used in error messages.
pub fn parse(bytes: &[u8], path: &Path) -> Result<NpyArray, DataError> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(err(path, "not an .npy file (missing \\x93NUMPY magic)"));
    }
    let (hlen, hstart) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(err(path, format!("unsupported format version {v}"))),
    };
    let body_start = hstart + hlen;
    if bytes.len() < body_start {
        return Err(err(path, "truncated header"));
    }
    let header = std::str::from_utf8(&bytes[hstart..body_start])
        .map_err(|_| err(path, "header is not text"))?;
    let descr = header_value(header, "descr")
        .and_then(|v| v.strip_prefix('\''))
        .and_then(|v| v.split('\'').next())
        .ok_or_else(|| err(path, "header lacks 'descr'"))?
        .to_string();
    if header_value(header, "fortran_order").is_some_and(|v| v.starts_with("True")) {
        return Err(err(
            path,
            "Fortran-order arrays are not supported, expected C order",
        ));
    }
    let shape_text = header_value(header, "shape")
        .and_then(|v| v.strip_prefix('('))
        .and_then(|v| v.split(')').next())
        .ok_or_else(|| err(path, "header lacks 'shape'"))?;
    let shape = shape_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.trim_end_matches('L').parse::<usize>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| err(path, format!("bad shape ({shape_text})")))?;
    let count: usize = shape.iter().product();
    let body = &bytes[body_start..];
    let (kind_order, size) = descr.split_at(descr.len().min(2));
    let size: usize = size.parse().map_err(|_| DataError::Dtype {
        path: path.to_path_buf(),
        found: descr.clone(),
        expected: "a numeric or unicode dtype".into(),
    })?;
    let (order, kind) = (kind_order.as_bytes()[0], kind_order.as_bytes()[1]);
    if order == b'>' && size > 1 {
        return Err(DataError::Dtype {
            path: path.to_path_buf(),
            found: descr.clone(),
            expected: "little-endian data".into(),
        });
    }
    let item = if kind == b'U' { 4 * size } else { size };
    let need = count * item;
    if body.len() < need {
        return Err(err(
            path,
            format!(
                "truncated data: {} bytes, expected {need} for shape {shape:?}",
                body.len()
            ),
        ));
    }
    let body = &body[..need];
    let chunks = |n: usize| body.chunks_exact(n);
    let data = match (kind, size) {
        (b'f', 4) => NpyData::F32(
            chunks(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect(),
        ),
        (b'f', 8) => NpyData::F64(
            chunks(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
                .collect(),
        ),
        (b'u' | b'b', 1) => NpyData::Int(body.iter().map(|&b| b as i64).collect()),
        (b'i', 1) => NpyData::Int(body.iter().map(|&b| b as i8 as i64).collect()),
        (b'u', 2) => NpyData::Int(
            chunks(2)
                .map(|c| u16::from_le_bytes(c.try_into().unwrap()) as i64)
                .collect(),
        ),
        (b'i', 2) => NpyData::Int(
            chunks(2)
                .map(|c| i16::from_le_bytes(c.try_into().unwrap()) as i64)
                .collect(),
        ),
        (b'u', 4) => NpyData::Int(
            chunks(4)
                .map(|c| u32::from_le_bytes(c.try_into().unwrap()) as i64)
                .collect(),
        ),
        (b'i', 4) => NpyData::Int(
            chunks(4)
                .map(|c| i32::from_le_bytes(c.try_into().unwrap()) as i64)
                .collect(),
        ),
        (b'i', 8) => NpyData::Int(
            chunks(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
                .collect(),
        ),
        (b'u', 8) => NpyData::Int(
            chunks(8)
                .map(|c| {
                    let v = u64::from_le_bytes(c.try_into().unwrap());
                    i64::try_from(v)
                        .map_err(|_| err(path, format!("uint64 value {v} exceeds int64")))
                })
                .collect::<Result<_, _>>()?,
        ),
        (b'U', n) => NpyData::Str(
            chunks(4 * n.max(1))
                .map(|c| {
                    c.chunks_exact(4)
                        .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
                        .take_while(|&u| u != 0)
                        .map(|u| char::from_u32(u).unwrap_or('\u{FFFD}'))
                        .collect()
                })
                .collect(),
        ),
        (b'S', n) => NpyData::Str(
            chunks(n.max(1))
                .map(|c| {
                    let end = c.iter().position(|&b| b == 0).unwrap_or(c.len());
                    String::from_utf8_lossy(&c[..end]).into_owned()
                })
                .collect(),
        ),
        _ => {
            return Err(DataError::Dtype {
                path: path.to_path_buf(),
                found: descr.clone(),
                expected: "float, integer or unicode".into(),
            });
        }
    };
    Ok(NpyArray { descr, shape, data })
}

impl NpyArray {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether the array holds no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn dtype_error(&self, path: &Path, expected: &str) -> DataError {
        DataError::Dtype {
            path: path.to_path_buf(),
            found: self.descr.clone(),
            expected: expected.into(),
        }
    }

    /// Values as f32 (floats and integers accepted).
    pub fn into_f32(self, path: &Path) -> Result<Vec<f32>, DataError> {
        match self.data {
            NpyData::F32(v) => Ok(v),
            NpyData::F64(v) => Ok(v.into_iter().map(|x| x as f32).collect()),
            NpyData::Int(v) => Ok(v.into_iter().map(|x| x as f32).collect()),
            NpyData::Str(_) => Err(self.dtype_error(path, "a numeric dtype (f4, f8, u1, …)")),
        }
    }

    /// Values as f64 (floats and integers accepted).
    pub fn into_f64(self, path: &Path) -> Result<Vec<f64>, DataError> {
        match self.data {
            NpyData::F32(v) => Ok(v.into_iter().map(f64::from).collect()),
            NpyData::F64(v) => Ok(v),
            NpyData::Int(v) => Ok(v.into_iter().map(|x| x as f64).collect()),
            NpyData::Str(_) => Err(self.dtype_error(path, "a numeric dtype (f4, f8, u1, …)")),
        }
    }

    /// Values as i64 (integers, or floats holding whole numbers).
    pub fn into_i64(self, path: &Path) -> Result<Vec<i64>, DataError> {
        let descr = self.descr.clone();
        let whole = |x: f64| {
            if x.fract() == 0.0 && x.is_finite() {
                Ok(x as i64)
            } else {
                Err(DataError::Dtype {
                    path: path.to_path_buf(),
                    found: descr.clone(),
                    expected: format!("integer ids (found {x})"),
                })
            }
        };
        match self.data {
            NpyData::Int(v) => Ok(v),
            NpyData::F32(v) => v.into_iter().map(|x| whole(x as f64)).collect(),
            NpyData::F64(v) => v.into_iter().map(whole).collect(),
            NpyData::Str(_) => Err(self.dtype_error(path, "an integer dtype")),
        }
    }

    /// Values as strings (numbers are formatted).
    pub fn into_strings(self) -> Vec<String> {
        match self.data {
            NpyData::Str(v) => v,
            NpyData::Int(v) => v.into_iter().map(|x| x.to_string()).collect(),
            NpyData::F32(v) => v.into_iter().map(|x| x.to_string()).collect(),
            NpyData::F64(v) => v.into_iter().map(|x| x.to_string()).collect(),
        }
    }
}
