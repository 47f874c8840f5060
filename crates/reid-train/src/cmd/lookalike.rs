//! Look-alike confusion on the synthetic world (`reid synth` writes `attributes.json`, where an
//! identity made as a look-alike names the one whose clothing colours it copies): of the
//! queries that have a look-alike in the gallery and whose best match is wrong, how often that
//! wrong match is a look-alike, against how often a wrong gallery picture picked at random would
//! be one. A share well above chance says the look-alikes do confuse the features.

use std::collections::HashMap;

use anyhow::Context;
use reid_core::eval::is_junk;
use reid_core::{ranked_gallery, Labels};

/// What [`confusion`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct Confusion {
    /// Queries with at least one look-alike identity among their gallery candidates.
    pub queries: usize,
    /// Of those, the ones whose best match is another person.
    pub errors: usize,
    /// Of the errors, the ones whose best match is a look-alike.
    pub on_lookalike: usize,
    /// Mean over the errors of the share of wrong candidates that are look-alikes: the rate a
    /// random wrong match would have.
    pub chance: f64,
}

/// Each identity's look-alike family: the identity at the start of its `lookalike_of` chain.
pub fn families(attributes_json: &[u8]) -> anyhow::Result<HashMap<i64, i64>> {
    let list: Vec<serde_json::Value> =
        serde_json::from_slice(attributes_json).context("attributes.json is not a JSON list")?;
    let parent: HashMap<i64, Option<i64>> = list
        .iter()
        .map(|a| {
            let pid = a["pid"].as_i64().context("an identity without a pid")?;
            Ok((pid, a["lookalike_of"].as_i64()))
        })
        .collect::<anyhow::Result<_>>()?;
    Ok(parent
        .keys()
        .map(|&pid| {
            let mut root = pid;
            // A chain longer than the list would be a cycle: stop there.
            for _ in 0..parent.len() {
                match parent.get(&root).copied().flatten() {
                    Some(up) => root = up,
                    None => break,
                }
            }
            (pid, root)
        })
        .collect())
}

/// Counts, over the queries of a `[queries x gallery]` distance matrix, how often the best
/// wrong match is a look-alike (same family, other identity). Candidates follow the protocol
/// (`junk_pid` and same identity and camera removed).
pub fn confusion(
    distances: &[f32],
    query: Labels,
    gallery: Labels,
    junk_pid: Option<i64>,
    family: &HashMap<i64, i64>,
) -> Confusion {
    let ng = gallery.pids.len();
    let mut out = Confusion {
        queries: 0,
        errors: 0,
        on_lookalike: 0,
        chance: 0.0,
    };
    let lookalike = |a: i64, b: i64| {
        a != b && matches!((family.get(&a), family.get(&b)), (Some(x), Some(y)) if x == y)
    };
    for (q, (&pid, &cam)) in query.pids.iter().zip(query.camids).enumerate() {
        let row = &distances[q * ng..(q + 1) * ng];
        let (mut wrong, mut similar) = (0usize, 0usize);
        for (&p, &c) in gallery.pids.iter().zip(gallery.camids) {
            if p != pid && !is_junk(p, c, pid, cam, junk_pid) {
                wrong += 1;
                similar += usize::from(lookalike(pid, p));
            }
        }
        if similar == 0 {
            continue;
        }
        out.queries += 1;
        let best = gallery.pids[ranked_gallery(row, pid, cam, gallery, junk_pid, 1)[0]];
        if best != pid {
            out.errors += 1;
            out.on_lookalike += usize::from(lookalike(pid, best));
            out.chance += similar as f64 / wrong as f64;
        }
    }
    if out.errors > 0 {
        out.chance /= out.errors as f64;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_follow_chains_and_survive_cycles() {
        let json = br#"[{"pid": 1, "lookalike_of": null}, {"pid": 2, "lookalike_of": 1},
            {"pid": 3, "lookalike_of": 2}, {"pid": 4, "lookalike_of": null},
            {"pid": 5, "lookalike_of": 6}, {"pid": 6, "lookalike_of": 5}]"#;
        let f = families(json).unwrap();
        assert_eq!((f[&1], f[&2], f[&3], f[&4]), (1, 1, 1, 4));
        assert!(f.contains_key(&5) && f.contains_key(&6));
        assert!(families(b"{}").is_err());
    }

    #[test]
    fn errors_on_a_lookalike_are_counted_against_chance() {
        // Family {1, 2}; 3 and 4 are on their own. Gallery: 2, 3, 4, 1 (camera 2).
        let family: HashMap<i64, i64> = [(1, 1), (2, 1), (3, 3), (4, 4)].into();
        let (gp, gc) = (vec![2, 3, 4, 1], vec![2, 2, 2, 2]);
        let gallery = Labels {
            pids: &gp,
            camids: &gc,
        };
        // Query 1 ranks its look-alike 2 first (an error on a look-alike); query 3 has no
        // look-alike in the gallery and is not counted; query 2 ranks person 1 first (right).
        let (qp, qc) = (vec![1, 3, 2], vec![1, 1, 1]);
        let query = Labels {
            pids: &qp,
            camids: &qc,
        };
        let distances = [
            0.1, 0.5, 0.6, 0.2, // query 1
            0.9, 0.1, 0.5, 0.4, // query 3
            0.3, 0.5, 0.6, 0.9, // query 2: its own identity is 2 -> the first column
        ];
        let c = confusion(&distances, query, gallery, Some(-1), &family);
        assert_eq!((c.queries, c.errors, c.on_lookalike), (2, 1, 1));
        // Query 1's wrong candidates: 2, 3, 4, of which one is a look-alike.
        assert!((c.chance - 1.0 / 3.0).abs() < 1e-12);
    }
}
