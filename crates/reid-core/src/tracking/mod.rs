//! Multi-object tracking of people in video: SORT's Kalman filter and Hungarian assignment, with
//! DeepSORT's appearance cascade when detections carry ReID embeddings, and what a track becomes
//! for the gallery (one tracklet: time span, best view, quality-weighted mean embedding).
//!
//! Each frame: every track predicts where it will be; confirmed tracks are matched to
//! detections by appearance (cosine distance to the track's recent embeddings, within the
//! Kalman filter's gate), most recently seen first (the matching cascade); what is left is
//! matched by box overlap (IoU) with new and just-missed tracks, and with tracks that have no
//! embeddings (plain SORT, when detections come without them). A track is born tentative,
//! confirmed after `n_init` hits in a row, and deleted when a tentative track misses once or a
//! confirmed one misses more than `max_age` frames. Memory per track is bounded: at most
//! `feature_budget` embeddings for matching, and a running sum for the tracklet.
//!
//! Detectors and the reading of frames live elsewhere; this is the bookkeeping between them.

pub mod kalman;

use std::collections::VecDeque;

use serde::Serialize;

use crate::assignment::min_cost_assignment;
use crate::bbox::BBox;
use crate::embedding::unit;
use kalman::{KalmanState, GATE_4DOF};

/// A person found in a frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    pub bbox: BBox,
    /// Detector confidence, 0 to 1.
    pub score: f32,
    /// The crop's ReID embedding (L2-normalised), when one was computed.
    pub embedding: Option<Vec<f32>>,
}

/// How the tracker decides.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrackerConfig {
    /// Frames a confirmed track may go unseen before it is deleted.
    pub max_age: u32,
    /// Consecutive hits that confirm a new track.
    pub n_init: u32,
    /// Largest `1 - IoU` for a match by overlap.
    pub max_iou_distance: f32,
    /// Largest cosine distance (`1 - cosine similarity`) for a match by appearance.
    pub max_cosine_distance: f32,
    /// Embeddings kept per track for appearance matching (the most recent).
    pub feature_budget: usize,
}

impl Default for TrackerConfig {
    /// DeepSORT's settings.
    fn default() -> Self {
        Self {
            max_age: 30,
            n_init: 3,
            max_iou_distance: 0.7,
            max_cosine_distance: 0.2,
            feature_budget: 100,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TrackerError {
    #[error("tracker setting {name} must be {rule} (got {value})")]
    BadConfig {
        name: &'static str,
        rule: &'static str,
        value: f64,
    },
    #[error("detection {index} has an embedding of width {found}, the tracker's embeddings have width {expected}")]
    EmbeddingWidth {
        index: usize,
        expected: usize,
        found: usize,
    },
    #[error("detection {index} has an embedding with a value that is not a finite number")]
    EmbeddingNotFinite { index: usize },
}

/// A track's life stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TrackState {
    Tentative,
    Confirmed,
    Deleted,
}

/// One followed person: the filter, its recent embeddings and the running tracklet.
#[derive(Debug, Clone)]
pub struct Track {
    pub id: u64,
    pub state: TrackState,
    kalman: KalmanState,
    hits: u32,
    time_since_update: u32,
    features: VecDeque<Vec<f32>>,
    tracklet: Tracklet,
}

impl Track {
    /// Adds detection number `index` of frame `frame`, matched to this track, to its tracklet
    /// and its recent embeddings (at most `budget`); reports it when the track is confirmed.
    fn observe(
        &mut self,
        frame: u64,
        det: &Detection,
        index: usize,
        quality: f32,
        budget: usize,
    ) -> Option<TrackObservation> {
        let tracklet = &mut self.tracklet;
        tracklet.last_frame = frame;
        tracklet.frames_seen += 1;
        if quality > tracklet.best_quality {
            tracklet.best_quality = quality;
            tracklet.best_frame = frame;
            tracklet.best_bbox = det.bbox;
        }
        if let Some(e) = &det.embedding {
            if tracklet.embedding_sum.is_empty() {
                tracklet.embedding_sum = vec![0.0; e.len()];
                tracklet.plain_sum = vec![0.0; e.len()];
            }
            // A little weight even for poor views, so a tracklet of only poor views has a feature.
            let w = quality.max(1e-3);
            for ((s, p), v) in tracklet
                .embedding_sum
                .iter_mut()
                .zip(&mut tracklet.plain_sum)
                .zip(e)
            {
                *s += w * v;
                *p += v;
            }
            tracklet.keep(e);
            self.features.push_back(e.clone());
            while self.features.len() > budget {
                self.features.pop_front();
            }
        }
        (self.state == TrackState::Confirmed).then(|| TrackObservation {
            track_id: self.id,
            bbox: self.bbox(),
            detection: index,
            quality,
        })
    }

    /// Where the filter puts the person now.
    pub fn bbox(&self) -> BBox {
        self.kalman.bbox()
    }

    /// Smallest cosine distance between `embedding` and the track's recent embeddings.
    fn appearance_distance(&self, embedding: &[f32]) -> Option<f32> {
        self.features
            .iter()
            .map(|f| 1.0 - f.iter().zip(embedding).map(|(a, b)| a * b).sum::<f32>())
            .reduce(f32::min)
    }
}

/// What a track becomes for the gallery.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Tracklet {
    pub track_id: u64,
    pub first_frame: u64,
    pub last_frame: u64,
    /// Frames in which a detection was matched to the track.
    pub frames_seen: u64,
    /// The best-quality observation: frame, detected box and quality (for the thumbnail).
    pub best_frame: u64,
    pub best_bbox: BBox,
    pub best_quality: f32,
    /// Quality-weighted sum of the frames' embeddings (see [`Tracklet::embedding`]).
    #[serde(skip)]
    embedding_sum: Vec<f32>,
    /// Plain sum of the frames' embeddings (see [`Tracklet::mean_embedding`]).
    #[serde(skip)]
    plain_sum: Vec<f32>,
    /// An even sample of the frames' embeddings in time order (see
    /// [`Tracklet::frame_embeddings`]).
    #[serde(skip)]
    kept: Vec<Vec<f32>>,
    /// Every `kept_stride`-th embedding is kept.
    #[serde(skip)]
    kept_stride: u64,
    /// Embeddings seen so far.
    #[serde(skip)]
    embedded: u64,
}

/// Most frame embeddings a tracklet keeps for a learned temporal aggregator.
pub const TRACKLET_FRAMES_KEPT: usize = 64;

impl Tracklet {
    /// The quality-weighted mean of the frames' embeddings, L2-normalised; `None` when no
    /// matched detection carried one.
    pub fn embedding(&self) -> Option<Vec<f32>> {
        unit(&self.embedding_sum)
    }

    /// The plain mean of the frames' embeddings (every frame alike), L2-normalised.
    pub fn mean_embedding(&self) -> Option<Vec<f32>> {
        unit(&self.plain_sum)
    }

    /// The frames' embeddings, in time order, for a learned temporal aggregator: all of them up
    /// to [`TRACKLET_FRAMES_KEPT`]; beyond that an even sample of the whole track (every
    /// other one is dropped each time the buffer fills, and then every second, fourth, ...
    /// embedding is kept), so a track of any length holds bounded memory.
    pub fn frame_embeddings(&self) -> &[Vec<f32>] {
        &self.kept
    }

    fn keep(&mut self, embedding: &[f32]) {
        let stride = self.kept_stride.max(1);
        if self.embedded.is_multiple_of(stride) {
            self.kept.push(embedding.to_vec());
            if self.kept.len() > TRACKLET_FRAMES_KEPT {
                let mut i = 0;
                self.kept.retain(|_| {
                    i += 1;
                    i % 2 == 1
                });
                self.kept_stride = stride * 2;
            }
        }
        self.embedded += 1;
    }
}

/// A confirmed track seen in the current frame.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrackObservation {
    pub track_id: u64,
    /// The filtered box.
    pub bbox: BBox,
    /// Which of this frame's detections it was matched to.
    pub detection: usize,
    /// The observation's quality, 0 to 1 (see [`observation_quality`]).
    pub quality: f32,
}

/// What one frame did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FrameTracks {
    pub observations: Vec<TrackObservation>,
    /// Detections ignored because their box was empty or not a finite number.
    pub skipped: Vec<usize>,
}

/// How useful a detection is as a view of its person, 0 to 1: the detector's confidence, times
/// its height relative to 128 pixels (capped at 1), times the share of it not covered by nearer
/// detections (a box whose bottom edge is lower stands nearer the camera).
pub fn observation_quality(detections: &[Detection], index: usize) -> f32 {
    let d = &detections[index].bbox;
    let bottom = d.y + d.h;
    let covered: f32 = detections
        .iter()
        .enumerate()
        .filter(|(j, o)| *j != index && o.bbox.y + o.bbox.h > bottom)
        .map(|(_, o)| d.intersection(&o.bbox))
        .sum::<f32>()
        .min(d.area());
    let visible = if d.area() > 0.0 {
        1.0 - covered / d.area()
    } else {
        0.0
    };
    let size = (d.h / 128.0).clamp(0.0, 1.0);
    detections[index].score.clamp(0.0, 1.0) * size * visible
}

/// The tracker: feed it each frame's detections in order.
#[derive(Debug, Clone)]
pub struct Tracker {
    config: TrackerConfig,
    tracks: Vec<Track>,
    finished: Vec<Tracklet>,
    next_id: u64,
    frame: u64,
    embedding_width: Option<usize>,
}

impl Tracker {
    pub fn new(config: TrackerConfig) -> Result<Self, TrackerError> {
        let bad = |name, rule, value: f64| Err(TrackerError::BadConfig { name, rule, value });
        if config.n_init == 0 {
            return bad("n_init", "at least 1", 0.0);
        }
        if !(0.0..=1.0).contains(&config.max_iou_distance) {
            return bad(
                "max_iou_distance",
                "between 0 and 1",
                f64::from(config.max_iou_distance),
            );
        }
        if !(0.0..=2.0).contains(&config.max_cosine_distance) {
            return bad(
                "max_cosine_distance",
                "between 0 and 2",
                f64::from(config.max_cosine_distance),
            );
        }
        if config.feature_budget == 0 {
            return bad("feature_budget", "at least 1", 0.0);
        }
        Ok(Self {
            config,
            tracks: Vec::new(),
            finished: Vec::new(),
            next_id: 1,
            frame: 0,
            embedding_width: None,
        })
    }

    /// The live tracks (tentative and confirmed).
    pub fn tracks(&self) -> &[Track] {
        &self.tracks
    }

    /// Tracks one frame. A frame whose embeddings are malformed is refused whole and changes
    /// nothing; boxes that are empty or not finite are skipped and listed.
    pub fn update(&mut self, detections: &[Detection]) -> Result<FrameTracks, TrackerError> {
        let mut width = self.embedding_width;
        for (index, d) in detections.iter().enumerate() {
            if let Some(e) = &d.embedding {
                if let Some(expected) = width.filter(|w| *w != e.len()) {
                    return Err(TrackerError::EmbeddingWidth {
                        index,
                        expected,
                        found: e.len(),
                    });
                }
                if e.iter().any(|v| !v.is_finite()) {
                    return Err(TrackerError::EmbeddingNotFinite { index });
                }
                width = Some(e.len());
            }
        }
        self.embedding_width = width;
        self.frame += 1;
        let (usable, skipped): (Vec<usize>, Vec<usize>) =
            (0..detections.len()).partition(|&i| detections[i].bbox.is_valid());
        for t in &mut self.tracks {
            t.kalman.predict();
            t.time_since_update += 1;
        }

        let mut unmatched: Vec<usize> = usable.clone();
        let mut matches: Vec<(usize, usize)> = Vec::new();
        // Appearance, most recently seen confirmed tracks first.
        for level in 1..=self.config.max_age.max(1) {
            if unmatched.is_empty() {
                break;
            }
            let tracks: Vec<usize> = (0..self.tracks.len())
                .filter(|&t| {
                    self.tracks[t].state == TrackState::Confirmed
                        && self.tracks[t].time_since_update == level
                })
                .collect();
            if tracks.is_empty() {
                continue;
            }
            let pairs = min_cost_assignment(tracks.len(), unmatched.len(), |ti, di| {
                let track = &self.tracks[tracks[ti]];
                let det = &detections[unmatched[di]];
                let cost = track.appearance_distance(det.embedding.as_deref()?)?;
                (cost <= self.config.max_cosine_distance
                    && track.kalman.gating_distance(&det.bbox) <= GATE_4DOF)
                    .then_some(f64::from(cost))
            });
            let taken: Vec<usize> = pairs.iter().map(|&(_, di)| unmatched[di]).collect();
            matches.extend(pairs.iter().map(|&(ti, di)| (tracks[ti], unmatched[di])));
            unmatched.retain(|d| !taken.contains(d));
        }
        // Overlap with the predicted box: for new tracks, tracks missed only in this frame, and
        // tracks with no embeddings (without appearance, overlap is their only way back).
        let matched_tracks: Vec<usize> = matches.iter().map(|m| m.0).collect();
        let candidates: Vec<usize> = (0..self.tracks.len())
            .filter(|t| !matched_tracks.contains(t))
            .filter(|&t| {
                let track = &self.tracks[t];
                track.state == TrackState::Tentative
                    || track.time_since_update == 1
                    || track.features.is_empty()
            })
            .collect();
        let pairs = min_cost_assignment(candidates.len(), unmatched.len(), |ti, di| {
            let predicted = self.tracks[candidates[ti]].bbox();
            let cost = 1.0 - predicted.iou(&detections[unmatched[di]].bbox);
            (cost <= f64::from(self.config.max_iou_distance)).then_some(cost)
        });
        let taken: Vec<usize> = pairs.iter().map(|&(_, di)| unmatched[di]).collect();
        matches.extend(
            pairs
                .iter()
                .map(|&(ti, di)| (candidates[ti], unmatched[di])),
        );
        unmatched.retain(|d| !taken.contains(d));

        let mut observations = Vec::new();
        let mut seen = vec![false; self.tracks.len()];
        for &(t, d) in &matches {
            seen[t] = true;
            let quality = observation_quality(detections, d);
            let det = &detections[d];
            let track = &mut self.tracks[t];
            track.kalman.update(&det.bbox);
            track.hits += 1;
            track.time_since_update = 0;
            if track.state == TrackState::Tentative && track.hits >= self.config.n_init {
                track.state = TrackState::Confirmed;
            }
            observations.extend(track.observe(
                self.frame,
                det,
                d,
                quality,
                self.config.feature_budget,
            ));
        }
        for (t, track) in self.tracks.iter_mut().enumerate() {
            if seen[t] {
                continue;
            }
            if track.state == TrackState::Tentative || track.time_since_update > self.config.max_age
            {
                track.state = TrackState::Deleted;
            }
        }
        for &d in &unmatched {
            let det = &detections[d];
            let quality = observation_quality(detections, d);
            let mut track = Track {
                id: self.next_id,
                state: if self.config.n_init <= 1 {
                    TrackState::Confirmed
                } else {
                    TrackState::Tentative
                },
                kalman: KalmanState::new(&det.bbox),
                hits: 1,
                time_since_update: 0,
                features: VecDeque::new(),
                tracklet: Tracklet {
                    track_id: self.next_id,
                    first_frame: self.frame,
                    last_frame: self.frame,
                    frames_seen: 0,
                    best_frame: self.frame,
                    best_bbox: det.bbox,
                    best_quality: -1.0,
                    embedding_sum: Vec::new(),
                    plain_sum: Vec::new(),
                    kept: Vec::new(),
                    kept_stride: 1,
                    embedded: 0,
                },
            };
            self.next_id += 1;
            observations.extend(track.observe(
                self.frame,
                det,
                d,
                quality,
                self.config.feature_budget,
            ));
            self.tracks.push(track);
        }
        // Deleted tracks that were ever confirmed become finished tracklets.
        let (gone, live): (Vec<Track>, Vec<Track>) = std::mem::take(&mut self.tracks)
            .into_iter()
            .partition(|t| t.state == TrackState::Deleted);
        self.tracks = live;
        self.finished.extend(
            gone.into_iter()
                .filter(|t| t.hits >= self.config.n_init)
                .map(|t| t.tracklet),
        );
        observations.sort_by_key(|o| o.track_id);
        Ok(FrameTracks {
            observations,
            skipped,
        })
    }

    /// Ends the video: every track that was ever confirmed, as a tracklet, in order of birth.
    pub fn finish(mut self) -> Vec<Tracklet> {
        self.finished.extend(
            self.tracks
                .into_iter()
                .filter(|t| t.state == TrackState::Confirmed)
                .map(|t| t.tracklet),
        );
        self.finished.sort_by_key(|t| t.track_id);
        self.finished
    }
}

#[cfg(test)]
mod tests;
