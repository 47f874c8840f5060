//! Agreement with the field's reference implementations: torchreid 0.2.5 and fast-reid 1.4.0
//! `eval_market1501` (python paths), on the cases made by `tests/fixtures/make_eval_fixtures.py`
//! (random features, ties, queries without a valid match, distractors and junk, one gallery
//! camera). Metrics must agree to 1e-6.

use std::path::Path;

use reid_core::{evaluate, Labels, Protocol};
use serde::Deserialize;

#[derive(Deserialize)]
struct Expected {
    cmc: Vec<f64>,
    map: f64,
    minp: f64,
    valid_queries: usize,
    skipped_queries: usize,
}

#[derive(Deserialize)]
struct Case {
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
struct Fixture {
    cases: Vec<Case>,
}

#[test]
fn market1501_metrics_equal_torchreid_and_fastreid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/eval/cases.json");
    let fixture: Fixture = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    assert_eq!(fixture.cases.len(), 5);
    for case in &fixture.cases {
        let distances: Vec<f32> = case.distmat.iter().flatten().copied().collect();
        let m = evaluate(
            &distances,
            Labels {
                pids: &case.q_pids,
                camids: &case.q_camids,
            },
            Labels {
                pids: &case.g_pids,
                camids: &case.g_camids,
            },
            &Protocol {
                max_rank: case.max_rank,
                junk_pid: Some(-1),
                single_gallery_shot: None,
            },
        )
        .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        let e = &case.expected;
        assert_eq!(m.valid_queries, e.valid_queries, "{}", case.name);
        assert_eq!(m.skipped_queries, e.skipped_queries, "{}", case.name);
        assert!(
            (m.map - e.map).abs() <= 1e-6,
            "{}: mAP {} vs {}",
            case.name,
            m.map,
            e.map
        );
        assert!(
            (m.minp - e.minp).abs() <= 1e-6,
            "{}: mINP {} vs {}",
            case.name,
            m.minp,
            e.minp
        );
        assert_eq!(m.cmc.len(), e.cmc.len());
        for (k, (a, b)) in m.cmc.iter().zip(&e.cmc).enumerate() {
            assert!(
                (a - b).abs() <= 1e-6,
                "{}: rank-{} {a} vs {b}",
                case.name,
                k + 1
            );
        }
    }
}

#[test]
fn fixture_matches_its_sha256_sum() {
    use sha2::{Digest, Sha256};
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/eval");
    let sums = std::fs::read_to_string(dir.join("SHA256SUMS")).unwrap();
    let (sum, name) = sums.trim().split_once("  ").unwrap();
    let bytes = std::fs::read(dir.join(name)).unwrap();
    let actual: String = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(actual, sum);
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

#[test]
fn k_reciprocal_rerank_equals_torchreid_and_fastreid() {
    use reid_core::{k_reciprocal_rerank, FeatureMatrix, Metric, RerankParams};
    #[derive(Deserialize)]
    struct WithRerank {
        rerank: RerankCase,
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/eval/cases.json");
    let case = serde_json::from_slice::<WithRerank>(&std::fs::read(path).unwrap())
        .unwrap()
        .rerank;
    let matrix = |rows: &[Vec<f32>]| {
        FeatureMatrix::new(rows.iter().flatten().copied().collect(), rows[0].len()).unwrap()
    };
    let ours = k_reciprocal_rerank(
        &matrix(&case.query),
        &matrix(&case.gallery),
        Metric::SquaredEuclidean,
        RerankParams {
            k1: case.k1,
            k2: case.k2,
            lambda: case.lambda,
        },
    )
    .unwrap();
    let expected: Vec<f32> = case.expected.iter().flatten().copied().collect();
    assert_eq!(ours.len(), expected.len());
    let worst = ours
        .iter()
        .zip(&expected)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    println!("re-ranked distances: max abs diff {worst:.2e}");
    assert!(worst <= 1e-5, "re-ranked distances differ by {worst}");
}

#[test]
fn query_expansion_equals_fastreid_aqe() {
    use reid_core::{query_expansion, FeatureMatrix, QueryExpansion};
    #[derive(Deserialize)]
    struct Run {
        times: usize,
        k: usize,
        alpha: f32,
        query: Vec<Vec<f32>>,
        gallery: Vec<Vec<f32>>,
    }
    #[derive(Deserialize)]
    struct Qe {
        query: Vec<Vec<f32>>,
        gallery: Vec<Vec<f32>>,
        runs: Vec<Run>,
    }
    #[derive(Deserialize)]
    struct WithQe {
        query_expansion: Qe,
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/eval/cases.json");
    let case = serde_json::from_slice::<WithQe>(&std::fs::read(path).unwrap())
        .unwrap()
        .query_expansion;
    let matrix = |rows: &[Vec<f32>]| {
        FeatureMatrix::new(rows.iter().flatten().copied().collect(), rows[0].len()).unwrap()
    };
    assert_eq!(case.runs.len(), 2);
    for run in &case.runs {
        let qe = QueryExpansion {
            times: run.times,
            k: run.k,
            alpha: run.alpha,
        };
        let (q, g) = query_expansion(&matrix(&case.query), &matrix(&case.gallery), qe).unwrap();
        for (ours, theirs) in [(q, &run.query), (g, &run.gallery)] {
            let worst = ours
                .as_slice()
                .iter()
                .zip(theirs.iter().flatten())
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(worst <= 1e-5, "{qe:?}: features differ by {worst}");
        }
    }
}

#[test]
fn cuhk03_single_gallery_shot_equals_torchreid() {
    #[derive(Deserialize)]
    struct Expected03 {
        cmc: Vec<f64>,
        map: f64,
    }
    #[derive(Deserialize)]
    struct Case03 {
        max_rank: usize,
        distmat: Vec<Vec<f32>>,
        q_pids: Vec<i64>,
        g_pids: Vec<i64>,
        q_camids: Vec<i64>,
        g_camids: Vec<i64>,
        expected: Expected03,
    }
    #[derive(Deserialize)]
    struct WithCuhk03 {
        cuhk03: Case03,
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/eval/cases.json");
    let case = serde_json::from_slice::<WithCuhk03>(&std::fs::read(path).unwrap())
        .unwrap()
        .cuhk03;
    let distances: Vec<f32> = case.distmat.iter().flatten().copied().collect();
    let m = evaluate(
        &distances,
        Labels {
            pids: &case.q_pids,
            camids: &case.q_camids,
        },
        Labels {
            pids: &case.g_pids,
            camids: &case.g_camids,
        },
        &Protocol {
            max_rank: case.max_rank,
            ..Protocol::cuhk03(7)
        },
    )
    .unwrap();
    assert!(
        (m.map - case.expected.map).abs() <= 1e-6,
        "mAP {} vs {}",
        m.map,
        case.expected.map
    );
    for (k, (a, b)) in m.cmc.iter().zip(&case.expected.cmc).enumerate() {
        assert!((a - b).abs() <= 1e-6, "rank-{} {a} vs {b}", k + 1);
    }
}
