//! Agreement with the field's reference implementations, on the cases made by
//! `tests/fixtures/make_eval_fixtures.py`: torchreid 0.2.5 and fast-reid 1.4.0 `eval_market1501`
//! (python paths; random features, ties, queries without a valid match, distractors and junk,
//! one gallery camera) and torchreid's `eval_cuhk03`: metrics to 1e-6; both packages'
//! `re_ranking`: distances to 1e-5; fast-reid's `aqe`: features to 1e-5.

use std::path::{Path, PathBuf};

use reid_core::{
    evaluate, k_reciprocal_rerank, query_expansion, FeatureMatrix, Labels, Metric, Protocol,
    QueryExpansion, RerankParams,
};
use serde::Deserialize;

#[derive(Deserialize)]
struct Expected {
    cmc: Vec<f64>,
    map: f64,
    /// Not given by torchreid's CUHK03 evaluation.
    minp: Option<f64>,
    valid_queries: Option<usize>,
    skipped_queries: Option<usize>,
}

#[derive(Deserialize)]
struct Case {
    #[serde(default)]
    name: String,
    max_rank: usize,
    distmat: Vec<Vec<f32>>,
    q_pids: Vec<i64>,
    g_pids: Vec<i64>,
    q_camids: Vec<i64>,
    g_camids: Vec<i64>,
    expected: Expected,
}

#[derive(Deserialize)]
struct RerankCase {
    query: Vec<Vec<f32>>,
    gallery: Vec<Vec<f32>>,
    k1: usize,
    k2: usize,
    lambda: f32,
    expected: Vec<Vec<f32>>,
}

#[derive(Deserialize)]
struct QeRun {
    times: usize,
    k: usize,
    alpha: f32,
    query: Vec<Vec<f32>>,
    gallery: Vec<Vec<f32>>,
}

#[derive(Deserialize)]
struct QeCase {
    query: Vec<Vec<f32>>,
    gallery: Vec<Vec<f32>>,
    runs: Vec<QeRun>,
}

#[derive(Deserialize)]
struct Fixture {
    cases: Vec<Case>,
    cuhk03: Case,
    rerank: RerankCase,
    query_expansion: QeCase,
}

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/eval")
}

fn fixture() -> Fixture {
    serde_json::from_slice(&std::fs::read(dir().join("cases.json")).unwrap()).unwrap()
}

fn matrix(rows: &[Vec<f32>]) -> FeatureMatrix {
    FeatureMatrix::new(rows.iter().flatten().copied().collect(), rows[0].len()).unwrap()
}

fn max_abs_diff<'a>(a: &[f32], b: impl IntoIterator<Item = &'a f32>) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max)
}

/// Evaluates `case` under `protocol` and compares every number the reference gave.
fn check(case: &Case, protocol: Protocol) {
    let distances: Vec<f32> = case.distmat.iter().flatten().copied().collect();
    let query = Labels {
        pids: &case.q_pids,
        camids: &case.q_camids,
    };
    let gallery = Labels {
        pids: &case.g_pids,
        camids: &case.g_camids,
    };
    let m = evaluate(&distances, query, gallery, &protocol)
        .unwrap_or_else(|e| panic!("{}: {e}", case.name));
    let (e, name) = (&case.expected, &case.name);
    assert!(
        (m.map - e.map).abs() <= 1e-6,
        "{name}: mAP {} vs {}",
        m.map,
        e.map
    );
    if let Some(minp) = e.minp {
        assert!(
            (m.minp - minp).abs() <= 1e-6,
            "{name}: mINP {} vs {minp}",
            m.minp
        );
    }
    if let (Some(valid), Some(skipped)) = (e.valid_queries, e.skipped_queries) {
        assert_eq!(
            (m.valid_queries, m.skipped_queries),
            (valid, skipped),
            "{name}"
        );
    }
    assert_eq!(m.cmc.len(), e.cmc.len(), "{name}");
    for (k, (a, b)) in m.cmc.iter().zip(&e.cmc).enumerate() {
        assert!((a - b).abs() <= 1e-6, "{name}: rank-{} {a} vs {b}", k + 1);
    }
}

#[test]
fn fixture_matches_its_sha256_sum() {
    use sha2::{Digest, Sha256};
    let sums = std::fs::read_to_string(dir().join("SHA256SUMS")).unwrap();
    let (sum, name) = sums.trim().split_once("  ").unwrap();
    let bytes = std::fs::read(dir().join(name)).unwrap();
    let actual: String = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(actual, sum);
}

#[test]
fn market1501_metrics_equal_torchreid_and_fastreid() {
    let fixture = fixture();
    assert_eq!(fixture.cases.len(), 5);
    for case in &fixture.cases {
        check(
            case,
            Protocol {
                max_rank: case.max_rank,
                junk_pid: Some(-1),
                single_gallery_shot: None,
            },
        );
    }
}

#[test]
fn cuhk03_single_gallery_shot_equals_torchreid() {
    let case = fixture().cuhk03;
    check(
        &case,
        Protocol {
            max_rank: case.max_rank,
            ..Protocol::cuhk03(7)
        },
    );
}

#[test]
fn k_reciprocal_rerank_equals_torchreid_and_fastreid() {
    let case = fixture().rerank;
    let params = RerankParams {
        k1: case.k1,
        k2: case.k2,
        lambda: case.lambda,
    };
    let ours = k_reciprocal_rerank(
        &matrix(&case.query),
        &matrix(&case.gallery),
        Metric::SquaredEuclidean,
        params,
    )
    .unwrap();
    assert_eq!(ours.len(), case.expected.len() * case.expected[0].len());
    let worst = max_abs_diff(&ours, case.expected.iter().flatten());
    println!("re-ranked distances: max abs diff {worst:.2e}");
    assert!(worst <= 1e-5, "re-ranked distances differ by {worst}");
}

#[test]
fn query_expansion_equals_fastreid_aqe() {
    let case = fixture().query_expansion;
    assert_eq!(case.runs.len(), 2);
    for run in &case.runs {
        let qe = QueryExpansion {
            times: run.times,
            k: run.k,
            alpha: run.alpha,
        };
        let (q, g) = query_expansion(&matrix(&case.query), &matrix(&case.gallery), qe).unwrap();
        for (ours, theirs) in [(q, &run.query), (g, &run.gallery)] {
            let worst = max_abs_diff(ours.as_slice(), theirs.iter().flatten());
            assert!(worst <= 1e-5, "{qe:?}: features differ by {worst}");
        }
    }
}
