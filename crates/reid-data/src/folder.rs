//! Image files named on the command line or found in folders.
//!
//! A folder is walked recursively and its images are returned in sorted path order. In the
//! plain layout `ROOT/identity/camera/file.jpg` (or `ROOT/identity/file.jpg`) the identity and
//! camera are taken from the folder names.

use std::path::{Path, PathBuf};

/// Extensions treated as images when walking a folder (files named explicitly are always kept,
/// so that a misnamed file gets a decoding error rather than silence).
pub const IMAGE_EXTENSIONS: [&str; 5] = ["jpg", "jpeg", "png", "webp", "bmp"];

/// One image found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageEntry {
    /// Where the file is.
    pub path: PathBuf,
    /// Identity folder name, when the file was found under a folder root at depth 2 or 3.
    pub identity: Option<String>,
    /// Camera folder name, when the file was found at depth 3.
    pub camera: Option<String>,
}

/// A path given by the user cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// The path does not exist or cannot be read.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A folder holds no image.
    #[error("{0}: no image files (jpg, jpeg, png, webp, bmp) in this folder")]
    EmptyFolder(PathBuf),
}

/// Expands files and folders into image entries, keeping the order given and sorting within
/// each folder.
pub fn collect_images(paths: &[PathBuf]) -> Result<Vec<ImageEntry>, ScanError> {
    let mut out = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path).map_err(|source| ScanError::Io {
            path: path.clone(),
            source,
        })?;
        if meta.is_dir() {
            let mut found = Vec::new();
            walk(path, &mut found)?;
            if found.is_empty() {
                return Err(ScanError::EmptyFolder(path.clone()));
            }
            found.sort();
            out.extend(found.into_iter().map(|file| entry_in_folder(path, file)));
        } else {
            out.push(ImageEntry {
                path: path.clone(),
                identity: None,
                camera: None,
            });
        }
    }
    Ok(out)
}

fn walk(dir: &Path, found: &mut Vec<PathBuf>) -> Result<(), ScanError> {
    let io = |source| ScanError::Io {
        path: dir.to_path_buf(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path.is_dir() {
            walk(&path, found)?;
        } else if is_image_name(&path) {
            found.push(path);
        }
    }
    Ok(())
}

/// Whether `path` is named like a picture (one of [`IMAGE_EXTENSIONS`], any case).
pub fn is_image_name(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

fn entry_in_folder(root: &Path, path: PathBuf) -> ImageEntry {
    let parts: Vec<String> = path
        .strip_prefix(root)
        .map(|rel| {
            rel.parent()
                .into_iter()
                .flat_map(|p| p.components())
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    let (identity, camera) = match parts.as_slice() {
        [identity] => (Some(identity.clone()), None),
        [identity, camera] => (Some(identity.clone()), Some(camera.clone())),
        _ => (None, None),
    };
    ImageEntry {
        path,
        identity,
        camera,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(path: &Path) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b"x").unwrap();
    }

    #[test]
    fn plain_layout_gives_identity_and_camera_in_sorted_order() {
        let dir = tempfile::tempdir().unwrap();
        touch(&dir.path().join("0002/c1/b.jpg"));
        touch(&dir.path().join("0001/c2/a.PNG"));
        touch(&dir.path().join("0001/loose.jpg"));
        touch(&dir.path().join("0001/notes.txt"));
        let entries = collect_images(&[dir.path().to_path_buf()]).unwrap();
        let summary: Vec<_> = entries
            .iter()
            .map(|e| (e.identity.as_deref(), e.camera.as_deref()))
            .collect();
        assert_eq!(
            summary,
            vec![
                (Some("0001"), Some("c2")),
                (Some("0001"), None),
                (Some("0002"), Some("c1")),
            ]
        );
    }

    #[test]
    fn missing_paths_and_empty_folders_are_errors_that_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let err = collect_images(std::slice::from_ref(&missing)).unwrap_err();
        assert!(err.to_string().contains("nope"));
        let err = collect_images(&[dir.path().to_path_buf()]).unwrap_err();
        assert!(matches!(err, ScanError::EmptyFolder(_)));
    }

    #[test]
    fn explicitly_named_files_are_kept_whatever_their_extension() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("photo.dat");
        touch(&file);
        assert_eq!(
            collect_images(std::slice::from_ref(&file)).unwrap()[0].path,
            file
        );
    }
}
