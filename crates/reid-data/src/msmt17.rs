//! The MSMT17 layout (Wei et al. 2018), as torchreid and fast-reid read it: the images in
//! `train/` and `test/` (`mask_train_v2/` and `mask_test_v2/` in MSMT17_V2), and four lists
//! `list_{train,val,query,gallery}.txt` of `RELATIVE/PATH.jpg LABEL` lines. The camera is the
//! third field of the file name (`0000_000_01_0303morning_0015_0.jpg`: camera 1). Training uses
//! `list_train.txt` and `list_val.txt` together, as torchreid does.

use std::path::{Path, PathBuf};

use reid_core::naming::MarketName;

use crate::market1501::LabelledImage;

/// A list that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum Msmt17Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} line {line}: `{text}` is not `PID/NAME.jpg LABEL` with the camera as the name's third field (0000_000_01_...)")]
    Line {
        path: PathBuf,
        line: usize,
        text: String,
    },
    #[error("{0}: the list names no images")]
    Empty(PathBuf),
    #[error("{0}: neither train/ and test/ nor mask_train_v2/ and mask_test_v2/ are here")]
    NoImageFolders(PathBuf),
}

/// Whether `root` looks like an MSMT17 root (it has the query and gallery lists).
pub fn is_msmt17(root: &Path) -> bool {
    root.join("list_query.txt").is_file() && root.join("list_gallery.txt").is_file()
}

/// `(train folder, test folder)` of a V1 or V2 root.
fn image_folders(root: &Path) -> Result<(PathBuf, PathBuf), Msmt17Error> {
    for (train, test) in [("train", "test"), ("mask_train_v2", "mask_test_v2")] {
        if root.join(train).is_dir() && root.join(test).is_dir() {
            return Ok((root.join(train), root.join(test)));
        }
    }
    Err(Msmt17Error::NoImageFolders(root.to_path_buf()))
}

/// Reads one list: each line's image under `images`, its label, and the camera from its name.
pub fn read_list(list: &Path, images: &Path) -> Result<Vec<LabelledImage>, Msmt17Error> {
    let text = std::fs::read_to_string(list).map_err(|source| Msmt17Error::Io {
        path: list.to_path_buf(),
        source,
    })?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let bad = || Msmt17Error::Line {
            path: list.to_path_buf(),
            line: i + 1,
            text: line.chars().take(120).collect(),
        };
        let (relative, label) = line.rsplit_once(char::is_whitespace).ok_or_else(bad)?;
        let pid: i64 = label.trim().parse().map_err(|_| bad())?;
        let name = Path::new(relative.trim())
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(bad)?;
        let camid: u32 = name
            .split('_')
            .nth(2)
            .and_then(|c| c.parse().ok())
            .ok_or_else(bad)?;
        let frame = name
            .split('_')
            .nth(4)
            .and_then(|f| f.parse().ok())
            .unwrap_or(0);
        out.push(LabelledImage {
            path: images.join(relative.trim()),
            name: MarketName {
                pid,
                camid,
                sequence: 0,
                frame,
                bbox: 0,
            },
        });
    }
    if out.is_empty() {
        return Err(Msmt17Error::Empty(list.to_path_buf()));
    }
    Ok(out)
}

/// The training images: `list_train.txt` and, when present, `list_val.txt`.
pub fn read_train(root: &Path) -> Result<Vec<LabelledImage>, Msmt17Error> {
    let (train, _) = image_folders(root)?;
    let mut images = read_list(&root.join("list_train.txt"), &train)?;
    let val = root.join("list_val.txt");
    if val.is_file() {
        images.extend(read_list(&val, &train)?);
    }
    Ok(images)
}

/// The evaluation splits: (query, gallery).
pub fn read_test_splits(
    root: &Path,
) -> Result<(Vec<LabelledImage>, Vec<LabelledImage>), Msmt17Error> {
    let (_, test) = image_folders(root)?;
    Ok((
        read_list(&root.join("list_query.txt"), &test)?,
        read_list(&root.join("list_gallery.txt"), &test)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for d in ["train", "test"] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        write(
            "list_train.txt",
            "0000/0000_000_01_0303morning_0015_0.jpg 0\n0001/0001_003_07_0303noon_0410_1.jpg 1\n",
        );
        write(
            "list_val.txt",
            "0002/0002_001_15_0303afternoon_0022_0.jpg 2\n",
        );
        write(
            "list_query.txt",
            "0000/0000_000_01_0303morning_0015_0.jpg 0\n\n",
        );
        write(
            "list_gallery.txt",
            "0000/0000_004_02_0303morning_0020_0.jpg 0\n0003/0003_000_05_0303noon_0001_0.jpg 3\n",
        );
        dir
    }

    #[test]
    fn lists_give_paths_identities_and_cameras() {
        let dir = root();
        assert!(is_msmt17(dir.path()));
        let train = read_train(dir.path()).unwrap();
        assert_eq!(train.len(), 3);
        assert_eq!(
            train[1].path,
            dir.path()
                .join("train/0001/0001_003_07_0303noon_0410_1.jpg")
        );
        assert_eq!((train[1].name.pid, train[1].name.camid), (1, 7));
        assert_eq!(train[2].name.camid, 15);
        let (query, gallery) = read_test_splits(dir.path()).unwrap();
        assert_eq!(query.len(), 1);
        assert_eq!(
            gallery[1].path,
            dir.path().join("test/0003/0003_000_05_0303noon_0001_0.jpg")
        );
        assert_eq!(gallery[0].name.frame, 20);
    }

    #[test]
    fn a_bad_line_is_named_by_file_and_number() {
        let dir = root();
        std::fs::write(
            dir.path().join("list_query.txt"),
            "0000/0000_000_01_0303morning_0015_0.jpg 0\n0000/holiday.jpg 0\n",
        )
        .unwrap();
        let err = read_test_splits(dir.path()).unwrap_err().to_string();
        assert!(err.contains("list_query.txt line 2"), "{err}");
        std::fs::remove_dir_all(dir.path().join("test")).unwrap();
        let err = read_test_splits(dir.path()).unwrap_err().to_string();
        assert!(err.contains("mask_train_v2"), "{err}");
    }
}
