//! `reid-data` owns reading person images from disk for the native tools. It starts with the
//! plain folder layout (`identity/camera/*.jpg`, camera optional) and lists of loose files; the
//! public dataset layouts (Market-1501, MARS, ...) join it as readers of their own.
//!
//! It reads bytes and names only: decoding belongs to `reid-model::preprocess`, so that the
//! browser and the command line decode the same way.

pub mod folder;

pub use folder::{collect_images, ImageEntry, ScanError};
