//! What the parity tests share: reference features from `.npy` files, the formula that gives
//! both sides of a test the same weights, and the worst difference of two feature sets.

#![allow(dead_code)] // each test file uses its own part

use std::path::Path;

/// The rows of a `[n, d]` float32 `.npy` file, flattened, and `n`.
pub fn reference(path: &Path) -> (Vec<f32>, usize) {
    let m = reid_core::FeatureMatrix::from_npy(&std::fs::read(path).unwrap()).unwrap();
    let rows: Vec<f32> = (0..m.rows()).flat_map(|i| m.row(i).to_vec()).collect();
    (rows, m.rows())
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Each row divided by its L2 norm.
pub fn l2_rows(values: &[f32], rows: usize) -> Vec<f32> {
    let width = values.len() / rows;
    values
        .chunks(width)
        .flat_map(|row| {
            let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
            row.iter().map(move |v| v / norm)
        })
        .collect()
}

fn fnv1a(name: &str) -> u64 {
    name.bytes().fold(0x811C_9DC5u64, |h, b| {
        ((h ^ u64::from(b)) * 0x0100_0193) & 0xFFFF_FFFF
    })
}

/// The weights of tensor `name`, exactly as `formula` in make_torchreid_fixtures.py computes
/// them (integer hashing, then f64 arithmetic, then one rounding to f32).
pub fn formula(name: &str, shape: &[usize]) -> Vec<f32> {
    let n: usize = shape.iter().product();
    let seed = fnv1a(name);
    let last = name.rsplit('.').next().unwrap();
    (0..n as u64)
        .map(|i| {
            let h = (i.wrapping_mul(2_654_435_761) + seed) % (1 << 32);
            let h = ((h ^ (h >> 15)) * 2_246_822_519) % (1 << 32);
            let u = h as f64 / 4_294_967_296.0;
            let v = match last {
                "weight" if shape.len() >= 2 => {
                    let fan_in: usize = shape[1..].iter().product();
                    (u - 0.5) * 2.0 * (6.0 / fan_in as f64).sqrt()
                }
                "weight" if name.contains(".bn3.") => 0.1 + 0.1 * u,
                "weight" => 0.5 + 0.5 * u,
                "bias" | "running_mean" => (u - 0.5) * 0.2,
                "running_var" => 0.5 + u,
                "p" => 3.0 + u,
                other => panic!("no formula for {other}"),
            };
            v as f32
        })
        .collect()
}

/// The formula's weights for every tensor a `keys.json` fixture lists (`[[name, shape], ...]`),
/// as `(name, shape, values)`.
pub fn formula_tensors(keys_json: &Path) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let keys: Vec<(String, Vec<usize>)> =
        serde_json::from_slice(&std::fs::read(keys_json).unwrap()).unwrap();
    keys.into_iter()
        .map(|(name, shape)| {
            let values = formula(&name, &shape);
            (name, shape, values)
        })
        .collect()
}
