//! `reid detect IMAGE|FOLDER...`: finds pedestrians with the HOG people detector (OpenCV's
//! default 64x128 SVM, `reid_model::detect::hog`), or with `--detector FILE` the CNN detector
//! `reid train-detector` trains (`reid_model::detect::centernet`), and prints each image's boxes
//! and scores;
//! `--draw DIR` writes each picture with its boxes, `--mot FILE` the boxes of a folder of frames
//! as a MOTChallenge `det.txt` that `reid track --detections` reads, and `--gt` scores them
//! against MOTChallenge ground truth (AP at IoU 0.5; people too small or too hidden ignored, as
//! the Caltech benchmark's "reasonable" setting). A file that cannot be read or decoded is
//! reported and skipped; the exit status is then 1.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use embedded_graphics::pixelcolor::Rgb888;
use embedded_graphics::prelude::*;
use embedded_graphics::primitives::{PrimitiveStyle, Rectangle};
use embedded_graphics::text::Alignment;
use reid_core::{average_precision, parse_mot_rows, BBox, ScoredBox, TruthBox};
use reid_model::detect::hog::{Detection, HogParams};
use reid_model::detect::{CenterNetDetector, Detector, Hog};
use serde::Serialize;

use crate::report::{save_png, Canvas};

#[derive(Args, Debug)]
pub struct DetectArgs {
    /// Image files or folders (walked recursively for jpg, jpeg, png, webp, bmp), in file-name
    /// order; with --mot, a name that is a number (`000001.jpg`) gives the frame its number.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// A CNN detector file (`reid train-detector`) instead of HOG.
    #[arg(long, value_name = "FILE")]
    detector: Option<PathBuf>,
    /// Boxes scoring below this are not people: HOG's SVM margin (OpenCV's hitThreshold;
    /// default 0), or the CNN's probability (default 0.3).
    #[arg(long, allow_negative_numbers = true)]
    threshold: Option<f64>,
    /// Ratio between pyramid levels (> 1; smaller finds more sizes and is slower).
    #[arg(long, default_value_t = 1.05)]
    scale: f64,
    /// Step between windows, pixels (8 or a multiple keeps one block grid).
    #[arg(long, default_value_t = 8)]
    stride: usize,
    /// Reflected border around each level, pixels, so that people cut by the frame edge fit.
    #[arg(long, default_value_t = 8)]
    padding: usize,
    /// A group of this many overlapping hits or fewer is dropped (0: every hit, ungrouped).
    #[arg(long, default_value_t = 2)]
    group: usize,
    /// Write each image with its boxes drawn (PNG) into this folder.
    #[arg(long)]
    draw: Option<PathBuf>,
    /// Write all boxes as MOTChallenge detections (frame, -1, x, y, w, h, score, -1, -1, -1).
    #[arg(long)]
    mot: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Score the boxes against this ground truth: MOTChallenge `gt.txt` (frames numbered by
    /// their names), or a `.csv` of people boxes by frame file name as `reid crops` reads
    /// (`frame,identity,x1,y1,x2,y2`): average precision at IoU 0.5.
    #[arg(long)]
    gt: Option<PathBuf>,
    /// With --gt: people shorter than this, pixels, are ignored (neither found nor missed), and
    /// boxes shorter than this / 1.25 are left out of the score (the Caltech benchmark's rule,
    /// so that finding a person too small to be asked for is not counted wrong).
    #[arg(long, default_value_t = 50.0)]
    min_height: f32,
    /// With --gt: people less visible than this share are ignored.
    #[arg(long, default_value_t = 0.65)]
    min_visibility: f32,
}

/// Boxes shorter than `--min-height` divided by this are left out of the score (the Caltech
/// pedestrian benchmark widens the height range of the people it asks for by 1.25 for boxes).
const CALTECH_HEIGHT_MARGIN: f32 = 1.25;

#[derive(Serialize)]
struct JsonImage {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    people: Option<Vec<Detection>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

pub fn run(args: DetectArgs) -> anyhow::Result<ExitCode> {
    if args.scale <= 1.0 || args.stride == 0 {
        anyhow::bail!("--scale must be above 1 and --stride above 0");
    }
    let mut files: Vec<PathBuf> = reid_data::collect_images(&args.inputs)?
        .into_iter()
        .map(|e| e.path)
        .collect();
    files.sort();
    if files.is_empty() {
        anyhow::bail!("no images (jpg, jpeg, png, webp, bmp) in the inputs");
    }
    let detector: Box<dyn Detector> = match &args.detector {
        Some(path) => Box::new(cnn_detector(path, args.threshold.unwrap_or(0.3))?),
        None => Box::new(Hog(HogParams {
            hit_threshold: args.threshold.unwrap_or(0.0),
            stride: args.stride,
            padding: args.padding,
            scale: args.scale,
            group_threshold: args.group,
            ..HogParams::default()
        })),
    };
    let numbers = super::frame_numbers(&files);
    let truth = match &args.gt {
        Some(path)
            if path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("csv")) =>
        {
            Some(annotated_truth(path, &files, &numbers, args.min_height)?)
        }
        Some(path) => Some(ground_truth(path, args.min_height, args.min_visibility)?),
        None => None,
    };
    let mut scored = Vec::new();
    let mut report = Vec::new();
    let mut mot = String::new();
    let mut failed = 0;
    for (path, &frame) in files.iter().zip(&numbers) {
        let name = path.display().to_string();
        let found = super::read_picture(path).and_then(|image| {
            let start = Instant::now();
            let people = detector.detect(&image).map_err(|e| e.to_string())?;
            Ok((image, people, start.elapsed()))
        });
        match found {
            Ok((image, people, took)) => {
                if !args.json {
                    println!(
                        "{name}: {} {} ({}x{}, {:.0} ms)",
                        people.len(),
                        if people.len() == 1 {
                            "person"
                        } else {
                            "people"
                        },
                        image.width(),
                        image.height(),
                        took.as_secs_f64() * 1000.0
                    );
                    for d in &people {
                        let r = d.rect;
                        println!(
                            "  x {} y {} w {} h {}  score {:.3}",
                            r.x, r.y, r.w, r.h, d.score
                        );
                    }
                }
                for d in &people {
                    let r = d.rect;
                    scored.push(ScoredBox {
                        frame,
                        bbox: r.bbox(),
                        score: d.score,
                    });
                    let _ = writeln!(
                        mot,
                        "{frame},-1,{},{},{},{},{:.4},-1,-1,-1",
                        r.x, r.y, r.w, r.h, d.score
                    );
                }
                if let Some(dir) = &args.draw {
                    let out = dir
                        .join(path.file_stem().unwrap_or_default())
                        .with_extension("png");
                    save_png(&drawn(image, &people), &out)?;
                }
                report.push(JsonImage {
                    name,
                    people: Some(people),
                    error: None,
                });
            }
            Err(error) => {
                failed += 1;
                eprintln!("{name}: skipped: {error}");
                report.push(JsonImage {
                    name,
                    people: None,
                    error: Some(error),
                });
            }
        }
    }
    if let Some(path) = &args.mot {
        std::fs::write(path, mot).with_context(|| format!("cannot write {}", path.display()))?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    if let Some(truth) = truth {
        let frames: std::collections::HashSet<u64> = numbers.iter().copied().collect();
        let truth: Vec<TruthBox> = truth
            .into_iter()
            .filter(|t| frames.contains(&t.frame))
            .collect();
        let min_box = args.min_height / CALTECH_HEIGHT_MARGIN;
        let scored: Vec<ScoredBox> = scored.into_iter().filter(|s| s.bbox.h >= min_box).collect();
        let r = average_precision(&scored, &truth, 0.5);
        let ignored = truth.len() - r.people;
        let line = format!(
            "AP@0.5 {:.2}% over {} people in {} frames ({ignored} more ignored: shorter than {} px or less than {:.0}% visible; boxes shorter than {min_box} px left out); all boxes kept: recall {:.2}%, precision {:.2}% ({} right, {} wrong)",
            100.0 * r.ap,
            r.people,
            frames.len(),
            args.min_height,
            100.0 * args.min_visibility,
            100.0 * r.recall,
            100.0 * r.precision,
            r.true_positives,
            r.false_positives,
        );
        if args.json {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    }
    Ok(if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Reads a CNN detector file for the CPU, boxes below `min_score` left out.
pub fn cnn_detector(path: &std::path::Path, min_score: f64) -> anyhow::Result<CenterNetDetector> {
    if !(0.0..=1.0).contains(&min_score) {
        anyhow::bail!("the CNN detector's threshold is a probability (0 to 1), not {min_score}");
    }
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read the detector {}", path.display()))?;
    let mut detector = CenterNetDetector::from_burnpack(&bytes, burn::tensor::Device::flex())
        .with_context(|| format!("the detector {}", path.display()))?;
    detector.min_score = min_score as f32;
    Ok(detector)
}

/// The people of a MOTChallenge ground-truth file, the small, hidden and flagged ones marked
/// ignored.
fn ground_truth(
    path: &std::path::Path,
    min_height: f32,
    min_visibility: f32,
) -> anyhow::Result<Vec<TruthBox>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the ground truth {}", path.display()))?;
    let rows = parse_mot_rows(&text)
        .with_context(|| format!("{} is not a MOTChallenge ground-truth file", path.display()))?;
    Ok(rows
        .into_iter()
        .map(|r| TruthBox {
            frame: r.frame,
            bbox: r.bbox,
            ignore: r.confidence == 0.0
                || r.bbox.h < min_height
                || r.visibility.is_some_and(|v| v < min_visibility),
        })
        .collect())
}

/// The people of a `reid crops` box file, each frame found by its file name among `files`
/// (boxes of other frames are left out); the small ones marked ignored.
fn annotated_truth(
    path: &std::path::Path,
    files: &[PathBuf],
    numbers: &[u64],
    min_height: f32,
) -> anyhow::Result<Vec<TruthBox>> {
    let boxes = reid_data::annotated::read_boxes(path)?;
    let by_name: std::collections::HashMap<String, u64> = files
        .iter()
        .zip(numbers)
        .filter_map(|(f, &n)| Some((f.file_name()?.to_str()?.to_string(), n)))
        .collect();
    let named: std::collections::BTreeSet<&str> = boxes.iter().map(|b| b.frame.as_str()).collect();
    let unmatched: Vec<&str> = named
        .iter()
        .copied()
        .filter(|f| !by_name.contains_key(*f))
        .collect();
    if !named.is_empty() && unmatched.len() == named.len() {
        anyhow::bail!(
            "no frame named in {} is among the pictures given (it names {}, ...)",
            path.display(),
            unmatched[..unmatched.len().min(3)].join(", ")
        );
    }
    if !unmatched.is_empty() {
        eprintln!(
            "warning: {} frames named in {} are not among the pictures given; their boxes are left out",
            unmatched.len(),
            path.display()
        );
    }
    Ok(boxes
        .into_iter()
        .filter_map(|b| {
            let frame = *by_name.get(&b.frame)?;
            let bbox = BBox::new(
                b.x1 as f32,
                b.y1 as f32,
                (b.x2 - b.x1) as f32,
                (b.y2 - b.y1) as f32,
            );
            Some(TruthBox {
                frame,
                ignore: bbox.h < min_height,
                bbox,
            })
        })
        .collect())
}

/// The picture with each box outlined and its score written above it.
fn drawn(image: image::RgbImage, people: &[Detection]) -> Canvas {
    let mut canvas = Canvas(image);
    let style = PrimitiveStyle::with_stroke(Rgb888::new(255, 40, 40), 3);
    for d in people {
        let r = d.rect;
        let _ = Rectangle::new(
            Point::new(r.x, r.y),
            Size::new(r.w.max(1) as u32, r.h.max(1) as u32),
        )
        .into_styled(style)
        .draw(&mut canvas);
        canvas.text(
            &format!("{:.2}", d.score),
            Point::new(r.x + 2, (r.y - 16).max(0)),
            Rgb888::new(255, 255, 0),
            true,
            Alignment::Left,
        );
    }
    canvas
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boxes_are_drawn_where_the_detection_is() {
        let image = image::RgbImage::new(100, 160);
        let people = [Detection {
            rect: reid_model::detect::hog::Rect {
                x: 10,
                y: 20,
                w: 64,
                h: 128,
            },
            score: 1.25,
        }];
        let canvas = drawn(image, &people);
        assert_eq!(canvas.0.get_pixel(10, 60).0, [255, 40, 40]);
        assert_eq!(canvas.0.get_pixel(40, 80).0, [0, 0, 0]);
    }
}
