//! Pedestrian detectors: boxes of people in a whole frame, before tracking and embedding.

pub mod hog;
