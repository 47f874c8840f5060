//! `reid track FRAMES [--detections det.txt]`: follows people through a folder of video frames,
//! given each frame's detections in MOTChallenge's `det.txt` format (the "public detections"
//! way of tracking) or finding them with the HOG people detector. Each detection is embedded
//! with the ReID model, so people are matched by appearance as well as by position (DeepSORT); `--no-appearance` matches by position alone
//! (SORT). Writes the tracks as a MOTChallenge result file (each track's identity on its
//! detection's box), optionally each track's summary as JSON, and with `--gt` scores the tracks
//! (MOTA, IDF1, ...) against ground truth.
//!
//! A frame that cannot be read is tracked by position alone and reported; the exit status is
//! then 1.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::Args;
use reid_core::{parse_mot_rows, parse_mot_text, BBox, MotAccumulator, TrackerConfig};
use reid_model::decode_image;
use reid_model::detect::hog::{HogDetector, HogParams};
use reid_pipeline::{device, Backend, Embedder, VideoTracker};
use serde::Serialize;

#[derive(Args, Debug)]
pub struct TrackArgs {
    /// Folder of frames (jpg, png, ...), in file-name order; a name that is a number (MOTChallenge's
    /// `000001.jpg`) gives the frame its number, others count from 1.
    frames: PathBuf,
    /// Detections of every frame: MOTChallenge `det.txt` (frame, -1, x, y, w, h, score, ...).
    /// Without it, the HOG people detector finds people in each frame (as `reid detect`).
    #[arg(long)]
    detections: Option<PathBuf>,
    /// Without --detections: the HOG detector's score threshold (`reid detect --threshold`).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    hog_threshold: f64,
    /// Ignore detections scoring below this.
    #[arg(long, default_value_t = f32::NEG_INFINITY, allow_negative_numbers = true)]
    min_score: f32,
    /// Where to write the tracks (MOTChallenge result format).
    #[arg(long, default_value = "tracks.txt")]
    out: PathBuf,
    /// Also write each track's summary (frames, best view, embedding) as JSON.
    #[arg(long)]
    tracklets: Option<PathBuf>,
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
    #[serde(skip_serializing_if = "Option::is_none")]
    embedding: Option<Vec<f32>>,
}

/// The frame files in order, each with its frame number.
fn frame_files(dir: &Path) -> anyhow::Result<Vec<(u64, PathBuf)>> {
    if !dir.is_dir() {
        bail!("{} is not a folder of frames", dir.display());
    }
    let mut files: Vec<PathBuf> = reid_data::collect_images(&[dir.to_path_buf()])?
        .into_iter()
        .map(|e| e.path)
        .collect();
    files.sort();
    if files.is_empty() {
        bail!(
            "{} holds no frames (jpg, jpeg, png, webp, bmp)",
            dir.display()
        );
    }
    Ok(super::frame_numbers(&files)
        .into_iter()
        .zip(files)
        .collect())
}

pub fn run(args: TrackArgs) -> anyhow::Result<ExitCode> {
    let frames = frame_files(&args.frames)?;
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
        let known: std::collections::HashSet<u64> = frames.iter().map(|(n, _)| *n).collect();
        let orphans = detections.keys().filter(|f| !known.contains(f)).count();
        if orphans > 0 {
            eprintln!("warning: {orphans} frames of the detection file have no picture in {}; their detections are left out", args.frames.display());
        }
    }
    let hog = args.detections.is_none().then(|| {
        (
            HogDetector::opencv_people(),
            HogParams {
                hit_threshold: args.hog_threshold,
                ..HogParams::default()
            },
        )
    });

    let embedder = if args.no_appearance {
        None
    } else {
        let model = super::read_model(&args.model)?;
        let device = pollster::block_on(device(Backend::Cpu))?;
        Some(Embedder::from_burnpack(&model, device, args.batch)?)
    };
    let config = TrackerConfig {
        max_age: args.max_age,
        n_init: args.n_init,
        ..TrackerConfig::default()
    };
    let mut tracker = VideoTracker::new(embedder.as_ref(), config)?;
    let start = Instant::now();
    let mut out = String::new();
    let mut results: BTreeMap<u64, Vec<(u64, BBox)>> = BTreeMap::new();
    let (mut unreadable, mut skipped, mut boxes) = (0usize, 0usize, 0usize);
    let none = Vec::new();
    for (number, path) in &frames {
        // The picture is needed for appearance and for the detector.
        let picture = if embedder.is_none() && hog.is_none() {
            None
        } else {
            match std::fs::read(path)
                .map_err(|e| e.to_string())
                .and_then(|b| decode_image(&b).map_err(|e| e.to_string()))
            {
                Ok(image) => Some(image),
                Err(e) => {
                    eprintln!("warning: frame {number} ({}) cannot be read: {e}; its people are matched by position only", path.display());
                    unreadable += 1;
                    None
                }
            }
        };
        let detected: Vec<(BBox, f32)>;
        let found = match (&hog, &picture) {
            (Some((detector, params)), Some(image)) => {
                detected = detector
                    .detect(image, params)
                    .iter()
                    .filter(|d| d.score as f32 >= args.min_score)
                    .map(|d| (d.rect.bbox(), d.score as f32))
                    .collect();
                &detected
            }
            (Some(_), None) => &none,
            (None, _) => detections.get(number).unwrap_or(&none),
        };
        boxes += found.len();
        let tracks = pollster::block_on(tracker.next_frame(picture.as_ref(), found))
            .with_context(|| format!("frame {number} ({})", path.display()))?;
        skipped += tracks.skipped.len();
        for o in &tracks.observations {
            let b = found[o.detection].0;
            writeln!(
                out,
                "{number},{},{:.2},{:.2},{:.2},{:.2},1,-1,-1,-1",
                o.track_id, b.x, b.y, b.w, b.h
            )?;
            results.entry(*number).or_default().push((o.track_id, b));
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    std::fs::write(&args.out, out)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    let tracklets = tracker.finish();
    println!(
        "{} frames, {boxes} detections ({skipped} empty or broken boxes skipped), {} tracks, by {}: {:.1} frames/s; tracks in {}",
        frames.len(),
        tracklets.len(),
        if embedder.is_some() { "appearance and position" } else { "position" },
        frames.len() as f64 / seconds.max(1e-9),
        args.out.display()
    );
    if let Some(path) = &args.tracklets {
        let json: Vec<TrackletJson> = tracklets
            .iter()
            .map(|t| TrackletJson {
                track_id: t.track_id,
                first_frame: t.first_frame,
                last_frame: t.last_frame,
                frames_seen: t.frames_seen,
                best_frame: t.best_frame,
                best_bbox: t.best_bbox,
                best_quality: t.best_quality,
                embedding: t.embedding(),
            })
            .collect();
        std::fs::write(path, serde_json::to_string(&json)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(gt) = &args.gt {
        let text = std::fs::read_to_string(gt)
            .with_context(|| format!("cannot read the ground truth {}", gt.display()))?;
        // MOTChallenge marks boxes to ignore with confidence 0.
        let truth = parse_mot_text(&text, 0.5)
            .with_context(|| format!("{} is not MOTChallenge ground truth", gt.display()))?;
        let mut acc = MotAccumulator::new(0.5);
        for (number, _) in &frames {
            acc.update(
                truth.get(number).unwrap_or(&Vec::new()),
                results.get(number).unwrap_or(&Vec::new()),
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
    if unreadable > 0 {
        eprintln!("{unreadable} of {} frames could not be read", frames.len());
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}
