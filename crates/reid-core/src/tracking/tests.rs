use super::*;
use crate::mot::MotAccumulator;

/// A tiny deterministic generator, so that failures reproduce.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// The appearance of person `p`: a direction of its own plus a little noise per frame.
fn look(p: usize, noise: &mut Noise) -> Vec<f32> {
    let v: Vec<f32> = (0..16)
        .map(|i| if i == p { 1.0 } else { 0.0 } + 0.05 * (noise.next() - 0.5))
        .collect();
    unit(&v).unwrap()
}

/// Runs the tracker over `frames` of `(person, box)` and scores it against that truth.
fn run(
    frames: &[Vec<(u64, BBox)>],
    detected: impl Fn(usize, u64) -> bool,
    with_embeddings: bool,
) -> (crate::mot::MotSummary, Vec<Tracklet>) {
    let mut noise = Noise(0x9E37_79B9_7F4A_7C15);
    let mut tracker = Tracker::new(TrackerConfig::default()).unwrap();
    let mut acc = MotAccumulator::new(0.5);
    for (f, truth) in frames.iter().enumerate() {
        let visible: Vec<&(u64, BBox)> = truth.iter().filter(|(p, _)| detected(f, *p)).collect();
        let detections: Vec<Detection> = visible
            .iter()
            .map(|(p, b)| Detection {
                bbox: BBox::new(
                    b.x + 2.0 * (noise.next() - 0.5),
                    b.y + 2.0 * (noise.next() - 0.5),
                    b.w,
                    b.h,
                ),
                score: 0.9,
                embedding: with_embeddings.then(|| look(*p as usize, &mut noise)),
            })
            .collect();
        let out = tracker.update(&detections).unwrap();
        let hypotheses: Vec<(u64, BBox)> = out
            .observations
            .iter()
            .map(|o| (o.track_id, o.bbox))
            .collect();
        acc.update(truth, &hypotheses);
    }
    (acc.summary(), tracker.finish())
}

fn walk(frames: usize, people: &[(f32, f32, f32)]) -> Vec<Vec<(u64, BBox)>> {
    (0..frames)
        .map(|f| {
            people
                .iter()
                .enumerate()
                .map(|(p, &(x0, speed, y))| {
                    (p as u64, BBox::new(x0 + speed * f as f32, y, 50.0, 140.0))
                })
                .collect()
        })
        .collect()
}

#[test]
fn people_walking_apart_are_followed_without_switches_through_missed_detections() {
    let frames = walk(
        60,
        &[(0.0, 4.0, 100.0), (600.0, -3.0, 110.0), (300.0, 0.5, 60.0)],
    );
    // Each person is missed now and then (1 frame in 9, at different times).
    let (s, tracklets) = run(
        &frames,
        |f, p| !(f + 3 * p as usize).is_multiple_of(9),
        false,
    );
    assert_eq!(s.num_switches, 0);
    assert_eq!(tracklets.len(), 3, "{tracklets:?}");
    assert!(s.mota() > 0.8, "MOTA {}", s.mota());
    assert!(s.idf1() > 0.85, "IDF1 {}", s.idf1());
}

#[test]
fn appearance_keeps_identities_when_people_cross_behind_each_other() {
    // Two people walk toward each other; while they pass, the one behind (1) is hidden for
    // eight frames and comes out on the other side.
    let frames = walk(60, &[(0.0, 6.0, 100.0), (360.0, -6.0, 100.0)]);
    let hidden = |f: usize, p: u64| !(p == 1 && (26..34).contains(&f));
    let (s, tracklets) = run(&frames, hidden, true);
    assert_eq!(s.num_switches, 0);
    assert_eq!(tracklets.len(), 2, "{tracklets:?}");
    assert!(s.idf1() > 0.9, "IDF1 {}", s.idf1());
}

#[test]
fn tracks_are_confirmed_after_n_init_hits_and_deleted_after_max_age() {
    let config = TrackerConfig {
        max_age: 3,
        ..TrackerConfig::default()
    };
    let mut tracker = Tracker::new(config).unwrap();
    let det = |x: f32| Detection {
        bbox: BBox::new(x, 0.0, 40.0, 100.0),
        score: 1.0,
        embedding: None,
    };
    // Tentative for two frames (nothing reported), confirmed at the third.
    assert!(tracker.update(&[det(0.0)]).unwrap().observations.is_empty());
    assert!(tracker.update(&[det(1.0)]).unwrap().observations.is_empty());
    assert_eq!(tracker.update(&[det(2.0)]).unwrap().observations.len(), 1);
    // A one-frame false alarm is born tentative and dies at its first miss.
    tracker.update(&[det(3.0), det(500.0)]).unwrap();
    assert_eq!(tracker.tracks().len(), 2);
    for _ in 0..3 {
        tracker.update(&[]).unwrap();
        assert_eq!(tracker.tracks().len(), 1);
    }
    tracker.update(&[]).unwrap();
    assert!(tracker.tracks().is_empty());
    let tracklets = tracker.finish();
    assert_eq!(tracklets.len(), 1);
    assert_eq!((tracklets[0].first_frame, tracklets[0].last_frame), (1, 4));
    assert_eq!(tracklets[0].frames_seen, 4);
}

#[test]
fn empty_or_broken_boxes_are_skipped_and_malformed_embeddings_refuse_the_frame() {
    let mut tracker = Tracker::new(TrackerConfig::default()).unwrap();
    let ok = Detection {
        bbox: BBox::new(0.0, 0.0, 40.0, 100.0),
        score: 1.0,
        embedding: Some(vec![1.0, 0.0]),
    };
    let empty = Detection {
        bbox: BBox::new(5.0, 5.0, 0.0, 10.0),
        ..ok.clone()
    };
    let nan = Detection {
        bbox: BBox::new(f32::NAN, 5.0, 10.0, 10.0),
        ..ok.clone()
    };
    let out = tracker.update(&[ok.clone(), empty, nan]).unwrap();
    assert_eq!(out.skipped, vec![1, 2]);
    assert_eq!(tracker.tracks().len(), 1);
    let wide = Detection {
        embedding: Some(vec![1.0, 0.0, 0.0]),
        ..ok.clone()
    };
    assert_eq!(
        tracker.update(&[ok.clone(), wide]),
        Err(TrackerError::EmbeddingWidth {
            index: 1,
            expected: 2,
            found: 3
        })
    );
    let broken = Detection {
        embedding: Some(vec![f32::NAN, 0.0]),
        ..ok.clone()
    };
    assert_eq!(
        tracker.update(&[broken]),
        Err(TrackerError::EmbeddingNotFinite { index: 0 })
    );
    // The refused frames changed nothing: the track was seen once and is still tentative.
    assert_eq!(tracker.tracks()[0].hits, 1);
    assert!(Tracker::new(TrackerConfig {
        n_init: 0,
        ..TrackerConfig::default()
    })
    .is_err());
}

#[test]
fn a_long_track_keeps_a_bounded_memory_and_its_best_view() {
    let config = TrackerConfig {
        feature_budget: 8,
        ..TrackerConfig::default()
    };
    let mut tracker = Tracker::new(config).unwrap();
    for f in 0..500u32 {
        // The person comes closer: later boxes are taller, better views.
        let h = 60.0 + f as f32 * 0.25;
        tracker
            .update(&[Detection {
                bbox: BBox::new(100.0, 0.0, h * 0.4, h),
                score: 0.8,
                // Far-away early views look a little different from the near late ones.
                embedding: unit(&[1.0, if f < 200 { 0.5 } else { 0.0 }, 0.0]),
            }])
            .unwrap();
        assert!(tracker.tracks()[0].features.len() <= 8);
    }
    let tracklets = tracker.finish();
    assert_eq!(tracklets.len(), 1);
    let t = &tracklets[0];
    assert_eq!(t.frames_seen, 500);
    // Quality saturates at 128 pixels tall (f = 272, the 273rd frame), so that frame is best.
    assert_eq!(t.best_frame, 273);
    let e = t.embedding().unwrap();
    assert!((e.iter().map(|v| v * v).sum::<f32>() - 1.0).abs() < 1e-5);
    // The plain mean counts every frame alike; the weighted one leans to the nearer frames.
    let mean = t.mean_embedding().unwrap();
    assert!((mean.iter().map(|v| v * v).sum::<f32>() - 1.0).abs() < 1e-5);
    assert!(e[1] < mean[1] - 0.01, "weighted {e:?}, plain {mean:?}");
}

#[test]
fn a_track_keeps_an_even_bounded_sample_of_its_frame_embeddings_in_order() {
    let mut tracker = Tracker::new(TrackerConfig::default()).unwrap();
    let seen = |tracker: &mut Tracker, frames: std::ops::Range<u32>| {
        for f in frames {
            // The frame's number rides in the embedding, so the sample can be read back.
            tracker
                .update(&[Detection {
                    bbox: BBox::new(100.0, 0.0, 40.0, 100.0),
                    score: 0.8,
                    embedding: unit(&[1.0, f as f32 / 1000.0]),
                }])
                .unwrap();
        }
    };
    let numbers = |t: &Tracklet| -> Vec<u32> {
        t.frame_embeddings()
            .iter()
            .map(|e| (e[1] / e[0] * 1000.0).round() as u32)
            .collect()
    };
    seen(&mut tracker, 0..40);
    let short = tracker.finish();
    assert_eq!(
        numbers(&short[0]),
        (0..40).collect::<Vec<_>>(),
        "all of a short track"
    );
    let mut tracker = Tracker::new(TrackerConfig::default()).unwrap();
    seen(&mut tracker, 0..1000);
    let long = tracker.finish();
    let kept = numbers(&long[0]);
    assert!(kept.len() <= TRACKLET_FRAMES_KEPT && kept.len() > TRACKLET_FRAMES_KEPT / 2);
    // Every 16th frame from the first: even over the whole span, in time order.
    assert_eq!(kept, (0..1000).step_by(16).collect::<Vec<_>>());
}

#[test]
fn a_view_partly_covered_by_a_nearer_person_loses_that_share_of_its_quality() {
    let d = |x: f32, y: f32| Detection {
        bbox: BBox::new(x, y, 40.0, 128.0),
        score: 1.0,
        embedding: None,
    };
    let frame = [d(0.0, 0.0), d(20.0, 10.0)];
    // The second box stands lower (nearer): it covers 46% of the first, and nothing covers it.
    assert!((observation_quality(&frame, 0) - (1.0 - 20.0 * 118.0 / (40.0 * 128.0))).abs() < 1e-6);
    assert_eq!(observation_quality(&frame, 1), 1.0);
}
