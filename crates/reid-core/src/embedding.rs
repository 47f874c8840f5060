//! A person's appearance feature: a fixed-length vector of `f32`, L2-normalised by the model at
//! inference so that a dot product is a cosine similarity.

use serde::{Deserialize, Serialize};

/// Why a vector cannot be an embedding.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EmbeddingError {
    /// The vector has no elements.
    #[error("an embedding needs at least one value")]
    Empty,
    /// A value is NaN or infinite.
    #[error("embedding value {index} is not finite ({value})")]
    NotFinite { index: usize, value: f32 },
}

/// One appearance feature vector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Embedding {
    values: Vec<f32>,
}

impl Embedding {
    /// Wraps `values`, refusing empty vectors and non-finite values.
    pub fn new(values: Vec<f32>) -> Result<Self, EmbeddingError> {
        if values.is_empty() {
            return Err(EmbeddingError::Empty);
        }
        if let Some((index, &value)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(EmbeddingError::NotFinite { index, value });
        }
        Ok(Self { values })
    }

    /// The feature values.
    pub fn values(&self) -> &[f32] {
        &self.values
    }

    /// Number of dimensions.
    pub fn dim(&self) -> usize {
        self.values.len()
    }

    /// Euclidean (L2) norm, accumulated in `f64`.
    pub fn norm(&self) -> f32 {
        self.values
            .iter()
            .map(|&v| f64::from(v) * f64::from(v))
            .sum::<f64>()
            .sqrt() as f32
    }

    /// Consumes the embedding and returns its values.
    pub fn into_values(self) -> Vec<f32> {
        self.values
    }
}

/// `v` divided by its length; `None` for an empty, zero or non-finite vector.
pub fn unit(v: &[f32]) -> Option<Vec<f32>> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    (norm > 0.0 && norm.is_finite()).then(|| v.iter().map(|x| x / norm).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_non_finite_vectors_are_refused() {
        assert_eq!(Embedding::new(vec![]), Err(EmbeddingError::Empty));
        assert!(matches!(
            Embedding::new(vec![0.0, f32::NAN]),
            Err(EmbeddingError::NotFinite { index: 1, .. })
        ));
    }

    #[test]
    fn norm_is_euclidean() {
        let e = Embedding::new(vec![3.0, 4.0]).unwrap();
        assert_eq!(e.norm(), 5.0);
        assert_eq!(e.dim(), 2);
    }
}
