//! Minimum-cost assignment between two sets (the Hungarian method in its shortest-augmenting-path
//! form, O(n^2 m)): the tracker's data association and the MOT metrics' matching both use it.
//!
//! Pairs that may not be matched (a box too far away, a gate that says no) are given as `None`.
//! As in py-motmetrics, such pairs are first given a cost so large that a solution uses as few
//! of them as it can, and are then dropped: the result pairs as many rows as the allowed pairs
//! permit, and among those matchings it has the least total cost.

/// A minimum-cost matching of `rows` rows to `cols` columns: `(row, column)` pairs sorted by
/// row, each row and each column at most once. `cost(row, column)` is `None` where the pair is
/// not allowed; allowed costs must be finite.
pub fn min_cost_assignment(
    rows: usize,
    cols: usize,
    cost: impl Fn(usize, usize) -> Option<f64>,
) -> Vec<(usize, usize)> {
    if rows == 0 || cols == 0 {
        return Vec::new();
    }
    // Work with n <= m: rows of the solver are the smaller side.
    let transposed = rows > cols;
    let (n, m) = if transposed {
        (cols, rows)
    } else {
        (rows, cols)
    };
    let at = |i: usize, j: usize| {
        if transposed {
            cost(j, i)
        } else {
            cost(i, j)
        }
    };
    let allowed: Vec<Option<f64>> = (0..n)
        .flat_map(|i| (0..m).map(move |j| (i, j)))
        .map(|(i, j)| at(i, j).filter(|c| c.is_finite()))
        .collect();
    let Some(largest) = allowed.iter().flatten().map(|c| c.abs()).reduce(f64::max) else {
        return Vec::new();
    };
    // One forbidden pair must cost more than any n allowed ones can save.
    let forbidden = 2.0 * n as f64 * (largest + 1.0) + 1.0;
    let a = |i: usize, j: usize| allowed[i * m + j].unwrap_or(forbidden);

    // Potentials u (rows) and v (columns), 1-based with a virtual column 0; p[j] is the row
    // matched to column j (0: none); way[j] the previous column on the augmenting path.
    let mut u = vec![0.0f64; n + 1];
    let mut v = vec![0.0f64; m + 1];
    let mut p = vec![0usize; m + 1];
    let mut way = vec![0usize; m + 1];
    for i in 1..=n {
        p[0] = i;
        let mut j0 = 0usize;
        let mut min_to = vec![f64::INFINITY; m + 1];
        let mut used = vec![false; m + 1];
        loop {
            used[j0] = true;
            let i0 = p[j0];
            let mut delta = f64::INFINITY;
            let mut j1 = 0usize;
            for j in 1..=m {
                if used[j] {
                    continue;
                }
                let reduced = a(i0 - 1, j - 1) - u[i0] - v[j];
                if reduced < min_to[j] {
                    min_to[j] = reduced;
                    way[j] = j0;
                }
                if min_to[j] < delta {
                    delta = min_to[j];
                    j1 = j;
                }
            }
            for j in 0..=m {
                if used[j] {
                    u[p[j]] += delta;
                    v[j] -= delta;
                } else {
                    min_to[j] -= delta;
                }
            }
            j0 = j1;
            if p[j0] == 0 {
                break;
            }
        }
        // Flip the augmenting path.
        loop {
            let j1 = way[j0];
            p[j0] = p[j1];
            j0 = j1;
            if j0 == 0 {
                break;
            }
        }
    }
    let mut pairs: Vec<(usize, usize)> = (1..=m)
        .filter(|&j| p[j] != 0)
        .map(|j| (p[j] - 1, j - 1))
        .filter(|&(i, j)| allowed[i * m + j].is_some())
        .map(|(i, j)| if transposed { (j, i) } else { (i, j) })
        .collect();
    pairs.sort_unstable();
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every way to give each row of the smaller side its own column, scored as the solver
    /// scores: more allowed pairs first, then less cost.
    fn brute_force(costs: &[Vec<Option<f64>>]) -> (usize, f64) {
        let (rows, cols) = (costs.len(), costs[0].len());
        let mut best = (0usize, 0.0f64);
        let mut seen = false;
        fn walk(
            costs: &[Vec<Option<f64>>],
            row: usize,
            taken: &mut Vec<bool>,
            acc: (usize, f64),
            best: &mut (usize, f64),
            seen: &mut bool,
        ) {
            let (rows, cols) = (costs.len(), costs[0].len());
            let free_rows = rows - row;
            let free_cols = taken.iter().filter(|t| !**t).count();
            if row == rows {
                let better = !*seen || acc.0 > best.0 || (acc.0 == best.0 && acc.1 < best.1 - 1e-9);
                if better {
                    *best = acc;
                    *seen = true;
                }
                return;
            }
            // A row may stay unmatched only when there are more rows than columns left.
            if free_rows > free_cols {
                walk(costs, row + 1, taken, acc, best, seen);
            }
            for c in 0..cols {
                if !taken[c] {
                    taken[c] = true;
                    let next = match costs[row][c] {
                        Some(x) => (acc.0 + 1, acc.1 + x),
                        None => acc,
                    };
                    walk(costs, row + 1, taken, next, best, seen);
                    taken[c] = false;
                }
            }
        }
        walk(
            costs,
            0,
            &mut vec![false; cols],
            (0, 0.0),
            &mut best,
            &mut seen,
        );
        let _ = rows;
        best
    }

    #[test]
    fn the_assignment_is_the_cheapest_of_the_largest_matchings() {
        // A small deterministic generator, so failures reproduce.
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        for case in 0..400 {
            let rows = 1 + (next() * 5.0) as usize;
            let cols = 1 + (next() * 5.0) as usize;
            let forbid = next() * 0.6;
            let costs: Vec<Vec<Option<f64>>> = (0..rows)
                .map(|_| {
                    (0..cols)
                        .map(|_| {
                            let c = (next() * 10.0).round() / 2.0 - 1.0; // ties and negatives
                            (next() >= forbid).then_some(c)
                        })
                        .collect()
                })
                .collect();
            let pairs = min_cost_assignment(rows, cols, |r, c| costs[r][c]);
            let mut rows_seen = vec![false; rows];
            let mut cols_seen = vec![false; cols];
            for &(r, c) in &pairs {
                assert!(!rows_seen[r] && !cols_seen[c], "case {case}: reused");
                rows_seen[r] = true;
                cols_seen[c] = true;
                assert!(costs[r][c].is_some(), "case {case}: forbidden pair used");
            }
            let total: f64 = pairs.iter().map(|&(r, c)| costs[r][c].unwrap()).sum();
            let (count, cost) = brute_force(&costs);
            assert_eq!(pairs.len(), count, "case {case}: {costs:?}");
            assert!(
                (total - cost).abs() < 1e-9,
                "case {case}: {total} vs {cost}"
            );
        }
    }

    #[test]
    fn nothing_to_match_gives_no_pairs() {
        assert!(min_cost_assignment(0, 3, |_, _| Some(1.0)).is_empty());
        assert!(min_cost_assignment(2, 2, |_, _| None).is_empty());
        assert!(min_cost_assignment(2, 2, |_, _| Some(f64::NAN)).is_empty());
        assert_eq!(
            min_cost_assignment(3, 1, |r, _| Some(r as f64)),
            vec![(0, 0)]
        );
    }
}
