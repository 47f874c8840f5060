//! A depthwise convolution (one filter per channel: the 3x3 layers of MobileNetV2 and OSNet).
//!
//! While a network trains on burn-flex (feature `cpu-train`) it is an operation of ours,
//! forward and backward: burn-flex 0.22 runs a grouped convolution's forward, and its input's
//! gradient as a transposed convolution, plane by plane on one thread, and builds the weight's
//! gradient from transposed copies. Ours runs planes (forward, input gradient) and channels
//! (weight gradient) on all cores. Everywhere else the layer is burn's `Conv2d`.

use burn::nn::conv::Conv2d;
use burn::tensor::Tensor;

/// `conv.forward(x)`, through our operation when it serves (see the module's doc).
pub fn forward(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    #[cfg(feature = "cpu-train")]
    if let Some(geometry) = fused::applies(conv, &x) {
        return fused::forward(conv, x, geometry);
    }
    conv.forward(x)
}

#[cfg(feature = "cpu-train")]
mod kernels;

#[cfg(feature = "cpu-train")]
mod fused {
    //! The operation as a burn backend extension: forward on burn-flex, a hand-written
    //! backward under autodiff.

    use burn::backend::autodiff::checkpoint::base::Checkpointer;
    use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
    use burn::backend::autodiff::grads::Gradients;
    use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
    use burn::backend::autodiff::Autodiff;
    use burn::backend::tensor::FloatTensor;
    use burn::backend::{backend_extension, Dispatch, Flex, TensorMetadata};
    use burn::nn::conv::Conv2d;
    use burn::nn::PaddingConfig2d;
    use burn::tensor::Tensor;

    use super::kernels::{self, Geometry};
    use crate::backbone::cpu_train::{contiguous, on_flex_autodiff, tensor, values};

    #[backend_extension(Autodiff, Flex)]
    pub trait DepthwiseBackend: burn::backend::Backend {
        /// `x` (`[batch, channels, h, w]`) convolved with `weight` (`[channels, 1, kh, kw]`),
        /// channel by channel; `geometry` is `[stride_h, stride_w, top, left, bottom, right]`.
        fn depthwise_conv(
            x: FloatTensor<Self>,
            weight: FloatTensor<Self>,
            geometry: [usize; 6],
        ) -> FloatTensor<Self>;
    }

    /// The geometry when the operation serves this layer and input: a depthwise convolution
    /// (as many groups as input and output channels) without bias or dilation, with explicit
    /// or no padding, on burn-flex under autodiff, f32.
    pub fn applies(conv: &Conv2d, x: &Tensor<4>) -> Option<[usize; 6]> {
        let [out, per_group, _, _] = conv.weight.dims();
        let [_, channels, _, _] = x.dims();
        let padding = match conv.padding {
            PaddingConfig2d::Explicit(top, left, bottom, right) => [top, left, bottom, right],
            PaddingConfig2d::Valid => [0; 4],
            PaddingConfig2d::Same => return None,
        };
        let depthwise = conv.groups == channels && out == channels && per_group == 1;
        (depthwise && conv.bias.is_none() && conv.dilation == [1, 1] && on_flex_autodiff(x)).then(
            || {
                let [sh, sw] = conv.stride;
                let [top, left, bottom, right] = padding;
                [sh, sw, top, left, bottom, right]
            },
        )
    }

    pub fn forward(conv: &Conv2d, x: Tensor<4>, geometry: [usize; 6]) -> Tensor<4> {
        Tensor::from_dispatch(<Dispatch as DepthwiseBackend>::depthwise_conv(
            x.into_dispatch(),
            conv.weight.val().into_dispatch(),
            geometry,
        ))
    }

    /// The kernels' geometry of an input of `shape` and a weight of `kernel`.
    fn plan(shape: &[usize], kernel: &[usize], [sh, sw, t, l, b, r]: [usize; 6]) -> Geometry {
        Geometry::new(
            [shape[2], shape[3]],
            [kernel[2], kernel[3]],
            [sh, sw],
            [t, l, b, r],
        )
        // burn's `Conv2d` checks the same sizes before it would run.
        .expect("depthwise convolution: the kernel does not fit the padded input")
    }

    fn forward_flex(
        x: &FloatTensor<Flex>,
        weight: &FloatTensor<Flex>,
        geometry: [usize; 6],
    ) -> FloatTensor<Flex> {
        let shape = x.shape().to_vec();
        let g = plan(&shape, &weight.shape(), geometry);
        let out = kernels::forward(values(x), values(weight), shape[1], &g);
        tensor(out, vec![shape[0], shape[1], g.output[0], g.output[1]])
    }

    impl DepthwiseBackend for Flex {
        fn depthwise_conv(
            x: FloatTensor<Self>,
            weight: FloatTensor<Self>,
            geometry: [usize; 6],
        ) -> FloatTensor<Self> {
            forward_flex(&contiguous(x), &contiguous(weight), geometry)
        }
    }

    #[derive(Debug)]
    struct DepthwiseBackward;

    impl Backward<Flex, 2> for DepthwiseBackward {
        /// The input, the weight and the geometry.
        type State = (FloatTensor<Flex>, FloatTensor<Flex>, [usize; 6]);

        fn backward(
            self,
            ops: Ops<Self::State, 2>,
            grads: &mut Gradients,
            _checkpointer: &mut Checkpointer,
        ) {
            let [node_x, node_weight] = ops.parents;
            let grad = contiguous(grads.consume::<Flex>(&ops.node));
            let (x, weight, geometry) = ops.state;
            let shape = x.shape().to_vec();
            let g = plan(&shape, &weight.shape(), geometry);
            let channels = shape[1];
            if let Some(node) = node_x {
                let dx = kernels::input_gradient(values(&grad), values(&weight), channels, &g);
                grads.register::<Flex>(node.id, tensor(dx, shape.clone()));
            }
            if let Some(node) = node_weight {
                let dw = kernels::weight_gradient(values(&x), values(&grad), channels, &g);
                grads.register::<Flex>(node.id, tensor(dw, weight.shape().to_vec()));
            }
        }
    }

    impl<C: CheckpointStrategy> DepthwiseBackend for Autodiff<Flex, C> {
        fn depthwise_conv(
            x: FloatTensor<Self>,
            weight: FloatTensor<Self>,
            geometry: [usize; 6],
        ) -> FloatTensor<Self> {
            let prepared = DepthwiseBackward
                .prepare::<C>([x.node(), weight.node()])
                .compute_bound()
                .stateful();
            let x = contiguous(x.into_primitive());
            let weight = contiguous(weight.into_primitive());
            let output = forward_flex(&x, &weight, geometry);
            match prepared {
                OpsKind::Tracked(prep) => prep.finish((x, weight, geometry), output),
                OpsKind::UnTracked(prep) => prep.finish(output),
            }
        }
    }
}

#[cfg(all(test, feature = "cpu-train"))]
mod tests {
    use super::*;
    use burn::nn::conv::Conv2dConfig;
    use burn::nn::PaddingConfig2d;
    use burn::tensor::Device;

    fn values(x: Tensor<4>) -> Vec<f32> {
        x.into_data().try_to_vec::<f32>().unwrap()
    }

    fn wave(shape: [usize; 4], step: f32, device: &Device) -> Tensor<4> {
        let len = shape.iter().product::<usize>();
        Tensor::<1>::from_floats(
            (0..len)
                .map(|i| (i as f32 * step).sin())
                .collect::<Vec<_>>()
                .as_slice(),
            device,
        )
        .reshape(shape)
    }

    /// Ours against burn's `Conv2d` under autodiff: output and the gradients of input and
    /// weight, at MobileNetV2's two strides, on a row-major input and a transposed view.
    #[test]
    fn the_operation_is_burns_grouped_convolution_with_its_gradients() {
        let device = Device::flex().autodiff();
        for stride in [1, 2] {
            let conv = Conv2dConfig::new([5, 5], [3, 3])
                .with_stride([stride, stride])
                .with_groups(5)
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .with_bias(false)
                .init(&device);
            let inputs = [
                wave([2, 5, 9, 7], 0.37, &device),
                wave([2, 5, 7, 9], 0.37, &device).swap_dims(2, 3),
            ];
            for input in inputs {
                let run = |ours: bool| {
                    let x = input.clone().require_grad();
                    assert!(fused::applies(&conv, &x).is_some());
                    let y = if ours {
                        forward(&conv, x.clone())
                    } else {
                        conv.forward(x.clone())
                    };
                    let weights = wave(y.dims(), 0.53, &device);
                    let grads = (y.clone() * weights).sum().backward();
                    (
                        values(y),
                        values(x.grad(&grads).unwrap()),
                        values(conv.weight.grad(&grads).unwrap()),
                    )
                };
                let (ours, burn) = (run(true), run(false));
                for (what, a, b) in [
                    ("output", &ours.0, &burn.0),
                    ("input gradient", &ours.1, &burn.1),
                    ("weight gradient", &ours.2, &burn.2),
                ] {
                    assert_eq!(a.len(), b.len(), "{what}");
                    for (i, (a, b)) in a.iter().zip(b).enumerate() {
                        assert!(
                            (a - b).abs() < 1e-5,
                            "stride {stride} {what}[{i}]: {a} against {b}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn the_operation_serves_only_depthwise_layers_on_flex_autodiff() {
        let training = Device::flex().autodiff();
        let depthwise = |device: &Device| {
            Conv2dConfig::new([4, 4], [3, 3])
                .with_groups(4)
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .with_bias(false)
                .init(device)
        };
        let x = Tensor::<4>::zeros([1, 4, 6, 6], &training);
        assert!(fused::applies(&depthwise(&training), &x).is_some());
        let full = Conv2dConfig::new([4, 4], [3, 3])
            .with_bias(false)
            .init(&training);
        assert!(fused::applies(&full, &x).is_none());
        let biased = Conv2dConfig::new([4, 4], [3, 3])
            .with_groups(4)
            .init(&training);
        assert!(fused::applies(&biased, &x).is_none());
        let plain = Device::flex();
        let x = Tensor::<4>::zeros([1, 4, 6, 6], &plain);
        assert!(fused::applies(&depthwise(&plain), &x).is_none());
    }
}
