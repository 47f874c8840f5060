//! The Evaluate page's logic, without the browser: which files of a picked folder are a
//! Market-1501 test set (`query/` and `bounding_box_test/` pictures) or saved features
//! (`reid eval --save-features`' four files), and the evaluation itself, with the very
//! functions `reid eval` calls (cosine distance, the Market-1501 protocol to rank 50,
//! k-reciprocal re-ranking on demand), so that from the same feature file the numbers are
//! `reid eval`'s exactly.

use std::borrow::Cow;

use reid_core::naming::parse_market1501;
use reid_core::{
    distance_matrix, evaluate_queries, k_reciprocal_rerank, lowest_ap, ranked_gallery, summarize,
    FeatureMatrix, Labels, Metric, Protocol, RankMetrics, RerankParams,
};
use serde::{Deserialize, Serialize};

/// Queries shown with their ranked lists: those with the lowest AP.
pub const WORST_QUERIES: usize = 5;

/// Results shown in each of those lists.
pub const SHOWN_RESULTS: usize = 10;

/// What a picked folder holds, as positions in the list of its files' paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// A Market-1501 test set: the pictures of `query/` and of `bounding_box_test/`, each
    /// sorted by name (as `reid eval --dataset` reads them).
    Images {
        query: Vec<usize>,
        gallery: Vec<usize>,
    },
    /// Saved features: `query.npy`, `query.txt`, `gallery.npy`, `gallery.txt`.
    Features {
        query_npy: usize,
        query_txt: usize,
        gallery_npy: usize,
        gallery_txt: usize,
    },
}

/// The last component of a `/`-separated path.
pub fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// The folder a file is in (the component before its name), if any.
fn parent(path: &str) -> Option<&str> {
    let mut parts = path.rsplit('/');
    parts.next();
    parts.next()
}

fn is_picture(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    [".jpg", ".jpeg", ".png"].iter().any(|e| name.ends_with(e))
}

/// Reads a picked folder's layout from its files' relative paths (`webkitRelativePath`).
/// Saved features win when all four files are there (the shallowest of each); otherwise the
/// pictures directly inside folders named `query` and `bounding_box_test` are the test set,
/// and a picture there whose name is not Market-1501's is an error, as in `reid eval`.
pub fn layout(paths: &[String]) -> Result<Layout, String> {
    let shallowest = |name: &str| {
        paths
            .iter()
            .enumerate()
            .filter(|(_, p)| file_name(p) == name)
            .min_by_key(|(_, p)| p.matches('/').count())
            .map(|(i, _)| i)
    };
    if let (Some(query_npy), Some(query_txt), Some(gallery_npy), Some(gallery_txt)) = (
        shallowest("query.npy"),
        shallowest("query.txt"),
        shallowest("gallery.npy"),
        shallowest("gallery.txt"),
    ) {
        return Ok(Layout::Features {
            query_npy,
            query_txt,
            gallery_npy,
            gallery_txt,
        });
    }
    let split = |folder: &str| -> Result<Vec<usize>, String> {
        let mut found: Vec<usize> = (0..paths.len())
            .filter(|&i| parent(&paths[i]) == Some(folder) && is_picture(file_name(&paths[i])))
            .collect();
        found.sort_by(|&a, &b| paths[a].cmp(&paths[b]));
        for &i in &found {
            parse_market1501(file_name(&paths[i])).map_err(|e| format!("{}: {e}", paths[i]))?;
        }
        Ok(found)
    };
    let (query, gallery) = (split("query")?, split("bounding_box_test")?);
    match (query.is_empty(), gallery.is_empty()) {
        (false, false) => Ok(Layout::Images { query, gallery }),
        _ => Err(format!(
            "this folder has {} pictures in query/ and {} in bounding_box_test/: pick a \
             Market-1501 folder (query/ and bounding_box_test/ of PPPP_cCsS_FFFFFF_NN.jpg \
             pictures) or a folder of saved features (query.npy, query.txt, gallery.npy, \
             gallery.txt from `reid eval --save-features`)",
            query.len(),
            gallery.len()
        )),
    }
}

/// The file names listed in a saved-features `.txt` (one per line, blank lines skipped).
pub fn listed_names(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

/// One side (query or gallery): a feature row per picture and the picture's file name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Side {
    pub names: Vec<String>,
    /// Row-major, `names.len()` rows of `dim` (sent to the worker as bytes).
    #[serde(with = "crate::protocol::f32_bytes")]
    pub features: Vec<f32>,
    pub dim: usize,
}

impl Side {
    /// A side read from saved features: `reid eval --features`' checks and messages.
    pub fn from_saved(npy: &[u8], txt: &str, side: &str) -> Result<Self, String> {
        let matrix = FeatureMatrix::from_npy(npy).map_err(|e| format!("{side}.npy: {e}"))?;
        let names = listed_names(txt);
        if names.len() != matrix.rows() {
            return Err(format!(
                "{side}.txt lists {} names but {side}.npy has {} rows",
                names.len(),
                matrix.rows()
            ));
        }
        Ok(Self {
            names,
            dim: matrix.dim(),
            features: matrix.as_slice().to_vec(),
        })
    }

    fn labels(&self, side: &str) -> Result<(Vec<i64>, Vec<i64>), String> {
        let mut pids = Vec::with_capacity(self.names.len());
        let mut camids = Vec::with_capacity(self.names.len());
        for (line, name) in self.names.iter().enumerate() {
            let parsed =
                parse_market1501(name).map_err(|e| format!("{side} line {}: {e}", line + 1))?;
            pids.push(parsed.pid);
            camids.push(i64::from(parsed.camid));
        }
        Ok((pids, camids))
    }

    fn into_matrix(self, side: &str) -> Result<FeatureMatrix, String> {
        FeatureMatrix::new(self.features, self.dim).map_err(|e| format!("{side}: {e}"))
    }
}

/// One result in a ranked list.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ShownResult {
    /// Gallery row.
    pub gallery: usize,
    /// Its distance to the query (1 - cosine, or the re-ranked distance).
    pub distance: f32,
    /// Whether it shows the query's person.
    pub same: bool,
}

/// A query with a low AP and the start of its ranked list (junk and same-camera pictures of
/// its person left out, as the protocol does).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorstQuery {
    /// Query row.
    pub query: usize,
    pub ap: f64,
    pub results: Vec<ShownResult>,
}

/// What the Evaluate page shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    pub metrics: RankMetrics,
    pub gallery: usize,
    pub reranked: bool,
    /// The [`WORST_QUERIES`] valid queries with the lowest AP (ties: query order), worst
    /// first.
    pub worst: Vec<WorstQuery>,
}

/// Queries ranked at a time without re-ranking: their rows of distances are all of the matrix
/// the evaluation holds (256 x 15,913 at Market-1501's size: 16 MB, where the whole matrix
/// would be 214 MB). A multiple of `distance_matrix`'s own block of 64 queries, so every row is
/// computed as `reid eval` computes it, to the bit.
const QUERY_ROWS: usize = 256;

/// Rows `distance_matrix` computes together (its `QUERY_BLOCK`): a row recomputed on its own is
/// recomputed with its block.
const DISTANCE_BLOCK: usize = 64;

/// The most memory re-ranking may take here: it needs the whole `queries x (queries +
/// gallery)` rows and the output matrix at once, and a page's wasm memory is at most 4 GB.
const RERANK_BYTES: u64 = 1 << 30;

/// Evaluates `query` against `gallery` as `reid eval` does by default (cosine distance, the
/// Market-1501 protocol, CMC to rank 50), or with `rerank` as `reid eval --rerank` does.
/// Without re-ranking the distances are made and ranked [`QUERY_ROWS`] queries at a time, so
/// memory stays bounded whatever the folder's size; re-ranking a set too large for a page is
/// refused up front.
pub fn evaluate(query: Side, gallery: Side, rerank: bool) -> Result<EvalReport, String> {
    let (q_pids, q_camids) = query.labels("query")?;
    let (g_pids, g_camids) = gallery.labels("gallery")?;
    let (q, g) = (query.into_matrix("query")?, gallery.into_matrix("gallery")?);
    if q.dim() != g.dim() {
        return Err(format!(
            "the query features are {} wide but the gallery's {}",
            q.dim(),
            g.dim()
        ));
    }
    let (nq, ng) = (q_pids.len(), g_pids.len());
    let protocol = Protocol::market1501();
    let labels = |from: usize, to: usize| Labels {
        pids: &q_pids[from..to],
        camids: &q_camids[from..to],
    };
    let g_labels = Labels {
        pids: &g_pids,
        camids: &g_camids,
    };
    let failed = |e: reid_core::EvalError| e.to_string();
    // Distances of the queries `from..to` (cosine, or the re-ranked ones already made).
    let reranked = if rerank {
        let bytes = rerank_bytes(nq, ng);
        if bytes > RERANK_BYTES {
            return Err(format!(
                "re-ranking {nq} queries against {ng} gallery pictures needs about {:.1} GB at \
                 once, more than this page allows itself ({:.0} GB): evaluate without \
                 re-ranking, or re-rank with `reid eval --rerank`",
                bytes as f64 / 1e9,
                RERANK_BYTES as f64 / 1e9
            ));
        }
        Some(
            k_reciprocal_rerank(&q, &g, Metric::Cosine, RerankParams::default())
                .map_err(|e| e.to_string())?,
        )
    } else {
        None
    };
    let rows = |from: usize, to: usize| -> Result<Cow<'_, [f32]>, String> {
        match &reranked {
            Some(all) => Ok(Cow::Borrowed(&all[from * ng..to * ng])),
            None => {
                let dim = q.dim();
                let part = FeatureMatrix::new(q.as_slice()[from * dim..to * dim].to_vec(), dim)
                    .map_err(|e| e.to_string())?;
                distance_matrix(&part, &g, Metric::Cosine)
                    .map(Cow::Owned)
                    .map_err(|e| e.to_string())
            }
        }
    };
    let mut per_query = Vec::with_capacity(nq);
    for from in (0..nq).step_by(QUERY_ROWS) {
        let to = (from + QUERY_ROWS).min(nq);
        per_query.extend(
            evaluate_queries(&rows(from, to)?, labels(from, to), g_labels, &protocol)
                .map_err(failed)?,
        );
    }
    let metrics = summarize(&per_query).map_err(failed)?;
    let mut worst = Vec::new();
    for (query, ap) in lowest_ap(&per_query, WORST_QUERIES) {
        let from = query / DISTANCE_BLOCK * DISTANCE_BLOCK;
        let block = rows(from, (from + DISTANCE_BLOCK).min(nq))?;
        let row = &block[(query - from) * ng..][..ng];
        let ranked = ranked_gallery(
            row,
            q_pids[query],
            q_camids[query],
            g_labels,
            protocol.junk_pid,
            SHOWN_RESULTS,
        );
        worst.push(WorstQuery {
            query,
            ap,
            results: ranked
                .into_iter()
                .map(|gi| ShownResult {
                    gallery: gi,
                    distance: row[gi],
                    same: g_pids[gi] == q_pids[query],
                })
                .collect(),
        });
    }
    Ok(EvalReport {
        metrics,
        gallery: ng,
        reranked: rerank,
        worst,
    })
}

/// About the memory re-ranking `nq` queries against `ng` gallery pictures takes at once: the
/// queries' rows to every picture and the output matrix, 4 bytes a value (the sparse
/// neighbour lists besides are small).
fn rerank_bytes(nq: usize, ng: usize) -> u64 {
    let (nq, ng) = (nq as u64, ng as u64);
    4 * (nq * (nq + ng) + nq * ng)
}

/// A percentage as `reid eval` prints it (`81.25%`).
pub fn percent(value: f64) -> String {
    format!("{:.2}%", 100.0 * value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_market_folder_is_read_sorted_and_other_files_are_skipped() {
        let p = paths(&[
            "market/bounding_box_test/0002_c2s1_000301_01.jpg",
            "market/query/0002_c1s1_000451_03.jpg",
            "market/query/0001_c1s1_000101_01.jpg",
            "market/query/Thumbs.db",
            "market/bounding_box_test/-1_c1s1_000001_01.jpg",
            "market/bounding_box_train/0003_c1s1_000001_01.jpg",
            "market/readme.txt",
        ]);
        assert_eq!(
            layout(&p).unwrap(),
            Layout::Images {
                query: vec![2, 1],
                gallery: vec![4, 0]
            }
        );
    }

    #[test]
    fn a_misnamed_picture_or_a_missing_split_is_an_error_that_says_what_is_wanted() {
        let bad = paths(&[
            "m/query/holiday.jpg",
            "m/bounding_box_test/0002_c2s1_000301_01.jpg",
        ]);
        assert!(layout(&bad).unwrap_err().starts_with("m/query/holiday.jpg"));
        let half = paths(&["m/query/0002_c1s1_000451_03.jpg"]);
        let message = layout(&half).unwrap_err();
        assert!(message.contains("1 pictures in query/ and 0 in bounding_box_test/"));
        assert!(message.contains("reid eval --save-features"));
    }

    #[test]
    fn saved_features_are_found_at_the_shallowest_level() {
        let p = paths(&[
            "f/old/query.npy",
            "f/query.npy",
            "f/query.txt",
            "f/gallery.npy",
            "f/gallery.txt",
            "f/query/0002_c1s1_000451_03.jpg",
        ]);
        assert_eq!(
            layout(&p).unwrap(),
            Layout::Features {
                query_npy: 1,
                query_txt: 2,
                gallery_npy: 3,
                gallery_txt: 4
            }
        );
    }

    fn side(names: &[&str], rows: &[[f32; 2]]) -> Side {
        Side {
            names: names.iter().map(|s| s.to_string()).collect(),
            features: rows.iter().flatten().copied().collect(),
            dim: 2,
        }
    }

    #[test]
    fn metrics_and_worst_queries_follow_the_protocol() {
        // Query 1 finds its person first; query 2's person ranks second, behind a stranger;
        // the same-camera picture of person 1 and the junk picture are never counted.
        let query = side(
            &["0001_c1s1_000001_01.jpg", "0002_c1s1_000001_01.jpg"],
            &[[1.0, 0.0], [0.0, 1.0]],
        );
        let gallery = side(
            &[
                "0001_c2s1_000001_01.jpg",
                "0001_c1s1_000002_01.jpg",
                "0003_c2s1_000001_01.jpg",
                "0002_c3s1_000001_01.jpg",
                "-1_c2s1_000001_01.jpg",
            ],
            &[[1.0, 0.1], [1.0, 0.0], [0.1, 1.0], [0.3, 1.0], [0.0, 1.0]],
        );
        let report = evaluate(query, gallery, false).unwrap();
        assert_eq!(report.metrics.valid_queries, 2);
        assert_eq!(report.metrics.rank(1), Some(0.5));
        assert_eq!(report.metrics.rank(2), Some(1.0));
        assert!((report.metrics.map - 0.75).abs() < 1e-12);
        assert_eq!(report.gallery, 5);
        let worst = &report.worst[0];
        assert_eq!((worst.query, worst.ap), (1, 0.5));
        let shown: Vec<(usize, bool)> = worst.results.iter().map(|r| (r.gallery, r.same)).collect();
        assert_eq!(shown, vec![(2, false), (3, true), (0, false), (1, false)]);
        assert_eq!(report.worst[1].query, 0);
        assert_eq!(percent(report.metrics.map), "75.00%");
    }

    /// `n` pictures of 40 people over 6 cameras with 8-wide features: each person's direction
    /// plus a deterministic jitter (a small linear congruential generator).
    fn crowd(n: usize, seed: u64) -> Side {
        let mut state = seed;
        let mut next = move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 33) as f32 / (1u64 << 31) as f32) - 0.5
        };
        let mut names = Vec::new();
        let mut features = Vec::new();
        for i in 0..n {
            let person = i % 40;
            names.push(format!(
                "{:04}_c{}s1_{:06}_01.jpg",
                person + 1,
                (i / 40) % 6 + 1,
                i
            ));
            for d in 0..8 {
                let centre = if d == person % 8 {
                    1.0
                } else {
                    (person / 8) as f32 * 0.1
                };
                features.push(centre + 0.6 * next());
            }
        }
        Side {
            names,
            features,
            dim: 8,
        }
    }

    #[test]
    fn queries_ranked_in_blocks_give_the_whole_matrix_numbers_to_the_bit() {
        // More queries than a block holds, and a last block that is not full.
        let (query, gallery) = (crowd(QUERY_ROWS * 2 + 77, 1), crowd(300, 2));
        let (q_pids, q_camids) = query.labels("query").unwrap();
        let (g_pids, g_camids) = gallery.labels("gallery").unwrap();
        let (q, g) = (
            query.clone().into_matrix("query").unwrap(),
            gallery.clone().into_matrix("gallery").unwrap(),
        );
        let whole = distance_matrix(&q, &g, Metric::Cosine).unwrap();
        let (ql, gl) = (
            Labels {
                pids: &q_pids,
                camids: &q_camids,
            },
            Labels {
                pids: &g_pids,
                camids: &g_camids,
            },
        );
        let protocol = Protocol::market1501();
        let per_query = evaluate_queries(&whole, ql, gl, &protocol).unwrap();
        let expected = summarize(&per_query).unwrap();
        let report = evaluate(query, gallery, false).unwrap();
        assert!(
            expected.map > 0.1 && expected.map < 0.99,
            "a test that ranks"
        );
        assert_eq!(report.metrics, expected);
        let hard = reid_core::worst_queries(
            &whole,
            &per_query,
            ql,
            gl,
            protocol.junk_pid,
            WORST_QUERIES,
            SHOWN_RESULTS,
        );
        assert_eq!(report.worst.len(), WORST_QUERIES);
        for (ours, theirs) in report.worst.iter().zip(&hard) {
            assert_eq!((ours.query, ours.ap), (theirs.query, theirs.ap));
            let shown: Vec<usize> = ours.results.iter().map(|r| r.gallery).collect();
            assert_eq!(shown, theirs.ranked);
            for r in &ours.results {
                assert_eq!(r.distance, whole[ours.query * 300 + r.gallery]);
            }
        }
    }

    #[test]
    fn re_ranking_a_set_too_large_for_a_page_is_refused_in_plain_words() {
        // 10,000 x 10,000 would take about 1.2 GB at once.
        let message = evaluate(crowd(10_000, 3), crowd(10_000, 4), true).unwrap_err();
        assert!(
            message.contains("re-ranking 10000 queries against 10000 gallery pictures")
                && message.contains("evaluate without re-ranking"),
            "{message}"
        );
        // Market-1501's size stays allowed.
        assert!(rerank_bytes(3368, 15913) < RERANK_BYTES);
    }

    #[test]
    fn saved_features_with_a_wrong_count_or_width_are_refused() {
        let npy = FeatureMatrix::new(vec![1.0, 0.0, 0.0, 1.0], 2)
            .unwrap()
            .to_npy();
        let one = "0001_c1s1_000001_01.jpg\n";
        assert_eq!(
            Side::from_saved(&npy, one, "query").unwrap_err(),
            "query.txt lists 1 names but query.npy has 2 rows"
        );
        assert!(Side::from_saved(b"not numpy", one, "gallery")
            .unwrap_err()
            .starts_with("gallery.npy: "));
        let two = "0001_c1s1_000001_01.jpg\n\n0002_c2s1_000001_01.jpg\n";
        let q = Side::from_saved(&npy, two, "query").unwrap();
        assert_eq!(q.names.len(), 2);
        let mut narrow = q.clone();
        narrow.dim = 1;
        narrow.features.truncate(2);
        assert!(evaluate(q.clone(), narrow, false)
            .unwrap_err()
            .contains("2 wide"));
        let misnamed = side(&["holiday.jpg"], &[[1.0, 0.0]]);
        assert!(evaluate(misnamed, q, false)
            .unwrap_err()
            .starts_with("query line 1"));
    }
}
