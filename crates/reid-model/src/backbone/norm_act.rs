//! BatchNorm followed by an optional clamp (ReLU6 or ReLU), the step that ends every
//! convolution of MobileNetV2 and most of ResNet's and OSNet's.
//!
//! While a network trains on burn-flex (the CPU backend under autodiff), this step is one
//! fused operation of ours (feature `cpu-train`): one pass over the activation for the batch
//! statistics, one to normalise and clamp, and the same two in the backward pass, each spread
//! over all cores. burn-flex 0.22 has no BatchNorm of its own, so burn composes it from generic
//! tensor operations: transposed copies to reduce over the channel axis, then a dozen
//! element-wise passes forward and backward, each on one thread. A frozen layer on the same
//! device is one pass on its running statistics. Everywhere else (inference, WebGPU, other
//! dtypes) the step is burn's `BatchNorm` and a clamp.

use burn::nn::BatchNorm;
use burn::tensor::activation::relu;
use burn::tensor::Tensor;

/// What follows the normalisation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// Nothing (MobileNetV2's linear bottleneck projection).
    Linear,
    /// `max(x, 0)`.
    Relu,
    /// `min(max(x, 0), 6)`.
    Relu6,
}

impl Activation {
    /// The clamp's bounds; infinite where there is none.
    pub fn bounds(self) -> (f32, f32) {
        match self {
            Activation::Linear => (f32::NEG_INFINITY, f32::INFINITY),
            Activation::Relu => (0.0, f32::INFINITY),
            Activation::Relu6 => (0.0, 6.0),
        }
    }
}

/// `activation(bn(x))` for `x` of shape `[batch, channels, h, w]`, updating `bn`'s running
/// statistics when it trains, as `BatchNorm::forward` does.
pub fn forward(bn: &BatchNorm, x: Tensor<4>, activation: Activation) -> Tensor<4> {
    #[cfg(feature = "cpu-train")]
    match fused::applies(bn, &x) {
        Some(fused::Mode::Train) => return fused::forward(bn, x, activation),
        Some(fused::Mode::Frozen) => return fused::forward_frozen(bn, x, activation),
        None => {}
    }
    composed(bn, x, activation)
}

/// burn's `BatchNorm`, then the activation. When gradients are tracked ReLU6 is
/// `relu(x) - relu(x - 6)`: burn's autodiff builds `clamp` from comparisons and masked fills,
/// forward and backward, which is slower on the CPU. Both routes agree to rounding (ReLU6
/// exactly up to 12, within half an ulp of `x` above).
pub fn composed(bn: &BatchNorm, x: Tensor<4>, activation: Activation) -> Tensor<4> {
    let tracked = x.is_require_grad() || bn.gamma.val().is_require_grad();
    let x = bn.forward(x);
    match activation {
        Activation::Linear => x,
        Activation::Relu => relu(x),
        Activation::Relu6 => relu6(x, tracked),
    }
}

/// `min(max(x, 0), 6)`; as `relu(x) - relu(x - 6)` when gradients are tracked (see
/// [`composed`]).
fn relu6(x: Tensor<4>, tracked: bool) -> Tensor<4> {
    if tracked {
        relu(x.clone()) - relu(x - 6.0)
    } else {
        x.clamp(0.0, 6.0)
    }
}

#[cfg(feature = "cpu-train")]
mod kernels;

#[cfg(feature = "cpu-train")]
mod fused {
    //! The fused operation: a burn backend extension with a forward on burn-flex and a
    //! hand-written backward under autodiff.

    use super::Activation;
    use burn::backend::autodiff::checkpoint::base::Checkpointer;
    use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
    use burn::backend::autodiff::grads::Gradients;
    use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
    use burn::backend::autodiff::Autodiff;
    use burn::backend::tensor::FloatTensor;
    use burn::backend::{backend_extension, Dispatch, ExtensionType, Flex, TensorMetadata};
    use burn::nn::BatchNorm;
    use burn::tensor::Tensor;

    use super::kernels;
    use crate::backbone::cpu_train::{contiguous, on_flex_autodiff, tensor, values};

    /// The forward's results: the activation, and the batch's per-channel mean and biased
    /// variance (what the running statistics take, as in burn's `batch_norm_train`).
    #[derive(ExtensionType)]
    pub struct NormAct<B: burn::backend::Backend> {
        pub output: FloatTensor<B>,
        pub mean: FloatTensor<B>,
        pub variance: FloatTensor<B>,
    }

    #[backend_extension(Autodiff, Flex)]
    pub trait NormActBackend: burn::backend::Backend {
        /// `clamp(gamma * (x - mean) / sqrt(variance + epsilon) + beta, low, high)` with the
        /// batch's statistics per channel of `x` (`[batch, channels, h, w]`).
        fn norm_act_train(
            x: FloatTensor<Self>,
            gamma: FloatTensor<Self>,
            beta: FloatTensor<Self>,
            epsilon: f64,
            low: f32,
            high: f32,
        ) -> NormAct<Self>;

        /// The same with given statistics (a frozen layer's running ones), differentiable in
        /// `x` only.
        #[allow(clippy::too_many_arguments)]
        fn norm_act_frozen(
            x: FloatTensor<Self>,
            gamma: FloatTensor<Self>,
            beta: FloatTensor<Self>,
            mean: FloatTensor<Self>,
            variance: FloatTensor<Self>,
            epsilon: f64,
            low: f32,
            high: f32,
        ) -> FloatTensor<Self>;
    }

    /// How the fused operation serves a layer.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Mode {
        /// A training BatchNorm: the batch's statistics, updating the running ones.
        Train,
        /// A frozen one (training off, gamma and beta fixed): the running statistics.
        Frozen,
    }

    /// Whether and how the fused operation serves this layer and input: a BatchNorm on
    /// burn-flex under autodiff, f32, training or frozen.
    pub fn applies(bn: &BatchNorm, x: &Tensor<4>) -> Option<Mode> {
        if !on_flex_autodiff(x) {
            None
        } else if bn.training.is_enabled() {
            Some(Mode::Train)
        } else if !bn.gamma.val().is_require_grad() && !bn.beta.val().is_require_grad() {
            Some(Mode::Frozen)
        } else {
            None
        }
    }

    pub fn forward_frozen(bn: &BatchNorm, x: Tensor<4>, activation: Activation) -> Tensor<4> {
        let (low, high) = activation.bounds();
        let device = x.device();
        Tensor::from_dispatch(<Dispatch as NormActBackend>::norm_act_frozen(
            x.into_dispatch(),
            bn.gamma.val().into_dispatch(),
            bn.beta.val().into_dispatch(),
            bn.running_mean.value().to_device(&device).into_dispatch(),
            bn.running_var.value().to_device(&device).into_dispatch(),
            bn.epsilon,
            low,
            high,
        ))
    }

    pub fn forward(bn: &BatchNorm, x: Tensor<4>, activation: Activation) -> Tensor<4> {
        let (low, high) = activation.bounds();
        let result = <Dispatch as NormActBackend>::norm_act_train(
            x.into_dispatch(),
            bn.gamma.val().into_dispatch(),
            bn.beta.val().into_dispatch(),
            bn.epsilon,
            low,
            high,
        );
        let mean = Tensor::<1>::from_dispatch(result.mean).detach();
        let variance = Tensor::<1>::from_dispatch(result.variance).detach();
        // As `BatchNorm::forward_train` updates them.
        let momentum = bn.momentum;
        let running = |state: Tensor<1>, batch: Tensor<1>| {
            state
                .to_device(&batch.device())
                .mul_scalar(1.0 - momentum)
                .add(batch.mul_scalar(momentum))
                .detach()
        };
        bn.running_mean
            .update(running(bn.running_mean.value_sync(), mean));
        bn.running_var
            .update(running(bn.running_var.value_sync(), variance));
        Tensor::from_dispatch(result.output)
    }

    /// `(channels, rest)` of a `[batch, channels, ...]` shape.
    fn dims(shape: &[usize]) -> (usize, usize) {
        (shape[1], shape[2..].iter().product())
    }

    fn inv_std(variance: &[f32], epsilon: f64) -> Vec<f32> {
        variance
            .iter()
            .map(|&v| (1.0 / (v as f64 + epsilon).sqrt()) as f32)
            .collect()
    }

    /// `(scale, shift)` per channel, so that `y = x * scale + shift`.
    fn affine(gamma: &[f32], beta: &[f32], mean: &[f32], inv_std: &[f32]) -> (Vec<f32>, Vec<f32>) {
        (0..gamma.len())
            .map(|c| {
                let scale = gamma[c] * inv_std[c];
                (scale, beta[c] - mean[c] * scale)
            })
            .unzip()
    }

    /// The frozen forward on burn-flex: `(output, scale)`.
    fn frozen_flex(
        x: &FloatTensor<Flex>,
        [gamma, beta, mean, variance]: [FloatTensor<Flex>; 4],
        epsilon: f64,
        bounds: (f32, f32),
    ) -> (FloatTensor<Flex>, Vec<f32>) {
        let shape = x.shape().to_vec();
        let (channels, rest) = dims(&shape);
        let [gamma, beta, mean, variance] = [gamma, beta, mean, variance].map(contiguous);
        let inv_std = inv_std(values(&variance), epsilon);
        let (scale, shift) = affine(values(&gamma), values(&beta), values(&mean), &inv_std);
        let out = kernels::normalise(values(x), channels, rest, (&scale, &shift), bounds);
        (tensor(out, shape), scale)
    }

    /// The forward on burn-flex, and the per-channel mean and `1 / std` the backward needs.
    fn forward_flex(
        x: &FloatTensor<Flex>,
        gamma: &FloatTensor<Flex>,
        beta: &FloatTensor<Flex>,
        epsilon: f64,
        bounds: (f32, f32),
    ) -> (NormAct<Flex>, Vec<f32>, Vec<f32>) {
        let shape = x.shape().to_vec();
        let (channels, rest) = dims(&shape);
        let xs = values(x);
        let (mean, variance) = kernels::statistics(xs, channels, rest);
        let inv_std = inv_std(&variance, epsilon);
        let (scale, shift) = affine(values(gamma), values(beta), &mean, &inv_std);
        let out = kernels::normalise(xs, channels, rest, (&scale, &shift), bounds);
        let result = NormAct {
            output: tensor(out, shape),
            mean: tensor(mean.clone(), vec![channels]),
            variance: tensor(variance, vec![channels]),
        };
        (result, mean, inv_std)
    }

    /// What the backward pass needs from the forward.
    #[derive(Clone, Debug)]
    struct Saved {
        x: FloatTensor<Flex>,
        output: FloatTensor<Flex>,
        gamma: FloatTensor<Flex>,
        mean: Vec<f32>,
        inv_std: Vec<f32>,
        bounds: (f32, f32),
    }

    /// Gradients of `forward_flex` for `x`, `gamma` and `beta`.
    fn backward_flex(
        saved: &Saved,
        grad: FloatTensor<Flex>,
    ) -> (FloatTensor<Flex>, FloatTensor<Flex>, FloatTensor<Flex>) {
        let shape = saved.x.shape().to_vec();
        let (channels, rest) = dims(&shape);
        let grad = contiguous(grad);
        let slices = (values(&saved.x), values(&saved.output), values(&grad));
        let sums = kernels::gradient_sums(slices, channels, rest, &saved.mean, saved.bounds);
        let dx = kernels::InputGradient {
            gamma: values(&saved.gamma),
            mean: &saved.mean,
            inv_std: &saved.inv_std,
            sums: (&sums.0, &sums.1),
        }
        .compute(slices, channels, rest, saved.bounds);
        let (beta_grad, centred) = sums;
        let gamma_grad = centred
            .iter()
            .zip(&saved.inv_std)
            .map(|(d, s)| d * s)
            .collect();
        (
            tensor(dx, shape),
            tensor(gamma_grad, vec![channels]),
            tensor(beta_grad, vec![channels]),
        )
    }

    impl NormActBackend for Flex {
        fn norm_act_train(
            x: FloatTensor<Self>,
            gamma: FloatTensor<Self>,
            beta: FloatTensor<Self>,
            epsilon: f64,
            low: f32,
            high: f32,
        ) -> NormAct<Self> {
            let bounds = (low, high);
            let (x, gamma, beta) = (contiguous(x), contiguous(gamma), contiguous(beta));
            forward_flex(&x, &gamma, &beta, epsilon, bounds).0
        }

        fn norm_act_frozen(
            x: FloatTensor<Self>,
            gamma: FloatTensor<Self>,
            beta: FloatTensor<Self>,
            mean: FloatTensor<Self>,
            variance: FloatTensor<Self>,
            epsilon: f64,
            low: f32,
            high: f32,
        ) -> FloatTensor<Self> {
            let statistics = [gamma, beta, mean, variance];
            frozen_flex(&contiguous(x), statistics, epsilon, (low, high)).0
        }
    }

    #[derive(Debug)]
    struct NormActBackward;

    impl Backward<Flex, 3> for NormActBackward {
        type State = Saved;

        fn backward(
            self,
            ops: Ops<Self::State, 3>,
            grads: &mut Gradients,
            _checkpointer: &mut Checkpointer,
        ) {
            let [node_x, node_gamma, node_beta] = ops.parents;
            let grad = grads.consume::<Flex>(&ops.node);
            let (x_grad, gamma_grad, beta_grad) = backward_flex(&ops.state, grad);
            if let Some(node) = node_x {
                grads.register::<Flex>(node.id, x_grad);
            }
            if let Some(node) = node_gamma {
                grads.register::<Flex>(node.id, gamma_grad);
            }
            if let Some(node) = node_beta {
                grads.register::<Flex>(node.id, beta_grad);
            }
        }
    }

    impl<C: CheckpointStrategy> NormActBackend for Autodiff<Flex, C> {
        fn norm_act_train(
            x: FloatTensor<Self>,
            gamma: FloatTensor<Self>,
            beta: FloatTensor<Self>,
            epsilon: f64,
            low: f32,
            high: f32,
        ) -> NormAct<Self> {
            let prepared = NormActBackward
                .prepare::<C>([x.node(), gamma.node(), beta.node()])
                .compute_bound()
                .stateful();
            let x_values = contiguous(x.into_primitive());
            let gamma_values = contiguous(gamma.into_primitive());
            let beta_values = contiguous(beta.into_primitive());
            let (result, mean, inv_std) =
                forward_flex(&x_values, &gamma_values, &beta_values, epsilon, (low, high));
            let untracked = |t| FloatTensor::<Self>::new(t);
            let output = match prepared {
                OpsKind::Tracked(prep) => {
                    let saved = Saved {
                        inv_std,
                        mean,
                        x: x_values,
                        output: result.output.clone(),
                        gamma: gamma_values,
                        bounds: (low, high),
                    };
                    prep.finish(saved, result.output)
                }
                OpsKind::UnTracked(prep) => prep.finish(result.output),
            };
            NormAct {
                output,
                mean: untracked(result.mean),
                variance: untracked(result.variance),
            }
        }

        fn norm_act_frozen(
            x: FloatTensor<Self>,
            gamma: FloatTensor<Self>,
            beta: FloatTensor<Self>,
            mean: FloatTensor<Self>,
            variance: FloatTensor<Self>,
            epsilon: f64,
            low: f32,
            high: f32,
        ) -> FloatTensor<Self> {
            let prepared = FrozenBackward
                .prepare::<C>([x.node()])
                .compute_bound()
                .stateful();
            let statistics = [gamma, beta, mean, variance].map(|t| t.into_primitive());
            let x = contiguous(x.into_primitive());
            let bounds = (low, high);
            let (output, scale) = frozen_flex(&x, statistics, epsilon, bounds);
            match prepared {
                OpsKind::Tracked(prep) => prep.finish((output.clone(), scale, bounds), output),
                OpsKind::UnTracked(prep) => prep.finish(output),
            }
        }
    }

    /// The frozen operation's backward: the gradient through the clamp, times the scale.
    #[derive(Debug)]
    struct FrozenBackward;

    impl Backward<Flex, 1> for FrozenBackward {
        /// The output, the scale per channel and the clamp's bounds.
        type State = (FloatTensor<Flex>, Vec<f32>, (f32, f32));

        fn backward(
            self,
            ops: Ops<Self::State, 1>,
            grads: &mut Gradients,
            _checkpointer: &mut Checkpointer,
        ) {
            let [node_x] = ops.parents;
            let grad = contiguous(grads.consume::<Flex>(&ops.node));
            let (output, scale, bounds) = ops.state;
            if let Some(node) = node_x {
                let shape = output.shape().to_vec();
                let (channels, rest) = dims(&shape);
                let dx = kernels::scaled_gradient(
                    (values(&output), values(&grad)),
                    channels,
                    rest,
                    &scale,
                    bounds,
                );
                grads.register::<Flex>(node.id, tensor(dx, shape));
            }
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    #[cfg(feature = "cpu-train")]
    use burn::module::{Module, Param};
    #[cfg(feature = "cpu-train")]
    use burn::nn::BatchNormConfig;
    use burn::tensor::Device;

    pub(crate) fn values<const D: usize>(x: Tensor<D>) -> Vec<f32> {
        x.into_data().try_to_vec::<f32>().unwrap()
    }

    /// Inputs from -20 to 20 in steps of 1/64 (so beyond 12, where `x - 6` rounds).
    pub(crate) fn ramp(device: &Device) -> Tensor<4> {
        Tensor::<1>::from_floats(
            (0..2560)
                .map(|i| i as f32 / 64.0 - 20.0)
                .collect::<Vec<_>>()
                .as_slice(),
            device,
        )
        .reshape([2, 4, 16, 20])
    }

    #[test]
    fn the_training_route_of_relu6_is_clamp_to_half_an_ulp_with_its_gradient() {
        let device = Device::flex().autodiff();
        let x = ramp(&device).require_grad();
        let weights = ramp(&device).cos();
        let (fast, plain) = (relu6(x.clone(), true), relu6(x.clone(), false));
        let grads = (fast.clone() * weights.clone()).sum().backward();
        let fast_grad = values(x.grad(&grads).unwrap());
        let grads = (plain.clone() * weights.clone()).sum().backward();
        let plain_grad = values(x.grad(&grads).unwrap());
        let inputs = values(x.clone());
        for (i, (a, b)) in values(fast).iter().zip(values(plain)).enumerate() {
            let x = inputs[i];
            let tolerance = if x <= 12.0 {
                0.0
            } else {
                x * f32::EPSILON / 2.0
            };
            assert!((a - b).abs() <= tolerance, "relu6({x}): {a} against {b}");
            // Where the two routes' kinks fall (0 and 6) their subgradients may differ.
            if x != 0.0 && x != 6.0 {
                assert_eq!(fast_grad[i], plain_grad[i], "d relu6 / dx at {x}");
            }
        }
    }

    /// A BatchNorm over 6 channels with gammas and betas that push the normalised values past
    /// both of ReLU6's bounds, and running statistics away from their start.
    #[cfg(feature = "cpu-train")]
    fn layer(device: &Device) -> BatchNorm {
        let mut bn = BatchNormConfig::new(6).init(device);
        let gamma = Tensor::<1>::from_floats([3.0, -2.5, 0.5, 4.0, 1.0, 2.0], device);
        let beta = Tensor::<1>::from_floats([1.0, 2.0, -0.5, 3.0, 0.0, 5.5], device);
        bn.gamma = Param::from_tensor(gamma);
        bn.beta = Param::from_tensor(beta);
        bn
    }

    /// The fused operation against burn's `BatchNorm` and a clamp: outputs, running statistics
    /// and the gradients of input, gamma and beta, for each activation, on a row-major input
    /// and on a transposed view of one.
    #[cfg(feature = "cpu-train")]
    #[test]
    fn the_fused_operation_is_batch_norm_and_clamp_with_their_gradients() {
        let device = Device::flex().autodiff();
        let base = Tensor::<1>::from_floats(
            (0..3 * 6 * 5 * 7)
                .map(|i| (i as f32 * 0.73).sin() * 2.0 + (i % 11) as f32 * 0.1)
                .collect::<Vec<_>>()
                .as_slice(),
            &device,
        );
        let weights = Tensor::<1>::from_floats(
            (0..3 * 6 * 5 * 7)
                .map(|i| (i as f32 * 0.37).cos())
                .collect::<Vec<_>>()
                .as_slice(),
            &device,
        )
        .reshape([3, 6, 5, 7]);
        let inputs = [
            base.clone().reshape([3, 6, 5, 7]),
            base.reshape([3, 6, 7, 5]).swap_dims(2, 3),
        ];
        let close = |a: &[f32], b: &[f32], what: &str| {
            assert_eq!(a.len(), b.len(), "{what}");
            let scale = b.iter().map(|b| b.abs()).fold(1.0, f32::max);
            for (i, (a, b)) in a.iter().zip(b).enumerate() {
                assert!(
                    (a - b).abs() <= 2e-5 * scale,
                    "{what}[{i}]: {a} against {b}"
                );
            }
        };
        for activation in [Activation::Linear, Activation::Relu, Activation::Relu6] {
            for input in &inputs {
                let run = |fused_route: bool| {
                    let bn = layer(&device);
                    let x = input.clone().require_grad();
                    assert_eq!(fused::applies(&bn, &x), Some(fused::Mode::Train));
                    let y = if fused_route {
                        forward(&bn, x.clone(), activation)
                    } else {
                        composed(&bn, x.clone(), activation)
                    };
                    let out = values(y.clone());
                    let grads = (y * weights.clone()).sum().backward();
                    (
                        out,
                        values(x.grad(&grads).unwrap()),
                        values(bn.gamma.grad(&grads).unwrap()),
                        values(bn.beta.grad(&grads).unwrap()),
                        values(bn.running_mean.value()),
                        values(bn.running_var.value()),
                    )
                };
                let (fused, plain) = (run(true), run(false));
                let what = format!("{activation:?}");
                close(&fused.0, &plain.0, &format!("{what} output"));
                close(&fused.1, &plain.1, &format!("{what} input gradient"));
                close(&fused.2, &plain.2, &format!("{what} gamma gradient"));
                close(&fused.3, &plain.3, &format!("{what} beta gradient"));
                close(&fused.4, &plain.4, &format!("{what} running mean"));
                close(&fused.5, &plain.5, &format!("{what} running variance"));
                let clamped = fused.0.iter().filter(|&&y| y == 0.0 || y == 6.0).count();
                if activation == Activation::Relu6 {
                    // Both bounds are reached, so the clamp's gradient mask is exercised.
                    assert!(fused.0.contains(&6.0) && clamped > 20, "{clamped} clamped");
                }
            }
        }
    }

    /// A frozen layer (running statistics, training off, gamma and beta fixed) after a
    /// trainable one: output and input gradient against burn's `BatchNorm` and a clamp.
    #[cfg(feature = "cpu-train")]
    #[test]
    fn the_frozen_operation_is_batch_norm_on_running_statistics_with_its_gradient() {
        use burn::module::RunningState;
        let device = Device::flex().autodiff();
        let mut bn = layer(&device);
        bn.running_mean = RunningState::new(Tensor::<1>::from_floats(
            [0.5, -0.2, 0.1, 0.0, 1.0, -1.0],
            &device,
        ));
        bn.running_var = RunningState::new(Tensor::<1>::from_floats(
            [1.5, 0.7, 2.0, 0.3, 1.0, 4.0],
            &device,
        ));
        let bn = bn.freeze();
        let x = Tensor::<1>::from_floats(
            (0..2 * 6 * 4 * 5)
                .map(|i| (i as f32 * 0.41).sin() * 3.0)
                .collect::<Vec<_>>()
                .as_slice(),
            &device,
        )
        .reshape([2, 6, 4, 5]);
        let weights = (x.clone() * 0.7).cos();
        for activation in [Activation::Linear, Activation::Relu, Activation::Relu6] {
            let run = |fused_route: bool| {
                let x = x.clone().require_grad();
                assert_eq!(fused::applies(&bn, &x), Some(fused::Mode::Frozen));
                let y = if fused_route {
                    forward(&bn, x.clone(), activation)
                } else {
                    composed(&bn, x.clone(), activation)
                };
                let out = values(y.clone());
                let grads = (y * weights.clone()).sum().backward();
                (out, values(x.grad(&grads).unwrap()))
            };
            let (fused, plain) = (run(true), run(false));
            for (what, a, b) in [
                ("output", &fused.0, &plain.0),
                ("gradient", &fused.1, &plain.1),
            ] {
                for (i, (a, b)) in a.iter().zip(b).enumerate() {
                    assert!(
                        (a - b).abs() <= 1e-5,
                        "{activation:?} {what}[{i}]: {a} against {b}"
                    );
                }
            }
        }
    }

    /// Training and frozen layers on burn-flex under autodiff take the fused route; inference
    /// keeps burn's own.
    #[cfg(feature = "cpu-train")]
    #[test]
    fn the_fused_operation_serves_only_layers_on_flex_autodiff() {
        let device = Device::flex().autodiff();
        let x = Tensor::<4>::zeros([1, 6, 2, 2], &device);
        assert_eq!(
            fused::applies(&layer(&device), &x),
            Some(fused::Mode::Train)
        );
        let frozen = layer(&device).freeze();
        assert_eq!(fused::applies(&frozen, &x), Some(fused::Mode::Frozen));
        let plain = Device::flex();
        let x = Tensor::zeros([1, 6, 2, 2], &plain);
        assert_eq!(fused::applies(&layer(&plain), &x), None);
    }
}
