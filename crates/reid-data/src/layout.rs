//! Which reader a dataset root needs: MSMT17 when it has MSMT17's lists, otherwise the
//! Market-1501 folders (which DukeMTMC-reID and CUHK03-NP's `detected/` and `labeled/` share).

use std::path::Path;

use reid_core::naming::DISTRACTOR_PID;

use crate::market1501::{LabelledImage, Market1501Error};
use crate::msmt17::Msmt17Error;

/// A dataset root that cannot be read, in its reader's words.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error(transparent)]
    Market1501(#[from] Market1501Error),
    #[error(transparent)]
    Msmt17(#[from] Msmt17Error),
}

/// The query and gallery of a dataset.
pub type TestSplits = (Vec<LabelledImage>, Vec<LabelledImage>);

/// The images of a dataset root's training split that have an identity to learn:
/// `bounding_box_train/` without junk (-1) and distractors (0), or all of MSMT17's training
/// lists (whose labels start at 0).
pub fn train_split(root: &Path) -> Result<Vec<LabelledImage>, DatasetError> {
    if crate::msmt17::is_msmt17(root) {
        return Ok(crate::msmt17::read_train(root)?);
    }
    let mut images = crate::market1501::read_split(&root.join("bounding_box_train"))?;
    images.retain(|i| i.name.pid > DISTRACTOR_PID);
    Ok(images)
}

/// Whether `root` holds a training split this module reads.
pub fn has_train_split(root: &Path) -> bool {
    crate::msmt17::is_msmt17(root) || root.join("bounding_box_train").is_dir()
}

/// The evaluation splits of a dataset root: (query, gallery).
pub fn test_splits(root: &Path) -> Result<TestSplits, DatasetError> {
    if crate::msmt17::is_msmt17(root) {
        return Ok(crate::msmt17::read_test_splits(root)?);
    }
    Ok(crate::market1501::read_test_splits(root)?)
}
