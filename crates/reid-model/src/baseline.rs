//! A non-learned baseline feature: colour histograms in HSV over horizontal stripes (as in the
//! ELF / LOMO family of hand-crafted ReID features). It tells how far colour alone goes on a
//! dataset: a world where it ranks the right person first most of the time is too easy.

use crate::preprocess::RgbImage;

/// Horizontal stripes (head to feet).
pub const STRIPES: usize = 6;
/// Hue, saturation and value bins per stripe.
pub const BINS: [usize; 3] = [8, 3, 3];
/// Length of the feature: stripes x hue x saturation x value bins.
pub const DIM: usize = STRIPES * BINS[0] * BINS[1] * BINS[2];

/// HSV of an 8-bit RGB pixel: hue in 0..1 (wrapping), saturation and value in 0..1.
fn hsv(p: [u8; 3]) -> [f32; 3] {
    let [r, g, b] = p.map(|v| f32::from(v) / 255.0);
    let max = r.max(g).max(b);
    let min = r.min(g).min(b);
    let delta = max - min;
    let hue = if delta <= 0.0 {
        0.0
    } else if max == r {
        ((g - b) / delta).rem_euclid(6.0) / 6.0
    } else if max == g {
        ((b - r) / delta + 2.0) / 6.0
    } else {
        ((r - g) / delta + 4.0) / 6.0
    };
    let saturation = if max <= 0.0 { 0.0 } else { delta / max };
    [hue, saturation, max]
}

/// The stripe histograms of `image`, each stripe normalised to sum 1 (so stripes weigh the
/// same whatever the crop size). Compare with cosine similarity.
pub fn hsv_stripe_histogram(image: &RgbImage) -> Vec<f32> {
    let h = image.height();
    let mut feature = vec![0f32; DIM];
    let per_stripe = BINS[0] * BINS[1] * BINS[2];
    let bin = |v: f32, n: usize| ((v * n as f32) as usize).min(n - 1);
    for (_, y, p) in image.enumerate_pixels() {
        let stripe = ((y as usize * STRIPES) / h.max(1) as usize).min(STRIPES - 1);
        let [hu, s, v] = hsv(p.0);
        let index = stripe * per_stripe
            + bin(hu, BINS[0]) * BINS[1] * BINS[2]
            + bin(s, BINS[1]) * BINS[2]
            + bin(v, BINS[2]);
        feature[index] += 1.0;
    }
    for stripe in feature.chunks_mut(per_stripe) {
        let total: f32 = stripe.iter().sum();
        if total > 0.0 {
            stripe.iter_mut().for_each(|v| *v /= total);
        }
    }
    feature
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hsv_of_primaries_and_greys() {
        let close = |a: [f32; 3], b: [f32; 3]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6);
        assert!(close(hsv([255, 0, 0]), [0.0, 1.0, 1.0]));
        assert!(close(hsv([0, 255, 0]), [1.0 / 3.0, 1.0, 1.0]));
        assert!(close(hsv([0, 0, 255]), [2.0 / 3.0, 1.0, 1.0]));
        assert!(close(hsv([128, 128, 128]), [0.0, 0.0, 128.0 / 255.0]));
    }

    #[test]
    fn stripes_separate_a_red_top_from_blue_trousers() {
        let image = RgbImage::from_fn(8, 12, |_, y| {
            if y < 6 {
                image::Rgb([200, 10, 10])
            } else {
                image::Rgb([10, 10, 200])
            }
        });
        let f = hsv_stripe_histogram(&image);
        assert_eq!(f.len(), DIM);
        let per = DIM / STRIPES;
        for (s, stripe) in f.chunks(per).enumerate() {
            assert!((stripe.iter().sum::<f32>() - 1.0).abs() < 1e-6);
            // Red lands in hue bin 0, blue in bin 5 (of 8); both saturated and bright.
            let hue_bin = if s < 3 { 0 } else { 5 };
            assert_eq!(stripe[hue_bin * 9 + 2 * 3 + 2], 1.0, "stripe {s}");
        }
    }
}
