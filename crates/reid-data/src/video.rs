//! Video ReID datasets: tracklets (one person's frames in one camera) in train, query and gallery
//! splits. [`open`] recognises four layouts:
//!
//! - the synthetic world's video output: `tracklets.json` names every tracklet's frames and split;
//! - MARS: `bbox_train/` and `bbox_test/` with `info/train_name.txt`, `info/test_name.txt`,
//!   `info/tracks_train_info.mat`, `info/tracks_test_info.mat` and `info/query_IDX.mat` (the
//!   official query tracklets; every other test tracklet is the gallery, as in torchreid);
//! - iLIDS-VID: `sequences/cam1/personNNN/*.png` and `cam2`; the split is row `split` of
//!   `train-test people splits/train_test_splits_ilidsvid.mat` when it is there (half the people
//!   train, half test), else a seeded random half;
//! - PRID2011: `multi_shot/cam_a/person_NNNN/*.png` and `cam_b`; the people seen in both cameras
//!   with at least [`PRID_MIN_FRAMES`] frames in each (McLaughlin et al. 2016's 178), split in
//!   seeded random halves.
//!
//! For iLIDS-VID and PRID2011 the query is the first camera's tracklet of each test person and the
//! gallery the second camera's. Frames are listed, not read: decoding belongs to `reid-model`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use reid_core::naming::{parse_mars, NameError};

use crate::matlab::{read_mat, MatArray, MatError};

/// One person's frames in one camera, in time order.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoTracklet {
    /// Identity (MARS: 0 distractor, -1 junk).
    pub pid: i64,
    pub camera: u32,
    pub frames: Vec<PathBuf>,
}

/// Which layout a root holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoLayout {
    Synthetic,
    Mars,
    IlidsVid,
    Prid2011,
}

impl VideoLayout {
    pub fn name(self) -> &'static str {
        match self {
            Self::Synthetic => "synthetic (tracklets.json)",
            Self::Mars => "MARS",
            Self::IlidsVid => "iLIDS-VID",
            Self::Prid2011 => "PRID2011",
        }
    }
}

/// A video dataset's three splits.
#[derive(Debug, Clone)]
pub struct VideoDataset {
    pub layout: VideoLayout,
    pub train: Vec<VideoTracklet>,
    pub query: Vec<VideoTracklet>,
    pub gallery: Vec<VideoTracklet>,
}

impl VideoDataset {
    /// Every frame of every split.
    pub fn frames(&self) -> usize {
        [&self.train, &self.query, &self.gallery]
            .iter()
            .flat_map(|s| s.iter())
            .map(|t| t.frames.len())
            .sum()
    }
}

/// Why a video dataset cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum VideoError {
    #[error("{}: no video dataset here (expected tracklets.json, MARS's bbox_test/ and info/, iLIDS-VID's sequences/ or PRID2011's multi_shot/)", .0.display())]
    Unknown(PathBuf),
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
    #[error("{}: {source}", path.display())]
    Mat { path: PathBuf, source: MatError },
    #[error(transparent)]
    Name(#[from] NameError),
}

/// Frames PRID2011's protocol asks of each camera's sequence.
pub const PRID_MIN_FRAMES: usize = 21;

/// Reads the video dataset at `root`; `seed` draws the splits of layouts that ship none.
pub fn open(root: &Path, seed: u64) -> Result<VideoDataset, VideoError> {
    if root.join("tracklets.json").is_file() {
        return synthetic(root);
    }
    if root.join("bbox_test").is_dir() && root.join("info").is_dir() {
        return mars(root);
    }
    for base in [root.to_path_buf(), root.join("i-LIDS-VID")] {
        if base.join("sequences").join("cam1").is_dir() {
            return ilids_vid(root, &base, seed);
        }
    }
    for base in [root.to_path_buf(), root.join("prid_2011")] {
        if base.join("multi_shot").join("cam_a").is_dir() {
            return prid2011(&base, seed);
        }
    }
    Err(VideoError::Unknown(root.to_path_buf()))
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> VideoError + '_ {
    move |source| VideoError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn invalid(path: &Path, message: impl Into<String>) -> VideoError {
    VideoError::Invalid {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

fn synthetic(root: &Path) -> Result<VideoDataset, VideoError> {
    #[derive(serde::Deserialize)]
    struct Entry {
        pid: i64,
        camera: u32,
        split: String,
        frames: Vec<String>,
    }
    #[derive(serde::Deserialize)]
    struct File {
        tracklets: Vec<Entry>,
    }
    let path = root.join("tracklets.json");
    let text = std::fs::read(&path).map_err(io(&path))?;
    let file: File = serde_json::from_slice(&text).map_err(|e| invalid(&path, e.to_string()))?;
    let mut out = VideoDataset {
        layout: VideoLayout::Synthetic,
        train: Vec::new(),
        query: Vec::new(),
        gallery: Vec::new(),
    };
    for t in file.tracklets {
        let tracklet = VideoTracklet {
            pid: t.pid,
            camera: t.camera,
            frames: t.frames.iter().map(|f| root.join(f)).collect(),
        };
        match t.split.as_str() {
            "train" => out.train.push(tracklet),
            "query" => out.query.push(tracklet),
            "gallery" => out.gallery.push(tracklet),
            other => return Err(invalid(&path, format!("unknown split `{other}`"))),
        }
    }
    Ok(out)
}

fn mat(path: &Path) -> Result<BTreeMap<String, MatArray>, VideoError> {
    let bytes = std::fs::read(path).map_err(io(path))?;
    read_mat(&bytes).map_err(|source| VideoError::Mat {
        path: path.to_path_buf(),
        source,
    })
}

/// The one numeric array of a split file.
fn only_array(path: &Path) -> Result<MatArray, VideoError> {
    let mut arrays = mat(path)?;
    let name = arrays
        .keys()
        .next()
        .cloned()
        .ok_or_else(|| invalid(path, "holds no numeric array"))?;
    Ok(arrays.remove(&name).expect("key just read"))
}

fn mars(root: &Path) -> Result<VideoDataset, VideoError> {
    let info = root.join("info");
    let names = |file: &str| -> Result<Vec<String>, VideoError> {
        let path = info.join(file);
        let text = std::fs::read_to_string(&path).map_err(io(&path))?;
        Ok(text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect())
    };
    // tracks_*_info.mat: one row per tracklet (first name, last name (1-based), pid, camera).
    let tracks = |names: &[String], file: &str, folder: &str| {
        let path = info.join(file);
        let table = only_array(&path)?;
        if table.cols() < 4 {
            return Err(invalid(
                &path,
                "expected 4 columns (start, end, pid, camera)",
            ));
        }
        (0..table.rows())
            .map(|r| {
                let (start, end) = (table.at(r, 0) as usize, table.at(r, 1) as usize);
                if start < 1 || end < start || end > names.len() {
                    return Err(invalid(
                        &path,
                        format!(
                            "row {} names frames {start}..{end} of {}",
                            r + 1,
                            names.len()
                        ),
                    ));
                }
                let frames = names[start - 1..end]
                    .iter()
                    .map(|n| {
                        parse_mars(n)?;
                        Ok(root.join(folder).join(n.get(..4).unwrap_or("")).join(n))
                    })
                    .collect::<Result<Vec<_>, VideoError>>()?;
                Ok(VideoTracklet {
                    pid: table.at(r, 2) as i64,
                    camera: table.at(r, 3) as u32,
                    frames,
                })
            })
            .collect::<Result<Vec<_>, VideoError>>()
    };
    let train = tracks(
        &names("train_name.txt")?,
        "tracks_train_info.mat",
        "bbox_train",
    )?;
    let test = tracks(
        &names("test_name.txt")?,
        "tracks_test_info.mat",
        "bbox_test",
    )?;
    let query_path = info.join("query_IDX.mat");
    let query_index = only_array(&query_path)?;
    let mut is_query = vec![false; test.len()];
    for &q in &query_index.data {
        let q = q as usize;
        if q < 1 || q > test.len() {
            return Err(invalid(
                &query_path,
                format!("query tracklet {q} of {}", test.len()),
            ));
        }
        is_query[q - 1] = true;
    }
    let (mut query, mut gallery) = (Vec::new(), Vec::new());
    for (t, q) in test.into_iter().zip(is_query) {
        if q {
            query.push(t)
        } else {
            gallery.push(t)
        }
    }
    Ok(VideoDataset {
        layout: VideoLayout::Mars,
        // Junk (-1) and distractor (0) tracklets teach no identity.
        train: train.into_iter().filter(|t| t.pid > 0).collect(),
        query,
        gallery,
    })
}

/// Sorted sub-folders of `dir` (names only).
fn folders(dir: &Path) -> Result<Vec<String>, VideoError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        if entry.file_type().map_err(io(dir))?.is_dir() {
            out.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    out.sort();
    Ok(out)
}

/// Sorted picture files of a sequence folder.
fn sequence(dir: &Path) -> Result<Vec<PathBuf>, VideoError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        if crate::folder::is_image_name(&entry.path()) {
            out.push(entry.path());
        }
    }
    out.sort();
    Ok(out)
}

/// The digits of a person folder's name (`person012`, `person_0012`).
fn person_number(dir: &Path, name: &str) -> Result<i64, VideoError> {
    name.trim_start_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .map_err(|_| invalid(dir, format!("`{name}` is not a person folder")))
}

/// Test people in the second half; the two cameras' tracklets of `train` people train.
fn two_camera_splits(
    layout: VideoLayout,
    people: Vec<(i64, [Vec<PathBuf>; 2])>,
    test: impl Fn(usize, i64) -> bool,
) -> VideoDataset {
    let mut out = VideoDataset {
        layout,
        train: Vec::new(),
        query: Vec::new(),
        gallery: Vec::new(),
    };
    for (index, (pid, [a, b])) in people.into_iter().enumerate() {
        let (first, second) = (
            VideoTracklet {
                pid,
                camera: 1,
                frames: a,
            },
            VideoTracklet {
                pid,
                camera: 2,
                frames: b,
            },
        );
        if test(index, pid) {
            out.query.push(first);
            out.gallery.push(second);
        } else {
            out.train.push(first);
            out.train.push(second);
        }
    }
    out
}

/// A seeded random half of `n` people (indices) for testing.
fn random_half(n: usize, seed: u64) -> Vec<bool> {
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let mut test = vec![false; n];
    for &i in &order[n / 2..] {
        test[i] = true;
    }
    test
}

fn ilids_vid(root: &Path, base: &Path, seed: u64) -> Result<VideoDataset, VideoError> {
    let cams = [
        base.join("sequences").join("cam1"),
        base.join("sequences").join("cam2"),
    ];
    let mut people = Vec::new();
    for name in folders(&cams[0])? {
        let pid = person_number(&cams[0], &name)?;
        let other = cams[1].join(&name);
        if !other.is_dir() {
            return Err(invalid(
                &other,
                "missing: every iLIDS-VID person has both cameras",
            ));
        }
        let frames = [sequence(&cams[0].join(&name))?, sequence(&other)?];
        if frames.iter().any(Vec::is_empty) {
            return Err(invalid(&cams[0].join(&name), "a sequence without pictures"));
        }
        people.push((pid, frames));
    }
    if people.len() < 2 {
        return Err(invalid(&cams[0], "fewer than two people"));
    }
    // The official splits: rows of person numbers (1-based), train first, test second.
    let splits = [root, base]
        .iter()
        .map(|b| {
            b.join("train-test people splits")
                .join("train_test_splits_ilidsvid.mat")
        })
        .find(|p| p.is_file());
    let test: Vec<bool> = match splits {
        Some(path) => {
            let table = only_array(&path)?;
            let row = (seed as usize) % table.rows().max(1);
            let half = table.cols() / 2;
            let numbers: Vec<i64> = (half..table.cols())
                .map(|c| table.at(row, c) as i64)
                .collect();
            people
                .iter()
                .map(|(pid, _)| numbers.contains(pid))
                .collect()
        }
        None => random_half(people.len(), seed),
    };
    Ok(two_camera_splits(VideoLayout::IlidsVid, people, |i, _| {
        test[i]
    }))
}

fn prid2011(base: &Path, seed: u64) -> Result<VideoDataset, VideoError> {
    let cams = [
        base.join("multi_shot").join("cam_a"),
        base.join("multi_shot").join("cam_b"),
    ];
    let mut people = Vec::new();
    for name in folders(&cams[0])? {
        let other = cams[1].join(&name);
        if !other.is_dir() {
            continue; // Seen by one camera only.
        }
        let frames = [sequence(&cams[0].join(&name))?, sequence(&other)?];
        if frames.iter().any(|f| f.len() < PRID_MIN_FRAMES) {
            continue;
        }
        people.push((person_number(&cams[0], &name)?, frames));
    }
    if people.len() < 2 {
        return Err(invalid(
            &cams[0],
            format!(
                "fewer than two people seen by both cameras in {PRID_MIN_FRAMES} frames or more"
            ),
        ));
    }
    let test = random_half(people.len(), seed);
    Ok(two_camera_splits(VideoLayout::Prid2011, people, |i, _| {
        test[i]
    }))
}

#[cfg(test)]
mod tests;
