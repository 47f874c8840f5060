//! `reid track VIDEO|FRAMES [--detections det.txt]`: follows people through a video file (read
//! through ffmpeg) or a folder of frames, given each frame's detections in MOTChallenge's
//! `det.txt` format (the "public detections" way of tracking) or finding them with the HOG
//! people detector. Each detection is embedded with the ReID model, so people are matched by
//! appearance as well as by position (DeepSORT); `--no-appearance` matches by position alone
//! (SORT). Writes the tracks as a MOTChallenge result file (each track's identity on its
//! detection's box) or as JSON (each track's summary and embedding), and with `--gt` scores the
//! tracks (MOTA, IDF1, ...) against ground truth.
//!
//! A frame that cannot be read is tracked by position alone and reported; the exit status is
//! then 1. A video that ends early (damaged) is tracked up to where it breaks, with a warning.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Args;
use reid_core::{parse_mot_rows, parse_mot_text, BBox, MotAccumulator, TrackerConfig};
use reid_model::detect::hog::HogParams;
use reid_pipeline::{device, Backend, Embedder, TrackletAggregator};
use serde::Serialize;

use super::footage::{follow, read_aggregator, tracklet_embedding, Followed, Footage, People};

#[derive(Args, Debug)]
pub struct TrackArgs {
    /// A video file (mp4, webm, mkv, avi, mov, ..., decoded by ffmpeg; frames numbered from 1) or
    /// a folder of frames (jpg, png, ...) in file-name order, where a name that is a number
    /// (MOTChallenge's `000001.jpg`) gives the frame its number and others count from 1.
    frames: PathBuf,
    /// Track at most this many frames per second, skipping the others, when the source is
    /// faster (a folder's rate is its MOTChallenge seqinfo.ini frameRate). Frames keep their
    /// numbers in the source.
    #[arg(long)]
    fps: Option<f64>,
    /// Detections of every frame: MOTChallenge `det.txt` (frame, -1, x, y, w, h, score, ...).
    /// Without it, the HOG people detector finds people in each frame (as `reid detect`).
    #[arg(long, conflicts_with = "detector")]
    detections: Option<PathBuf>,
    /// Find people with this CNN detector file (`reid train-detector`) instead of HOG.
    #[arg(long, value_name = "FILE")]
    detector: Option<PathBuf>,
    /// With --detector: its probability threshold (`reid detect --detector --threshold`).
    #[arg(long, default_value_t = 0.3)]
    detector_threshold: f64,
    /// Without --detections: the HOG detector's score threshold (`reid detect --threshold`).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    hog_threshold: f64,
    /// Ignore detections scoring below this.
    #[arg(long, default_value_t = f32::NEG_INFINITY, allow_negative_numbers = true)]
    min_score: f32,
    /// Where to write the tracks: MOTChallenge result format, or with a `.json` ending each
    /// track's summary (as --tracklets).
    #[arg(long, default_value = "tracks.txt")]
    out: PathBuf,
    /// Also write each track's summary (frames, best view, embedding) as JSON.
    #[arg(long)]
    tracklets: Option<PathBuf>,
    /// Write each track's best view (its detection's pixels in its best-quality frame once
    /// the track is confirmed) as `track-ID.png` in this folder.
    #[arg(long)]
    thumbnails: Option<PathBuf>,
    /// Score the tracks against this ground truth (MOTChallenge `gt.txt`).
    #[arg(long)]
    gt: Option<PathBuf>,
    /// Match by position only (no ReID model).
    #[arg(long)]
    no_appearance: bool,
    /// Model file for the appearance features.
    #[arg(long, default_value_os_t = super::default_model())]
    model: PathBuf,
    /// Crops per forward pass.
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// A temporal aggregator from `reid temporal` (`attention.bpk`, ...): each track's
    /// embedding comes from it over the track's frames instead of their quality-weighted mean.
    #[arg(long)]
    temporal: Option<PathBuf>,
    /// Frames a track may go unseen before it ends.
    #[arg(long, default_value_t = TrackerConfig::default().max_age)]
    max_age: u32,
    /// Hits in a row that confirm a new track.
    #[arg(long, default_value_t = TrackerConfig::default().n_init)]
    n_init: u32,
}

#[derive(Serialize)]
struct TrackletJson {
    track_id: u64,
    first_frame: u64,
    last_frame: u64,
    frames_seen: u64,
    best_frame: u64,
    best_bbox: BBox,
    best_quality: f32,
    /// When the track starts and ends, in seconds from the first frame, when the rate is known.
    #[serde(skip_serializing_if = "Option::is_none")]
    start_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    end_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    embedding: Option<Vec<f32>>,
}

/// Each track's summary as JSON (times from the source's frame rate, when it has one).
fn tracklets_json(
    followed: &Followed,
    aggregator: Option<&TrackletAggregator>,
) -> anyhow::Result<String> {
    let at = |frame: u64| followed.seconds_at(frame);
    let json: Vec<TrackletJson> = followed
        .tracklets
        .iter()
        .map(|t| {
            Ok(TrackletJson {
                track_id: t.track_id,
                first_frame: t.first_frame,
                last_frame: t.last_frame,
                frames_seen: t.frames_seen,
                best_frame: t.best_frame,
                best_bbox: t.best_bbox,
                best_quality: t.best_quality,
                start_seconds: at(t.first_frame),
                end_seconds: at(t.last_frame),
                embedding: tracklet_embedding(t, aggregator)?,
            })
        })
        .collect::<anyhow::Result<_>>()?;
    Ok(serde_json::to_string(&json)?)
}

pub fn run(args: TrackArgs) -> anyhow::Result<ExitCode> {
    let footage = Footage::open(&args.frames, args.fps)?;
    let source = args.frames.display().to_string();
    let mut detections: BTreeMap<u64, Vec<(BBox, f32)>> = BTreeMap::new();
    if let Some(file) = &args.detections {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read the detections {}", file.display()))?;
        let rows = parse_mot_rows(&text)
            .with_context(|| format!("{} is not a MOTChallenge detection file", file.display()))?;
        for row in rows.into_iter().filter(|r| r.confidence >= args.min_score) {
            detections
                .entry(row.frame)
                .or_default()
                .push((row.bbox, row.confidence));
        }
    }
    let cnn = match &args.detector {
        Some(path) => Some(super::detect::cnn_detector(path, args.detector_threshold)?),
        None => None,
    };
    let people = match (&args.detections, &cnn) {
        (Some(_), _) => People::Given(&detections),
        (None, Some(cnn)) => People::Cnn(cnn),
        (None, None) => People::Hog(HogParams {
            hit_threshold: args.hog_threshold,
            ..HogParams::default()
        }),
    };
    let embedder = if args.no_appearance {
        None
    } else {
        let model = super::read_model(&args.model)?;
        let device = pollster::block_on(device(Backend::Cpu))?;
        Some(Embedder::from_burnpack(&model, device, args.batch)?)
    };
    let aggregator = match (&args.temporal, &embedder) {
        (None, _) => None,
        (Some(_), None) => {
            bail!("--temporal aggregates appearance: it cannot go with --no-appearance")
        }
        (Some(path), Some(embedder)) => Some(read_aggregator(path, embedder)?),
    };
    let config = TrackerConfig {
        max_age: args.max_age,
        n_init: args.n_init,
        ..TrackerConfig::default()
    };
    let followed = follow(
        footage,
        &people,
        args.min_score,
        embedder.as_ref(),
        config,
        args.thumbnails.is_some(),
    )
    .with_context(|| format!("cannot track {source}"))?;
    if args.detections.is_some() {
        let known: HashSet<u64> = followed.frames.iter().copied().collect();
        let orphans = detections.keys().filter(|f| !known.contains(f)).count();
        if orphans > 0 {
            eprintln!("warning: {orphans} frames of the detection file were not tracked (no picture in {}, or left out by --fps); their detections are left out", args.frames.display());
        }
    }
    if let Some(warning) = &followed.decoder_warning {
        eprintln!("warning: the video ends early: {warning}");
    }
    let tracklets = &followed.tracklets;
    let json = args.out.extension().is_some_and(|e| e == "json");
    // Each track's summary, built once (the aggregator runs over every track) for `--out` and
    // `--tracklets` alike.
    let summary = (json || args.tracklets.is_some())
        .then(|| tracklets_json(&followed, aggregator.as_ref()))
        .transpose()?;
    let text: std::borrow::Cow<str> = match &summary {
        Some(summary) if json => summary.into(),
        _ => {
            let mut out = String::new();
            for (number, seen) in &followed.boxes {
                for (id, b) in seen {
                    writeln!(
                        out,
                        "{number},{id},{:.2},{:.2},{:.2},{:.2},1,-1,-1,-1",
                        b.x, b.y, b.w, b.h
                    )?;
                }
            }
            out.into()
        }
    };
    std::fs::write(&args.out, text.as_bytes())
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    let frames = followed.frames.len();
    if frames as u64 != followed.source_frames {
        println!(
            "tracked {frames} of the source's {} frames (--fps)",
            followed.source_frames
        );
    }
    println!(
        "{frames} frames, {} detections ({} empty or broken boxes skipped), {} tracks, by {}: {:.1} frames/s; tracks in {}",
        followed.detections,
        followed.skipped,
        tracklets.len(),
        if embedder.is_some() { "appearance and position" } else { "position" },
        frames as f64 / followed.seconds.max(1e-9),
        args.out.display()
    );
    if let Some(dir) = &args.thumbnails {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        for t in tracklets {
            if let Some(view) = followed.thumbnails.get(&t.track_id) {
                let path = dir.join(format!("track-{}.png", t.track_id));
                view.save(&path)
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
        }
    }
    if let (Some(path), Some(summary)) = (&args.tracklets, &summary) {
        std::fs::write(path, summary)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(gt) = &args.gt {
        let text = std::fs::read_to_string(gt)
            .with_context(|| format!("cannot read the ground truth {}", gt.display()))?;
        // MOTChallenge marks boxes to ignore with confidence 0.
        let truth = parse_mot_text(&text, 0.5)
            .with_context(|| format!("{} is not MOTChallenge ground truth", gt.display()))?;
        let mut acc = MotAccumulator::new(0.5);
        for number in &followed.frames {
            acc.update(
                truth.get(number).unwrap_or(&Vec::new()),
                followed.boxes.get(number).unwrap_or(&Vec::new()),
            );
        }
        let s = acc.summary();
        // MOTP averages the matched boxes' distances: undefined when nothing matched.
        let motp = match s.motp() {
            m if m.is_nan() => "n/a (nothing matched)".to_string(),
            m => format!("{m:.3}"),
        };
        println!(
            "against {}: MOTA {:.1}%  IDF1 {:.1}%  MOTP {}  ID switches {}  false positives {}  misses {}  fragmentations {}  mostly tracked {} / lost {} of {}",
            gt.display(),
            100.0 * s.mota(),
            100.0 * s.idf1(),
            motp,
            s.num_switches,
            s.num_false_positives,
            s.num_misses,
            s.num_fragmentations,
            s.mostly_tracked,
            s.mostly_lost,
            s.num_unique_objects
        );
    }
    if followed.unreadable > 0 {
        eprintln!(
            "{} of {frames} frames could not be read",
            followed.unreadable
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}
