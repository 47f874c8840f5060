//! A set of feature vectors as one row-major `f32` matrix, validated once (no NaN, no infinity,
//! every row the same width) so the maths after it never has to check again; and the `.npy`
//! file format (NumPy's, little-endian `float32`, C order) to exchange it with the peers.

/// Why features cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FeatureError {
    #[error("a feature set needs at least one dimension")]
    ZeroDim,
    #[error("{len} values do not fill rows of {dim}")]
    Ragged { len: usize, dim: usize },
    #[error("feature {row}, value {col} is not finite ({value})")]
    NotFinite { row: usize, col: usize, value: f32 },
    #[error("query features are {query}-d but gallery features are {gallery}-d")]
    DimMismatch { query: usize, gallery: usize },
    #[error("not a float32 .npy matrix: {0}")]
    Npy(String),
}

/// `rows x dim` features, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureMatrix {
    data: Vec<f32>,
    dim: usize,
}

impl FeatureMatrix {
    /// Wraps `data` as rows of `dim` values, refusing ragged or non-finite input.
    pub fn new(data: Vec<f32>, dim: usize) -> Result<Self, FeatureError> {
        if dim == 0 {
            return Err(FeatureError::ZeroDim);
        }
        if !data.len().is_multiple_of(dim) {
            return Err(FeatureError::Ragged {
                len: data.len(),
                dim,
            });
        }
        if let Some(i) = data.iter().position(|v| !v.is_finite()) {
            return Err(FeatureError::NotFinite {
                row: i / dim,
                col: i % dim,
                value: data[i],
            });
        }
        Ok(Self { data, dim })
    }

    pub fn rows(&self) -> usize {
        self.data.len() / self.dim
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }

    pub fn as_slice(&self) -> &[f32] {
        &self.data
    }

    /// The same features scaled to unit L2 norm (zero rows stay zero).
    pub fn l2_normalized(&self) -> Self {
        let mut data = self.data.clone();
        for row in data.chunks_mut(self.dim) {
            let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
            if norm > 0.0 {
                row.iter_mut().for_each(|v| *v /= norm);
            }
        }
        Self {
            data,
            dim: self.dim,
        }
    }

    /// Reads a 2-D little-endian float32 `.npy` file (format 1.0-3.0, C order).
    pub fn from_npy(bytes: &[u8]) -> Result<Self, FeatureError> {
        let bad = |why: &str| FeatureError::Npy(why.to_string());
        if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
            return Err(bad("missing the \\x93NUMPY magic"));
        }
        let (header_len, start) = match bytes[6] {
            1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
            2 | 3 if bytes.len() >= 12 => (
                u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
                12,
            ),
            v => return Err(FeatureError::Npy(format!("unsupported format version {v}"))),
        };
        let header = bytes
            .get(start..start + header_len)
            .and_then(|h| std::str::from_utf8(h).ok())
            .ok_or_else(|| bad("truncated header"))?;
        let compact: String = header.chars().filter(|c| !c.is_whitespace()).collect();
        if !compact.contains("'descr':'<f4'") {
            return Err(bad("dtype is not little-endian float32 ('<f4')"));
        }
        if !compact.contains("'fortran_order':False") {
            return Err(bad("Fortran order is not supported"));
        }
        let shape = compact
            .split("'shape':(")
            .nth(1)
            .and_then(|s| s.split(')').next())
            .ok_or_else(|| bad("no shape"))?;
        let dims: Vec<usize> = shape
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().map_err(|_| bad("unreadable shape")))
            .collect::<Result<_, _>>()?;
        let [rows, dim] = dims[..] else {
            return Err(FeatureError::Npy(format!(
                "expected 2 dimensions, got {}",
                dims.len()
            )));
        };
        let body = &bytes[start + header_len..];
        if body.len() != rows * dim * 4 {
            return Err(FeatureError::Npy(format!(
                "{} data bytes for a {rows} x {dim} float32 matrix ({} expected)",
                body.len(),
                rows * dim * 4
            )));
        }
        let data = body
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Self::new(data, dim)
    }

    /// Writes the matrix as a version 1.0 `.npy` file.
    pub fn to_npy(&self) -> Vec<u8> {
        let mut header = format!(
            "{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, {}), }}",
            self.rows(),
            self.dim
        );
        // Pad so that the data starts at a multiple of 64 bytes, ending with a newline.
        while !(10 + header.len() + 1).is_multiple_of(64) {
            header.push(' ');
        }
        header.push('\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend((header.len() as u16).to_le_bytes());
        out.extend(header.as_bytes());
        out.extend(self.data.iter().flat_map(|v| v.to_le_bytes()));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ragged_empty_and_non_finite_features_are_refused() {
        assert_eq!(FeatureMatrix::new(vec![1.0], 0), Err(FeatureError::ZeroDim));
        assert!(matches!(
            FeatureMatrix::new(vec![1.0; 5], 2),
            Err(FeatureError::Ragged { .. })
        ));
        assert!(matches!(
            FeatureMatrix::new(vec![1.0, f32::INFINITY, 0.0, 0.0], 2),
            Err(FeatureError::NotFinite { row: 0, col: 1, .. })
        ));
    }

    #[test]
    fn npy_round_trips_and_damage_is_reported() {
        let m = FeatureMatrix::new((0..12).map(|v| v as f32 * 0.5).collect(), 4).unwrap();
        let bytes = m.to_npy();
        assert_eq!(
            (10 + u16::from_le_bytes([bytes[8], bytes[9]]) as usize) % 64,
            0
        );
        assert_eq!(FeatureMatrix::from_npy(&bytes).unwrap(), m);
        assert!(FeatureMatrix::from_npy(&bytes[..bytes.len() - 1]).is_err());
        assert!(FeatureMatrix::from_npy(b"hello").is_err());
    }

    #[test]
    fn l2_normalized_rows_have_unit_norm() {
        let m = FeatureMatrix::new(vec![3.0, 4.0, 0.0, 0.0], 2)
            .unwrap()
            .l2_normalized();
        assert_eq!(m.row(0), &[0.6, 0.8]);
        assert_eq!(m.row(1), &[0.0, 0.0]);
    }
}
