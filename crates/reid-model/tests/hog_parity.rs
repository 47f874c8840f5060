//! Our HOG people detector against OpenCV 4.14's `cv::HOGDescriptor` with its default people
//! detector, on the outputs `tests/fixtures/make_hog_fixtures.py` saved: descriptors of single
//! windows (to 1e-4), every window's score at one scale, and the grouped multi-scale detections
//! (the same count, each matched at IoU >= 0.8). The same for the tensor path
//! ([`HogOnDevice`], here on burn's CPU backend; the browser runs it on WebGPU).

use std::path::{Path, PathBuf};

use reid_core::{BBox, FeatureMatrix};
use reid_model::detect::hog::{descriptor, Detection, HogDetector, HogParams, WindowScore};
use reid_model::detect::HogOnDevice;
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/hog")
}

fn npy(name: &str) -> FeatureMatrix {
    let bytes = std::fs::read(fixtures().join(name)).unwrap();
    FeatureMatrix::from_npy(&bytes).unwrap()
}

fn load(path: &Path) -> image::RgbImage {
    image::open(path).unwrap().to_rgb8()
}

fn manifest(name: &str) -> Value {
    serde_json::from_slice(&std::fs::read(fixtures().join(name)).unwrap()).unwrap()
}

fn params(threshold: f64) -> HogParams {
    HogParams {
        hit_threshold: threshold,
        stride: 8,
        padding: 8,
        scale: 1.05,
        levels: 64,
        group_threshold: 2,
    }
}

/// OpenCV's grouped detections `[[x, y, w, h, score], ...]` against ours: the same count, each
/// of theirs matched (greedily, best IoU first) by one of ours at IoU >= 0.8. Returns the
/// smallest IoU and the largest score difference of the matches.
fn match_detections(theirs: &Value, ours: &[Detection], what: &str) -> (f64, f64) {
    let theirs: Vec<(BBox, f64)> = theirs
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let v: Vec<f64> = d
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect();
            (
                BBox::new(v[0] as f32, v[1] as f32, v[2] as f32, v[3] as f32),
                v[4],
            )
        })
        .collect();
    assert_eq!(
        ours.len(),
        theirs.len(),
        "{what}: {} detections, OpenCV {}: ours {ours:?}, OpenCV {theirs:?}",
        ours.len(),
        theirs.len()
    );
    let mut free: Vec<bool> = vec![true; ours.len()];
    let (mut worst_iou, mut worst_score) = (1.0f64, 0.0f64);
    for (b, score) in &theirs {
        let best = (0..ours.len())
            .filter(|&i| free[i])
            .max_by(|&i, &j| {
                b.iou(&ours[i].rect.bbox())
                    .total_cmp(&b.iou(&ours[j].rect.bbox()))
            })
            .unwrap();
        let iou = b.iou(&ours[best].rect.bbox());
        assert!(
            iou >= 0.8,
            "{what}: OpenCV's {b:?} best matched at IoU {iou:.3} ({:?})",
            ours[best]
        );
        free[best] = false;
        worst_iou = worst_iou.min(iou);
        worst_score = worst_score.max((ours[best].score - score).abs());
    }
    (worst_iou, worst_score)
}

#[test]
fn descriptors_match_opencv_on_single_windows() {
    let m = manifest("hog.json");
    for (name, entry) in m["images"].as_object().unwrap() {
        let image = load(&fixtures().join(format!("{name}.png")));
        let expected = npy(&format!("{name}.descriptors.npy"));
        let mut worst = 0.0f32;
        for (k, p) in entry["descriptor_locations"]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
        {
            let (x, y) = (
                p[0].as_u64().unwrap() as usize,
                p[1].as_u64().unwrap() as usize,
            );
            let ours = descriptor(&image, x, y);
            let diff = ours
                .iter()
                .zip(expected.row(k))
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(diff <= 1e-4, "{name} at ({x}, {y}): max abs diff {diff}");
            worst = worst.max(diff);
        }
        println!("{name}: descriptors within {worst:.2e} of OpenCV's");
    }
}

/// The largest difference between our window scores and OpenCV's (`x, y, score` rows), after
/// checking the same windows come in the same order and no score is off by more than 1e-4.
fn worst_window_difference(ours: &[WindowScore], expected: &FeatureMatrix, name: &str) -> f64 {
    assert_eq!(ours.len(), expected.rows(), "{name}: window count");
    let mut worst = 0.0f64;
    for (k, w) in ours.iter().enumerate() {
        let row = expected.row(k);
        assert_eq!(
            (w.x as f32, w.y as f32),
            (row[0], row[1]),
            "{name}: window {k}"
        );
        worst = worst.max((w.score - f64::from(row[2])).abs());
    }
    assert!(
        worst <= 1e-4,
        "{name}: window scores differ by up to {worst}"
    );
    worst
}

#[test]
fn every_window_scores_as_opencv_scores_it() {
    let m = manifest("hog.json");
    let detector = HogDetector::opencv_people();
    for name in m["images"].as_object().unwrap().keys() {
        let image = load(&fixtures().join(format!("{name}.png")));
        let expected = npy(&format!("{name}.windows.npy"));
        let ours = detector.window_scores(&image, 8, 8);
        let worst = worst_window_difference(&ours, &expected, name);
        println!(
            "{name}: {} window scores within {worst:.2e} of OpenCV's",
            ours.len()
        );
    }
}

#[test]
fn grouped_detections_match_opencv_at_every_scale() {
    let m = manifest("hog.json");
    let detector = HogDetector::opencv_people();
    let mut total = 0;
    for (name, entry) in m["images"].as_object().unwrap() {
        let image = load(&fixtures().join(format!("{name}.png")));
        for (threshold, theirs) in entry["detections"].as_object().unwrap() {
            let ours = detector.detect(&image, &params(threshold.parse().unwrap()));
            let (iou, score) = match_detections(theirs, &ours, &format!("{name} at {threshold}"));
            println!("{name}, threshold {threshold}: {} detections, IoU >= {iou:.3}, scores within {score:.1e}", ours.len());
            total += ours.len();
        }
    }
    assert!(total > 0, "the fixtures must have detections to compare");
}

#[test]
fn the_tensor_path_scores_and_detects_as_opencv() {
    let m = manifest("hog.json");
    let on_device = HogOnDevice::new(HogDetector::opencv_people(), &burn::tensor::Device::flex());
    let mut total = 0;
    for (name, entry) in m["images"].as_object().unwrap() {
        let image = load(&fixtures().join(format!("{name}.png")));
        let expected = npy(&format!("{name}.windows.npy"));
        let ours = pollster::block_on(on_device.window_scores(&image, 8, 8)).unwrap();
        let worst = worst_window_difference(&ours, &expected, name);
        for (threshold, theirs) in entry["detections"].as_object().unwrap() {
            let params = params(threshold.parse().unwrap());
            let ours = pollster::block_on(on_device.detect(&image, &params)).unwrap();
            let (iou, score) = match_detections(theirs, &ours, &format!("{name} at {threshold}"));
            println!("tensor path, {name}, threshold {threshold}: {} detections, IoU >= {iou:.3}, scores within {score:.1e}; window scores within {worst:.2e}", ours.len());
            total += ours.len();
        }
    }
    assert!(total > 0, "the fixtures must have detections to compare");
}

/// The same on the real pictures of `../shared/data` (not in the repository, so ignored: run
/// `make_hog_fixtures.py --real ../shared/data`, which also writes the campus frames as OpenCV
/// decodes them to `target/hog-real/`, then this with `--include-ignored`; REID_SHARED_DATA
/// names another folder).
#[test]
#[ignore = "needs ../shared/data"]
fn real_pictures_match_opencv() {
    let data = std::env::var_os("REID_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"));
    let m = manifest("real.json");
    let detector = HogDetector::opencv_people();
    let on_device = HogOnDevice::new(detector, &burn::tensor::Device::flex());
    let expected = npy("real.descriptors.npy");
    let (mut worst_desc, mut worst_score) = (0.0f32, 0.0f64);
    for (k, (name, score)) in m["crops"].as_object().unwrap().iter().enumerate() {
        let image = load(&data.join("inria-person-crops").join(name));
        let ours = descriptor(&image, 16, 16);
        let diff = ours
            .iter()
            .zip(expected.row(k))
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        worst_desc = worst_desc.max(diff);
        let s = detector
            .window_scores(&image, 8, 0)
            .into_iter()
            .find(|w| (w.x, w.y) == (16, 16))
            .unwrap()
            .score;
        worst_score = worst_score.max((s - score.as_f64().unwrap()).abs());
    }
    println!("INRIA crops: descriptors within {worst_desc:.2e}, scores within {worst_score:.2e}");
    assert!(worst_desc <= 1e-4 && worst_score <= 1e-4);
    for (name, by_threshold) in m["frames"].as_object().unwrap() {
        let decoded = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/hog-real");
        let image = load(&decoded.join(name));
        for (threshold, theirs) in by_threshold.as_object().unwrap() {
            let ours = detector.detect(&image, &params(threshold.parse().unwrap()));
            let (iou, score) = match_detections(theirs, &ours, &format!("{name} at {threshold}"));
            println!("{name}, threshold {threshold}: {} detections, IoU >= {iou:.3}, scores within {score:.1e}", ours.len());
            let tensors =
                pollster::block_on(on_device.detect(&image, &params(threshold.parse().unwrap())))
                    .unwrap();
            let what = format!("tensor path, {name} at {threshold}");
            let (iou, score) = match_detections(theirs, &tensors, &what);
            println!(
                "{what}: {} detections, IoU >= {iou:.3}, scores within {score:.1e}",
                tensors.len()
            );
        }
    }
}
