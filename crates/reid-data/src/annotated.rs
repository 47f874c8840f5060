//! Hand-annotated people in full frames, turned into a Market-1501 evaluation folder: each box
//! of a `frame,identity,x1,y1,x2,y2` CSV is cut from its frame and written losslessly (PNG) to
//! `bounding_box_test/`, and to `query/` when its identity is seen in another frame too. Each
//! frame counts as its own "camera", so the protocol's same-camera rule removes exactly the
//! query's own picture and the other frames' pictures of the person are the positives.
//! Unlabelled pictures (such as other people's crops) can join the gallery as distractors
//! (identity 0).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// One annotated box, in the frame's pixels (x2, y2 exclusive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonBox {
    pub frame: String,
    pub identity: u32,
    pub x1: u32,
    pub y1: u32,
    pub x2: u32,
    pub y2: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum AnnotatedError {
    #[error("{path} line {line}: {what} (expected frame,identity,x1,y1,x2,y2 with 0 <= x1 < x2, 0 <= y1 < y2, identity >= 1)")]
    BadRow {
        path: PathBuf,
        line: usize,
        what: String,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Image {
        path: PathBuf,
        #[source]
        source: image::ImageError,
    },
    #[error("{frame}: the box of identity {identity} ({x1},{y1})-({x2},{y2}) leaves the {width}x{height} frame")]
    OutOfFrame {
        frame: String,
        identity: u32,
        x1: u32,
        y1: u32,
        x2: u32,
        y2: u32,
        width: u32,
        height: u32,
    },
}

/// Reads the CSV (a header line, then one box per line; `#` lines are comments).
pub fn read_boxes(path: &Path) -> Result<Vec<PersonBox>, AnnotatedError> {
    let text = std::fs::read_to_string(path).map_err(|source| AnnotatedError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut boxes = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if i == 0 || line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |what: &str| AnnotatedError::BadRow {
            path: path.to_path_buf(),
            line: i + 1,
            what: what.to_string(),
        };
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let [frame, identity, x1, y1, x2, y2] = fields.as_slice() else {
            return Err(bad("not 6 fields"));
        };
        let n = |s: &str| {
            s.parse::<u32>()
                .map_err(|_| bad(&format!("`{s}` is not a number")))
        };
        let b = PersonBox {
            frame: frame.to_string(),
            identity: n(identity)?,
            x1: n(x1)?,
            y1: n(y1)?,
            x2: n(x2)?,
            y2: n(y2)?,
        };
        if b.identity == 0 || b.x1 >= b.x2 || b.y1 >= b.y2 {
            return Err(bad("empty box or identity 0"));
        }
        boxes.push(b);
    }
    Ok(boxes)
}

/// What [`write_market`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub queries: usize,
    pub gallery: usize,
    pub distractors: usize,
    pub identities: usize,
}

/// Cuts every box from `frames/FRAME` and writes the Market-1501 folder `out`, with the
/// pictures of `distractors` (trimmed by `trim` pixels on each side) as identity 0.
pub fn write_market(
    boxes: &[PersonBox],
    frames: &Path,
    distractors: &[PathBuf],
    trim: u32,
    out: &Path,
) -> Result<Written, AnnotatedError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| AnnotatedError::Io { path, source }
    };
    let query = out.join("query");
    let gallery = out.join("bounding_box_test");
    for dir in [&query, &gallery] {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    let mut frame_names: Vec<&str> = boxes.iter().map(|b| b.frame.as_str()).collect();
    frame_names.sort_unstable();
    frame_names.dedup();
    let mut frames_of: BTreeMap<u32, BTreeSet<&str>> = BTreeMap::new();
    for b in boxes {
        frames_of.entry(b.identity).or_default().insert(&b.frame);
    }
    let mut written = Written {
        queries: 0,
        gallery: 0,
        distractors: 0,
        identities: frames_of.len(),
    };
    for (camera, name) in frame_names.iter().enumerate() {
        let path = frames.join(name);
        let frame = image::open(&path)
            .map_err(|source| AnnotatedError::Image {
                path: path.clone(),
                source,
            })?
            .to_rgb8();
        for (n, b) in boxes.iter().filter(|b| b.frame == *name).enumerate() {
            if b.x2 > frame.width() || b.y2 > frame.height() {
                return Err(AnnotatedError::OutOfFrame {
                    frame: b.frame.clone(),
                    identity: b.identity,
                    x1: b.x1,
                    y1: b.y1,
                    x2: b.x2,
                    y2: b.y2,
                    width: frame.width(),
                    height: frame.height(),
                });
            }
            let crop =
                image::imageops::crop_imm(&frame, b.x1, b.y1, b.x2 - b.x1, b.y2 - b.y1).to_image();
            let file = format!("{:04}_c{}s1_{:06}_{:02}.png", b.identity, camera + 1, 0, n);
            let save = |dir: &Path| {
                let path = dir.join(&file);
                crop.save(&path)
                    .map_err(|source| AnnotatedError::Image { path, source })
            };
            save(&gallery)?;
            written.gallery += 1;
            if frames_of[&b.identity].len() > 1 {
                save(&query)?;
                written.queries += 1;
            }
        }
    }
    let camera = frame_names.len() + 1;
    for (i, path) in distractors.iter().enumerate() {
        let image = image::open(path)
            .map_err(|source| AnnotatedError::Image {
                path: path.clone(),
                source,
            })?
            .to_rgb8();
        let (w, h) = image.dimensions();
        if w <= 2 * trim || h <= 2 * trim {
            continue;
        }
        let crop =
            image::imageops::crop_imm(&image, trim, trim, w - 2 * trim, h - 2 * trim).to_image();
        let dest = gallery.join(format!("0000_c{camera}s1_{i:06}_00.png"));
        crop.save(&dest).map_err(|source| AnnotatedError::Image {
            path: dest.clone(),
            source,
        })?;
        written.distractors += 1;
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boxes_become_queries_only_when_seen_twice_and_bad_rows_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let frames = dir.path().join("frames");
        std::fs::create_dir_all(&frames).unwrap();
        for name in ["a.png", "b.png"] {
            image::RgbImage::from_pixel(100, 80, image::Rgb([9, 9, 9]))
                .save(frames.join(name))
                .unwrap();
        }
        let csv = dir.path().join("people.csv");
        std::fs::write(
            &csv,
            "frame,identity,x1,y1,x2,y2\na.png,1,0,0,20,40\nb.png,1,10,10,30,50\nb.png,2,50,0,70,60\n",
        )
        .unwrap();
        let boxes = read_boxes(&csv).unwrap();
        let distractor = dir.path().join("d.png");
        image::RgbImage::new(40, 60).save(&distractor).unwrap();
        let out = dir.path().join("out");
        let written = write_market(&boxes, &frames, &[distractor], 5, &out).unwrap();
        assert_eq!(
            written,
            Written {
                queries: 2,
                gallery: 3,
                distractors: 1,
                identities: 2
            }
        );
        let (query, gallery) = crate::market1501::read_test_splits(&out).unwrap();
        assert_eq!(
            query.iter().map(|q| q.name.camid).collect::<Vec<_>>(),
            vec![1, 2]
        );
        assert_eq!(gallery.len(), 4);
        let d = image::open(out.join("bounding_box_test/0000_c3s1_000000_00.png")).unwrap();
        assert_eq!((d.width(), d.height()), (30, 50));

        std::fs::write(&csv, "frame,identity,x1,y1,x2,y2\na.png,1,5,0,5,40\n").unwrap();
        let err = read_boxes(&csv).unwrap_err().to_string();
        assert!(err.contains("line 2"), "{err}");
        std::fs::write(&csv, "frame,identity,x1,y1,x2,y2\na.png,1,90,0,120,40\n").unwrap();
        let boxes = read_boxes(&csv).unwrap();
        let err = write_market(&boxes, &frames, &[], 0, &out)
            .unwrap_err()
            .to_string();
        assert!(err.contains("leaves the 100x80 frame"), "{err}");
    }
}
