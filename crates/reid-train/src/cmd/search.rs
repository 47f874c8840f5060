//! `reid search --query IMAGE --gallery PATH...`: "where else does this person appear?". Builds a
//! gallery of people from pictures, photos and videos, embeds the query pictures with the same
//! model, and prints for each query the gallery ranked by cosine similarity (optionally
//! k-reciprocal re-ranked), with a result sheet (PNG) of the best matches and, on request, every
//! score as JSON.
//!
//! The gallery: each picture is one person (a crop), or with `--detect` a photo in which the
//! HOG detector finds the people; each video (or folder holding videos) is tracked as
//! `reid track` does and each track becomes one entry, its feature the quality-weighted mean of
//! its frames', shown by its best view, with its time span. A file that cannot be read is
//! reported and skipped (exit status 1); the search goes on with the rest.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Args;
use image::imageops::FilterType;
use image::RgbImage;
use reid_core::distance::dot;
use reid_core::naming::parse_market1501;
use reid_core::{k_reciprocal_rerank, BBox, FeatureMatrix, Metric, RerankParams, TrackerConfig};
use reid_model::detect::hog::HogParams;
use reid_pipeline::{device, people_in, Backend, Embedder, TrackletAggregator};
use serde::Serialize;

use super::footage::{
    follow, picture_embeddings, read_aggregator, tracklet_embedding, Footage, People,
};
use super::read_picture;
use crate::report::{Picture, RankedResult, RankedRow};
use crate::video::is_video;

/// Results per query on the result sheet (the text and the JSON have all of `--top`).
const SHEET_RESULTS: usize = 20;

#[derive(Args, Debug)]
pub struct SearchArgs {
    /// Picture(s) of the person to look for (a crop of one person each; one row of results each).
    #[arg(long, required = true, num_args = 1..)]
    query: Vec<PathBuf>,
    /// Pictures, folders (walked for pictures and videos) and video files to search.
    #[arg(long, required = true, num_args = 1..)]
    gallery: Vec<PathBuf>,
    /// Gallery pictures are whole photos: the HOG detector finds the people in them and each
    /// person found is one entry (without it, each picture is one person).
    #[arg(long)]
    detect: bool,
    /// The HOG detector's score threshold, for --detect and for videos.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    hog_threshold: f64,
    /// Videos: track at most this many frames per second (the others are skipped).
    #[arg(long)]
    fps: Option<f64>,
    /// Results shown per query.
    #[arg(long, default_value_t = 10)]
    top: usize,
    /// Rank by k-reciprocal re-ranked distance (Zhong et al. 2017) instead of the similarity.
    #[arg(long)]
    rerank: bool,
    /// The result sheet: each query and its best matches, up to 20 (PNG).
    #[arg(long, default_value = "search.png")]
    sheet: PathBuf,
    /// Also write every entry and every query's full ranking as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Model file.
    #[arg(long, default_value_os_t = super::default_model())]
    model: PathBuf,
    /// Crops per forward pass.
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// A temporal aggregator from `reid temporal`: each video track's embedding comes from it
    /// over the track's frames instead of their quality-weighted mean, and the pictures (queries
    /// and gallery) go through it as one-frame tracklets, so every entry is in its space.
    #[arg(long)]
    temporal: Option<PathBuf>,
}

/// What a gallery entry is.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Kind {
    /// A whole picture taken as one person.
    Picture,
    /// A person the detector found in a photo.
    Detected { bbox: BBox, score: f64 },
    /// A person followed through a video.
    Track {
        track_id: u64,
        first_frame: u64,
        last_frame: u64,
        frames_seen: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        start_seconds: Option<f64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        end_seconds: Option<f64>,
    },
}

/// One person of the gallery.
#[derive(Serialize)]
struct Entry {
    source: PathBuf,
    /// The camera: Market-1501's `c3` in the name, else the video's or the picture's folder's name.
    camera: String,
    /// The identity in a Market-1501-style name, when there is one (for the sheet's colours).
    #[serde(skip_serializing_if = "Option::is_none")]
    identity: Option<i64>,
    #[serde(flatten)]
    kind: Kind,
    #[serde(skip)]
    thumbnail: Option<RgbImage>,
    #[serde(skip)]
    embedding: Vec<f32>,
}

impl Entry {
    /// One line for the text output.
    fn describe(&self) -> String {
        let source = self.source.display();
        match &self.kind {
            Kind::Picture => format!("{source}"),
            Kind::Detected { bbox, score } => format!(
                "{source} person at ({:.0}, {:.0}) {:.0}x{:.0}, detector score {score:.2}",
                bbox.x, bbox.y, bbox.w, bbox.h
            ),
            Kind::Track {
                track_id,
                first_frame,
                last_frame,
                frames_seen,
                start_seconds,
                end_seconds,
            } => {
                let when = match (start_seconds, end_seconds) {
                    (Some(s), Some(e)) => format!(" ({} to {})", clock(*s), clock(*e)),
                    _ => String::new(),
                };
                format!("{source} track {track_id}, frames {first_frame}-{last_frame}{when}, seen in {frames_seen}")
            }
        }
    }

    /// A short line for the sheet.
    fn short(&self) -> String {
        match &self.kind {
            Kind::Track {
                start_seconds: Some(s),
                ..
            } => format!("{} {}", self.camera, clock(*s)),
            Kind::Track { first_frame, .. } => format!("{} f{first_frame}", self.camera),
            // Which photo: its name says more than its folder.
            Kind::Detected { .. } => self
                .source
                .file_stem()
                .map_or_else(|| self.camera.clone(), |s| s.to_string_lossy().into_owned()),
            Kind::Picture => self.camera.clone(),
        }
    }
}

/// Seconds as m:ss.s.
fn clock(seconds: f64) -> String {
    let tenths = (seconds.max(0.0) * 10.0).round() as u64;
    format!("{}:{:02}.{}", tenths / 600, tenths / 10 % 60, tenths % 10)
}

/// The camera label of a picture or video at `path`.
fn camera_of(path: &Path) -> (String, Option<i64>) {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    if let Ok(m) = parse_market1501(&name) {
        return (format!("c{}", m.camid), Some(m.pid));
    }
    let label = if is_video(path) {
        path.file_stem()
    } else {
        path.parent().and_then(Path::file_name)
    };
    let label = label.map(|s| s.to_string_lossy().into_owned());
    (label.unwrap_or_else(|| "-".into()), None)
}

/// The small copy of a person's picture the sheet shows.
fn thumbnail(image: &RgbImage) -> RgbImage {
    image::imageops::resize(image, 64, 128, FilterType::Triangle)
}

/// Pictures and videos under the gallery paths, in the order given (sorted within folders).
fn gallery_files(paths: &[PathBuf]) -> anyhow::Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let (mut pictures, mut videos) = (Vec::new(), Vec::new());
    for path in paths {
        let meta =
            std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
        let mut found = Vec::new();
        if meta.is_dir() {
            walk(path, &mut found).with_context(|| format!("cannot read {}", path.display()))?;
            found.sort();
        } else {
            found.push(path.clone());
        }
        let before = pictures.len() + videos.len();
        for file in found {
            if is_video(&file) {
                videos.push(file);
            } else if meta.is_file() || reid_data::folder::is_image_name(&file) {
                pictures.push(file);
            }
        }
        if pictures.len() + videos.len() == before {
            bail!(
                "{} holds no pictures ({}) or videos ({})",
                path.display(),
                reid_data::folder::IMAGE_EXTENSIONS.join(", "),
                crate::video::VIDEO_EXTENSIONS.join(", ")
            );
        }
    }
    Ok((pictures, videos))
}

/// Files under `dir`; linked folders are not followed (a link loop would never end).
fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            walk(&entry.path(), out)?;
        } else {
            out.push(entry.path());
        }
    }
    Ok(())
}

/// The gallery being built, and what went wrong on the way.
struct Gallery<'a> {
    embedder: &'a Embedder,
    /// Each track's embedding from its frames, instead of their quality-weighted mean; pictures
    /// go through it as one-frame tracks, so that every entry is in its space.
    aggregator: Option<&'a TrackletAggregator>,
    /// People embedded at a time.
    batch: usize,
    entries: Vec<Entry>,
    failures: usize,
}

impl Gallery<'_> {
    fn fail(&mut self, path: &Path, why: impl std::fmt::Display) {
        eprintln!("warning: {} is left out: {why}", path.display());
        self.failures += 1;
    }

    /// Embeds people cut out of pictures, a batch at a time, and adds them.
    fn add(&mut self, people: Vec<(Entry, RgbImage)>) -> anyhow::Result<()> {
        let (mut entries, images): (Vec<Entry>, Vec<RgbImage>) = people.into_iter().unzip();
        let embeddings = pollster::block_on(self.embedder.embed_images(&images))?;
        for (entry, e) in entries
            .iter_mut()
            .zip(picture_embeddings(embeddings, self.aggregator)?)
        {
            entry.embedding = e;
        }
        self.entries.extend(entries);
        Ok(())
    }

    fn pictures(&mut self, files: &[PathBuf], detect: Option<&HogParams>) -> anyhow::Result<()> {
        let batch = self.batch.max(1);
        let mut pending = Vec::new();
        for path in files {
            let image = match read_picture(path) {
                Ok(image) => image,
                Err(why) => {
                    self.fail(path, why);
                    continue;
                }
            };
            let (camera, identity) = camera_of(path);
            let entry = |kind| Entry {
                source: path.clone(),
                camera: camera.clone(),
                identity: identity.filter(|_| detect.is_none()),
                kind,
                thumbnail: None,
                embedding: Vec::new(),
            };
            match detect {
                None => pending.push((entry(Kind::Picture), image)),
                Some(params) => {
                    for person in people_in(&image, params) {
                        let mut e = entry(Kind::Detected {
                            bbox: person.bbox,
                            score: person.score,
                        });
                        e.thumbnail = Some(thumbnail(&person.crop));
                        pending.push((e, person.crop));
                    }
                }
            }
            if pending.len() >= batch {
                self.add(std::mem::take(&mut pending))?;
            }
        }
        self.add(pending)
    }

    fn video(&mut self, path: &Path, args: &SearchArgs) -> anyhow::Result<()> {
        let footage = match Footage::open(path, args.fps) {
            Ok(f) => f,
            Err(e) => {
                self.fail(path, format!("{e:#}"));
                return Ok(());
            }
        };
        let people = People::Hog(HogParams {
            hit_threshold: args.hog_threshold,
            ..HogParams::default()
        });
        let followed = match follow(
            footage,
            &people,
            f32::NEG_INFINITY,
            Some(self.embedder),
            TrackerConfig::default(),
            true,
        ) {
            Ok(f) => f,
            Err(e) => {
                self.fail(path, format!("{e:#}"));
                return Ok(());
            }
        };
        if let Some(warning) = &followed.decoder_warning {
            eprintln!(
                "warning: {} ends early ({warning}); its tracks up to there are kept",
                path.display()
            );
        }
        let (camera, _) = camera_of(path);
        let before = self.entries.len();
        for t in &followed.tracklets {
            let embedding = match tracklet_embedding(t, self.aggregator) {
                Ok(Some(e)) => e,
                Ok(None) => continue,
                Err(e) => {
                    self.fail(path, format!("{e:#}"));
                    return Ok(());
                }
            };
            self.entries.push(Entry {
                source: path.to_path_buf(),
                camera: camera.clone(),
                identity: None,
                kind: Kind::Track {
                    track_id: t.track_id,
                    first_frame: t.first_frame,
                    last_frame: t.last_frame,
                    frames_seen: t.frames_seen,
                    start_seconds: followed.seconds_at(t.first_frame),
                    end_seconds: followed.seconds_at(t.last_frame),
                },
                thumbnail: followed.thumbnails.get(&t.track_id).map(thumbnail),
                embedding,
            });
        }
        eprintln!(
            "{}: {} frames, {} people followed ({:.1} frames/s)",
            path.display(),
            followed.frames.len(),
            self.entries.len() - before,
            followed.frames.len() as f64 / followed.seconds.max(1e-9)
        );
        Ok(())
    }
}

#[derive(Serialize)]
struct JsonHit {
    entry: usize,
    similarity: f32,
    #[serde(skip_serializing_if = "Option::is_none")]
    reranked_distance: Option<f32>,
}

#[derive(Serialize)]
struct JsonQuery {
    query: PathBuf,
    ranking: Vec<JsonHit>,
}

#[derive(Serialize)]
struct JsonReport<'a> {
    model: &'a Path,
    gallery: &'a [Entry],
    queries: Vec<JsonQuery>,
}

pub fn run(args: SearchArgs) -> anyhow::Result<ExitCode> {
    if args.top == 0 {
        bail!("--top must be at least 1");
    }
    if let Some(fps) = args.fps.filter(|f| !(f.is_finite() && *f > 0.0)) {
        bail!("--fps must be a positive number of frames per second, not {fps}");
    }
    let (pictures, videos) = gallery_files(&args.gallery)?;
    let model = super::read_model(&args.model)?;
    let device = pollster::block_on(device(Backend::Cpu))?;
    let embedder = Embedder::from_burnpack(&model, device, args.batch)?;

    // The queries first: nothing to look for is an error before any gallery work.
    let mut failures = 0;
    let (mut queries, mut images): (Vec<(PathBuf, RgbImage)>, Vec<RgbImage>) = Default::default();
    for path in &args.query {
        match read_picture(path) {
            Ok(image) => {
                queries.push((path.clone(), thumbnail(&image)));
                images.push(image);
            }
            Err(why) => {
                eprintln!("warning: the query {} is left out: {why}", path.display());
                failures += 1;
            }
        }
    }
    if queries.is_empty() {
        bail!("no query picture could be read");
    }
    let aggregator = args
        .temporal
        .as_ref()
        .map(|path| read_aggregator(path, &embedder))
        .transpose()?;
    // With an aggregator, a query picture is a one-frame tracklet in the aggregator's space.
    let query_embeddings = picture_embeddings(
        pollster::block_on(embedder.embed_images(&images))?,
        aggregator.as_ref(),
    )?;
    let mut gallery = Gallery {
        embedder: &embedder,
        aggregator: aggregator.as_ref(),
        batch: args.batch,
        entries: Vec::new(),
        failures: 0,
    };
    let detect = args.detect.then(|| HogParams {
        hit_threshold: args.hog_threshold,
        ..HogParams::default()
    });
    gallery.pictures(&pictures, detect.as_ref())?;
    for video in &videos {
        gallery.video(video, &args)?;
    }
    failures += gallery.failures;
    let entries = gallery.entries;
    if entries.is_empty() {
        bail!("the gallery holds no person (no picture could be read, and no person was found in the photos or videos)");
    }

    let dim = aggregator
        .as_ref()
        .map_or(embedder.embedding_dim(), |a| a.embedding_dim());
    let g = FeatureMatrix::new(
        entries
            .iter()
            .flat_map(|e| e.embedding.iter().copied())
            .collect(),
        dim,
    )?
    .l2_normalized();
    let q =
        FeatureMatrix::new(query_embeddings.into_iter().flatten().collect(), dim)?.l2_normalized();
    let reranked = args
        .rerank
        .then(|| k_reciprocal_rerank(&q, &g, Metric::Cosine, RerankParams::default()))
        .transpose()?;

    let ng = entries.len();
    let mut rows = Vec::new();
    let mut json = Vec::new();
    for (qi, (qpath, qimage)) in queries.iter().enumerate() {
        let similarity: Vec<f32> = (0..ng).map(|gi| dot(q.row(qi), g.row(gi))).collect();
        let distance = reranked.as_ref().map(|d| &d[qi * ng..(qi + 1) * ng]);
        let mut order: Vec<usize> = (0..ng).collect();
        match distance {
            Some(d) => order.sort_by(|&a, &b| d[a].total_cmp(&d[b]).then(a.cmp(&b))),
            None => order.sort_by(|&a, &b| similarity[b].total_cmp(&similarity[a]).then(a.cmp(&b))),
        }
        let query_identity = camera_of(qpath).1;
        println!(
            "{}: {} of {ng} gallery people{}",
            qpath.display(),
            args.top.min(ng),
            if distance.is_some() {
                ", re-ranked"
            } else {
                ""
            }
        );
        let mut results = Vec::new();
        for (rank, &gi) in order.iter().take(args.top).enumerate() {
            let e = &entries[gi];
            let score = match distance {
                Some(d) => format!("{:.3} (re-ranked distance {:.3})", similarity[gi], d[gi]),
                None => format!("{:.3}", similarity[gi]),
            };
            println!(
                "  #{:<3} {score}  {:<6} {}",
                rank + 1,
                e.camera,
                e.describe()
            );
            if rank >= SHEET_RESULTS {
                continue;
            }
            results.push(RankedResult {
                picture: match &e.thumbnail {
                    Some(t) => Picture::Image(t.clone()),
                    None => Picture::File(e.source.clone()),
                },
                verdict: query_identity.zip(e.identity).map(|(a, b)| a == b),
                label: format!("#{} {:.3}", rank + 1, similarity[gi]),
                detail: e.short(),
            });
        }
        rows.push(RankedRow {
            query: Picture::Image(qimage.clone()),
            caption: format!(
                "{}  (similarity; {})",
                qpath.file_name().unwrap_or_default().to_string_lossy(),
                if distance.is_some() {
                    "order: re-ranked"
                } else {
                    "best first"
                }
            ),
            results,
        });
        json.push(JsonQuery {
            query: qpath.clone(),
            ranking: order
                .iter()
                .map(|&gi| JsonHit {
                    entry: gi,
                    similarity: similarity[gi],
                    reranked_distance: distance.map(|d| d[gi]),
                })
                .collect(),
        });
    }
    crate::report::save_png(&crate::report::ranked_lists(&rows), &args.sheet)?;
    eprintln!("wrote the result sheet to {}", args.sheet.display());
    if let Some(path) = &args.json {
        let report = JsonReport {
            model: &args.model,
            gallery: &entries,
            queries: json,
        };
        std::fs::write(path, serde_json::to_string(&report)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(if failures > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_rounds_to_tenths_before_it_carries_minutes() {
        assert_eq!(clock(0.0), "0:00.0");
        assert_eq!(clock(59.96), "1:00.0");
        assert_eq!(clock(61.25), "1:01.3");
        assert_eq!(clock(3725.0), "62:05.0");
    }

    #[test]
    fn cameras_come_from_market_names_else_the_video_or_the_folder() {
        assert_eq!(
            camera_of(Path::new("g/0002_c3s1_000100_01.jpg")),
            ("c3".to_string(), Some(2))
        );
        assert_eq!(
            camera_of(Path::new("videos/lobby.mp4")),
            ("lobby".to_string(), None)
        );
        assert_eq!(
            camera_of(Path::new("door/photo.jpg")),
            ("door".to_string(), None)
        );
    }
}
