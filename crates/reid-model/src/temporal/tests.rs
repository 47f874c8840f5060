use burn::tensor::{Distribution, Tensor, TensorData};

use super::*;

const D: usize = 24;

fn device() -> Device {
    Device::flex()
}

fn net(kind: TemporalKind) -> (TemporalNet, TemporalConfig) {
    let device = device();
    device.seed(7);
    let config = TemporalConfig {
        kind,
        d_input: D,
        d_hidden: 16,
    };
    (config.init(&device), config)
}

fn frames(t: usize) -> Tensor<2> {
    let device = device();
    device.seed(t as u64);
    Tensor::<2>::random([t, D], Distribution::Normal(0.0, 1.0), &device)
}

fn values<const N: usize>(t: Tensor<N>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// The whole tracklet in one forward pass, as `[d_out]`.
fn whole(net: &TemporalNet, x: Tensor<2>) -> Vec<f32> {
    values(net.forward(x.unsqueeze_dim::<3>(0)).embedding)
}

#[test]
fn every_aggregator_gives_its_width_for_one_frame_and_many() {
    for kind in TemporalKind::ALL {
        let (net, config) = net(kind);
        assert_eq!(net.kind(), kind);
        assert_eq!(net.d_input(), D, "{kind:?}");
        for t in [1, 4, 9] {
            let x = Tensor::<3>::random([3, t, D], Distribution::Normal(0.0, 1.0), &device());
            let out = net.forward(x);
            assert_eq!(out.pooled.dims(), [3, config.d_output()], "{kind:?} T={t}");
            assert_eq!(out.embedding.dims(), [3, config.d_output()]);
            assert!(values(out.embedding).iter().all(|v| v.is_finite()));
        }
    }
}

#[test]
fn one_frame_through_mean_and_attention_is_that_frame() {
    let x = frames(1);
    let expected = values(x.clone().reshape([D]));
    for kind in [TemporalKind::Mean, TemporalKind::Attention] {
        let (net, _) = net(kind);
        let pooled = values(net.pool(x.clone().unsqueeze_dim::<3>(0)));
        assert!(max_diff(&pooled, &expected) < 1e-6, "{kind:?}");
    }
}

#[test]
fn pooling_and_attention_ignore_frame_order_and_the_recurrent_networks_do_not() {
    let x = frames(6);
    let order = [3usize, 0, 5, 1, 4, 2];
    let rows: Vec<f32> = values(x.clone());
    let shuffled: Vec<f32> = order
        .iter()
        .flat_map(|&i| rows[i * D..(i + 1) * D].to_vec())
        .collect();
    let shuffled = Tensor::<2>::from_data(TensorData::new(shuffled, [6, D]), &device());
    for kind in TemporalKind::ALL {
        let (net, _) = net(kind);
        let diff = max_diff(&whole(&net, x.clone()), &whole(&net, shuffled.clone()));
        if kind.order_invariant() {
            assert!(diff < 1e-5, "{kind:?} changed by {diff} with the order");
        } else {
            assert!(diff > 1e-4, "{kind:?} should depend on the order ({diff})");
        }
    }
}

#[test]
fn chunked_tracklets_equal_one_pass_for_every_aggregator() {
    // Longer than any training T, cut into chunks that do not divide it.
    let x = frames(37);
    for kind in TemporalKind::ALL {
        let (net, _) = net(kind);
        let expected = whole(&net, x.clone());
        for chunk in [1, 5, 16, 37, 4096] {
            let got = values(net.embed_tracklet(x.clone(), chunk).unwrap());
            let diff = max_diff(&got, &expected);
            assert!(diff < 1e-4, "{kind:?} chunk {chunk}: off by {diff}");
        }
    }
}

#[test]
fn bad_tracklets_are_errors() {
    let (net, _) = net(TemporalKind::Gru);
    let empty = Tensor::<2>::zeros([0, D], &device());
    assert_eq!(
        net.embed_tracklet(empty, 8).unwrap_err(),
        TemporalError::NoFrames
    );
    let narrow = Tensor::<2>::zeros([3, D - 1], &device());
    assert_eq!(
        net.embed_tracklet(narrow, 8).unwrap_err(),
        TemporalError::Width {
            got: D - 1,
            want: D
        }
    );
    for chunk in [0, MAX_CHUNK + 1] {
        assert_eq!(
            net.embed_tracklet(frames(3), chunk).unwrap_err(),
            TemporalError::Chunk(chunk)
        );
    }
}

#[test]
fn aggregators_round_trip_through_burnpack_and_other_files_are_refused() {
    let x = frames(5);
    for kind in TemporalKind::ALL {
        let (net, config) = net(kind);
        let metadata = vec![("reid.card".to_string(), "{}".to_string())];
        let bytes = to_burnpack_bytes(&net, &config, &metadata).unwrap();
        let (back, back_config, meta) = from_burnpack_bytes(&bytes, &device()).unwrap();
        assert_eq!(back_config, config);
        assert_eq!(meta.get("reid.card").map(String::as_str), Some("{}"));
        assert_eq!(whole(&net, x.clone()), whole(&back, x.clone()), "{kind:?}");
    }
    let (net, config) = net(TemporalKind::Attention);
    let bytes = to_burnpack_bytes(&net, &config, &Vec::new()).unwrap();
    let cut = &bytes[..bytes.len() / 2];
    assert!(from_burnpack_bytes(cut, &device()).is_err());
    assert!(from_burnpack_bytes(b"not a model", &device()).is_err());
    // An image network is not an aggregator.
    let image = crate::ReidNetConfig::default();
    let image_bytes = crate::weights::to_burnpack_bytes(
        &image.init(&device()),
        &image,
        &Vec::new(),
        crate::weights::Precision::F32,
    )
    .unwrap();
    let message = from_burnpack_bytes(&image_bytes, &device())
        .unwrap_err()
        .to_string();
    assert!(message.contains("image network"), "{message}");
}

#[test]
fn names_round_trip() {
    for kind in TemporalKind::ALL {
        assert_eq!(TemporalKind::from_name(kind.name()), Some(kind));
    }
    assert_eq!(TemporalKind::from_name("transformer"), None);
}

#[test]
fn learned_parameters_are_the_published_formulas() {
    let (d, h) = (D, 16);
    // Each recurrent gate: an input and a hidden linear layer with biases.
    let gate = d * h + h + h * h + h;
    for (kind, want) in [
        (TemporalKind::Mean, 2 * d),
        (TemporalKind::Attention, d * h + h + h + 1 + 2 * d),
        (TemporalKind::Gru, 3 * gate + 2 * h),
        (TemporalKind::Lstm, 4 * gate + 2 * h),
        (TemporalKind::Conv, 3 * d + d + 2 * d),
    ] {
        assert_eq!(net(kind).0.learned_params(), want, "{}", kind.name());
    }
}
