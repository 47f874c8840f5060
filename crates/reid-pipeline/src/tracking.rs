//! Frames and their detections to tracks: each detection is cut out of its frame, embedded
//! with the ReID model (when one is given), and handed with its embedding to `reid-core`'s
//! tracker, which then matches people by appearance as well as by position (DeepSORT).
//!
//! Detection itself is not here: boxes come from the caller (a detector, or a MOTChallenge
//! `det.txt`).

use reid_core::tracking::FrameTracks;
use reid_core::{BBox, Detection, Tracker, TrackerConfig, TrackerError, Tracklet};
use reid_model::RgbImage;

use crate::embedder::{EmbedError, Embedder};

/// Why a frame could not be tracked.
#[derive(Debug, thiserror::Error)]
pub enum TrackingError {
    #[error(transparent)]
    Tracker(#[from] TrackerError),
    #[error("embedding the frame's people failed: {0}")]
    Embed(#[from] EmbedError),
}

/// The part of `frame` inside `bbox` (clamped to the frame); `None` when less than 2 x 2
/// pixels of it lie inside.
pub fn crop(frame: &RgbImage, bbox: &BBox) -> Option<RgbImage> {
    if !bbox.is_valid() {
        return None;
    }
    let (w, h) = (frame.width() as f32, frame.height() as f32);
    let x0 = bbox.x.max(0.0).floor();
    let y0 = bbox.y.max(0.0).floor();
    let x1 = (bbox.x + bbox.w).min(w).ceil();
    let y1 = (bbox.y + bbox.h).min(h).ceil();
    if x1 - x0 < 2.0 || y1 - y0 < 2.0 {
        return None;
    }
    Some(
        image::imageops::crop_imm(
            frame,
            x0 as u32,
            y0 as u32,
            (x1 - x0) as u32,
            (y1 - y0) as u32,
        )
        .to_image(),
    )
}

/// Tracks people through a video, frame by frame.
pub struct VideoTracker<'a> {
    embedder: Option<&'a Embedder>,
    tracker: Tracker,
}

impl<'a> VideoTracker<'a> {
    /// With an `embedder`, people are matched by appearance too; without, by position alone.
    pub fn new(
        embedder: Option<&'a Embedder>,
        config: TrackerConfig,
    ) -> Result<Self, TrackerError> {
        Ok(Self {
            embedder,
            tracker: Tracker::new(config)?,
        })
    }

    /// Tracks the next frame: its picture (`None` when it could not be read: its people are
    /// then matched by position only) and its detections as `(box, score)`.
    pub async fn next_frame(
        &mut self,
        frame: Option<&RgbImage>,
        boxes: &[(BBox, f32)],
    ) -> Result<FrameTracks, TrackingError> {
        let crops: Vec<Option<RgbImage>> = match (frame, self.embedder) {
            (Some(frame), Some(_)) => boxes.iter().map(|(b, _)| crop(frame, b)).collect(),
            _ => vec![None; boxes.len()],
        };
        let mut embeddings: Vec<Option<Vec<f32>>> = vec![None; boxes.len()];
        if let Some(embedder) = self.embedder {
            let (which, images): (Vec<usize>, Vec<RgbImage>) = crops
                .into_iter()
                .enumerate()
                .filter_map(|(i, c)| c.map(|c| (i, c)))
                .unzip();
            let embedded = embedder.embed_images(&images).await?;
            for (i, e) in which.into_iter().zip(embedded) {
                embeddings[i] = Some(e.values().to_vec());
            }
        }
        let detections: Vec<Detection> = boxes
            .iter()
            .zip(embeddings)
            .map(|((bbox, score), embedding)| Detection {
                bbox: *bbox,
                score: *score,
                embedding,
            })
            .collect();
        Ok(self.tracker.update(&detections)?)
    }

    /// Ends the video: every confirmed track as a tracklet.
    pub fn finish(self) -> Vec<Tracklet> {
        self.tracker.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crops_are_clamped_to_the_frame_and_empty_ones_are_refused() {
        let frame = RgbImage::from_fn(100, 50, |x, y| image::Rgb([x as u8, y as u8, 0]));
        let c = crop(&frame, &BBox::new(90.0, 40.0, 30.0, 30.0)).unwrap();
        assert_eq!((c.width(), c.height()), (10, 10));
        assert_eq!(c.get_pixel(0, 0).0, [90, 40, 0]);
        let c = crop(&frame, &BBox::new(-5.5, 10.2, 20.0, 10.0)).unwrap();
        assert_eq!((c.width(), c.height()), (15, 11));
        assert!(crop(&frame, &BBox::new(99.5, 10.0, 20.0, 10.0)).is_none());
        assert!(crop(&frame, &BBox::new(200.0, 10.0, 20.0, 10.0)).is_none());
        assert!(crop(&frame, &BBox::new(10.0, 10.0, 0.0, 10.0)).is_none());
    }
}
