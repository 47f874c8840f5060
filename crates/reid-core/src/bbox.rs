//! Boxes around people in an image, in pixels, as MOTChallenge writes them: the top-left corner,
//! the width and the height (continuous coordinates: a box from x to x + w).

use serde::{Deserialize, Serialize};

/// An axis-aligned box: top-left corner `(x, y)`, width `w` and height `h`, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BBox {
    pub x: f32,
    pub y: f32,
    pub w: f32,
    pub h: f32,
}

impl BBox {
    pub fn new(x: f32, y: f32, w: f32, h: f32) -> Self {
        Self { x, y, w, h }
    }

    /// Area in square pixels (0 for an empty or inverted box).
    pub fn area(&self) -> f32 {
        self.w.max(0.0) * self.h.max(0.0)
    }

    /// Whether the box has a positive, finite width and height.
    pub fn is_valid(&self) -> bool {
        [self.x, self.y, self.w, self.h]
            .iter()
            .all(|v| v.is_finite())
            && self.w > 0.0
            && self.h > 0.0
    }

    /// Area shared with `other`.
    pub fn intersection(&self, other: &BBox) -> f32 {
        let w = (self.x + self.w).min(other.x + other.w) - self.x.max(other.x);
        let h = (self.y + self.h).min(other.y + other.h) - self.y.max(other.y);
        w.max(0.0) * h.max(0.0)
    }

    /// Intersection over union, 0 when the boxes do not overlap or either is empty. Computed in
    /// double precision, as py-motmetrics computes it, so that tracking metrics agree with it.
    pub fn iou(&self, other: &BBox) -> f64 {
        let (a, b) = (self.corners(), other.corners());
        let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
        let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
        let inter = w * h;
        let area = |c: [f64; 4]| (c[2] - c[0]).max(0.0) * (c[3] - c[1]).max(0.0);
        let union = area(a) + area(b) - inter;
        if union > 0.0 {
            inter / union
        } else {
            0.0
        }
    }

    /// `[left, top, right, bottom]` in double precision.
    fn corners(&self) -> [f64; 4] {
        let (x, y) = (f64::from(self.x), f64::from(self.y));
        [x, y, x + f64::from(self.w), y + f64::from(self.h)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iou_of_overlapping_disjoint_and_empty_boxes() {
        let a = BBox::new(0.0, 0.0, 10.0, 10.0);
        assert_eq!(a.iou(&a), 1.0);
        // Half of a overlaps a box of the same size: 50 / 150.
        let b = BBox::new(5.0, 0.0, 10.0, 10.0);
        assert!((a.iou(&b) - 1.0 / 3.0).abs() < 1e-6);
        // Touching edges share no area.
        assert_eq!(a.iou(&BBox::new(10.0, 0.0, 5.0, 5.0)), 0.0);
        assert_eq!(a.iou(&BBox::new(3.0, 3.0, 0.0, 4.0)), 0.0);
        assert!(!BBox::new(3.0, 3.0, 0.0, 4.0).is_valid());
        assert!(!BBox::new(f32::NAN, 3.0, 1.0, 4.0).is_valid());
    }
}
