//! `reid-data` owns reading person images from disk for the native tools: the plain folder
//! layout (`identity/camera/*.jpg`, camera optional), lists of loose files, the Market-1501
//! layout (also DukeMTMC-reID's and CUHK03-NP's, whose names it reads) and MSMT17's lists;
//! [`layout`] picks the reader a dataset root needs.
//!
//! It reads bytes and names only: decoding belongs to `reid-model::preprocess`, so that the
//! browser and the command line decode the same way. It also owns the synthetic pedestrian
//! world ([`synth`]), which writes datasets in these same layouts, and the P x K identity
//! sampler of metric learning ([`sampler`]), and cuts hand-annotated people out of full frames
//! into an evaluation folder ([`annotated`]). Video datasets (tracklets: the synthetic world's,
//! MARS, iLIDS-VID, PRID2011) are read by [`video`], with the split files in MATLAB's format by
//! [`matlab`].

pub mod annotated;
pub mod folder;
pub mod layout;
pub mod market1501;
pub mod matlab;
pub mod msmt17;
pub mod sampler;
pub mod synth;
pub mod video;

pub use folder::{collect_images, ImageEntry, ScanError};
