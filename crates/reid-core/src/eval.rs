//! The image-retrieval evaluation protocol of Market-1501 (also used for DukeMTMC-reID and
//! MSMT17), written to be audited against torchreid's `eval_market1501` and fast-reid's
//! `evaluate_rank`:
//!
//! For each query, rank the gallery by increasing distance (ties keep gallery order). Then
//! drop the gallery samples that show the query's identity from the query's own camera (the
//! same person seen by the same camera is too easy to count) and, when the protocol names one,
//! every junk sample. Of what remains, the samples with the query's identity are the true
//! matches. A query with no true match left is skipped and counted.
//!
//! - CMC at rank k: the fraction of valid queries with a true match within the first k;
//! - AP: the mean over true matches of the precision at each match's rank; mAP averages it;
//! - INP (Ye et al. 2021): the number of true matches divided by the rank of the hardest (last)
//!   one; mINP averages it.

use serde::{Deserialize, Serialize};

use crate::parallel::for_each_chunk_mut;

/// Identity and camera of each sample of one side (query or gallery).
#[derive(Debug, Clone, Copy)]
pub struct Labels<'a> {
    pub pids: &'a [i64],
    pub camids: &'a [i64],
}

/// Protocol settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Protocol {
    /// Longest CMC computed (clipped to the gallery size).
    pub max_rank: usize,
    /// Gallery identity ignored entirely (Market-1501's junk is -1); `None` keeps every sample.
    pub junk_pid: Option<i64>,
    /// CUHK03's classic single-gallery-shot CMC: one randomly drawn image per gallery identity,
    /// averaged over repeats. AP and INP always use the whole gallery (as torchreid does).
    pub single_gallery_shot: Option<SingleGalleryShot>,
}

/// Repeated random sampling of one gallery image per identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SingleGalleryShot {
    /// Draws averaged (torchreid: 10).
    pub repeats: usize,
    /// Seed of the draws (each query gets its own stream, so results do not depend on threads).
    pub seed: u64,
}

impl Protocol {
    /// CUHK03 (classic split): single-gallery-shot CMC over 10 draws, no junk identity.
    pub fn cuhk03(seed: u64) -> Self {
        Self {
            max_rank: 50,
            junk_pid: None,
            single_gallery_shot: Some(SingleGalleryShot { repeats: 10, seed }),
        }
    }

    /// Market-1501's: CMC to rank 50, junk identity -1.
    pub fn market1501() -> Self {
        Self {
            max_rank: 50,
            junk_pid: Some(crate::naming::JUNK_PID),
            single_gallery_shot: None,
        }
    }
}

/// The numbers of one evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RankMetrics {
    /// `cmc[k - 1]` is Rank-k accuracy, for k up to the protocol's `max_rank`.
    pub cmc: Vec<f64>,
    /// Mean average precision over valid queries.
    pub map: f64,
    /// Mean inverse negative penalty over valid queries.
    pub minp: f64,
    /// Queries with at least one true match in the gallery.
    pub valid_queries: usize,
    /// Queries skipped because no true match was left.
    pub skipped_queries: usize,
}

impl RankMetrics {
    /// Rank-k accuracy (k from 1), or `None` beyond the computed curve.
    pub fn rank(&self, k: usize) -> Option<f64> {
        k.checked_sub(1).and_then(|i| self.cmc.get(i)).copied()
    }
}

/// Inputs that cannot be evaluated. Never a wrong number instead.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EvalError {
    #[error("the query set is empty")]
    EmptyQuery,
    #[error("the gallery is empty")]
    EmptyGallery,
    #[error("{side}: {pids} identities but {camids} camera labels")]
    LabelCount {
        side: &'static str,
        pids: usize,
        camids: usize,
    },
    #[error("the distance matrix has {actual} values, expected {queries} x {gallery} = {}", queries * gallery)]
    Shape {
        actual: usize,
        queries: usize,
        gallery: usize,
    },
    #[error("distance from query {query} to gallery sample {gallery} is not finite ({value})")]
    NotFinite {
        query: usize,
        gallery: usize,
        value: f32,
    },
    #[error("max_rank must be at least 1")]
    ZeroMaxRank,
    #[error("no query has a true match in the gallery ({0} queries, all skipped)")]
    NoValidQuery(usize),
}

/// One query's metrics (a query without a true match has none).
#[derive(Debug, Clone, PartialEq)]
pub struct QueryMetrics {
    /// Clipped cumulative matches for ranks 1..=max_rank (1 from the first true match on).
    pub cmc: Vec<f64>,
    /// Average precision.
    pub ap: f64,
    /// Inverse negative penalty: true matches / rank of the last one.
    pub inp: f64,
}

/// SplitMix64: a tiny, well-mixed generator for the single-gallery-shot draws.
struct SplitMix(u64);

impl SplitMix {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) % n as u64) as usize
    }
}

/// CMC from one image per gallery identity, averaged over draws. `kept` holds the identities of
/// the kept gallery samples in rank order.
fn single_shot_cmc(
    kept: &[i64],
    q_pid: i64,
    max_rank: usize,
    shot: SingleGalleryShot,
    query: usize,
) -> Vec<f64> {
    let mut by_pid: std::collections::BTreeMap<i64, Vec<usize>> = Default::default();
    for (rank, &pid) in kept.iter().enumerate() {
        by_pid.entry(pid).or_default().push(rank);
    }
    let mut rng = SplitMix(shot.seed ^ (query as u64).wrapping_mul(0xA076_1D64_78BD_642F));
    let mut cmc = vec![0f64; max_rank];
    for _ in 0..shot.repeats.max(1) {
        let mut drawn: Vec<usize> = by_pid
            .values()
            .map(|ranks| ranks[rng.below(ranks.len())])
            .collect();
        drawn.sort_unstable();
        let first_match = drawn.iter().position(|&r| kept[r] == q_pid);
        for (k, c) in cmc.iter_mut().enumerate() {
            if first_match.is_some_and(|m| m <= k) {
                *c += 1.0;
            }
        }
    }
    cmc.iter_mut()
        .for_each(|c| *c /= shot.repeats.max(1) as f64);
    cmc
}

/// The protocol's junk rule: a gallery sample of the query's identity seen by the query's own
/// camera, or of the protocol's junk identity, is left out of the query's ranking.
pub fn is_junk(pid: i64, cam: i64, q_pid: i64, q_cam: i64, junk_pid: Option<i64>) -> bool {
    (pid == q_pid && cam == q_cam) || junk_pid == Some(pid)
}

/// One query's result; `None` when it has no valid match (skipped, as the references do).
fn evaluate_query(
    query_index: usize,
    row: &[f32],
    q_pid: i64,
    q_cam: i64,
    gallery: &Labels,
    protocol: &Protocol,
    max_rank: usize,
) -> Option<QueryMetrics> {
    if protocol.single_gallery_shot.is_some() {
        evaluate_query_sorted(query_index, row, q_pid, q_cam, gallery, protocol, max_rank)
    } else {
        evaluate_query_counted(row, q_pid, q_cam, gallery, protocol, max_rank)
    }
}

/// The same numbers as [`evaluate_query_sorted`] without sorting the gallery: only the rank of
/// each true match among the kept samples matters, and that is a count of the kept samples
/// ordered before it, `(distance, index)` being the order. O(gallery x log(matches)).
fn evaluate_query_counted(
    row: &[f32],
    q_pid: i64,
    q_cam: i64,
    gallery: &Labels,
    protocol: &Protocol,
    max_rank: usize,
) -> Option<QueryMetrics> {
    let junk = |g: usize| {
        let (pid, cam) = (gallery.pids[g], gallery.camids[g]);
        is_junk(pid, cam, q_pid, q_cam, protocol.junk_pid)
    };
    let key = |g: usize| (row[g], g);
    let before = |a: (f32, usize), b: (f32, usize)| a.0 < b.0 || (a.0 == b.0 && a.1 < b.1);
    let mut matches: Vec<usize> = (0..row.len())
        .filter(|&g| gallery.pids[g] == q_pid && !junk(g))
        .collect();
    if matches.is_empty() {
        return None;
    }
    matches.sort_by(|&a, &b| row[a].total_cmp(&row[b]).then(a.cmp(&b)));
    let last = key(matches[matches.len() - 1]);
    // ahead[p]: kept non-matches ordered after match p - 1 and before match p.
    let mut ahead = vec![0usize; matches.len()];
    for g in 0..row.len() {
        if gallery.pids[g] == q_pid || junk(g) || !before(key(g), last) {
            continue;
        }
        let p = matches.partition_point(|&m| before(key(m), key(g)));
        ahead[p] += 1;
    }
    let (mut rank, mut precision_sum, mut first_rank) = (0usize, 0f64, 0usize);
    for (i, n) in ahead.iter().enumerate() {
        rank += n + 1; // 1-based rank of match i among the kept samples
        precision_sum += (i + 1) as f64 / rank as f64;
        if i == 0 {
            first_rank = rank;
        }
    }
    let cmc = (1..=max_rank)
        .map(|k| if first_rank <= k { 1.0 } else { 0.0 })
        .collect();
    Some(QueryMetrics {
        cmc,
        ap: precision_sum / matches.len() as f64,
        inp: matches.len() as f64 / rank as f64,
    })
}

/// The references' way: sort the gallery by distance (stable, so ties keep gallery order),
/// drop junk, walk the ranked list. Needed for single-gallery-shot draws.
fn evaluate_query_sorted(
    query_index: usize,
    row: &[f32],
    q_pid: i64,
    q_cam: i64,
    gallery: &Labels,
    protocol: &Protocol,
    max_rank: usize,
) -> Option<QueryMetrics> {
    let mut order: Vec<usize> = (0..row.len()).collect();
    // Stable: equal distances keep gallery order.
    order.sort_by(|&a, &b| row[a].total_cmp(&row[b]));
    let mut cmc = Vec::with_capacity(max_rank);
    let (mut found, mut kept, mut precision_sum, mut last_match_rank) =
        (0usize, 0usize, 0f64, 0usize);
    let mut kept_pids = Vec::new();
    for g in order {
        let (pid, cam) = (gallery.pids[g], gallery.camids[g]);
        if is_junk(pid, cam, q_pid, q_cam, protocol.junk_pid) {
            continue;
        }
        if protocol.single_gallery_shot.is_some() {
            kept_pids.push(pid);
        }
        kept += 1;
        if pid == q_pid {
            found += 1;
            precision_sum += found as f64 / kept as f64;
            last_match_rank = kept;
        }
        if kept <= max_rank {
            cmc.push(if found > 0 { 1.0 } else { 0.0 });
        }
    }
    if found == 0 {
        return None;
    }
    // A gallery shorter than max_rank after removals: the curve stays at its last value.
    cmc.resize(max_rank, 1.0);
    if let Some(shot) = protocol.single_gallery_shot {
        cmc = single_shot_cmc(&kept_pids, q_pid, max_rank, shot, query_index);
    }
    Some(QueryMetrics {
        cmc,
        ap: precision_sum / found as f64,
        inp: found as f64 / last_match_rank as f64,
    })
}

/// Each query's metrics, in query order (`None`: no true match, skipped by [`evaluate`]).
pub fn evaluate_queries(
    distances: &[f32],
    query: Labels,
    gallery: Labels,
    protocol: &Protocol,
) -> Result<Vec<Option<QueryMetrics>>, EvalError> {
    let (nq, ng) = (query.pids.len(), gallery.pids.len());
    if nq == 0 {
        return Err(EvalError::EmptyQuery);
    }
    if ng == 0 {
        return Err(EvalError::EmptyGallery);
    }
    for (side, labels) in [("query", &query), ("gallery", &gallery)] {
        if labels.pids.len() != labels.camids.len() {
            return Err(EvalError::LabelCount {
                side,
                pids: labels.pids.len(),
                camids: labels.camids.len(),
            });
        }
    }
    if distances.len() != nq * ng {
        return Err(EvalError::Shape {
            actual: distances.len(),
            queries: nq,
            gallery: ng,
        });
    }
    if let Some(i) = distances.iter().position(|d| !d.is_finite()) {
        return Err(EvalError::NotFinite {
            query: i / ng,
            gallery: i % ng,
            value: distances[i],
        });
    }
    if protocol.max_rank == 0 {
        return Err(EvalError::ZeroMaxRank);
    }
    let max_rank = protocol.max_rank.min(ng);
    let mut per_query: Vec<Option<QueryMetrics>> = vec![None; nq];
    for_each_chunk_mut(&mut per_query, 64, |block, out| {
        for (r, result) in out.iter_mut().enumerate() {
            let q = block * 64 + r;
            *result = evaluate_query(
                q,
                &distances[q * ng..(q + 1) * ng],
                query.pids[q],
                query.camids[q],
                &gallery,
                protocol,
                max_rank,
            );
        }
    });
    Ok(per_query)
}

/// The gallery as the protocol ranks it for one query: gallery indices by increasing distance
/// (ties: gallery order) with the query's junk removed, the first `k` of them.
pub fn ranked_gallery(
    row: &[f32],
    q_pid: i64,
    q_cam: i64,
    gallery: Labels,
    junk_pid: Option<i64>,
    k: usize,
) -> Vec<usize> {
    let mut kept: Vec<usize> = (0..row.len().min(gallery.pids.len()))
        .filter(|&g| {
            let (pid, cam) = (gallery.pids[g], gallery.camids[g]);
            !is_junk(pid, cam, q_pid, q_cam, junk_pid)
        })
        .collect();
    let cmp = |a: &usize, b: &usize| row[*a].total_cmp(&row[*b]).then(a.cmp(b));
    if k < kept.len() {
        kept.select_nth_unstable_by(k, cmp);
        kept.truncate(k);
    }
    kept.sort_by(cmp);
    kept
}

/// A query with a low AP and the start of its ranked list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HardQuery {
    /// Query row.
    pub query: usize,
    pub ap: f64,
    /// The first gallery rows as [`ranked_gallery`] ranks them.
    pub ranked: Vec<usize>,
}

/// The `n` valid queries with the lowest AP (ties: query order), worst first, each with its
/// first `shown` results: what `reid eval --visualize` draws and the browser's Evaluate
/// section lists.
pub fn worst_queries(
    distances: &[f32],
    per_query: &[Option<QueryMetrics>],
    query: Labels,
    gallery: Labels,
    junk_pid: Option<i64>,
    n: usize,
    shown: usize,
) -> Vec<HardQuery> {
    let ng = gallery.pids.len();
    lowest_ap(per_query, n)
        .into_iter()
        .map(|(q, ap)| HardQuery {
            query: q,
            ap,
            ranked: ranked_gallery(
                &distances[q * ng..(q + 1) * ng],
                query.pids[q],
                query.camids[q],
                gallery,
                junk_pid,
                shown,
            ),
        })
        .collect()
}

/// The `n` valid queries with the lowest AP (ties: query order), worst first, with their AP:
/// the queries of [`worst_queries`], for a caller that keeps no whole distance matrix.
pub fn lowest_ap(per_query: &[Option<QueryMetrics>], n: usize) -> Vec<(usize, f64)> {
    let mut valid: Vec<(usize, f64)> = per_query
        .iter()
        .enumerate()
        .filter_map(|(q, m)| m.as_ref().map(|m| (q, m.ap)))
        .collect();
    valid.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
    valid.truncate(n);
    valid
}

/// Evaluates a `queries x gallery` distance matrix (row-major, smaller is closer).
pub fn evaluate(
    distances: &[f32],
    query: Labels,
    gallery: Labels,
    protocol: &Protocol,
) -> Result<RankMetrics, EvalError> {
    summarize(&evaluate_queries(distances, query, gallery, protocol)?)
}

/// Averages per-query metrics (as [`evaluate_queries`] gives them) into CMC, mAP and mINP over
/// the queries that have a true match; the others are counted as skipped.
pub fn summarize(per_query: &[Option<QueryMetrics>]) -> Result<RankMetrics, EvalError> {
    let results: Vec<&QueryMetrics> = per_query.iter().flatten().collect();
    let valid = results.len();
    if valid == 0 {
        return Err(EvalError::NoValidQuery(per_query.len()));
    }
    let mut cmc = vec![0f64; results[0].cmc.len()];
    for r in &results {
        for (acc, v) in cmc.iter_mut().zip(&r.cmc) {
            *acc += v;
        }
    }
    cmc.iter_mut().for_each(|c| *c /= valid as f64);
    Ok(RankMetrics {
        cmc,
        map: results.iter().map(|r| r.ap).sum::<f64>() / valid as f64,
        minp: results.iter().map(|r| r.inp).sum::<f64>() / valid as f64,
        valid_queries: valid,
        skipped_queries: per_query.len() - valid,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator for property tests (no extra dependency).
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            self.0 >> 33
        }
        fn below(&mut self, n: u64) -> i64 {
            (self.next() % n) as i64
        }
        fn unit(&mut self) -> f32 {
            (self.next() % 1_000_000) as f32 / 1_000_000.0
        }
    }

    struct Case {
        d: Vec<f32>,
        qp: Vec<i64>,
        qc: Vec<i64>,
        gp: Vec<i64>,
        gc: Vec<i64>,
    }

    fn random_case(seed: u64) -> Case {
        let mut r = Lcg(seed);
        let (nq, ng) = (5 + r.below(10) as usize, 20 + r.below(40) as usize);
        let gp: Vec<i64> = (0..ng).map(|_| r.below(8)).collect();
        let gc: Vec<i64> = (0..ng).map(|_| 1 + r.below(4)).collect();
        let qp: Vec<i64> = (0..nq).map(|_| 1 + r.below(7)).collect();
        let qc: Vec<i64> = (0..nq).map(|_| 1 + r.below(4)).collect();
        let d = (0..nq * ng).map(|_| r.unit()).collect();
        Case { d, qp, qc, gp, gc }
    }

    /// The query's and the gallery's labels of a case.
    fn labels(c: &Case) -> (Labels<'_>, Labels<'_>) {
        (
            Labels {
                pids: &c.qp,
                camids: &c.qc,
            },
            Labels {
                pids: &c.gp,
                camids: &c.gc,
            },
        )
    }

    fn eval(c: &Case, max_rank: usize) -> Result<RankMetrics, EvalError> {
        let (query, gallery) = labels(c);
        evaluate(
            &c.d,
            query,
            gallery,
            &Protocol {
                max_rank,
                junk_pid: Some(-1),
                single_gallery_shot: None,
            },
        )
    }

    #[test]
    fn counting_ranks_equals_sorting_the_gallery_even_with_ties() {
        for seed in 0..200 {
            let mut c = random_case(seed);
            // Few distinct distances: most samples tie with others.
            c.d.iter_mut().for_each(|d| *d = (*d * 4.0).floor());
            let ng = c.gp.len();
            let gallery = Labels {
                pids: &c.gp,
                camids: &c.gc,
            };
            for junk_pid in [None, Some(0)] {
                let protocol = Protocol {
                    max_rank: 7,
                    junk_pid,
                    single_gallery_shot: None,
                };
                for q in 0..c.qp.len() {
                    let row = &c.d[q * ng..(q + 1) * ng];
                    let (pid, cam) = (c.qp[q], c.qc[q]);
                    let fast = evaluate_query_counted(row, pid, cam, &gallery, &protocol, 7);
                    let slow = evaluate_query_sorted(q, row, pid, cam, &gallery, &protocol, 7);
                    match (fast, slow) {
                        (Some(a), Some(b)) => {
                            assert_eq!(a.cmc, b.cmc, "seed {seed} query {q}");
                            assert!((a.ap - b.ap).abs() < 1e-12 && (a.inp - b.inp).abs() < 1e-12);
                        }
                        (a, b) => assert_eq!(a.is_none(), b.is_none(), "seed {seed} query {q}"),
                    }
                }
            }
        }
    }

    #[test]
    fn worst_queries_are_the_lowest_ap_first_ties_in_query_order_skipping_the_invalid() {
        let c = random_case(3);
        let protocol = Protocol::market1501();
        let (query, gallery) = labels(&c);
        let per_query = evaluate_queries(&c.d, query, gallery, &protocol).unwrap();
        let valid = per_query.iter().flatten().count();
        let all = worst_queries(&c.d, &per_query, query, gallery, Some(-1), 100, 4);
        assert_eq!(all.len(), valid);
        for pair in all.windows(2) {
            assert!(
                pair[0].ap < pair[1].ap
                    || (pair[0].ap == pair[1].ap && pair[0].query < pair[1].query)
            );
        }
        let ng = c.gp.len();
        for w in &all {
            assert_eq!(Some(w.ap), per_query[w.query].as_ref().map(|m| m.ap));
            let row = &c.d[w.query * ng..(w.query + 1) * ng];
            let (pid, cam) = (c.qp[w.query], c.qc[w.query]);
            assert_eq!(
                w.ranked,
                ranked_gallery(row, pid, cam, gallery, Some(-1), 4)
            );
        }
        let two = worst_queries(&c.d, &per_query, query, gallery, Some(-1), 2, 4);
        assert_eq!(two, all[..2.min(valid)].to_vec());
    }

    #[test]
    fn ranked_gallery_drops_junk_and_orders_ties_by_index() {
        let row = [0.5, 0.1, 0.5, 0.0, 0.2, 0.5];
        let (pids, cams) = ([1, 2, 3, 1, -1, 4], [1, 1, 1, 2, 1, 1]);
        let gallery = Labels {
            pids: &pids,
            camids: &cams,
        };
        // Query: identity 1, camera 2 -> sample 3 is junk (same identity, same camera); 4 is -1.
        assert_eq!(
            ranked_gallery(&row, 1, 2, gallery, Some(-1), 10),
            vec![1, 0, 2, 5]
        );
        assert_eq!(ranked_gallery(&row, 1, 2, gallery, Some(-1), 2), vec![1, 0]);
        assert_eq!(ranked_gallery(&row, 1, 1, gallery, None, 3), vec![3, 1, 4]);
    }

    #[test]
    fn map_is_one_when_every_true_match_ranks_first() {
        for seed in 0..50 {
            let mut c = random_case(seed);
            let ng = c.gp.len();
            for q in 0..c.qp.len() {
                for g in 0..ng {
                    let is_match = c.gp[g] == c.qp[q];
                    c.d[q * ng + g] = if is_match {
                        0.1 * c.d[q * ng + g]
                    } else {
                        1.0 + c.d[q * ng + g]
                    };
                }
            }
            if let Ok(m) = eval(&c, 10) {
                assert!(
                    (m.map - 1.0).abs() < 1e-12 && (m.minp - 1.0).abs() < 1e-12,
                    "seed {seed}"
                );
                assert_eq!(m.rank(1), Some(1.0));
            }
        }
    }

    #[test]
    fn metrics_do_not_depend_on_gallery_order() {
        for seed in 0..30 {
            let c = random_case(seed);
            let ng = c.gp.len();
            let perm: Vec<usize> = (0..ng).rev().collect();
            let shuffled = Case {
                d: c.d
                    .chunks(ng)
                    .flat_map(|row| perm.iter().map(move |&g| row[g]))
                    .collect(),
                qp: c.qp.clone(),
                qc: c.qc.clone(),
                gp: perm.iter().map(|&g| c.gp[g]).collect(),
                gc: perm.iter().map(|&g| c.gc[g]).collect(),
            };
            match (eval(&c, 20), eval(&shuffled, 20)) {
                (Ok(a), Ok(b)) => {
                    assert!((a.map - b.map).abs() < 1e-12 && (a.minp - b.minp).abs() < 1e-12);
                    assert_eq!(a.cmc, b.cmc);
                }
                (a, b) => assert_eq!(a.is_err(), b.is_err()),
            }
        }
    }

    #[test]
    fn rank_k_is_monotone_and_ends_within_bounds() {
        for seed in 0..50 {
            if let Ok(m) = eval(&random_case(seed), 50) {
                assert!(
                    m.cmc.windows(2).all(|w| w[0] <= w[1]),
                    "seed {seed}: {:?}",
                    m.cmc
                );
                assert!(m.cmc.iter().all(|&v| (0.0..=1.0).contains(&v)));
                assert!(m.minp > 0.0 && m.minp <= 1.0 && m.map > 0.0 && m.map <= 1.0);
            }
        }
    }

    #[test]
    fn junk_and_same_camera_matches_are_ignored() {
        // Query: identity 1, camera 1. Gallery: same id same cam (removed), junk (removed),
        // a distractor, then the true match from camera 2.
        let d = [0.1, 0.2, 0.3, 0.4];
        let m = evaluate(
            &d,
            Labels {
                pids: &[1],
                camids: &[1],
            },
            Labels {
                pids: &[1, -1, 0, 1],
                camids: &[1, 2, 2, 2],
            },
            &Protocol {
                max_rank: 2,
                junk_pid: Some(-1),
                single_gallery_shot: None,
            },
        )
        .unwrap();
        assert_eq!(m.cmc, vec![0.0, 1.0]);
        assert_eq!((m.map, m.minp), (0.5, 0.5));
    }

    #[test]
    fn queries_without_a_match_are_skipped_and_counted() {
        let m = evaluate(
            &[0.1, 0.2, 0.3, 0.4],
            Labels {
                pids: &[1, 7],
                camids: &[1, 1],
            },
            Labels {
                pids: &[2, 1],
                camids: &[2, 2],
            },
            &Protocol {
                max_rank: 2,
                junk_pid: None,
                single_gallery_shot: None,
            },
        )
        .unwrap();
        assert_eq!((m.valid_queries, m.skipped_queries), (1, 1));
    }

    #[test]
    fn bad_inputs_are_errors_not_numbers() {
        let q = Labels {
            pids: &[1],
            camids: &[1],
        };
        let g = Labels {
            pids: &[1, 2],
            camids: &[2, 2],
        };
        let p = Protocol::market1501();
        assert!(matches!(
            evaluate(&[0.1, f32::NAN], q, g, &p),
            Err(EvalError::NotFinite { gallery: 1, .. })
        ));
        assert!(matches!(
            evaluate(&[0.1], q, g, &p),
            Err(EvalError::Shape { .. })
        ));
        let empty = Labels {
            pids: &[],
            camids: &[],
        };
        assert_eq!(evaluate(&[], empty, g, &p), Err(EvalError::EmptyQuery));
        assert_eq!(evaluate(&[], q, empty, &p), Err(EvalError::EmptyGallery));
        let uneven = Labels {
            pids: &[1, 2],
            camids: &[2],
        };
        assert!(matches!(
            evaluate(&[0.1, 0.2], q, uneven, &p),
            Err(EvalError::LabelCount { .. })
        ));
        let same_cam = Labels {
            pids: &[1, 2],
            camids: &[1, 1],
        };
        assert_eq!(
            evaluate(&[0.1, 0.2], q, same_cam, &p),
            Err(EvalError::NoValidQuery(1))
        );
    }
}

#[cfg(test)]
mod single_shot_tests {
    use super::*;

    #[test]
    fn single_shot_draws_are_reproducible_and_give_a_monotone_curve() {
        // Identity 2 has three gallery images, one of them ranked first.
        let d = [0.1, 0.2, 0.3, 0.4, 0.5];
        let gallery = Labels {
            pids: &[2, 1, 2, 3, 2],
            camids: &[2, 2, 2, 2, 2],
        };
        let query = Labels {
            pids: &[1],
            camids: &[1],
        };
        let p = Protocol::cuhk03(42);
        let a = evaluate(&d, query, gallery, &p).unwrap();
        assert_eq!(a, evaluate(&d, query, gallery, &p).unwrap());
        assert!(a.cmc.windows(2).all(|w| w[0] <= w[1]));
        // The match is behind identity 2's first image in every draw where that image is drawn.
        assert!(a.cmc[0] < 1.0 && a.cmc[1] == 1.0, "{:?}", a.cmc);
    }
}
