//! Parity with fast-reid's own `Baseline` (fastreid 1.4.0 from PyPI), against the fixtures made
//! by `tests/fixtures/make_fastreid_fixtures.py`: for each Market-1501 configuration over
//! ResNet-50 (bag of tricks, AGW, SBS; plain and IBN-a), both sides compute the weights from one
//! formula over fast-reid's key names, the import's key table and checks load them, the network
//! goes through our model file (f32) and back, and its L2-normalised features on the parity
//! photos, preprocessed as the imported model card says (Pillow's bicubic resize, RGB, 0-255,
//! fast-reid's pixel mean and std; 384x128 for SBS), match fast-reid's eval-mode output within
//! 1e-4. Checkpoints of
//! another configuration are refused, naming the first tensor that does not fit.

mod common;

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use common::{formula_tensors, l2_rows, max_abs_diff, reference};
use reid_model::checkpoint::describe_ignored;
use reid_model::fastreid::{import_fastreid, import_fastreid_tensors, ARCHITECTURES};
use reid_model::preprocess::PixelRange;
use reid_model::weights::{from_burnpack_bytes, to_burnpack_bytes, Precision};
use reid_model::ReidNet;
use reid_model::{decode_image, resize_pil, Interpolation};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/fastreid")
}

fn tensors(arch: &str) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    formula_tensors(&fixtures().join(format!("{arch}.keys.json")))
}

/// The inputs the fixture script fed `arch`: the parity photos as PIL decoded them and its
/// bicubic filter resized them to the configuration's size (our resize leaves them alone).
fn images(arch: &str) -> Vec<image::RgbImage> {
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixtures().join("manifest.json")).unwrap()).unwrap();
    let size = &manifest["models"][arch]["config"]["INPUT.SIZE_TEST"];
    let dir = fixtures().join(format!("bicubic/{}x{}", size[0], size[1]));
    manifest["models"][arch]["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            let stem = Path::new(n.as_str().unwrap()).file_stem().unwrap();
            image::open(dir.join(stem).with_extension("png"))
                .unwrap()
                .to_rgb8()
        })
        .collect()
}

/// The worst difference of our normalised features, after a round trip through our model file,
/// from fast-reid's normalised features for `arch`.
fn parity(arch: &str, imported: reid_model::checkpoint::Imported) -> f32 {
    let device = Device::flex();
    let bytes =
        to_burnpack_bytes(&imported.net, &imported.config, &vec![], Precision::F32).unwrap();
    let (net, config): (ReidNet, _) = from_burnpack_bytes(&bytes, &device).unwrap();
    assert_eq!(config, imported.config);
    let x = reid_model::preprocess(&images(arch), &config.input, &device);
    let got: Vec<f32> = net.forward(x).embedding.into_data().try_to_vec().unwrap();
    let (want, rows) = reference(&fixtures().join(format!("{arch}.features.npy")));
    let want = l2_rows(&want, rows);
    let diff = max_abs_diff(&got, &want);
    // Bag of tricks' plain ResNet-50 (fast-reid's stem pool, last stride 1) also runs folded
    // for the CPU, from the pixels.
    match reid_model::cpu::CpuNet::new(&net, config.input.clone()) {
        Ok(cpu) => {
            let folded = cpu.embed(&images(arch));
            let diff = max_abs_diff(&folded.embeddings, &want);
            println!("{arch} folded for the CPU: max abs diff of normalised features {diff:.2e}");
            assert!(diff <= 1e-4, "{arch} folded: max abs diff {diff}");
        }
        Err(e) => assert!(arch != "bagtricks_R50", "{arch} does not fold: {e}"),
    }
    println!(
        "{arch}: max abs diff of normalised features {diff:.2e} ({})",
        imported.wrapper
    );
    diff
}

/// Our bicubic resize of the photos (as our decoder reads them) against Pillow's: exact for the
/// PNG photos; for the JPEG ones the two decoders may differ by a level here and there.
#[test]
fn the_bicubic_resize_is_pillows() {
    let photos = fixtures().join("../parity/images");
    for size in ["256x128", "384x128"] {
        let [h, w]: [u32; 2] = size
            .split('x')
            .map(|v| v.parse().unwrap())
            .collect::<Vec<_>>()
            .try_into()
            .unwrap();
        for entry in std::fs::read_dir(&photos).unwrap() {
            let path = entry.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            let ours = resize_pil(&decode_image(&bytes).unwrap(), w, h, Interpolation::Bicubic);
            let stem = path.file_stem().unwrap();
            let pillow = image::open(
                fixtures()
                    .join("bicubic")
                    .join(size)
                    .join(stem)
                    .with_extension("png"),
            )
            .unwrap()
            .to_rgb8();
            let diffs: Vec<u8> = ours
                .as_raw()
                .iter()
                .zip(pillow.as_raw())
                .map(|(a, b)| a.abs_diff(*b))
                .collect();
            let max = *diffs.iter().max().unwrap();
            let mean = diffs.iter().map(|&d| f64::from(d)).sum::<f64>() / diffs.len() as f64;
            println!(
                "{size} {}: max {max} levels, mean {mean:.4}",
                path.display()
            );
            if path.extension().is_some_and(|e| e == "png") {
                assert_eq!(
                    max,
                    0,
                    "{}: a PNG resizes exactly as Pillow does",
                    path.display()
                );
            } else {
                assert!(mean <= 1.0, "{}: mean abs diff {mean}", path.display());
            }
        }
    }
}

#[test]
fn every_configuration_matches_fastreid() {
    let device = Device::flex();
    for arch in ARCHITECTURES {
        let imported = import_fastreid_tensors(tensors(arch), arch, &device).unwrap();
        assert_eq!(imported.classes, Some(7), "{arch}");
        assert_eq!(
            describe_ignored(&imported.ignored),
            "heads.weight",
            "{arch}"
        );
        let input = &imported.config.input;
        assert_eq!(input.range, PixelRange::Byte);
        assert_eq!(input.interpolation, Interpolation::Bicubic);
        assert_eq!(
            input.height,
            if arch.starts_with("sbs") { 384 } else { 256 }
        );
        let diff = parity(arch, imported);
        assert!(diff <= 1e-4, "{arch}: max abs diff {diff}");
    }
}

/// Runs once by hand: `make_fastreid_fixtures.py --full target/fastreid-full` saves each
/// network as fast-reid's Checkpointer does (`{'model': ..., 'epoch': 59}`, about 95 MB each).
#[test]
#[ignore = "needs target/fastreid-full from make_fastreid_fixtures.py --full"]
fn full_size_fastreid_checkpoints() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/fastreid-full");
    for arch in ARCHITECTURES {
        let imported =
            import_fastreid(&dir.join(format!("{arch}.pth")), arch, &Device::flex()).unwrap();
        assert!(imported.wrapper.contains("'model'"), "{}", imported.wrapper);
        assert_eq!(imported.epoch, Some(60));
        let diff = parity(arch, imported);
        assert!(diff <= 1e-4, "{arch}: max abs diff {diff}");
    }
}

fn refusal(tensors: Vec<(String, Vec<usize>, Vec<f32>)>, arch: &str) -> String {
    import_fastreid_tensors(tensors, arch, &Device::flex())
        .map(|_| ())
        .unwrap_err()
        .to_string()
}

#[test]
fn a_checkpoint_of_another_configuration_is_refused_naming_the_tensor() {
    // AGW's non-local blocks have no place in the bag of tricks.
    let extra = refusal(tensors("AGW_R50"), "bagtricks_R50");
    assert!(
        extra.contains("fast-reid bagtricks_R50")
            && extra.contains("does not have")
            && extra.contains("`backbone.NL_2.0."),
        "{extra}"
    );
    // The bag of tricks lacks them.
    let missing = refusal(tensors("bagtricks_R50"), "AGW_R50");
    assert!(
        missing.contains("5 of the network's tensors are missing") || missing.contains("missing"),
        "{missing}"
    );
    assert!(missing.contains("non_local"), "{missing}");
    // SBS learns its GeM exponent: a file without one is not an SBS model.
    let no_p = refusal(tensors("AGW_R50"), "sbs_R50");
    assert!(no_p.contains("missing") && no_p.contains("gem.p"), "{no_p}");
    // IBN-a's InstanceNorm halves.
    let ibn = refusal(tensors("bagtricks_R50-ibn"), "bagtricks_R50");
    assert!(ibn.contains("bn1.IN") || ibn.contains("bn1"), "{ibn}");
    let unknown = refusal(tensors("bagtricks_R50"), "mgn_R50-ibn");
    assert!(
        unknown.contains("not supported") && unknown.contains("sbs_R50-ibn"),
        "{unknown}"
    );
}

#[test]
fn an_embedding_layer_before_the_bnneck_is_refused_by_name() {
    let mut t = tensors("bagtricks_R50");
    t.retain(|(name, _, _)| !name.starts_with("heads.bottleneck."));
    t.push((
        "heads.bottleneck.0.weight".into(),
        vec![256, 2048, 1, 1],
        vec![0.0; 256 * 2048],
    ));
    let message = refusal(t, "bagtricks_R50");
    assert!(message.contains("EMBEDDING_DIM = 256"), "{message}");
}

#[test]
fn a_stored_pixel_mean_replaces_the_default() {
    let mut t = tensors("bagtricks_R50");
    t.push((
        "pixel_mean".into(),
        vec![1, 3, 1, 1],
        vec![100.0, 110.0, 120.0],
    ));
    t.push(("pixel_std".into(), vec![1, 3, 1, 1], vec![50.0, 51.0, 52.0]));
    let imported = import_fastreid_tensors(t, "bagtricks_R50", &Device::flex()).unwrap();
    assert_eq!(imported.config.input.mean, [100.0, 110.0, 120.0]);
    assert_eq!(imported.config.input.std, [50.0, 51.0, 52.0]);
    assert_eq!(describe_ignored(&imported.ignored), "heads.weight");
}
