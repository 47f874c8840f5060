//! Multi-object tracking results and how good they are: the MOTChallenge text format
//! (`frame,id,x,y,w,h,conf,...`) and the CLEAR MOT and identity metrics of a tracker's boxes
//! against ground truth (MOTA, MOTP, IDF1, ID switches, fragmentations, mostly tracked / lost).
//!
//! The metrics follow py-motmetrics 1.4.0 event for event, so that its numbers can be checked
//! here (`tests/references.rs` holds this module to the values py-motmetrics' own test suite
//! expects on MOT15's TUD-Campus and TUD-Stadtmitte):
//! - a frame's objects and hypotheses may be paired when their IoU is at least the threshold
//!   (distance `1 - IoU`);
//! - pairs matched in an earlier frame are kept while they still may be paired (CLEAR MOT);
//! - the rest are matched by minimum total distance; an object matched to another hypothesis
//!   than its last one counts an ID switch; unmatched objects are misses, unmatched
//!   hypotheses false positives;
//! - identity metrics (IDF1, IDP, IDR) match whole object and hypothesis trajectories once, by
//!   minimum count of frames that disagree.
//!
//! Nothing here draws boxes or runs a tracker: this is the scoring of one.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::assignment::min_cost_assignment;
use crate::bbox::BBox;

/// A frame's boxes: `(identity, box)` pairs.
pub type FrameBoxes = Vec<(u64, BBox)>;

/// Why a MOTChallenge text file cannot be read.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MotFormatError {
    #[error("line {line}: expected at least 6 comma-separated fields (frame,id,x,y,w,h,...), found {found}")]
    TooFewFields { line: usize, found: usize },
    #[error("line {line}: field {field} ({value:?}) is not a number")]
    NotANumber {
        line: usize,
        field: usize,
        value: String,
    },
    #[error("line {line}: the frame must be a whole number >= 0 and the identity a whole number >= -1 (frame {frame}, id {id})")]
    BadFrameOrId { line: usize, frame: f64, id: f64 },
    #[error("row {row} has no identity (-1): a detection file, not tracks or ground truth")]
    NoIdentity { row: usize },
}

/// One row of a MOTChallenge text file.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MotRow {
    pub frame: u64,
    /// The identity; detection files (`det.txt`) write -1.
    pub id: i64,
    pub bbox: BBox,
    /// 7th field: detector score (`det.txt`), or 0/1 for ignored/considered ground truth.
    pub confidence: f32,
    /// 9th field of MOT16-style ground truth, when present: the visible share of the person.
    pub visibility: Option<f32>,
}

/// Reads every row of a MOTChallenge text file (`gt.txt`, `det.txt` or a tracker's result):
/// `frame,id,x,y,w,h[,confidence[,class,visibility]]`.
pub fn parse_mot_rows(text: &str) -> Result<Vec<MotRow>, MotFormatError> {
    let mut rows = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let row = raw.trim();
        if row.is_empty() {
            continue;
        }
        let fields: Vec<&str> = row.split(',').map(str::trim).collect();
        if fields.len() < 6 {
            return Err(MotFormatError::TooFewFields {
                line,
                found: fields.len(),
            });
        }
        let number = |field: usize| -> Result<f64, MotFormatError> {
            fields[field]
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| MotFormatError::NotANumber {
                    line,
                    field: field + 1,
                    value: fields[field].to_string(),
                })
        };
        let (frame, id) = (number(0)?, number(1)?);
        if frame < 0.0 || id < -1.0 || frame.fract() != 0.0 || id.fract() != 0.0 {
            return Err(MotFormatError::BadFrameOrId { line, frame, id });
        }
        rows.push(MotRow {
            frame: frame as u64,
            id: id as i64,
            bbox: BBox::new(
                number(2)? as f32,
                number(3)? as f32,
                number(4)? as f32,
                number(5)? as f32,
            ),
            confidence: if fields.len() > 6 {
                number(6)? as f32
            } else {
                1.0
            },
            visibility: if fields.len() > 8 {
                Some(number(8)? as f32)
            } else {
                None
            },
        });
    }
    Ok(rows)
}

/// Reads a MOTChallenge ground-truth or result file into `(id, box)` pairs grouped by frame, in
/// increasing frame order. Rows whose confidence is below `min_confidence` are skipped
/// (MOTChallenge ground truth marks ignored boxes with 0); rows without an identity (-1) are
/// refused, as they cannot be scored.
pub fn parse_mot_text(
    text: &str,
    min_confidence: f64,
) -> Result<BTreeMap<u64, FrameBoxes>, MotFormatError> {
    let mut frames: BTreeMap<u64, FrameBoxes> = BTreeMap::new();
    for (index, row) in parse_mot_rows(text)?.into_iter().enumerate() {
        if row.id < 0 {
            return Err(MotFormatError::NoIdentity { row: index + 1 });
        }
        if f64::from(row.confidence) < min_confidence {
            continue;
        }
        frames
            .entry(row.frame)
            .or_default()
            .push((row.id as u64, row.bbox));
    }
    Ok(frames)
}

/// Accumulates one sequence frame by frame, then [`MotAccumulator::summary`] scores it.
#[derive(Debug, Clone)]
pub struct MotAccumulator {
    /// Largest distance (`1 - IoU`) at which an object and a hypothesis may be paired.
    max_distance: f64,
    /// Each object's last matched hypothesis (kept across frames where it is missed).
    matched_to: HashMap<u64, u64>,
    /// For each object, frame by frame, whether it was tracked (matched) or missed.
    timelines: BTreeMap<u64, Vec<bool>>,
    /// Frames in which each hypothesis appears.
    hypothesis_frames: BTreeMap<u64, usize>,
    /// Frames in which an object and a hypothesis could be paired (IoU over the threshold).
    pairable: HashMap<(u64, u64), usize>,
    matches: usize,
    switches: usize,
    misses: usize,
    false_positives: usize,
    /// Sum of the distances of matched pairs (for MOTP).
    distance_sum: f64,
    frames: usize,
}

impl MotAccumulator {
    /// Pairs need an IoU of at least `iou_threshold` (MOTChallenge uses 0.5).
    pub fn new(iou_threshold: f32) -> Self {
        Self {
            max_distance: 1.0 - f64::from(iou_threshold),
            matched_to: HashMap::new(),
            timelines: BTreeMap::new(),
            hypothesis_frames: BTreeMap::new(),
            pairable: HashMap::new(),
            matches: 0,
            switches: 0,
            misses: 0,
            false_positives: 0,
            distance_sum: 0.0,
            frames: 0,
        }
    }

    /// Adds the next frame: the ground-truth `objects` and the tracker's `hypotheses`.
    pub fn update(&mut self, objects: &[(u64, BBox)], hypotheses: &[(u64, BBox)]) {
        self.frames += 1;
        let (no, nh) = (objects.len(), hypotheses.len());
        let distance: Vec<Option<f64>> = objects
            .iter()
            .flat_map(|(_, o)| hypotheses.iter().map(move |(_, h)| (o, h)))
            .map(|(o, h)| {
                let d = 1.0 - o.iou(h);
                (d <= self.max_distance).then_some(d)
            })
            .collect();
        for (i, (o, _)) in objects.iter().enumerate() {
            for (j, (h, _)) in hypotheses.iter().enumerate() {
                if distance[i * nh + j].is_some() {
                    *self.pairable.entry((*o, *h)).or_default() += 1;
                }
            }
        }
        for (h, _) in hypotheses {
            *self.hypothesis_frames.entry(*h).or_default() += 1;
        }
        let mut object_done = vec![false; no];
        let mut hypothesis_done = vec![false; nh];
        // 1. Keep the pairs of earlier frames that may still be paired.
        for (i, (o, _)) in objects.iter().enumerate() {
            let Some(previous) = self.matched_to.get(o) else {
                continue;
            };
            let found = (0..nh).find(|&j| !hypothesis_done[j] && hypotheses[j].0 == *previous);
            if let Some(j) = found {
                if let Some(d) = distance[i * nh + j] {
                    object_done[i] = true;
                    hypothesis_done[j] = true;
                    self.matches += 1;
                    self.distance_sum += d;
                }
            }
        }
        // 2. Match the rest by least total distance; a new partner is an ID switch.
        let pairs = min_cost_assignment(no, nh, |i, j| {
            if object_done[i] || hypothesis_done[j] {
                None
            } else {
                distance[i * nh + j]
            }
        });
        for (i, j) in pairs {
            let (o, h) = (objects[i].0, hypotheses[j].0);
            match self.matched_to.get(&o) {
                Some(previous) if *previous != h => self.switches += 1,
                _ => self.matches += 1,
            }
            self.distance_sum += distance[i * nh + j].unwrap_or(0.0);
            self.matched_to.insert(o, h);
            object_done[i] = true;
            hypothesis_done[j] = true;
        }
        // 3. and 4. Misses and false positives.
        self.misses += object_done.iter().filter(|d| !**d).count();
        self.false_positives += hypothesis_done.iter().filter(|d| !**d).count();
        for (i, (o, _)) in objects.iter().enumerate() {
            self.timelines.entry(*o).or_default().push(object_done[i]);
        }
    }

    /// The sequence's metrics so far.
    pub fn summary(&self) -> MotSummary {
        let num_objects: usize = self.timelines.values().map(Vec::len).sum();
        let num_predictions: usize = self.hypothesis_frames.values().sum();
        let (mut mostly_tracked, mut partially_tracked, mut mostly_lost) = (0, 0, 0);
        let mut fragmentations = 0;
        for timeline in self.timelines.values() {
            let tracked = timeline.iter().filter(|t| **t).count();
            let ratio = tracked as f64 / timeline.len() as f64;
            if ratio >= 0.8 {
                mostly_tracked += 1;
            } else if ratio >= 0.2 {
                partially_tracked += 1;
            } else {
                mostly_lost += 1;
            }
            // Interruptions between the first and the last tracked frame.
            if let (Some(first), Some(last)) = (
                timeline.iter().position(|t| *t),
                timeline.iter().rposition(|t| *t),
            ) {
                fragmentations += timeline[first..=last]
                    .windows(2)
                    .filter(|w| w[0] && !w[1])
                    .count();
            }
        }
        let (idfp, idfn) = self.identity_errors();
        let detections = self.matches + self.switches;
        MotSummary {
            num_frames: self.frames,
            num_unique_objects: self.timelines.len(),
            num_objects,
            num_predictions,
            num_detections: detections,
            num_matches: self.matches,
            num_switches: self.switches,
            num_misses: self.misses,
            num_false_positives: self.false_positives,
            num_fragmentations: fragmentations,
            mostly_tracked,
            partially_tracked,
            mostly_lost,
            distance_sum: self.distance_sum,
            idtp: num_objects.saturating_sub(idfn),
            idfp,
            idfn,
        }
    }

    /// IDFP and IDFN of the best one-to-one matching of object and hypothesis trajectories.
    /// Every object may also go unmatched (all its frames missed), every hypothesis too (all
    /// its frames false), which makes the problem square: `objects + hypotheses` on each side.
    fn identity_errors(&self) -> (usize, usize) {
        let objects: Vec<(u64, usize)> =
            self.timelines.iter().map(|(o, t)| (*o, t.len())).collect();
        let hypotheses: Vec<(u64, usize)> = self
            .hypothesis_frames
            .iter()
            .map(|(h, n)| (*h, *n))
            .collect();
        let (no, nh) = (objects.len(), hypotheses.len());
        let n = no + nh;
        // (false positives, false negatives) of pairing row r with column c.
        let errors = |r: usize, c: usize| -> Option<(usize, usize)> {
            match (r < no, c < nh) {
                (true, true) => {
                    let (o, oc) = objects[r];
                    let (h, hc) = hypotheses[c];
                    let both = self.pairable.get(&(o, h)).copied().unwrap_or(0);
                    Some((hc - both, oc - both))
                }
                // Object left alone: all its frames are misses.
                (true, false) => (c - nh == r).then_some((0, objects[r].1)),
                // Hypothesis left alone: all its frames are false positives.
                (false, true) => (r - no == c).then_some((hypotheses[c].1, 0)),
                (false, false) => Some((0, 0)),
            }
        };
        let pairs =
            min_cost_assignment(n, n, |r, c| errors(r, c).map(|(fp, fn_)| (fp + fn_) as f64));
        pairs
            .into_iter()
            .filter_map(|(r, c)| errors(r, c))
            .fold((0, 0), |(fp, fn_), (a, b)| (fp + a, fn_ + b))
    }
}

/// The counts of one or more sequences; the rates are methods, so sequences add up exactly as
/// py-motmetrics' "OVERALL" row adds them.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MotSummary {
    pub num_frames: usize,
    /// Distinct ground-truth identities.
    pub num_unique_objects: usize,
    /// Ground-truth boxes over all frames.
    pub num_objects: usize,
    /// Tracker boxes over all frames.
    pub num_predictions: usize,
    /// Matched pairs (matches and switches).
    pub num_detections: usize,
    pub num_matches: usize,
    pub num_switches: usize,
    pub num_misses: usize,
    pub num_false_positives: usize,
    pub num_fragmentations: usize,
    /// Objects tracked in at least 80% of their frames.
    pub mostly_tracked: usize,
    /// Objects tracked in 20% to 80% of their frames.
    pub partially_tracked: usize,
    /// Objects tracked in under 20% of their frames.
    pub mostly_lost: usize,
    /// Sum of `1 - IoU` over matched pairs.
    pub distance_sum: f64,
    pub idtp: usize,
    pub idfp: usize,
    pub idfn: usize,
}

fn ratio(a: f64, b: f64) -> f64 {
    if b == 0.0 {
        f64::NAN
    } else {
        a / b
    }
}

impl MotSummary {
    /// Several sequences as one: counts add, rates are computed from the sums.
    pub fn combine<'a>(parts: impl IntoIterator<Item = &'a MotSummary>) -> MotSummary {
        parts
            .into_iter()
            .fold(MotSummary::default(), |a, b| MotSummary {
                num_frames: a.num_frames + b.num_frames,
                num_unique_objects: a.num_unique_objects + b.num_unique_objects,
                num_objects: a.num_objects + b.num_objects,
                num_predictions: a.num_predictions + b.num_predictions,
                num_detections: a.num_detections + b.num_detections,
                num_matches: a.num_matches + b.num_matches,
                num_switches: a.num_switches + b.num_switches,
                num_misses: a.num_misses + b.num_misses,
                num_false_positives: a.num_false_positives + b.num_false_positives,
                num_fragmentations: a.num_fragmentations + b.num_fragmentations,
                mostly_tracked: a.mostly_tracked + b.mostly_tracked,
                partially_tracked: a.partially_tracked + b.partially_tracked,
                mostly_lost: a.mostly_lost + b.mostly_lost,
                distance_sum: a.distance_sum + b.distance_sum,
                idtp: a.idtp + b.idtp,
                idfp: a.idfp + b.idfp,
                idfn: a.idfn + b.idfn,
            })
    }

    /// Multiple object tracking accuracy: `1 - (misses + switches + false positives) / objects`.
    pub fn mota(&self) -> f64 {
        1.0 - ratio(
            (self.num_misses + self.num_switches + self.num_false_positives) as f64,
            self.num_objects as f64,
        )
    }

    /// Multiple object tracking precision: mean `1 - IoU` of matched pairs (lower is better,
    /// as py-motmetrics reports it).
    pub fn motp(&self) -> f64 {
        ratio(self.distance_sum, self.num_detections as f64)
    }

    pub fn recall(&self) -> f64 {
        ratio(self.num_detections as f64, self.num_objects as f64)
    }

    pub fn precision(&self) -> f64 {
        ratio(self.num_detections as f64, self.num_predictions as f64)
    }

    /// Identity F1: `2 IDTP / (objects + predictions)`.
    pub fn idf1(&self) -> f64 {
        ratio(
            2.0 * self.idtp as f64,
            (self.num_objects + self.num_predictions) as f64,
        )
    }

    pub fn idp(&self) -> f64 {
        ratio(self.idtp as f64, (self.idtp + self.idfp) as f64)
    }

    pub fn idr(&self) -> f64 {
        ratio(self.idtp as f64, (self.idtp + self.idfn) as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(x: f32) -> BBox {
        BBox::new(x, 0.0, 10.0, 20.0)
    }

    #[test]
    fn a_perfect_tracker_scores_one_and_a_swap_counts_switches() {
        let mut acc = MotAccumulator::new(0.5);
        for f in 0..5 {
            let x = f as f32;
            acc.update(
                &[(1, b(x)), (2, b(x + 40.0))],
                &[(7, b(x)), (8, b(x + 40.0))],
            );
        }
        let s = acc.summary();
        assert_eq!((s.mota(), s.idf1(), s.motp()), (1.0, 1.0, 0.0));
        assert_eq!(s.mostly_tracked, 2);
        // The tracker swaps its identities halfway: two switches, identities half right.
        let mut acc = MotAccumulator::new(0.5);
        for f in 0..4 {
            let (h1, h2) = if f < 2 { (7, 8) } else { (8, 7) };
            acc.update(&[(1, b(0.0)), (2, b(40.0))], &[(h1, b(0.0)), (h2, b(40.0))]);
        }
        let s = acc.summary();
        assert_eq!(s.num_switches, 2);
        assert_eq!(s.mota(), 1.0 - 2.0 / 8.0);
        assert_eq!(s.idf1(), 0.5);
    }

    #[test]
    fn a_match_is_kept_while_it_still_overlaps_even_if_another_box_fits_better() {
        let mut acc = MotAccumulator::new(0.5);
        acc.update(&[(1, b(0.0))], &[(7, b(0.0))]);
        // Hypothesis 8 now fits object 1 perfectly, 7 still overlaps enough: no switch.
        acc.update(&[(1, b(0.0))], &[(7, b(2.0)), (8, b(0.0))]);
        let s = acc.summary();
        assert_eq!(
            (s.num_switches, s.num_false_positives, s.num_matches),
            (0, 1, 2)
        );
    }

    #[test]
    fn misses_in_the_middle_of_a_track_are_fragmentations() {
        let mut acc = MotAccumulator::new(0.5);
        for f in 0..6 {
            let hyp: Vec<(u64, BBox)> = if f == 2 || f == 3 {
                vec![]
            } else {
                vec![(7, b(0.0))]
            };
            acc.update(&[(1, b(0.0))], &hyp);
        }
        let s = acc.summary();
        assert_eq!((s.num_misses, s.num_fragmentations), (2, 1));
        assert_eq!(s.partially_tracked, 1);
    }

    #[test]
    fn mot_text_is_parsed_by_frame_and_bad_rows_name_their_line() {
        let frames = parse_mot_text(
            "1,3,10.5,20,30,40,1,-1,-1\n\n2,3,11,20,30,40,0,-1\n1,4,0,0,5,5\n",
            0.5,
        )
        .unwrap();
        assert_eq!(frames.len(), 1);
        assert_eq!(
            frames[&1],
            vec![
                (3, BBox::new(10.5, 20.0, 30.0, 40.0)),
                (4, BBox::new(0.0, 0.0, 5.0, 5.0))
            ]
        );
        assert_eq!(
            parse_mot_text("1,2,3", 0.0),
            Err(MotFormatError::TooFewFields { line: 1, found: 3 })
        );
        assert!(matches!(
            parse_mot_text("1,2,3,4,5,6\n1,x,3,4,5,6", 0.0),
            Err(MotFormatError::NotANumber {
                line: 2,
                field: 2,
                ..
            })
        ));
        assert!(matches!(
            parse_mot_text("1.5,2,3,4,5,6", 0.0),
            Err(MotFormatError::BadFrameOrId { line: 1, .. })
        ));
        // Detections have no identity: readable as rows, refused as tracks.
        let det = "3,-1,1,2,3,4,0.75,-1,-1,-1\n4,-1,1,2,3,4,0.5,1,0.25";
        let rows = parse_mot_rows(det).unwrap();
        assert_eq!(
            (rows[0].frame, rows[0].id, rows[0].confidence),
            (3, -1, 0.75)
        );
        assert_eq!(
            (rows[0].visibility, rows[1].visibility),
            (Some(-1.0), Some(0.25))
        );
        assert_eq!(
            parse_mot_text(det, 0.0),
            Err(MotFormatError::NoIdentity { row: 1 })
        );
    }
}
