//! The P x K identity sampler of metric learning: every batch holds P identities with K images
//! each, so that a batch-hard triplet loss finds positives and negatives for every anchor.
//!
//! An epoch visits every identity once, in a shuffled order, P at a time (the last batch is
//! dropped when fewer than P identities are left, as torchreid's `RandomIdentitySampler` and
//! fast-reid's `NaiveIdentitySampler` do). An identity with fewer than K images is drawn with
//! replacement, so one with a single image still fills its K places (its positive pairs are
//! then the same picture, which a triplet loss treats as distance 0). Everything follows from
//! the seed and the epoch number, so a resumed run sees the same batches.

use std::collections::BTreeMap;

use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SamplerError {
    #[error("a P x K batch needs P >= 2 identities and K >= 1 images each (got P = {p}, K = {k})")]
    BadShape { p: usize, k: usize },
    #[error("the training split has {found} identities, fewer than the P = {p} a batch needs")]
    TooFewIdentities { p: usize, found: usize },
}

/// Draws P x K batches of dataset indices.
#[derive(Debug, Clone)]
pub struct PkSampler {
    /// Image indices of each identity, identities in increasing label order.
    identities: Vec<Vec<usize>>,
    p: usize,
    k: usize,
    seed: u64,
}

impl PkSampler {
    /// `labels[i]` is the identity of image `i`.
    pub fn new<L: Ord + Copy>(
        labels: &[L],
        p: usize,
        k: usize,
        seed: u64,
    ) -> Result<Self, SamplerError> {
        if p < 2 || k == 0 {
            return Err(SamplerError::BadShape { p, k });
        }
        let mut by_identity: BTreeMap<L, Vec<usize>> = BTreeMap::new();
        for (i, label) in labels.iter().enumerate() {
            by_identity.entry(*label).or_default().push(i);
        }
        if by_identity.len() < p {
            return Err(SamplerError::TooFewIdentities {
                p,
                found: by_identity.len(),
            });
        }
        Ok(Self {
            identities: by_identity.into_values().collect(),
            p,
            k,
            seed,
        })
    }

    /// Batches in an epoch.
    pub fn batches_per_epoch(&self) -> usize {
        self.identities.len() / self.p
    }

    /// The batches of epoch `epoch` (0-based): each `P * K` indices, K consecutive indices per
    /// identity.
    pub fn epoch(&self, epoch: u64) -> Vec<Vec<usize>> {
        let mut rng =
            ChaCha8Rng::seed_from_u64(self.seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut order: Vec<usize> = (0..self.identities.len()).collect();
        order.shuffle(&mut rng);
        order
            .chunks_exact(self.p)
            .map(|ids| {
                ids.iter()
                    .flat_map(|&id| self.draw(&self.identities[id], &mut rng))
                    .collect()
            })
            .collect()
    }

    /// K images of one identity: without replacement when it has K or more, else with.
    fn draw(&self, images: &[usize], rng: &mut ChaCha8Rng) -> Vec<usize> {
        if images.len() >= self.k {
            images.choose_multiple(rng, self.k).copied().collect()
        } else {
            (0..self.k)
                .map(|_| images[rng.random_range(0..images.len())])
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_batch_holds_p_identities_with_k_images_each() {
        // 10 identities with 1 to 10 images.
        let labels: Vec<u32> = (0..10u32)
            .flat_map(|id| std::iter::repeat_n(id, id as usize + 1))
            .collect();
        let sampler = PkSampler::new(&labels, 4, 3, 7).unwrap();
        assert_eq!(sampler.batches_per_epoch(), 2);
        let mut seen_identities = std::collections::HashSet::new();
        for batch in sampler.epoch(0) {
            assert_eq!(batch.len(), 12);
            for group in batch.chunks(3) {
                let id = labels[group[0]];
                assert!(group.iter().all(|&i| labels[i] == id), "{group:?}");
                assert!(
                    seen_identities.insert(id),
                    "identity {id} twice in an epoch"
                );
                // Identities with 3 or more images give 3 different ones.
                if id >= 2 {
                    let mut g = group.to_vec();
                    g.sort_unstable();
                    g.dedup();
                    assert_eq!(g.len(), 3);
                }
            }
        }
        assert_eq!(seen_identities.len(), 8);
    }

    #[test]
    fn batches_follow_from_the_seed_and_the_epoch() {
        let labels: Vec<u32> = (0..40).map(|i| i % 8).collect();
        let a = PkSampler::new(&labels, 4, 4, 1).unwrap();
        let b = PkSampler::new(&labels, 4, 4, 1).unwrap();
        assert_eq!(a.epoch(3), b.epoch(3));
        assert_ne!(a.epoch(3), a.epoch(4));
        assert_ne!(
            a.epoch(3),
            PkSampler::new(&labels, 4, 4, 2).unwrap().epoch(3)
        );
    }

    #[test]
    fn a_single_image_identity_fills_its_places_and_bad_shapes_are_refused() {
        let labels = [5u32, 6, 6, 7];
        let sampler = PkSampler::new(&labels, 3, 4, 0).unwrap();
        let batch = &sampler.epoch(0)[0];
        let fives = batch.iter().filter(|&&i| i == 0).count();
        assert_eq!(fives, 4);
        assert_eq!(
            PkSampler::new(&labels, 4, 4, 0).unwrap_err(),
            SamplerError::TooFewIdentities { p: 4, found: 3 }
        );
        assert_eq!(
            PkSampler::new(&labels, 1, 4, 0).unwrap_err(),
            SamplerError::BadShape { p: 1, k: 4 }
        );
        assert!(PkSampler::new::<u32>(&[], 2, 4, 0).is_err());
    }
}
