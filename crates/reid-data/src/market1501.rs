//! The Market-1501 folder layout (also DukeMTMC-reID's): `query/` and `bounding_box_test/`
//! (and `bounding_box_train/`) holding `PPPP_cCsS_FFFFFF_NN.jpg` images. Labels come from the
//! names through `reid_core::naming`, the one parser the browser shares.

use std::path::{Path, PathBuf};

use reid_core::naming::{parse_market1501, MarketName};

/// One image of a split with its labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelledImage {
    pub path: PathBuf,
    pub name: MarketName,
}

/// A split that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum Market1501Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}: no Market-1501 images (PPPP_cCsS_FFFFFF_NN.jpg) in this folder")]
    Empty(PathBuf),
    #[error(transparent)]
    Name(#[from] reid_core::naming::NameError),
}

/// Reads the images of one split folder (e.g. `ROOT/query`), sorted by name. Files that are
/// not `.jpg`/`.png` (such as `Thumbs.db`) are skipped; a misnamed image is an error.
pub fn read_split(dir: &Path) -> Result<Vec<LabelledImage>, Market1501Error> {
    let io = |source| Market1501Error::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io)?
        .map(|e| e.map(|e| e.path()).map_err(io))
        .collect::<Result<_, _>>()?;
    paths.retain(|p| {
        p.extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "jpg" | "jpeg" | "png"))
    });
    paths.sort();
    if paths.is_empty() {
        return Err(Market1501Error::Empty(dir.to_path_buf()));
    }
    paths
        .into_iter()
        .map(|path| {
            let name = parse_market1501(&path.to_string_lossy())?;
            Ok(LabelledImage { path, name })
        })
        .collect()
}

/// The evaluation splits of a Market-1501 root: (query, gallery).
pub fn read_test_splits(
    root: &Path,
) -> Result<(Vec<LabelledImage>, Vec<LabelledImage>), Market1501Error> {
    Ok((
        read_split(&root.join("query"))?,
        read_split(&root.join("bounding_box_test"))?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_are_read_sorted_with_labels_and_misnamed_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let q = dir.path().join("query");
        let g = dir.path().join("bounding_box_test");
        std::fs::create_dir_all(&q).unwrap();
        std::fs::create_dir_all(&g).unwrap();
        for n in ["0002_c1s1_000451_03.jpg", "0001_c2s1_000301_01.jpg"] {
            std::fs::write(q.join(n), b"x").unwrap();
        }
        std::fs::write(q.join("Thumbs.db"), b"x").unwrap();
        std::fs::write(g.join("-1_c1s1_000001_01.jpg"), b"x").unwrap();
        let (query, gallery) = read_test_splits(dir.path()).unwrap();
        assert_eq!(
            query.iter().map(|i| i.name.pid).collect::<Vec<_>>(),
            vec![1, 2]
        );
        assert_eq!(gallery[0].name.pid, -1);
        std::fs::write(g.join("holiday.jpg"), b"x").unwrap();
        assert!(read_test_splits(dir.path()).is_err());
    }
}
