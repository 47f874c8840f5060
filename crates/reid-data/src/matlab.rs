//! The numeric arrays of a MATLAB level-5 `.mat` file (what MATLAB's `save` and
//! `scipy.io.savemat` write, compressed or not), enough to read the split files video ReID
//! datasets ship: MARS's `info/*.mat` and iLIDS-VID's `train_test_splits_ilidsvid.mat`. Cell,
//! struct, sparse and character arrays are skipped; only little-endian files are read.

use std::collections::BTreeMap;

/// Why a `.mat` file cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MatError {
    #[error("not a MATLAB 5 .mat file ({0})")]
    NotMat(&'static str),
    #[error("the .mat file is damaged: {0}")]
    Damaged(String),
}

/// One numeric array, values in MATLAB's column-major order, as f64.
#[derive(Debug, Clone, PartialEq)]
pub struct MatArray {
    pub dims: Vec<usize>,
    pub data: Vec<f64>,
}

impl MatArray {
    /// Rows (the first dimension).
    pub fn rows(&self) -> usize {
        self.dims.first().copied().unwrap_or(0)
    }

    /// Columns (all dimensions after the first, multiplied).
    pub fn cols(&self) -> usize {
        self.dims.iter().skip(1).product()
    }

    /// The value at (`row`, `col`) of a two-dimensional array.
    pub fn at(&self, row: usize, col: usize) -> f64 {
        self.data[col * self.rows() + row]
    }
}

const MI_MATRIX: u32 = 14;
const MI_COMPRESSED: u32 = 15;
/// Largest inflated element accepted (the split files are kilobytes).
const MAX_INFLATED: usize = 256 << 20;

/// The numeric arrays of `bytes`, by variable name.
pub fn read_mat(bytes: &[u8]) -> Result<BTreeMap<String, MatArray>, MatError> {
    if bytes.len() < 128 {
        return Err(MatError::NotMat("shorter than its 128-byte header"));
    }
    if bytes.starts_with(b"MATLAB 7.3") {
        return Err(MatError::NotMat(
            "it is MATLAB 7.3 (HDF5); save it with -v7 or scipy.io.savemat",
        ));
    }
    match &bytes[126..128] {
        b"IM" => {}
        b"MI" => return Err(MatError::NotMat("big-endian files are not read")),
        _ => return Err(MatError::NotMat("no MATLAB 5 header")),
    }
    let mut out = BTreeMap::new();
    let mut rest = &bytes[128..];
    while rest.len() >= 8 {
        let (kind, body, next) = element(rest)?;
        rest = next;
        match kind {
            MI_COMPRESSED => {
                let inflated =
                    miniz_oxide::inflate::decompress_to_vec_zlib_with_limit(body, MAX_INFLATED)
                        .map_err(|e| MatError::Damaged(format!("cannot inflate ({e:?})")))?;
                let (kind, body, _) = element(&inflated)?;
                if kind == MI_MATRIX {
                    if let Some((name, array)) = matrix(body)? {
                        out.insert(name, array);
                    }
                }
            }
            MI_MATRIX => {
                if let Some((name, array)) = matrix(body)? {
                    out.insert(name, array);
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// One data element: (type, its bytes, what follows it).
fn element(b: &[u8]) -> Result<(u32, &[u8], &[u8]), MatError> {
    if b.len() < 8 {
        return Err(MatError::Damaged("a data element is cut off".into()));
    }
    let first = u32_at(b, 0);
    if first >> 16 != 0 {
        // Small element: type and size in one word, up to 4 bytes of data in the next.
        let n = (first >> 16) as usize;
        if n > 4 {
            return Err(MatError::Damaged(
                "a small element claims more than 4 bytes".into(),
            ));
        }
        return Ok((first & 0xffff, &b[4..4 + n], &b[8..]));
    }
    let n = u32_at(b, 4) as usize;
    let end = 8usize
        .checked_add(n)
        .filter(|&e| e <= b.len())
        .ok_or_else(|| MatError::Damaged("a data element runs past the end".into()))?;
    // Elements are padded to 8 bytes, except compressed ones.
    let padded = if first == MI_COMPRESSED {
        end
    } else {
        end.div_ceil(8) * 8
    };
    Ok((first, &b[8..end], &b[padded.min(b.len())..]))
}

/// A matrix element's name and values, or `None` for a kind not read.
fn matrix(b: &[u8]) -> Result<Option<(String, MatArray)>, MatError> {
    let (_, flags, rest) = element(b)?;
    let class = flags.first().copied().unwrap_or(0);
    // 6..=15: double, single and the integer classes.
    if !(6..=15).contains(&class) {
        return Ok(None);
    }
    let complex = flags.get(1).is_some_and(|f| f & 0x08 != 0);
    let (_, dims, rest) = element(rest)?;
    let dims: Vec<usize> = dims
        .chunks_exact(4)
        .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]).max(0) as usize)
        .collect();
    let (_, name, rest) = element(rest)?;
    let name = String::from_utf8_lossy(name).into_owned();
    let (kind, real, _) = element(rest)?;
    if complex {
        return Ok(None);
    }
    let data = numbers(kind, real)?;
    let count: usize = dims.iter().product();
    if data.len() != count {
        return Err(MatError::Damaged(format!(
            "`{name}` holds {} values for dimensions {dims:?}",
            data.len()
        )));
    }
    Ok(Some((name, MatArray { dims, data })))
}

fn numbers(kind: u32, b: &[u8]) -> Result<Vec<f64>, MatError> {
    fn each<const N: usize>(b: &[u8], f: impl Fn([u8; N]) -> f64) -> Vec<f64> {
        b.chunks_exact(N)
            .map(|c| f(c.try_into().expect("chunk of N")))
            .collect()
    }
    Ok(match kind {
        1 => each::<1>(b, |c| f64::from(c[0] as i8)),
        2 => each::<1>(b, |c| f64::from(c[0])),
        3 => each::<2>(b, |c| f64::from(i16::from_le_bytes(c))),
        4 => each::<2>(b, |c| f64::from(u16::from_le_bytes(c))),
        5 => each::<4>(b, |c| f64::from(i32::from_le_bytes(c))),
        6 => each::<4>(b, |c| f64::from(u32::from_le_bytes(c))),
        7 => each::<4>(b, |c| f64::from(f32::from_le_bytes(c))),
        9 => each::<8>(b, f64::from_le_bytes),
        12 => each::<8>(b, |c| i64::from_le_bytes(c) as f64),
        13 => each::<8>(b, |c| u64::from_le_bytes(c) as f64),
        other => {
            return Err(MatError::Damaged(format!(
                "numbers stored as data type {other}"
            )))
        }
    })
}
