//! `reid-data` owns reading person images from disk for the native tools. It starts with the
//! plain folder layout (`identity/camera/*.jpg`, camera optional), lists of loose files and the
//! Market-1501 layout; the other public layouts (MARS, ...) join it as readers of their own.
//!
//! It reads bytes and names only: decoding belongs to `reid-model::preprocess`, so that the
//! browser and the command line decode the same way. It also owns the synthetic pedestrian
//! world ([`synth`]), which writes datasets in these same layouts, and the P x K identity
//! sampler of metric learning ([`sampler`]), and cuts hand-annotated people out of full frames
//! into an evaluation folder ([`annotated`]).

pub mod annotated;
pub mod folder;
pub mod market1501;
pub mod sampler;
pub mod synth;

pub use folder::{collect_images, ImageEntry, ScanError};
