//! Detection accuracy: average precision at an IoU threshold (PASCAL VOC's all-point AP), with
//! ground truth that may be marked "ignore" (too small or too hidden to count, as the Caltech
//! pedestrian benchmark's "reasonable" setting does): a detection on an ignored person is
//! neither right nor wrong.

use crate::BBox;

/// A person in the ground truth of one frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TruthBox {
    pub frame: u64,
    pub bbox: BBox,
    /// Neither found nor missed: detections on it are not counted.
    pub ignore: bool,
}

/// A detector's box in one frame, with its score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoredBox {
    pub frame: u64,
    pub bbox: BBox,
    pub score: f64,
}

/// What [`average_precision`] measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ApReport {
    /// Area under the precision-recall curve, its precision made non-increasing (0 to 1).
    pub ap: f64,
    /// Share of the counted people found, with every detection kept.
    pub recall: f64,
    /// Share of the counted detections that are right, with every detection kept.
    pub precision: f64,
    pub true_positives: usize,
    pub false_positives: usize,
    /// People counted (not ignored).
    pub people: usize,
}

/// Average precision of `detections` against `truth` at IoU `min_iou`: detections by falling
/// score each take the best-overlapping person of their frame not taken yet (a second box on a
/// person is wrong); one that overlaps no counted person but an ignored one is left out.
pub fn average_precision(detections: &[ScoredBox], truth: &[TruthBox], min_iou: f64) -> ApReport {
    let mut order: Vec<usize> = (0..detections.len()).collect();
    order.sort_by(|&a, &b| detections[b].score.total_cmp(&detections[a].score));
    let people = truth.iter().filter(|t| !t.ignore).count();
    let mut taken = vec![false; truth.len()];
    let (mut tp, mut fp) = (0usize, 0usize);
    let mut curve = Vec::with_capacity(detections.len());
    for &d in &order {
        let det = &detections[d];
        // The best overlap among the frame's counted people not taken yet, or (ignored) among
        // its ignored people, taken or not.
        let best = |ignored: bool, taken: &[bool]| {
            truth
                .iter()
                .enumerate()
                .filter(|(i, t)| {
                    t.frame == det.frame && t.ignore == ignored && (ignored || !taken[*i])
                })
                .map(|(i, t)| (i, t.bbox.iou(&det.bbox)))
                .filter(|&(_, iou)| iou >= min_iou)
                .max_by(|a, b| a.1.total_cmp(&b.1))
        };
        if let Some((i, _)) = best(false, &taken) {
            taken[i] = true;
            tp += 1;
        } else if best(true, &taken).is_some() {
            continue;
        } else {
            fp += 1;
        }
        curve.push((
            tp as f64 / people.max(1) as f64,
            tp as f64 / (tp + fp) as f64,
        ));
    }
    // All-point interpolation: precision at each recall is the best at that recall or beyond.
    let mut ap = 0.0;
    let mut best_after = 0.0f64;
    let mut envelope = vec![0.0; curve.len()];
    for (k, &(_, p)) in curve.iter().enumerate().rev() {
        best_after = best_after.max(p);
        envelope[k] = best_after;
    }
    let mut last_recall = 0.0;
    for (k, &(r, _)) in curve.iter().enumerate() {
        ap += (r - last_recall) * envelope[k];
        last_recall = r;
    }
    ApReport {
        ap: if people == 0 { 0.0 } else { ap },
        recall: tp as f64 / people.max(1) as f64,
        precision: if tp + fp == 0 {
            0.0
        } else {
            tp as f64 / (tp + fp) as f64
        },
        true_positives: tp,
        false_positives: fp,
        people,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn truth(frame: u64, x: f32, ignore: bool) -> TruthBox {
        TruthBox {
            frame,
            bbox: BBox::new(x, 0.0, 10.0, 20.0),
            ignore,
        }
    }

    fn det(frame: u64, x: f32, score: f64) -> ScoredBox {
        ScoredBox {
            frame,
            bbox: BBox::new(x, 0.0, 10.0, 20.0),
            score,
        }
    }

    #[test]
    fn perfect_detections_score_one() {
        let t = [truth(1, 0.0, false), truth(2, 50.0, false)];
        let r = average_precision(&[det(1, 1.0, 0.9), det(2, 50.0, 0.8)], &t, 0.5);
        assert_eq!((r.ap, r.recall, r.precision), (1.0, 1.0, 1.0));
    }

    #[test]
    fn a_false_alarm_ranked_first_halves_the_first_step() {
        // Ranked: wrong (P 0), right (R 0.5, P 0.5), right (R 1, P 0.67):
        // envelope 0.67 over both halves of recall.
        let t = [truth(1, 0.0, false), truth(1, 100.0, false)];
        let d = [det(1, 300.0, 0.9), det(1, 0.0, 0.8), det(1, 100.0, 0.7)];
        let r = average_precision(&d, &t, 0.5);
        assert!((r.ap - 2.0 / 3.0).abs() < 1e-12, "{r:?}");
        assert_eq!((r.true_positives, r.false_positives), (2, 1));
    }

    #[test]
    fn duplicates_are_wrong_and_wrong_frames_do_not_match() {
        let t = [truth(1, 0.0, false)];
        let d = [det(1, 0.0, 0.9), det(1, 0.5, 0.8), det(2, 0.0, 0.7)];
        let r = average_precision(&d, &t, 0.5);
        assert_eq!((r.true_positives, r.false_positives), (1, 2));
        assert_eq!(r.ap, 1.0);
        assert!((r.precision - 1.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn detections_on_ignored_people_do_not_count() {
        let t = [truth(1, 0.0, false), truth(1, 100.0, true)];
        let d = [det(1, 100.0, 0.95), det(1, 100.0, 0.9), det(1, 0.0, 0.5)];
        let r = average_precision(&d, &t, 0.5);
        assert_eq!((r.ap, r.people, r.false_positives), (1.0, 1, 0));
    }

    #[test]
    fn nothing_found_scores_zero() {
        let r = average_precision(&[], &[truth(1, 0.0, false)], 0.5);
        assert_eq!((r.ap, r.recall), (0.0, 0.0));
    }
}
