//! The constant-velocity Kalman filter of SORT / DeepSORT on a box's centre, aspect ratio and
//! height: state `[cx, cy, a, h, vx, vy, va, vh]`, measurement `[cx, cy, a, h]`, one time step a
//! frame. Noise scales with the box height, so near and far people are filtered alike (DeepSORT's
//! weights: 1/20 of the height for position, 1/160 for velocity).

// Fixed-size matrix algebra reads best with row and column indices.
#![allow(clippy::needless_range_loop)]

use crate::bbox::BBox;

const POSITION_WEIGHT: f64 = 1.0 / 20.0;
const VELOCITY_WEIGHT: f64 = 1.0 / 160.0;

/// The 0.95 quantile of the chi-square distribution with 4 degrees of freedom: measurements
/// farther than this (squared Mahalanobis distance) from a track's prediction cannot be it.
pub const GATE_4DOF: f64 = 9.4877;

type M8 = [[f64; 8]; 8];
type M4 = [[f64; 4]; 4];

/// A track's state estimate: mean and covariance.
#[derive(Debug, Clone, PartialEq)]
pub struct KalmanState {
    pub mean: [f64; 8],
    pub covariance: M8,
}

/// `[cx, cy, w / h, h]` of a box.
pub fn measurement(b: &BBox) -> [f64; 4] {
    let (w, h) = (f64::from(b.w), f64::from(b.h));
    [f64::from(b.x) + w / 2.0, f64::from(b.y) + h / 2.0, w / h, h]
}

fn diagonal8(d: [f64; 8]) -> M8 {
    let mut m = [[0.0; 8]; 8];
    for i in 0..8 {
        m[i][i] = d[i];
    }
    m
}

impl KalmanState {
    /// A new track from its first box: velocities unknown (large variance).
    pub fn new(b: &BBox) -> Self {
        let z = measurement(b);
        let h = z[3];
        let (p, v) = (POSITION_WEIGHT * h, VELOCITY_WEIGHT * h);
        let std = [
            2.0 * p,
            2.0 * p,
            1e-2,
            2.0 * p,
            10.0 * v,
            10.0 * v,
            1e-5,
            10.0 * v,
        ];
        Self {
            mean: [z[0], z[1], z[2], z[3], 0.0, 0.0, 0.0, 0.0],
            covariance: diagonal8(std.map(|s| s * s)),
        }
    }

    /// The box the mean describes.
    pub fn bbox(&self) -> BBox {
        let [cx, cy, a, h, ..] = self.mean;
        let w = a * h;
        BBox::new(
            (cx - w / 2.0) as f32,
            (cy - h / 2.0) as f32,
            w as f32,
            h as f32,
        )
    }

    /// One frame ahead: `x = F x`, `P = F P F' + Q`.
    pub fn predict(&mut self) {
        let h = self.mean[3];
        let (p, v) = (POSITION_WEIGHT * h, VELOCITY_WEIGHT * h);
        let q = [p, p, 1e-2, p, v, v, 1e-5, v].map(|s| s * s);
        for i in 0..4 {
            self.mean[i] += self.mean[i + 4];
        }
        // F P F' with F = [[I, I], [0, I]]: add the velocity rows and columns to the positions.
        let mut fp = self.covariance;
        for i in 0..4 {
            for j in 0..8 {
                fp[i][j] += self.covariance[i + 4][j];
            }
        }
        let mut fpf = fp;
        for i in 0..8 {
            for j in 0..4 {
                fpf[i][j] += fp[i][j + 4];
            }
        }
        for (i, qi) in q.iter().enumerate() {
            fpf[i][i] += qi;
        }
        self.covariance = fpf;
    }

    /// The predicted measurement and its covariance `S = H P H' + R`.
    fn project(&self) -> ([f64; 4], M4) {
        let h = self.mean[3];
        let p = POSITION_WEIGHT * h;
        let r = [p, p, 1e-1, p].map(|s| s * s);
        let mut s = [[0.0; 4]; 4];
        for i in 0..4 {
            for j in 0..4 {
                s[i][j] = self.covariance[i][j];
            }
            s[i][i] += r[i];
        }
        ([self.mean[0], self.mean[1], self.mean[2], self.mean[3]], s)
    }

    /// Squared Mahalanobis distance of a box from the predicted measurement (compare with
    /// [`GATE_4DOF`]); infinite when the covariance is degenerate.
    pub fn gating_distance(&self, b: &BBox) -> f64 {
        let (m, s) = self.project();
        let z = measurement(b);
        let d = [z[0] - m[0], z[1] - m[1], z[2] - m[2], z[3] - m[3]];
        match cholesky_solve(&s, d) {
            Some(x) => (0..4).map(|i| d[i] * x[i]).sum(),
            None => f64::INFINITY,
        }
    }

    /// Corrects the state with a measured box.
    pub fn update(&mut self, b: &BBox) {
        let (m, s) = self.project();
        let z = measurement(b);
        let innovation = [z[0] - m[0], z[1] - m[1], z[2] - m[2], z[3] - m[3]];
        // Kalman gain K = P H' S^-1 (8 x 4), one row at a time: K[i] = S^-1 (P H')[i] (S is
        // symmetric).
        let mut gain = [[0.0f64; 4]; 8];
        for (i, row) in gain.iter_mut().enumerate() {
            let ph = [
                self.covariance[i][0],
                self.covariance[i][1],
                self.covariance[i][2],
                self.covariance[i][3],
            ];
            match cholesky_solve(&s, ph) {
                Some(k) => *row = k,
                None => return,
            }
        }
        for i in 0..8 {
            self.mean[i] += (0..4).map(|j| gain[i][j] * innovation[j]).sum::<f64>();
        }
        // P = P - K S K'
        let mut ks = [[0.0f64; 4]; 8];
        for i in 0..8 {
            for j in 0..4 {
                ks[i][j] = (0..4).map(|k| gain[i][k] * s[k][j]).sum();
            }
        }
        for i in 0..8 {
            for j in 0..8 {
                self.covariance[i][j] -= (0..4).map(|k| ks[i][k] * gain[j][k]).sum::<f64>();
            }
        }
    }
}

/// Solves `S x = b` for a symmetric positive-definite 4 x 4 `S` (Cholesky); `None` when `S` is
/// not positive definite.
fn cholesky_solve(s: &M4, b: [f64; 4]) -> Option<[f64; 4]> {
    let mut l = [[0.0f64; 4]; 4];
    for i in 0..4 {
        for j in 0..=i {
            let sum: f64 = (0..j).map(|k| l[i][k] * l[j][k]).sum();
            if i == j {
                let d = s[i][i] - sum;
                if d.is_nan() || d <= 0.0 || d.is_infinite() {
                    return None;
                }
                l[i][j] = d.sqrt();
            } else {
                l[i][j] = (s[i][j] - sum) / l[j][j];
            }
        }
    }
    let mut y = [0.0f64; 4];
    for i in 0..4 {
        y[i] = (b[i] - (0..i).map(|k| l[i][k] * y[k]).sum::<f64>()) / l[i][i];
    }
    let mut x = [0.0f64; 4];
    for i in (0..4).rev() {
        x[i] = (y[i] - (i + 1..4).map(|k| l[k][i] * x[k]).sum::<f64>()) / l[i][i];
    }
    Some(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_box_moving_at_constant_speed_is_predicted_ever_closer() {
        let at = |t: f32| BBox::new(10.0 + 4.0 * t, 50.0 + 1.0 * t, 40.0, 100.0);
        let mut k = KalmanState::new(&at(0.0));
        let mut errors = Vec::new();
        for t in 1..30 {
            k.predict();
            let predicted = k.bbox();
            errors.push((predicted.x - at(t as f32).x).abs());
            assert!(
                k.gating_distance(&at(t as f32)) < GATE_4DOF || t < 3,
                "t {t}"
            );
            k.update(&at(t as f32));
        }
        assert!(errors[0] > 3.0, "no velocity known at first: {}", errors[0]);
        assert!(*errors.last().unwrap() < 0.2, "{errors:?}");
        // The learnt velocity: 4 px a frame across, 1 down.
        assert!((k.mean[4] - 4.0).abs() < 0.1 && (k.mean[5] - 1.0).abs() < 0.1);
        // A box far away is outside the gate.
        k.predict();
        assert!(k.gating_distance(&BBox::new(300.0, 50.0, 40.0, 100.0)) > GATE_4DOF);
    }

    #[test]
    fn cholesky_solves_and_refuses_an_indefinite_matrix() {
        let s = [
            [4.0, 1.0, 0.0, 0.0],
            [1.0, 3.0, 0.5, 0.0],
            [0.0, 0.5, 2.0, 0.1],
            [0.0, 0.0, 0.1, 1.0],
        ];
        let x = cholesky_solve(&s, [1.0, 2.0, 3.0, 4.0]).unwrap();
        for i in 0..4 {
            let row: f64 = (0..4).map(|j| s[i][j] * x[j]).sum();
            assert!((row - [1.0, 2.0, 3.0, 4.0][i]).abs() < 1e-12);
        }
        let mut bad = s;
        bad[3][3] = -1.0;
        assert!(cholesky_solve(&bad, [1.0; 4]).is_none());
    }
}
