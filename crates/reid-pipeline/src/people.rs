//! People in a photo: the HOG people detector (OpenCV's default, `reid_model::detect::hog`)
//! finds them, and each is cut out as a crop for the embedder. The browser app's "find the
//! people in each picture" and `reid search --detect` / `reid track` run this same code. It runs
//! on the CPU, or as tensor operations on the device the model runs on ([`PeopleDetector`]: the
//! GPU through WebGPU in the browser).

use reid_core::BBox;
use reid_model::detect::hog::{Detection, HogDetector, HogParams};
use reid_model::detect::HogOnDevice;
use reid_model::{ModelError, RgbImage};

use crate::backend::Backend;
use crate::tracking::crop;
use crate::Device;

/// One person found in a photo.
#[derive(Debug, Clone)]
pub struct FoundPerson {
    /// The detector's box, cut to the photo.
    pub bbox: BBox,
    /// The detector's SVM margin (higher is surer; 0 is OpenCV's default threshold).
    pub score: f64,
    /// The person's pixels.
    pub crop: RgbImage,
}

/// Where OpenCV's HOG people detector runs: the CPU code of `reid_model::detect::hog`, or the
/// same detector as burn tensor operations on a device ([`HogOnDevice`]), whose window scores
/// are read back without blocking. Both find the same boxes (window scores within about 1e-5).
#[derive(Debug, Clone)]
pub enum PeopleDetector {
    Cpu,
    Device(Box<HogOnDevice>),
}

impl PeopleDetector {
    /// On the CPU for [`Backend::Cpu`] (its hand-vectorised code is faster there than tensor
    /// operations), on `device` for WebGPU.
    pub fn for_backend(backend: Backend, device: &Device) -> Self {
        match backend {
            Backend::Cpu => Self::Cpu,
            Backend::WebGpu => Self::Device(Box::new(HogOnDevice::new(
                HogDetector::opencv_people(),
                device,
            ))),
        }
    }

    /// The backend the detector runs on.
    pub fn backend(&self) -> Backend {
        match self {
            Self::Cpu => Backend::Cpu,
            Self::Device(_) => Backend::WebGpu,
        }
    }

    /// People in `frame` with `params`, grouped and cut to the frame (OpenCV's
    /// `detectMultiScale`); an error only when the device fails.
    pub async fn detect(
        &self,
        frame: &RgbImage,
        params: &HogParams,
    ) -> Result<Vec<Detection>, ModelError> {
        match self {
            Self::Cpu => Ok(HogDetector::opencv_people().detect(frame, params)),
            Self::Device(hog) => hog.detect(frame, params).await,
        }
    }

    /// [`people_in`], on this detector's backend.
    pub async fn people_in(
        &self,
        photo: &RgbImage,
        params: &HogParams,
    ) -> Result<Vec<FoundPerson>, ModelError> {
        Ok(found_people(photo, self.detect(photo, params).await?))
    }

    /// [`hog_boxes`] of OpenCV's detector, on this detector's backend.
    pub async fn boxes(
        &self,
        frame: &RgbImage,
        params: &HogParams,
        min_margin: f32,
    ) -> Result<Vec<(BBox, f32)>, ModelError> {
        Ok(tracker_boxes(
            &self.detect(frame, params).await?,
            min_margin,
        ))
    }
}

/// The people the HOG detector finds in `photo` with `params`, surest first. A box too small
/// to cut out (never the case for HOG's 64x128 windows cut to a photo) is left out.
pub fn people_in(photo: &RgbImage, params: &HogParams) -> Vec<FoundPerson> {
    found_people(photo, HogDetector::opencv_people().detect(photo, params))
}

fn found_people(photo: &RgbImage, detections: Vec<Detection>) -> Vec<FoundPerson> {
    let mut found: Vec<FoundPerson> = detections
        .into_iter()
        .filter_map(|d| {
            let bbox = d.rect.bbox();
            Some(FoundPerson {
                crop: crop(photo, &bbox)?,
                bbox,
                score: d.score,
            })
        })
        .collect();
    found.sort_by(|a, b| b.score.total_cmp(&a.score));
    found
}

/// The people the HOG `detector` finds in `frame` with `params` whose margin is at least
/// `min_margin`, as `(box, confidence)` for the tracker ([`hog_confidence`]).
pub fn hog_boxes(
    detector: &HogDetector,
    frame: &RgbImage,
    params: &HogParams,
    min_margin: f32,
) -> Vec<(BBox, f32)> {
    tracker_boxes(&detector.detect(frame, params), min_margin)
}

fn tracker_boxes(detections: &[Detection], min_margin: f32) -> Vec<(BBox, f32)> {
    detections
        .iter()
        .filter(|d| d.score as f32 >= min_margin)
        .map(|d| (d.rect.bbox(), hog_confidence(d.score)))
        .collect()
}

/// A HOG window's SVM margin as a confidence from 0 to 1 (a logistic curve: margin 0, the
/// default threshold, is 0.5), for the tracker's quality weights, which expect a detector's
/// probability-like score.
pub fn hog_confidence(margin: f64) -> f32 {
    (1.0 / (1.0 + (-2.0 * margin).exp())) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blank_photo_has_no_people_and_margins_map_to_confidences() {
        let blank = RgbImage::from_pixel(200, 200, image::Rgb([120, 120, 120]));
        assert!(people_in(&blank, &HogParams::default()).is_empty());
        assert_eq!(hog_confidence(0.0), 0.5);
        assert!(hog_confidence(3.0) > 0.99 && hog_confidence(-3.0) < 0.01);
        assert!(hog_confidence(1.0) > hog_confidence(0.5));
    }

    #[test]
    fn both_backends_find_the_same_people_in_the_fixture_scene() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/hog/scene1.png"
        );
        let photo = image::open(path).unwrap().to_rgb8();
        let params = HogParams::default();
        let device = Device::flex();
        let cpu = PeopleDetector::for_backend(Backend::Cpu, &device);
        // The tensor path, here on burn's CPU backend (the browser gives it a WebGPU device).
        let tensors = PeopleDetector::Device(Box::new(HogOnDevice::new(
            HogDetector::opencv_people(),
            &device,
        )));
        let a = pollster::block_on(cpu.people_in(&photo, &params)).unwrap();
        let b = pollster::block_on(tensors.people_in(&photo, &params)).unwrap();
        assert_eq!(a.len(), 1, "OpenCV finds one person in scene1");
        assert_eq!(b.len(), a.len());
        assert_eq!(b[0].bbox, a[0].bbox);
        assert_eq!(b[0].crop, a[0].crop);
        assert!((a[0].score - b[0].score).abs() < 1e-5);
        let boxes = pollster::block_on(tensors.boxes(&photo, &params, 0.0)).unwrap();
        let expected = hog_boxes(HogDetector::opencv_people(), &photo, &params, 0.0);
        assert_eq!(boxes.len(), expected.len());
        for ((a, p), (b, q)) in boxes.iter().zip(&expected) {
            assert_eq!(a, b);
            assert!((p - q).abs() < 1e-5);
        }
        assert_eq!(tensors.backend(), Backend::WebGpu);
    }
}
