//! People in a photo: the HOG people detector (OpenCV's default, `reid_model::detect::hog`)
//! finds them, and each is cut out as a crop for the embedder. The browser app's "find the
//! people in each picture" and `reid search --detect` / `reid track` run this same code.

use reid_core::BBox;
use reid_model::detect::hog::{HogDetector, HogParams};
use reid_model::RgbImage;

use crate::tracking::crop;

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

/// The people the HOG detector finds in `photo` with `params`, surest first. A box too small
/// to cut out (never the case for HOG's 64x128 windows cut to a photo) is left out.
pub fn people_in(photo: &RgbImage, params: &HogParams) -> Vec<FoundPerson> {
    let mut found: Vec<FoundPerson> = HogDetector::opencv_people()
        .detect(photo, params)
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
    detector
        .detect(frame, params)
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
}
