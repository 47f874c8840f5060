//! Which regions of two pictures made their embeddings close: an exact decomposition of the
//! cosine similarity over the positions of the last feature map (as in Stylianou et al. 2019,
//! "Visualizing Deep Similarity Networks").
//!
//! The head after the backbone is global pooling, then the BNNeck (an affine map per channel at
//! inference), then L2 normalisation. Pooling is a sum over positions: average pooling gives
//! each position `x(p) / HW`; GeM pooling `(mean x^k)^(1/k)` equals `sum_p w(p) * pooled` with
//! `w(p) = x(p)^k / sum_q x(q)^k`. So the unnormalised embedding `u = scale * pooled + shift`
//! is a sum of per-position parts `u(p)`, and the similarity with another embedding `o`,
//! `<u, o> / |u|`, is the sum over positions of `<u(p), o> / |u|`. That sum is the map drawn:
//! its cells add up to the similarity, positive cells pulled the pictures together and negative
//! ones pushed them apart. An embedding layer after pooling (Linear, BatchNorm, ReLU) keeps the
//! split exact: the ReLU passes or zeroes each unit as the picture's whole pooled feature
//! decides, and with that mask fixed the layer is affine, its bias shared evenly by the
//! positions.

use crate::network::ReidNet;
use crate::ModelError;

/// A backbone's output for one picture, channels-last: `values[(y * width + x) * channels + c]`.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureMap {
    pub height: usize,
    pub width: usize,
    pub channels: usize,
    pub values: Vec<f32>,
}

/// One value per position of a feature map, row-major `[height, width]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Heat {
    pub height: usize,
    pub width: usize,
    pub values: Vec<f32>,
}

/// Why two pictures are as similar as they are: their cosine similarity and, for each, the
/// share of it each position of its feature map holds (the cells of each map sum to it).
#[derive(Debug, Clone, PartialEq)]
pub struct PairExplanation {
    pub similarity: f32,
    pub first: Heat,
    pub second: Heat,
}

/// An embedding layer after pooling with its BatchNorm folded in: `relu(pooled . weight + bias)`.
#[derive(Debug, Clone, PartialEq)]
struct Fc {
    /// `[inputs, outputs]`, row-major.
    weight: Vec<f32>,
    bias: Vec<f32>,
}

impl Fc {
    fn outputs(&self) -> usize {
        self.bias.len()
    }

    /// `x . weight + bias`, before the ReLU, in f64.
    fn affine(&self, x: &[f64], bias_share: f64) -> Vec<f64> {
        let out = self.outputs();
        let mut z: Vec<f64> = self
            .bias
            .iter()
            .map(|&b| f64::from(b) * bias_share)
            .collect();
        for (xi, row) in x.iter().zip(self.weight.chunks_exact(out)) {
            if *xi != 0.0 {
                z.iter_mut()
                    .zip(row)
                    .for_each(|(z, &w)| *z += xi * f64::from(w));
            }
        }
        z
    }
}

/// What follows the backbone at inference: global pooling, the embedding layer when there is
/// one, the BNNeck as one scale and shift per channel, then L2 normalisation.
#[derive(Debug, Clone, PartialEq)]
pub struct Head {
    /// The exponent of GeM pooling; average pooling when absent.
    gem_p: Option<f32>,
    fc: Option<Fc>,
    scale: Vec<f32>,
    shift: Vec<f32>,
}

impl Head {
    /// The head of `net` (its weights read back once).
    pub fn of(net: &ReidNet) -> Self {
        let fc = match &net.fc {
            None => None,
            Some(fc) => {
                let weight: Vec<f32> = fc.linear.weight.val().into_data().iter::<f32>().collect();
                let outputs = fc.linear.weight.dims()[1];
                let (scale, shift) = crate::cpu::bn_affine(&fc.bn);
                let mut bias = vec![0f32; outputs];
                if let Some(b) = &fc.linear.bias {
                    bias = b.val().into_data().iter::<f32>().collect();
                }
                let weight = weight
                    .chunks_exact(outputs)
                    .flat_map(|row| row.iter().zip(&scale).map(|(w, s)| w * s))
                    .collect();
                let bias = bias
                    .iter()
                    .zip(&scale)
                    .zip(&shift)
                    .map(|((b, s), t)| b * s + t)
                    .collect();
                Some(Fc { weight, bias })
            }
        };
        let (scale, shift) = crate::cpu::bn_affine(&net.neck.bn);
        Self {
            gem_p: net.gem.as_ref().map(|g| g.exponent()),
            fc,
            scale,
            shift,
        }
    }

    /// Width of the embedding.
    pub fn dim(&self) -> usize {
        self.scale.len()
    }

    /// Channels of the feature map the head takes.
    fn inputs(&self) -> usize {
        self.fc
            .as_ref()
            .map_or(self.dim(), |fc| fc.weight.len() / fc.outputs().max(1))
    }

    /// Global (average or GeM) pooling of channels-last `values`, `channels` wide.
    pub fn pool(&self, values: &[f32], channels: usize) -> Vec<f32> {
        let mut pooled = vec![0f32; channels];
        let n = (values.len() / channels.max(1)).max(1) as f32;
        match self.gem_p {
            None => {
                for row in values.chunks_exact(channels) {
                    pooled.iter_mut().zip(row).for_each(|(p, v)| *p += v);
                }
                pooled.iter_mut().for_each(|p| *p /= n);
            }
            Some(exponent) => {
                let eps = crate::head::gem::GEM_EPS;
                for row in values.chunks_exact(channels) {
                    pooled
                        .iter_mut()
                        .zip(row)
                        .for_each(|(p, v)| *p += v.max(eps).powf(exponent));
                }
                pooled
                    .iter_mut()
                    .for_each(|p| *p = (*p / n).powf(1.0 / exponent));
            }
        }
        pooled
    }

    /// Pooled features to the embedding: the embedding layer, the BNNeck, L2 normalisation.
    pub fn embed(&self, pooled: &[f32]) -> Vec<f32> {
        self.neck(self.features(pooled))
    }

    /// Pooled features through the embedding layer and its ReLU when there is one: the
    /// feature [`crate::ReidNet::pooled`] gives, before the BNNeck.
    pub fn features(&self, pooled: &[f32]) -> Vec<f32> {
        match &self.fc {
            None => pooled.to_vec(),
            Some(fc) => {
                let x: Vec<f64> = pooled.iter().map(|&v| f64::from(v)).collect();
                fc.affine(&x, 1.0)
                    .into_iter()
                    .map(|z| z.max(0.0) as f32)
                    .collect()
            }
        }
    }

    /// [`Self::features`] through the BNNeck, L2-normalised.
    pub fn neck(&self, mut row: Vec<f32>) -> Vec<f32> {
        for ((v, s), t) in row.iter_mut().zip(&self.scale).zip(&self.shift) {
            *v = *v * s + t;
        }
        let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
        row.iter_mut().for_each(|v| *v /= norm);
        row
    }

    /// The embedding of a feature map.
    pub fn embedding(&self, map: &FeatureMap) -> Vec<f32> {
        self.embed(&self.pool(&map.values, map.channels))
    }

    /// Each position's share of the cosine similarity between `map`'s embedding and the unit
    /// vector `other`; the shares sum to the similarity. With an embedding layer the ReLU is
    /// linear once its mask is fixed, and the picture's own pooled feature fixes it, so the
    /// split stays exact.
    pub fn contributions(&self, map: &FeatureMap, other: &[f32]) -> Result<Heat, ModelError> {
        let c = map.channels;
        let positions = map.height * map.width;
        if c != self.inputs() || other.len() != self.dim() || map.values.len() != positions * c {
            return Err(ModelError::Weights(format!(
                "a {}x{}x{c} feature map and a {}-wide embedding do not fit a head from {} \
                 channels to {}",
                map.height,
                map.width,
                other.len(),
                self.inputs(),
                self.dim()
            )));
        }
        let pooled = self.pool(&map.values, c);
        let n = positions.max(1) as f64;
        // The layer's output for the whole picture: its ReLU mask, and `u` before normalising.
        let (mask, total): (Vec<bool>, Vec<f64>) = match &self.fc {
            None => (
                vec![true; c],
                pooled.iter().map(|&p| f64::from(p)).collect(),
            ),
            Some(fc) => {
                let x: Vec<f64> = pooled.iter().map(|&v| f64::from(v)).collect();
                let z = fc.affine(&x, 1.0);
                (
                    z.iter().map(|&z| z > 0.0).collect(),
                    z.iter().map(|&z| z.max(0.0)).collect(),
                )
            }
        };
        let norm = total
            .iter()
            .zip(&self.scale)
            .zip(&self.shift)
            .map(|((y, s), t)| {
                let u = y * f64::from(*s) + f64::from(*t);
                u * u
            })
            .sum::<f64>()
            .sqrt()
            .max(1e-12);
        let eps = crate::head::gem::GEM_EPS;
        let power = |v: f32, k: f32| f64::from(v.max(eps)).powf(f64::from(k));
        // GeM: each channel's sum of powers over the positions.
        let sums: Vec<f64> = match self.gem_p {
            None => Vec::new(),
            Some(k) => {
                let mut sums = vec![0f64; c];
                for row in map.values.chunks_exact(c) {
                    sums.iter_mut()
                        .zip(row)
                        .for_each(|(s, &v)| *s += power(v, k));
                }
                sums
            }
        };
        // The part of channel `ch`'s pooled value that the position holding `v` gives.
        let part = |v: f32, ch: usize| match self.gem_p {
            None => f64::from(v) / n,
            Some(k) => {
                let share = if sums[ch] > 0.0 {
                    power(v, k) / sums[ch]
                } else {
                    1.0 / n
                };
                share * f64::from(pooled[ch])
            }
        };
        let values = map
            .values
            .chunks_exact(c)
            .map(|row| {
                let parts: Vec<f64> = row.iter().enumerate().map(|(ch, &v)| part(v, ch)).collect();
                // The position's part of the layer's output (each position bears 1/n of a bias).
                let y = match &self.fc {
                    None => parts,
                    Some(fc) => fc.affine(&parts, 1.0 / n),
                };
                let dot: f64 = y
                    .iter()
                    .zip(&mask)
                    .enumerate()
                    .map(|(k, (&y, &on))| {
                        let y = if on { y } else { 0.0 };
                        let u = f64::from(self.scale[k]) * y + f64::from(self.shift[k]) / n;
                        u * f64::from(other[k])
                    })
                    .sum();
                (dot / norm) as f32
            })
            .collect();
        Ok(Heat {
            height: map.height,
            width: map.width,
            values,
        })
    }

    /// The similarity of two pictures' feature maps and each one's map of it.
    pub fn explain(
        &self,
        first: &FeatureMap,
        second: &FeatureMap,
    ) -> Result<PairExplanation, ModelError> {
        let (a, b) = (self.embedding(first), self.embedding(second));
        Ok(PairExplanation {
            similarity: a.iter().zip(&b).map(|(x, y)| x * y).sum(),
            first: self.contributions(first, &b)?,
            second: self.contributions(second, &a)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::ReidNetConfig;
    use burn::tensor::Device;

    fn map(seed: u32, [height, width, channels]: [usize; 3], signed: bool) -> FeatureMap {
        let mut state = seed.wrapping_mul(2_654_435_761).max(1);
        let values = (0..height * width * channels)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                let u = state as f32 / u32::MAX as f32;
                if signed {
                    u * 4.0 - 2.0
                } else {
                    // Mostly small, some zero (a ReLU's output), some large.
                    (u * 6.0 - 1.0).max(0.0)
                }
            })
            .collect();
        FeatureMap {
            height,
            width,
            channels,
            values,
        }
    }

    fn head(channels: usize, gem_p: Option<f32>) -> Head {
        Head {
            gem_p,
            fc: None,
            scale: (0..channels).map(|c| 0.5 + (c % 7) as f32 * 0.2).collect(),
            shift: (0..channels).map(|c| (c % 5) as f32 * 0.3 - 0.6).collect(),
        }
    }

    /// A head with an embedding layer from `channels` to 12, some of whose units the ReLU cuts.
    fn head_with_fc(channels: usize, gem_p: Option<f32>) -> Head {
        let outputs = 12;
        Head {
            fc: Some(Fc {
                weight: (0..channels * outputs)
                    .map(|i| ((i * 37 % 23) as f32 - 11.0) / 20.0)
                    .collect(),
                bias: (0..outputs).map(|o| (o % 3) as f32 - 1.0).collect(),
            }),
            ..head(outputs, gem_p)
        }
    }

    #[test]
    fn the_cells_of_each_map_sum_to_the_similarity() {
        for (gem_p, signed, fc) in [
            (None, true, false),
            (None, false, false),
            (Some(3.0), false, false),
            (None, true, true),
            (Some(3.0), false, true),
        ] {
            let head = if fc {
                head_with_fc(16, gem_p)
            } else {
                head(16, gem_p)
            };
            if let Some(layer) = &head.fc {
                // The ReLU cuts some units and passes others for this picture.
                let pooled: Vec<f64> = head
                    .pool(&map(1, [8, 4, 16], signed).values, 16)
                    .iter()
                    .map(|&v| f64::from(v))
                    .collect();
                let z = layer.affine(&pooled, 1.0);
                assert!(
                    z.iter().any(|&z| z > 0.0) && z.iter().any(|&z| z < 0.0),
                    "{z:?}"
                );
            }
            let (a, b) = (map(1, [8, 4, 16], signed), map(2, [6, 3, 16], signed));
            let pair = head.explain(&a, &b).unwrap();
            let (ea, eb) = (head.embedding(&a), head.embedding(&b));
            let cosine: f32 = ea.iter().zip(&eb).map(|(x, y)| x * y).sum();
            assert!((pair.similarity - cosine).abs() < 1e-6);
            for heat in [&pair.first, &pair.second] {
                let sum: f32 = heat.values.iter().sum();
                assert!(
                    (sum - cosine).abs() < 1e-5,
                    "{gem_p:?}: cells sum to {sum}, the similarity is {cosine}"
                );
            }
            assert_eq!((pair.first.height, pair.first.width), (8, 4));
            assert_eq!(pair.second.values.len(), 18);
            // A picture against itself: the cells sum to 1.
            let own: f32 = head.contributions(&a, &ea).unwrap().values.iter().sum();
            assert!((own - 1.0).abs() < 1e-5, "{own}");
        }
    }

    #[test]
    fn a_position_that_differs_moves_its_own_cell() {
        // Two maps equal but at one position: against a third picture, only that cell differs.
        let head = head(8, None);
        let a = map(3, [4, 2, 8], false);
        let mut b = a.clone();
        b.values[5 * 8..6 * 8].iter_mut().for_each(|v| *v += 3.0);
        let other = head.embedding(&map(4, [4, 2, 8], false));
        let (ha, hb) = (
            head.contributions(&a, &other).unwrap(),
            head.contributions(&b, &other).unwrap(),
        );
        // Every cell is divided by the norm of its own embedding, so compare shares after
        // scaling back by the norms.
        let scale = |m: &FeatureMap| {
            let mut u = head.pool(&m.values, 8);
            u.iter_mut()
                .zip(&head.scale)
                .zip(&head.shift)
                .for_each(|((v, s), t)| *v = *v * s + t);
            u.iter().map(|v| v * v).sum::<f32>().sqrt()
        };
        let (na, nb) = (scale(&a), scale(&b));
        for p in 0..8 {
            let (x, y) = (ha.values[p] * na, hb.values[p] * nb);
            if p == 5 {
                assert!((x - y).abs() > 1e-3, "cell {p}: {x} against {y}");
            } else {
                assert!((x - y).abs() < 1e-5, "cell {p}: {x} against {y}");
            }
        }
    }

    #[test]
    fn mismatched_shapes_are_refused_in_words() {
        let head = head(8, None);
        let err = head
            .contributions(&map(1, [2, 2, 8], true), &[0.0; 4])
            .unwrap_err();
        assert!(err.to_string().contains("do not fit"), "{err}");
        let err = head
            .contributions(&map(1, [2, 2, 6], true), &[0.0; 8])
            .unwrap_err();
        assert!(err.to_string().contains("do not fit"), "{err}");
    }

    #[test]
    fn the_head_of_a_network_with_an_embedding_layer_embeds_as_the_network_does() {
        let device = Device::flex();
        let config = ReidNetConfig {
            fc: Some(64),
            ..ReidNetConfig::default()
        };
        let net = config.init(&device);
        let images = burn::tensor::Tensor::<4>::random(
            [2, 3, 64, 32],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &device,
        );
        let want: Vec<f32> = net
            .forward(images.clone())
            .embedding
            .into_data()
            .iter::<f32>()
            .collect();
        let maps: Vec<f32> = net
            .backbone
            .forward(images)
            .permute([0, 2, 3, 1])
            .into_data()
            .iter::<f32>()
            .collect();
        let head = Head::of(&net);
        assert_eq!(head.dim(), 64);
        let feature_map = |i: usize| FeatureMap {
            height: 2,
            width: 1,
            channels: 1280,
            values: maps[i * 2 * 1280..][..2 * 1280].to_vec(),
        };
        let (a, b) = (feature_map(0), feature_map(1));
        for (i, m) in [&a, &b].into_iter().enumerate() {
            let got = head.embedding(m);
            for (g, w) in got.iter().zip(&want[i * 64..][..64]) {
                assert!((g - w).abs() < 1e-5, "{g} against {w}");
            }
        }
        let pair = head.explain(&a, &b).unwrap();
        for heat in [&pair.first, &pair.second] {
            let sum: f32 = heat.values.iter().sum();
            assert!((sum - pair.similarity).abs() < 1e-5);
        }
    }
}
