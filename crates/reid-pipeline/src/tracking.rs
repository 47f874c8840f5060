//! Frames and their detections to tracks: each detection is cut out of its frame, embedded
//! with the ReID model (when one is given), and handed with its embedding to `reid-core`'s
//! tracker, which then matches people by appearance as well as by position (DeepSORT).
//!
//! Detection itself is not here: boxes come from the caller (a detector, or a MOTChallenge
//! `det.txt`). The embedder is passed with each frame, so a long-lived tracker (the browser
//! worker's, one per video) does not hold on to a model that may be replaced.

use std::collections::HashMap;

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

/// A person's view shrunk to fit 64 x 128 (its shape kept; never enlarged), as PNG bytes, for
/// a thumbnail.
pub fn thumbnail_png(view: &RgbImage) -> Vec<u8> {
    let scale = (64.0 / view.width() as f32)
        .min(128.0 / view.height() as f32)
        .min(1.0);
    let w = ((view.width() as f32 * scale).round() as u32).max(1);
    let h = ((view.height() as f32 * scale).round() as u32).max(1);
    let small = image::imageops::resize(view, w, h, image::imageops::FilterType::Triangle);
    let mut png = Vec::new();
    // Encoding into memory fails only on a zero-size picture, which `max(1)` rules out.
    let _ = small.write_with_encoder(image::codecs::png::PngEncoder::new(&mut png));
    png
}

/// Tracks people through a video, frame by frame.
pub struct VideoTracker {
    tracker: Tracker,
    /// Per track, the quality and picture of its best view so far (when views are kept).
    views: Option<HashMap<u64, (f32, RgbImage)>>,
}

impl VideoTracker {
    /// A tracker; with `keep_views`, each track's best view (the crop of its best-quality
    /// observation) is kept for a thumbnail: one picture per track.
    pub fn new(config: TrackerConfig, keep_views: bool) -> Result<Self, TrackerError> {
        Ok(Self {
            tracker: Tracker::new(config)?,
            views: keep_views.then(HashMap::new),
        })
    }

    /// Tracks the next frame: its picture (`None` when it could not be read: its people are
    /// then matched by position only) and its detections as `(box, score)`. With an
    /// `embedder`, people are matched by appearance too; without, by position alone.
    pub async fn next_frame(
        &mut self,
        embedder: Option<&Embedder>,
        frame: Option<&RgbImage>,
        boxes: &[(BBox, f32)],
    ) -> Result<FrameTracks, TrackingError> {
        let crops: Vec<Option<RgbImage>> = match (frame, embedder) {
            (Some(frame), Some(_)) => boxes.iter().map(|(b, _)| crop(frame, b)).collect(),
            _ => vec![None; boxes.len()],
        };
        let mut embeddings: Vec<Option<Vec<f32>>> = vec![None; boxes.len()];
        if let Some(embedder) = embedder {
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
        let tracks = self.tracker.update(&detections)?;
        if let (Some(views), Some(frame)) = (self.views.as_mut(), frame) {
            for o in &tracks.observations {
                let better = views.get(&o.track_id).is_none_or(|(q, _)| o.quality > *q);
                if better {
                    if let Some(view) = crop(frame, &boxes[o.detection].0) {
                        views.insert(o.track_id, (o.quality, view));
                    }
                }
            }
        }
        Ok(tracks)
    }

    /// Ends the video: every confirmed track as a tracklet, and (when views were kept) each
    /// one's best view.
    pub fn finish(self) -> (Vec<Tracklet>, HashMap<u64, RgbImage>) {
        let tracklets = self.tracker.finish();
        let mut views = self.views.unwrap_or_default();
        views.retain(|id, _| tracklets.iter().any(|t| t.track_id == *id));
        (
            tracklets,
            views
                .into_iter()
                .map(|(id, (_, view))| (id, view))
                .collect(),
        )
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

    #[test]
    fn thumbnails_fit_64_by_128_keep_their_shape_and_are_pngs() {
        let view = RgbImage::from_fn(100, 100, |x, _| image::Rgb([x as u8, 0, 0]));
        let png = thumbnail_png(&view);
        let back = image::load_from_memory_with_format(&png, image::ImageFormat::Png).unwrap();
        assert_eq!((back.width(), back.height()), (64, 64));
        let small = RgbImage::new(20, 30);
        let back = image::load_from_memory(&thumbnail_png(&small)).unwrap();
        assert_eq!((back.width(), back.height()), (20, 30));
    }
}
