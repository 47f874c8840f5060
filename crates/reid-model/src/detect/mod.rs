//! Pedestrian detectors: boxes of people in a whole frame, before tracking and embedding.
//!
//! Two detectors stand behind one [`Detector`] trait: the HOG + linear SVM people detector with
//! OpenCV's coefficients ([`hog`] on the CPU, [`hog_tensor`] as tensor operations on any burn
//! device), and a small CNN trained by `reid train-detector`
//! ([`centernet`]).

pub mod centernet;
pub mod hog;
pub mod hog_tensor;

use image::RgbImage;

pub use self::centernet::CenterNetDetector;
pub use self::hog::{Detection, HogDetector, HogParams, Rect};
pub use self::hog_tensor::HogOnDevice;
use crate::ModelError;

/// Finds the people in a picture: their boxes and scores, best first (scores are the
/// detector's own: an SVM margin for HOG, a probability for the CNN).
pub trait Detector {
    fn detect(&self, image: &RgbImage) -> Result<Vec<Detection>, ModelError>;
}

/// OpenCV's HOG people detector with its parameters.
#[derive(Debug, Clone)]
pub struct Hog(pub HogParams);

impl Detector for Hog {
    fn detect(&self, image: &RgbImage) -> Result<Vec<Detection>, ModelError> {
        Ok(HogDetector::opencv_people().detect(image, &self.0))
    }
}

impl Detector for CenterNetDetector {
    fn detect(&self, image: &RgbImage) -> Result<Vec<Detection>, ModelError> {
        CenterNetDetector::detect(self, image)
    }
}
