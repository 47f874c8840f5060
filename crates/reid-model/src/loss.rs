//! The losses of ReID training, as the strong baseline ("bag of tricks") combines them:
//! identity classification with label smoothing (representation learning) and the batch-hard
//! triplet loss on P x K batches (metric learning), plus the center loss that pulls each
//! feature towards its identity's centre; and the pair losses that compare every two pictures
//! of a batch (the contrastive / verification loss, the circle loss) and the multi-label
//! binary cross-entropy of an attribute head. Each takes a batch and returns a scalar
//! tensor of shape `[1]`; gradients come from the device (an autodiff device records them).
//!
//! Formulas as torchreid and fast-reid write them: Euclidean distances from
//! `|a|^2 + |b|^2 - 2 a.b`, clamped at 1e-12 before the square root; the hardest positive is the
//! farthest picture of the same identity (the anchor itself included, at distance 0), the
//! hardest negative the nearest of another identity.

use burn::tensor::activation::{log_softmax, relu, softplus};
use burn::tensor::{Bool, Int, Tensor};

/// Cross-entropy against label-smoothed targets: the true class gets `1 - epsilon +
/// epsilon / classes`, every other class `epsilon / classes`.
///
/// - `logits`: `[batch, classes]`
/// - `targets`: `[batch]`, class indices in `0..classes`
pub fn cross_entropy_label_smooth(
    logits: Tensor<2>,
    targets: Tensor<1, Int>,
    epsilon: f32,
) -> Tensor<1> {
    let [batch, classes] = logits.dims();
    let log_probs = log_softmax(logits, 1);
    let smooth = epsilon / classes as f32;
    let targets: Tensor<2> =
        targets
            .float()
            .one_hot_fill(classes, 1.0 - epsilon + smooth, smooth, -1);
    (targets * log_probs).sum().neg() / batch as f32
}

/// How the triplet loss turns `d(anchor, positive) - d(anchor, negative)` into a loss.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TripletMargin {
    /// `max(0, d_ap - d_an + margin)` (torchreid's default margin is 0.3).
    Hard(f32),
    /// `log(1 + exp(d_ap - d_an))`, the soft margin (no margin to tune).
    Soft,
}

/// Pairwise Euclidean distances between the rows of `x` (`[n, d]` to `[n, n]`).
pub fn euclidean_distances(x: Tensor<2>) -> Tensor<2> {
    let [n, _] = x.dims();
    let squared = x.clone().powi_scalar(2).sum_dim(1); // [n, 1]
    let gram = x.clone().matmul(x.transpose()); // [n, n]
    (squared.clone().expand([n, n]) + squared.transpose().expand([n, n]) - gram * 2.0)
        .clamp_min(1e-12)
        .sqrt()
}

/// The batch-hard triplet loss (TriHard): for every anchor, its farthest positive and nearest
/// negative in the batch.
///
/// - `features`: `[batch, dim]` (not normalised: the pooled features, before the BNNeck)
/// - `labels`: `[batch]` identities; every anchor needs a negative (two identities or more)
pub fn batch_hard_triplet_loss(
    features: Tensor<2>,
    labels: Tensor<1, Int>,
    margin: TripletMargin,
) -> Tensor<1> {
    let [n, _] = features.dims();
    let distances = euclidean_distances(features);
    let rows = labels.clone().unsqueeze_dim::<2>(1).expand([n, n]);
    let cols = labels.unsqueeze_dim::<2>(0).expand([n, n]);
    let same = rows.equal(cols);
    // Hardest positive: the largest distance among the same identity (others pushed below 0).
    let positive = distances
        .clone()
        .mask_fill(same.clone().bool_not(), -1.0)
        .max_dim(1);
    // Hardest negative: the smallest distance among other identities (same pushed far away).
    let far = 1e6;
    let negative = distances.mask_fill(same, far).min_dim(1);
    let gap = positive - negative; // [n, 1]
    let per_anchor = match margin {
        TripletMargin::Hard(m) => relu(gap + m),
        TripletMargin::Soft => softplus(gap, 1.0),
    };
    per_anchor.mean()
}

/// The center loss (Wen et al. 2016) as the bag-of-tricks code writes it: the mean over the
/// batch of the squared Euclidean distance between each feature and its identity's centre.
///
/// - `features`: `[batch, dim]`
/// - `labels`: `[batch]`, indices into the rows of `centers`
/// - `centers`: `[classes, dim]`
pub fn center_loss(features: Tensor<2>, labels: Tensor<1, Int>, centers: Tensor<2>) -> Tensor<1> {
    let [batch, _] = features.dims();
    let own = centers.select(0, labels);
    (features - own).powi_scalar(2).sum() / batch as f32
}

/// `[n, n]` masks of the pairs of a batch: (same identity, other identity), each without the
/// diagonal (a picture is not its own pair).
fn pair_masks(labels: Tensor<1, Int>) -> (Tensor<2, Bool>, Tensor<2, Bool>) {
    let [n] = labels.dims();
    let device = labels.device();
    let rows = labels.clone().unsqueeze_dim::<2>(1).expand([n, n]);
    let cols = labels.unsqueeze_dim::<2>(0).expand([n, n]);
    let same = rows.equal(cols);
    let diagonal = Tensor::<2>::eye(n, &device).bool();
    let positive = same.clone().bool_and(diagonal.bool_not());
    (positive, same.bool_not())
}

/// Mean of `values` over the `true` entries of `mask` (0 when there are none).
fn masked_mean(values: Tensor<2>, mask: Tensor<2, Bool>) -> Tensor<1> {
    let weights = mask.float();
    let count = weights.clone().sum().clamp_min(1.0);
    (values * weights).sum() / count
}

/// The contrastive (verification) loss of Hadsell et al. (2006) on every pair of the batch,
/// on L2-normalised features: same-identity pairs are pulled together (`d²`), other pairs
/// pushed at least `margin` apart (`max(0, margin - d)²`). The two kinds are averaged apart and
/// added, so that the many negatives of a P x K batch do not drown its few positives.
///
/// - `features`: `[batch, dim]`
/// - `labels`: `[batch]` identities
/// - `margin`: in units of the unit sphere's chord (`0..=2`)
pub fn contrastive_loss(features: Tensor<2>, labels: Tensor<1, Int>, margin: f32) -> Tensor<1> {
    let distances = euclidean_distances(crate::network::l2_normalize(features));
    let (positive, negative) = pair_masks(labels);
    let pull = masked_mean(distances.clone().powi_scalar(2), positive);
    let push = masked_mean(relu(distances.neg() + margin).powi_scalar(2), negative);
    pull + push
}

/// The circle loss (Sun et al. 2020) in its pairwise form, as fast-reid writes it: cosine
/// similarities `s` of every pair, each re-weighted by how far it is from its optimum
/// (`alpha_p = max(0, 1 + m - s_p)`, `alpha_n = max(0, s_n + m)`, weights not differentiated),
/// then `softplus(logsumexp(-gamma alpha_p (s_p - (1 - m))) + logsumexp(gamma alpha_n (s_n - m)))`
/// per anchor, averaged. fast-reid's defaults: `margin` 0.25, `gamma` 128.
///
/// - `features`: `[batch, dim]` (normalised here)
/// - `labels`: `[batch]`; every anchor needs a positive and a negative (K >= 2, P >= 2)
pub fn circle_loss(
    features: Tensor<2>,
    labels: Tensor<1, Int>,
    margin: f32,
    gamma: f32,
) -> Tensor<1> {
    let x = crate::network::l2_normalize(features);
    let similarity = x.clone().matmul(x.transpose());
    let (positive, negative) = pair_masks(labels);
    let alpha_p = relu(similarity.clone().detach().neg() + (1.0 + margin));
    let alpha_n = relu(similarity.clone().detach() + margin);
    // Pairs outside a mask get a logit so low that exp() makes them vanish.
    let excluded = -1e9;
    let logit_p = (alpha_p * (similarity.clone() - (1.0 - margin)) * -gamma)
        .mask_fill(positive.bool_not(), excluded);
    let logit_n =
        (alpha_n * (similarity - margin) * gamma).mask_fill(negative.bool_not(), excluded);
    softplus(log_sum_exp_rows(logit_p) + log_sum_exp_rows(logit_n), 1.0).mean()
}

/// `log(sum(exp(x)))` along each row, stable for large values: `[n, m]` to `[n, 1]`.
fn log_sum_exp_rows(x: Tensor<2>) -> Tensor<2> {
    let max = x.clone().max_dim(1).detach();
    (x - max.clone()).exp().sum_dim(1).log() + max
}

/// Multi-label binary cross-entropy on logits, averaged over the batch and the labels, in the
/// stable form `max(x, 0) - x y + log(1 + exp(-|x|))` (PyTorch's `BCEWithLogitsLoss`).
///
/// - `logits`: `[batch, labels]`
/// - `targets`: `[batch, labels]`, each 0 or 1
pub fn binary_cross_entropy_with_logits(logits: Tensor<2>, targets: Tensor<2>) -> Tensor<1> {
    let per_label =
        relu(logits.clone()) - logits.clone() * targets + logits.abs().neg().exp().log1p();
    per_label.mean()
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    fn tensor2(rows: &[Vec<f32>], device: &Device) -> Tensor<2> {
        let (n, d) = (rows.len(), rows[0].len());
        Tensor::from_data(TensorData::new(rows.concat(), [n, d]), device)
    }

    fn ints(v: &[i64], device: &Device) -> Tensor<1, Int> {
        Tensor::from_data(TensorData::new(v.to_vec(), [v.len()]), device)
    }

    fn scalar(t: Tensor<1>) -> f64 {
        f64::from(t.into_data().try_to_vec::<f32>().unwrap()[0])
    }

    /// A small deterministic batch: P = 4 identities, K = 3 pictures.
    fn batch() -> (Vec<Vec<f32>>, Vec<i64>) {
        let mut state = 0x1234_5678_9ABC_DEF1u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        };
        let labels: Vec<i64> = (0..12).map(|i| i / 3).collect();
        let features = labels
            .iter()
            .map(|&l| {
                (0..6)
                    .map(|j| next() + if j as i64 == l { 0.8 } else { 0.0 })
                    .collect()
            })
            .collect();
        (features, labels)
    }

    /// The losses' definitions written out with loops, in f64.
    fn reference_triplet(x: &[Vec<f32>], labels: &[i64], margin: Option<f64>) -> f64 {
        let d = |a: &[f32], b: &[f32]| {
            a.iter()
                .zip(b)
                .map(|(p, q)| f64::from(p - q).powi(2))
                .sum::<f64>()
                .max(1e-12)
                .sqrt()
        };
        let n = x.len();
        let mut total = 0.0;
        for i in 0..n {
            let ap = (0..n)
                .filter(|&j| labels[j] == labels[i])
                .map(|j| d(&x[i], &x[j]))
                .fold(0.0, f64::max);
            let an = (0..n)
                .filter(|&j| labels[j] != labels[i])
                .map(|j| d(&x[i], &x[j]))
                .fold(f64::INFINITY, f64::min);
            total += match margin {
                Some(m) => (ap - an + m).max(0.0),
                None => (ap - an).exp().ln_1p(),
            };
        }
        total / n as f64
    }

    fn reference_cross_entropy(logits: &[Vec<f32>], targets: &[i64], eps: f64) -> f64 {
        let c = logits[0].len() as f64;
        let mut total = 0.0;
        for (row, &t) in logits.iter().zip(targets) {
            let max = row.iter().copied().fold(f32::MIN, f32::max) as f64;
            let lse = max
                + row
                    .iter()
                    .map(|&v| (f64::from(v) - max).exp())
                    .sum::<f64>()
                    .ln();
            for (k, &v) in row.iter().enumerate() {
                let q = if k as i64 == t {
                    1.0 - eps + eps / c
                } else {
                    eps / c
                };
                total -= q * (f64::from(v) - lse);
            }
        }
        total / logits.len() as f64
    }

    #[test]
    fn batch_hard_triplet_loss_follows_its_definition() {
        let device = Device::flex();
        let (x, labels) = batch();
        for (margin, reference) in [
            (
                TripletMargin::Hard(0.3),
                reference_triplet(&x, &labels, Some(0.3)),
            ),
            (
                TripletMargin::Hard(1.5),
                reference_triplet(&x, &labels, Some(1.5)),
            ),
            (TripletMargin::Soft, reference_triplet(&x, &labels, None)),
        ] {
            let ours = scalar(batch_hard_triplet_loss(
                tensor2(&x, &device),
                ints(&labels, &device),
                margin,
            ));
            assert!(
                (ours - reference).abs() < 1e-5,
                "{margin:?}: {ours} against {reference}"
            );
            assert!(reference > 0.0);
        }
    }

    #[test]
    fn a_batch_whose_identities_are_far_apart_has_no_hard_margin_loss() {
        let device = Device::flex();
        let x = vec![
            vec![0.0, 0.0],
            vec![0.1, 0.0],
            vec![10.0, 0.0],
            vec![10.0, 0.1],
        ];
        let loss = batch_hard_triplet_loss(
            tensor2(&x, &device),
            ints(&[3, 3, 8, 8], &device),
            TripletMargin::Hard(0.3),
        );
        assert_eq!(scalar(loss), 0.0);
    }

    #[test]
    fn label_smoothed_cross_entropy_follows_its_definition() {
        let device = Device::flex();
        let (logits, _) = batch();
        let targets: Vec<i64> = (0..12).map(|i| (i * 5) % 6).collect();
        for eps in [0.0f32, 0.1, 0.5] {
            let ours = scalar(cross_entropy_label_smooth(
                tensor2(&logits, &device),
                ints(&targets, &device),
                eps,
            ));
            let reference = reference_cross_entropy(&logits, &targets, f64::from(eps));
            assert!(
                (ours - reference).abs() < 1e-5,
                "eps {eps}: {ours} against {reference}"
            );
        }
    }

    #[test]
    fn center_loss_is_the_mean_squared_distance_to_the_own_centre() {
        let device = Device::flex();
        let x = vec![vec![1.0, 2.0], vec![0.0, 0.0], vec![3.0, -1.0]];
        let centers = vec![vec![1.0, 0.0], vec![0.0, 1.0]];
        let loss = center_loss(
            tensor2(&x, &device),
            ints(&[0, 1, 0], &device),
            tensor2(&centers, &device),
        );
        // (0 + 4) + (0 + 1) + (4 + 1), over 3 pictures.
        assert!((scalar(loss) - 10.0 / 3.0).abs() < 1e-6);
    }

    /// Cosine similarities of rows, in f64.
    fn reference_cosine(a: &[f32], b: &[f32]) -> f64 {
        let dot: f64 = a
            .iter()
            .zip(b)
            .map(|(p, q)| f64::from(*p) * f64::from(*q))
            .sum();
        let norm = |v: &[f32]| v.iter().map(|p| f64::from(*p).powi(2)).sum::<f64>().sqrt();
        dot / (norm(a) * norm(b))
    }

    fn reference_circle(x: &[Vec<f32>], labels: &[i64], m: f64, gamma: f64) -> f64 {
        let n = x.len();
        let lse = |v: &[f64]| {
            let max = v.iter().copied().fold(f64::MIN, f64::max);
            max + v.iter().map(|t| (t - max).exp()).sum::<f64>().ln()
        };
        let mut total = 0.0;
        for i in 0..n {
            let (mut lp, mut ln) = (Vec::new(), Vec::new());
            for j in 0..n {
                let s = reference_cosine(&x[i], &x[j]);
                if labels[j] == labels[i] && j != i {
                    lp.push(-gamma * (1.0 + m - s).max(0.0) * (s - (1.0 - m)));
                } else if labels[j] != labels[i] {
                    ln.push(gamma * (s + m).max(0.0) * (s - m));
                }
            }
            let z = lse(&lp) + lse(&ln);
            total += if z > 30.0 { z } else { z.exp().ln_1p() };
        }
        total / n as f64
    }

    fn reference_contrastive(x: &[Vec<f32>], labels: &[i64], margin: f64) -> f64 {
        let n = x.len();
        let (mut pull, mut np, mut push, mut nn) = (0.0, 0, 0.0, 0);
        for i in 0..n {
            for j in 0..n {
                if i == j {
                    continue;
                }
                // Chord length between unit vectors: sqrt(2 - 2 cos).
                let d = (2.0 - 2.0 * reference_cosine(&x[i], &x[j]))
                    .max(1e-12)
                    .sqrt();
                if labels[i] == labels[j] {
                    pull += d * d;
                    np += 1;
                } else {
                    push += (margin - d).max(0.0).powi(2);
                    nn += 1;
                }
            }
        }
        pull / np as f64 + push / nn as f64
    }

    #[test]
    fn circle_loss_follows_its_definition() {
        let device = Device::flex();
        let (x, labels) = batch();
        for (m, gamma) in [(0.25f32, 128.0f32), (0.4, 16.0), (0.1, 1.0)] {
            let ours = scalar(circle_loss(
                tensor2(&x, &device),
                ints(&labels, &device),
                m,
                gamma,
            ));
            let reference = reference_circle(&x, &labels, f64::from(m), f64::from(gamma));
            assert!(
                (ours - reference).abs() < 1e-4 * reference.max(1.0),
                "m {m} gamma {gamma}: {ours} against {reference}"
            );
        }
    }

    #[test]
    fn contrastive_loss_follows_its_definition() {
        let device = Device::flex();
        let (x, labels) = batch();
        for margin in [0.5f32, 1.0, 1.9] {
            let ours = scalar(contrastive_loss(
                tensor2(&x, &device),
                ints(&labels, &device),
                margin,
            ));
            let reference = reference_contrastive(&x, &labels, f64::from(margin));
            assert!(
                (ours - reference).abs() < 1e-5,
                "margin {margin}: {ours} against {reference}"
            );
        }
    }

    #[test]
    fn pair_losses_vanish_when_identities_are_apart_and_tight() {
        let device = Device::flex();
        // Two identities on orthogonal axes, each of two identical pictures.
        let x = vec![
            vec![1.0, 0.0],
            vec![1.0, 0.0],
            vec![0.0, 1.0],
            vec![0.0, 1.0],
        ];
        let labels = [4, 4, 9, 9];
        // Orthogonal: d = sqrt(2) > 1.0, no push; d = 0 within an identity, no pull.
        let loss = contrastive_loss(tensor2(&x, &device), ints(&labels, &device), 1.0);
        assert!(scalar(loss) < 1e-5);
        // Circle: s_p = 1 at its optimum, s_n = 0 below m: the loss is softplus of a very
        // negative number.
        let loss = scalar(circle_loss(
            tensor2(&x, &device),
            ints(&labels, &device),
            0.25,
            128.0,
        ));
        assert!(loss < 1e-6, "{loss}");
    }

    #[test]
    fn binary_cross_entropy_is_stable_and_matches_its_definition() {
        let device = Device::flex();
        let logits = vec![vec![0.0, 2.0, -3.0], vec![50.0, -50.0, 1.0]];
        let targets = vec![vec![1.0, 0.0, 0.0], vec![1.0, 0.0, 1.0]];
        let ours = scalar(binary_cross_entropy_with_logits(
            tensor2(&logits, &device),
            tensor2(&targets, &device),
        ));
        let mut reference = 0.0;
        for (row, target) in logits.iter().zip(&targets) {
            for (&x, &y) in row.iter().zip(target) {
                let p = 1.0 / (1.0 + (-f64::from(x)).exp());
                let y = f64::from(y);
                // Written with probabilities; the clamps stand for the exact limits at +-50.
                reference -= y * p.max(1e-300).ln() + (1.0 - y) * (1.0 - p).max(1e-300).ln();
            }
        }
        reference /= 6.0;
        assert!(ours.is_finite());
        assert!(
            (ours - reference).abs() < 1e-5,
            "{ours} against {reference}"
        );
    }

    #[test]
    fn gradients_of_the_losses_match_finite_differences() {
        let device = Device::flex().autodiff();
        let (x, labels) = batch();
        let targets: Vec<i64> = (0..12).map(|i| (i * 5) % 6).collect();
        type LossFn = fn(Tensor<2>, &[i64], &Device) -> Tensor<1>;
        // (Not the circle loss: its pair weights are held constant in the backward pass, as
        // fast-reid's are, so its gradient is not the derivative of its value.)
        let losses: [(&str, LossFn); 3] = [
            ("triplet", |x, l, d| {
                batch_hard_triplet_loss(x, ints(l, d), TripletMargin::Hard(0.3))
            }),
            ("cross-entropy", |x, l, d| {
                cross_entropy_label_smooth(x, ints(l, d), 0.1)
            }),
            ("contrastive", |x, l, d| {
                contrastive_loss(x, ints(l, d), 1.0)
            }),
        ];
        for (name, loss) in losses {
            let labels = if name == "cross-entropy" {
                &targets
            } else {
                &labels
            };
            let input = tensor2(&x, &device).require_grad();
            let grads = loss(input.clone(), labels, &device).backward();
            let analytic = input
                .grad(&grads)
                .unwrap()
                .into_data()
                .try_to_vec::<f32>()
                .unwrap();
            let plain = Device::flex();
            let h = 1e-2f32;
            for (r, c) in [(0, 0), (4, 2), (7, 5), (11, 1)] {
                let at = |delta: f32| {
                    let mut y = x.clone();
                    y[r][c] += delta;
                    scalar(loss(tensor2(&y, &plain), labels, &plain))
                };
                let numeric = (at(h) - at(-h)) / (2.0 * f64::from(h));
                let a = f64::from(analytic[r * 6 + c]);
                assert!(
                    (a - numeric).abs() < 2e-3,
                    "{name} d/dx[{r}][{c}]: {a} against {numeric}"
                );
            }
        }
    }
}
