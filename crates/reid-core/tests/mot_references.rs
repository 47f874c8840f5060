//! reid-core's tracking metrics against py-motmetrics 1.4.0 on real MOT15 sequences
//! (TUD-Campus, TUD-Stadtmitte: ground truth and a tracker's output, as py-motmetrics ships
//! them), with the numbers py-motmetrics computed (`tests/fixtures/make_mot_fixtures.py`):
//! every count exactly, rates to 1e-12, MOTP (a mean IoU of f32 boxes) to 1e-7.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use reid_core::{parse_mot_text, MotAccumulator, MotSummary};
use serde::Deserialize;

#[derive(Deserialize)]
struct Fixture {
    iou_threshold: f32,
    summaries: BTreeMap<String, BTreeMap<String, f64>>,
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/mot")
}

fn read(name: &str) -> String {
    std::fs::read_to_string(fixtures().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn score(sequence: &str, iou: f32) -> MotSummary {
    let gt = parse_mot_text(&read(&format!("{sequence}-gt.txt")), -1.0).unwrap();
    let test = parse_mot_text(&read(&format!("{sequence}-test.txt")), -1.0).unwrap();
    // Every frame either file mentions, in order (py-motmetrics visits the union).
    let frames: BTreeSet<u64> = gt.keys().chain(test.keys()).copied().collect();
    let mut acc = MotAccumulator::new(iou);
    for f in frames {
        let none = Vec::new();
        acc.update(gt.get(&f).unwrap_or(&none), test.get(&f).unwrap_or(&none));
    }
    acc.summary()
}

fn check(name: &str, ours: &MotSummary, expected: &BTreeMap<String, f64>) {
    let counts = [
        ("num_frames", ours.num_frames),
        ("num_unique_objects", ours.num_unique_objects),
        ("num_objects", ours.num_objects),
        ("num_predictions", ours.num_predictions),
        ("num_detections", ours.num_detections),
        ("num_matches", ours.num_matches),
        ("num_switches", ours.num_switches),
        ("num_misses", ours.num_misses),
        ("num_false_positives", ours.num_false_positives),
        ("num_fragmentations", ours.num_fragmentations),
        ("mostly_tracked", ours.mostly_tracked),
        ("partially_tracked", ours.partially_tracked),
        ("mostly_lost", ours.mostly_lost),
        ("idtp", ours.idtp),
        ("idfp", ours.idfp),
        ("idfn", ours.idfn),
    ];
    for (metric, value) in counts {
        assert_eq!(value as f64, expected[metric], "{name}: {metric}");
    }
    let rates = [
        ("idf1", ours.idf1()),
        ("idp", ours.idp()),
        ("idr", ours.idr()),
        ("recall", ours.recall()),
        ("precision", ours.precision()),
        ("mota", ours.mota()),
        ("motp", ours.motp()),
    ];
    for (metric, value) in rates {
        // MOTP averages IoUs of boxes we hold in f32 (py-motmetrics reads them as f64); every
        // other rate is a ratio of counts.
        let tolerance = if metric == "motp" { 1e-7 } else { 1e-12 };
        assert!(
            (value - expected[metric]).abs() < tolerance,
            "{name}: {metric} {value} against py-motmetrics' {}",
            expected[metric]
        );
    }
}

#[test]
fn clear_mot_and_identity_metrics_equal_py_motmetrics_on_mot15() {
    let fixture: Fixture = serde_json::from_str(&read("expected.json")).unwrap();
    let mut all = Vec::new();
    for sequence in ["TUD-Campus", "TUD-Stadtmitte"] {
        let ours = score(sequence, fixture.iou_threshold);
        check(sequence, &ours, &fixture.summaries[sequence]);
        all.push(ours);
    }
    check(
        "OVERALL",
        &MotSummary::combine(&all),
        &fixture.summaries["OVERALL"],
    );
}
