//! Generalised-mean (GeM) pooling (Radenović et al. 2018), as fast-reid's
//! `GeneralizedMeanPoolingP` has it: `(mean(max(x, eps)^p))^(1/p)` over each channel's map,
//! with a learned exponent `p` starting at 3. `p = 1` is average pooling; a large `p` tends to
//! max pooling, so the network learns how much to look at the strongest responses.

use burn::module::{Module, Param};
use burn::tensor::{Device, Tensor};

/// Activations below this are raised to it before the power (the mean of a power of 0 would
/// have no gradient).
pub const GEM_EPS: f32 = 1e-6;

/// GeM pooling with a learned exponent.
#[derive(Module, Debug)]
pub struct Gem {
    /// The exponent, `[1]`.
    pub p: Param<Tensor<1>>,
}

impl Gem {
    /// GeM with exponent `p` (fast-reid starts at 3).
    pub fn new(p: f32, device: &Device) -> Self {
        Self {
            p: Param::from_tensor(Tensor::from_floats([p], device)),
        }
    }

    /// `[batch, channels, h, w]` to `[batch, channels]`, computed as
    /// `exp(log(mean(exp(p log max(x, eps)))) / p)`.
    pub fn forward(&self, map: Tensor<4>) -> Tensor<2> {
        let [batch, channels, _, _] = map.dims();
        let p = self.p.val().reshape([1, 1, 1, 1]);
        let powered = (map.clamp_min(GEM_EPS).log() * p.clone()).exp();
        let mean = powered.mean_dim(3).mean_dim(2);
        (mean.log() / p).exp().reshape([batch, channels])
    }

    /// The exponent's current value.
    pub fn exponent(&self) -> f32 {
        self.p.val().into_data().iter::<f32>().next().unwrap_or(1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Distribution, TensorData};

    #[test]
    fn gem_is_average_pooling_at_p_1_and_near_max_pooling_for_large_p() {
        let device = Device::flex();
        let map = Tensor::<4>::random([2, 3, 4, 5], Distribution::Uniform(0.0, 2.0), &device);
        let avg: Vec<f32> = map
            .clone()
            .mean_dim(3)
            .mean_dim(2)
            .into_data()
            .iter()
            .collect();
        let gem1: Vec<f32> = Gem::new(1.0, &device)
            .forward(map.clone())
            .into_data()
            .iter()
            .collect();
        for (a, g) in avg.iter().zip(&gem1) {
            assert!((a - g).abs() < 1e-5, "{a} against {g}");
        }
        let max: Vec<f32> = map
            .clone()
            .max_dim(3)
            .max_dim(2)
            .into_data()
            .iter()
            .collect();
        let gem: Vec<f32> = Gem::new(60.0, &device)
            .forward(map)
            .into_data()
            .iter()
            .collect();
        for (m, g) in max.iter().zip(&gem) {
            // (mean x^p)^(1/p) >= max * (1/20)^(1/60) on 20 values.
            assert!(*g <= m + 1e-4 && *g >= m * 0.95, "{m} against {g}");
        }
    }

    #[test]
    fn gem_follows_its_formula() {
        let device = Device::flex();
        let values = [0.0f32, 1.0, 2.0, 4.0];
        let map = Tensor::<4>::from_data(TensorData::new(values.to_vec(), [1, 1, 2, 2]), &device);
        let got: f32 = Gem::new(3.0, &device)
            .forward(map)
            .into_data()
            .iter()
            .next()
            .unwrap();
        let want = ((1e-18f64 + 1.0 + 8.0 + 64.0) / 4.0).powf(1.0 / 3.0) as f32;
        assert!((got - want).abs() < 1e-4, "{got} against {want}");
        assert_eq!(Gem::new(3.0, &device).exponent(), 3.0);
    }
}
