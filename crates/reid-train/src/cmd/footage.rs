//! Footage for `reid track` and `reid search`: a folder of frames or a video file, read one
//! frame at a time, and the people followed through it (detections, from a file or the HOG
//! detector, tracked with appearance and position), each track with the picture of its best view.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use image::RgbImage;
use reid_core::{BBox, Embedding, TrackerConfig, Tracklet};
use reid_model::detect::hog::{HogDetector, HogParams};
use reid_model::detect::CenterNetDetector;
use reid_pipeline::{hog_boxes, Embedder, TrackletAggregator, VideoTracker};

use crate::video::{is_video, Video};

/// Reads `reid temporal`'s aggregator file, checked against `embedder`'s embeddings.
pub fn read_aggregator(path: &Path, embedder: &Embedder) -> anyhow::Result<TrackletAggregator> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read the aggregator {}", path.display()))?;
    TrackletAggregator::from_burnpack(&bytes, embedder.device().clone(), embedder.embedding_dim())
        .with_context(|| format!("the aggregator {}", path.display()))
}

/// A tracklet's embedding: the aggregator's over the frames it kept when one is given, else the
/// quality-weighted mean of its frames.
pub fn tracklet_embedding(
    tracklet: &Tracklet,
    aggregator: Option<&TrackletAggregator>,
) -> anyhow::Result<Option<Vec<f32>>> {
    Ok(match aggregator {
        Some(a) => pollster::block_on(a.embed_tracklet(tracklet))?,
        None => tracklet.embedding(),
    })
}

/// Pictures' embeddings in the same space as the tracks': with an aggregator, each picture is a
/// one-frame tracklet through it (its width may differ from the image network's), all in one
/// pass; without, the image network's embeddings as they are.
pub fn picture_embeddings(
    embeddings: Vec<Embedding>,
    aggregator: Option<&TrackletAggregator>,
) -> anyhow::Result<Vec<Vec<f32>>> {
    let values: Vec<Vec<f32>> = embeddings.into_iter().map(Embedding::into_values).collect();
    let Some(a) = aggregator else {
        return Ok(values);
    };
    pollster::block_on(a.embed_pictures(&values))?
        .into_iter()
        .map(|e| e.context("the aggregator gave a picture a zero embedding"))
        .collect()
}

/// Where frames come from.
pub enum Footage {
    /// Picture files in name order, each with its frame number, and the next to read.
    Frames {
        files: Vec<(u64, PathBuf)>,
        next: usize,
        fps: Option<f64>,
        keep: crate::video::Sampler,
    },
    Video(Box<Video>),
}

/// One frame: its number, its picture (or why it could not be read; `None` when not asked
/// for) and where it came from.
pub struct Frame {
    pub number: u64,
    pub picture: Option<Result<RgbImage, String>>,
    pub source: String,
}

impl Footage {
    /// A video file (by its name's ending) or a folder of frames, keeping at most `max_fps`
    /// frames per second when the source is faster. A folder's rate is MOTChallenge's
    /// `frameRate` in `seqinfo.ini`, beside the frames or one folder up.
    pub fn open(path: &Path, max_fps: Option<f64>) -> anyhow::Result<Self> {
        if let Some(fps) = max_fps {
            if !(fps.is_finite() && fps > 0.0) {
                bail!("--fps must be a positive number of frames per second, not {fps}");
            }
        }
        if path.is_file() && is_video(path) {
            return Ok(Self::Video(Box::new(
                Video::open(path, max_fps)
                    .with_context(|| format!("cannot read the video {}", path.display()))?,
            )));
        }
        if !path.is_dir() {
            bail!(
                "{} is neither a folder of frames nor a video file ({})",
                path.display(),
                crate::video::VIDEO_EXTENSIONS.join(", ")
            );
        }
        let mut files: Vec<PathBuf> = reid_data::collect_images(&[path.to_path_buf()])?
            .into_iter()
            .map(|e| e.path)
            .collect();
        files.sort();
        if files.is_empty() {
            bail!(
                "{} holds no frames (jpg, jpeg, png, webp, bmp)",
                path.display()
            );
        }
        let fps = seqinfo_rate(path);
        if max_fps.is_some() && fps.is_none() {
            bail!(
                "--fps needs the frames' own rate: {} has no seqinfo.ini with a frameRate",
                path.display()
            );
        }
        Ok(Self::Frames {
            files: super::frame_numbers(&files)
                .into_iter()
                .zip(files)
                .collect(),
            next: 0,
            keep: crate::video::Sampler::new(fps.unwrap_or(1.0), max_fps),
            fps,
        })
    }

    /// Frames per second of the source, when known.
    pub fn fps(&self) -> Option<f64> {
        match self {
            Self::Frames { fps, .. } => *fps,
            Self::Video(v) => v.info.fps,
        }
    }

    /// Source frames gone through so far (kept or skipped by the rate).
    pub fn source_frames(&self) -> u64 {
        match self {
            Self::Frames { next, .. } => *next as u64,
            Self::Video(v) => v.frames_read(),
        }
    }

    /// The next frame kept; `None` at the end. A folder's pictures are decoded only when
    /// `decode` (a video's always are).
    pub fn next_frame(&mut self, decode: bool) -> anyhow::Result<Option<Frame>> {
        match self {
            Self::Frames {
                files, next, keep, ..
            } => {
                while *next < files.len() {
                    let index = *next;
                    *next += 1;
                    if !keep.keep(index as u64) {
                        continue;
                    }
                    let (number, path) = &files[index];
                    let picture = decode.then(|| super::read_picture(path));
                    return Ok(Some(Frame {
                        number: *number,
                        picture,
                        source: path.display().to_string(),
                    }));
                }
                Ok(None)
            }
            Self::Video(video) => Ok(video.next_frame()?.map(|(number, picture)| Frame {
                number,
                picture: Some(Ok(picture)),
                source: format!("frame {number}"),
            })),
        }
    }

    /// Ends reading: for a video, what ffmpeg complained about (if anything).
    pub fn finish(self) -> anyhow::Result<Option<String>> {
        match self {
            Self::Frames { .. } => Ok(None),
            Self::Video(video) => video.finish(),
        }
    }
}

/// `frameRate` of the `seqinfo.ini` in `dir` or its parent (MOTChallenge keeps frames in
/// `SEQ/img1/` and the file in `SEQ/`).
fn seqinfo_rate(dir: &Path) -> Option<f64> {
    [Some(dir), dir.parent()]
        .into_iter()
        .flatten()
        .find_map(|d| {
            let text = std::fs::read_to_string(d.join("seqinfo.ini")).ok()?;
            let rate: f64 = text
                .lines()
                .find_map(|l| l.trim().strip_prefix("frameRate="))?
                .trim()
                .parse()
                .ok()?;
            (rate > 0.0).then_some(rate)
        })
}

/// Where the people of each frame come from.
pub enum People<'a> {
    /// Given per frame number, as `(box, score)` (a MOTChallenge `det.txt`).
    Given(&'a BTreeMap<u64, Vec<(BBox, f32)>>),
    /// Found by the HOG people detector.
    Hog(HogParams),
    /// Found by a CNN detector (`reid train-detector`), its probabilities as confidences.
    Cnn(&'a CenterNetDetector),
}

/// What following people through footage gave.
pub struct Followed {
    /// The numbers of the frames tracked, in order.
    pub frames: Vec<u64>,
    /// Per frame number, each track seen there with its detection's box.
    pub boxes: BTreeMap<u64, Vec<(u64, BBox)>>,
    /// Every confirmed track, its frames numbered as in the source.
    pub tracklets: Vec<Tracklet>,
    /// Per track, the picture of its best view (when asked for).
    pub thumbnails: HashMap<u64, RgbImage>,
    pub detections: usize,
    /// Detections ignored because their box was empty or not a number.
    pub skipped: usize,
    /// Frames that could not be read (their people are matched by position only).
    pub unreadable: usize,
    pub seconds: f64,
    /// What the video decoder complained about, if anything.
    pub decoder_warning: Option<String>,
    pub fps: Option<f64>,
    /// Frames of the source, kept or not.
    pub source_frames: u64,
}

impl Followed {
    /// When frame `number` (counted from 1) is shown, in seconds, when the rate is known.
    pub fn seconds_at(&self, number: u64) -> Option<f64> {
        self.fps.map(|f| number.saturating_sub(1) as f64 / f)
    }
}

/// Follows people through `footage`: detections below `min_score` are left out; with an
/// `embedder`, people are matched by appearance and position (DeepSORT), else by position.
pub fn follow(
    mut footage: Footage,
    people: &People,
    min_score: f32,
    embedder: Option<&Embedder>,
    config: TrackerConfig,
    thumbnails: bool,
) -> anyhow::Result<Followed> {
    let mut tracker = VideoTracker::new(config, thumbnails)?;
    let detector = HogDetector::opencv_people();
    let start = Instant::now();
    let mut out = Followed {
        frames: Vec::new(),
        boxes: BTreeMap::new(),
        tracklets: Vec::new(),
        thumbnails: HashMap::new(),
        detections: 0,
        skipped: 0,
        unreadable: 0,
        seconds: 0.0,
        decoder_warning: None,
        fps: footage.fps(),
        source_frames: 0,
    };
    let none = Vec::new();
    // A picture is only looked at by the model or the detector: without them, positions do.
    let look = embedder.is_some() || matches!(people, People::Hog(_) | People::Cnn(_));
    while let Some(frame) = footage.next_frame(look)? {
        let picture = match frame.picture {
            Some(Ok(p)) => Some(p),
            None => None,
            Some(Err(e)) => {
                eprintln!(
                    "warning: frame {} ({}) cannot be read: {e}; its people are matched by position only",
                    frame.number, frame.source
                );
                out.unreadable += 1;
                None
            }
        };
        let detected: Vec<(BBox, f32)>;
        let found = match (people, &picture) {
            (People::Hog(params), Some(image)) => {
                detected = hog_boxes(detector, image, params, min_score);
                &detected
            }
            (People::Cnn(cnn), Some(image)) => {
                detected = cnn
                    .detect(image)
                    .with_context(|| format!("frame {} ({})", frame.number, frame.source))?
                    .iter()
                    .map(|d| (d.rect.bbox(), d.score as f32))
                    .collect();
                &detected
            }
            (People::Hog(_) | People::Cnn(_), None) => &none,
            (People::Given(boxes), _) => boxes.get(&frame.number).unwrap_or(&none),
        };
        out.detections += found.len();
        let tracks = pollster::block_on(tracker.next_frame(embedder, picture.as_ref(), found))
            .with_context(|| format!("frame {} ({})", frame.number, frame.source))?;
        out.skipped += tracks.skipped.len();
        for o in &tracks.observations {
            let b = found[o.detection].0;
            out.boxes
                .entry(frame.number)
                .or_default()
                .push((o.track_id, b));
        }
        out.frames.push(frame.number);
    }
    out.seconds = start.elapsed().as_secs_f64();
    out.source_frames = footage.source_frames();
    out.decoder_warning = footage.finish()?;
    // The tracker counts the frames it was given from 1: back to the source's numbers.
    let number = |update: u64| {
        usize::try_from(update)
            .ok()
            .and_then(|u| out.frames.get(u.checked_sub(1)?))
            .copied()
            .unwrap_or(update)
    };
    let (tracklets, views) = tracker.finish();
    out.thumbnails = views;
    out.tracklets = tracklets
        .into_iter()
        .map(|mut t| {
            t.first_frame = number(t.first_frame);
            t.last_frame = number(t.last_frame);
            t.best_frame = number(t.best_frame);
            t
        })
        .collect();
    Ok(out)
}
