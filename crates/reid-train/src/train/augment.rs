//! Training-time image changes, applied to the in-memory bytes of a batch and written straight
//! into the network's normalised, channel-first input: horizontal flip, zero padding and a random
//! crop back to the input size, brightness/contrast/saturation jitter, and random erasing
//! (Zhong et al. 2020) with torchreid's parameters (2% to 40% of the area, aspect 0.3 to 3.3,
//! filled with the normalisation mean, i.e. 0 after normalising). Every draw comes from a
//! generator seeded by (seed, epoch, batch, slot), so a resumed run sees the same pictures.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use reid_model::InputSpec;

use super::config::AugmentConfig;

/// Writes image `pixels` (`h * w * 3` RGB bytes) into `out` (`3 * h * w` floats) with the
/// augmentations drawn from `rng`.
pub fn augment_into(
    pixels: &[u8],
    spec: &InputSpec,
    config: &AugmentConfig,
    rng: &mut ChaCha8Rng,
    out: &mut [f32],
) {
    let (h, w) = (spec.height, spec.width);
    debug_assert_eq!(pixels.len(), h * w * 3);
    debug_assert_eq!(out.len(), h * w * 3);
    let flip = rng.random::<f32>() < config.flip as f32;
    let pad = config.pad as i64;
    let (dy, dx) = if pad > 0 {
        (
            (rng.random_range(0..=2 * pad) - pad) as isize,
            (rng.random_range(0..=2 * pad) - pad) as isize,
        )
    } else {
        (0, 0)
    };
    let jitter = config.color_jitter as f32;
    let (brightness, contrast, saturation) = if jitter > 0.0 {
        (
            1.0 + rng.random_range(-jitter..=jitter),
            1.0 + rng.random_range(-jitter..=jitter),
            1.0 + rng.random_range(-jitter..=jitter),
        )
    } else {
        (1.0, 1.0, 1.0)
    };
    // Mean grey level of the image for the contrast jitter (as torchvision's adjust_contrast).
    let mean_grey = if contrast != 1.0 {
        pixels.chunks_exact(3).map(grey).sum::<f32>() / (h * w) as f32
    } else {
        0.0
    };
    let plane = h * w;
    for y in 0..h {
        for x in 0..w {
            // Output (y, x) shows source (y + dy, x + dx) of the padded image, then flipped.
            let sx = if flip { w - 1 - x } else { x } as isize + dx;
            let sy = y as isize + dy;
            let inside = (0..h as isize).contains(&sy) && (0..w as isize).contains(&sx);
            let mut rgb = if inside {
                let i = (sy as usize * w + sx as usize) * 3;
                [
                    f32::from(pixels[i]),
                    f32::from(pixels[i + 1]),
                    f32::from(pixels[i + 2]),
                ]
            } else {
                [0.0; 3]
            };
            if jitter > 0.0 {
                rgb = rgb.map(|v| v * brightness);
                let g = grey_f(&rgb);
                rgb = rgb.map(|v| (g + (v - g) * saturation).clamp(0.0, 255.0));
                rgb = rgb.map(|v| (mean_grey + (v - mean_grey) * contrast).clamp(0.0, 255.0));
            }
            for c in 0..3 {
                out[c * plane + y * w + x] = spec.normalise(rgb, c);
            }
        }
    }
    if rng.random::<f32>() < config.erasing as f32 {
        erase(out, h, w, rng);
    }
}

fn grey(p: &[u8]) -> f32 {
    grey_f(&[f32::from(p[0]), f32::from(p[1]), f32::from(p[2])])
}

fn grey_f(p: &[f32; 3]) -> f32 {
    0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2]
}

/// torchreid's RandomErasing: up to 100 tries to fit a rectangle of random area and aspect.
fn erase(out: &mut [f32], h: usize, w: usize, rng: &mut ChaCha8Rng) {
    let area = (h * w) as f32;
    for _ in 0..100 {
        let target = area * rng.random_range(0.02f32..0.4);
        let aspect = rng.random_range(0.3f32..(1.0 / 0.3));
        let eh = (target * aspect).sqrt().round() as usize;
        let ew = (target / aspect).sqrt().round() as usize;
        if eh == 0 || ew == 0 || eh >= h || ew >= w {
            continue;
        }
        let y0 = rng.random_range(0..=h - eh);
        let x0 = rng.random_range(0..=w - ew);
        for c in 0..3 {
            for y in y0..y0 + eh {
                let row = c * h * w + y * w;
                out[row + x0..row + x0 + ew].fill(0.0);
            }
        }
        return;
    }
}

/// The generator of one slot of one batch.
pub fn slot_rng(seed: u64, epoch: u64, batch: usize, slot: usize) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xA5A5_0000_0000_0000);
    rng.set_stream(epoch.wrapping_mul(1 << 32) ^ ((batch as u64) << 12) ^ slot as u64);
    rng
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(h: usize, w: usize) -> InputSpec {
        InputSpec {
            height: h,
            width: w,
            ..InputSpec::default()
        }
    }

    fn none() -> AugmentConfig {
        AugmentConfig {
            flip: 0.0,
            pad: 0,
            erasing: 0.0,
            color_jitter: 0.0,
        }
    }

    /// A 4x3 image whose red channel is 10 * x + y.
    fn ramp() -> Vec<u8> {
        (0..4)
            .flat_map(|y| (0..3).flat_map(move |x| [10 * x + y, 7, 200]))
            .map(|v: u8| v)
            .collect()
    }

    fn red(out: &[f32], s: &InputSpec, y: usize, x: usize) -> u8 {
        ((out[y * s.width + x] * s.std[0] + s.mean[0]) * 255.0).round() as u8
    }

    #[test]
    fn without_augmentation_it_is_the_plain_normalisation() {
        let s = spec(4, 3);
        let mut out = vec![0.0; 36];
        augment_into(&ramp(), &s, &none(), &mut slot_rng(1, 0, 0, 0), &mut out);
        assert_eq!(red(&out, &s, 2, 1), 12);
        assert!((out[12] - s.normalise([0.0, 7.0, 0.0], 1)).abs() < 1e-6);
    }

    #[test]
    fn flip_mirrors_columns_and_padding_shifts_in_black() {
        let s = spec(4, 3);
        let mut out = vec![0.0; 36];
        let flip = AugmentConfig {
            flip: 1.0,
            ..none()
        };
        augment_into(&ramp(), &s, &flip, &mut slot_rng(1, 0, 0, 0), &mut out);
        assert_eq!(red(&out, &s, 2, 0), 22);
        assert_eq!(red(&out, &s, 2, 2), 2);

        // With padding, every output pixel is either a source pixel or black.
        let pad = AugmentConfig { pad: 2, ..none() };
        let source = ramp();
        for slot in 0..20 {
            augment_into(&source, &s, &pad, &mut slot_rng(3, 1, 2, slot), &mut out);
            for y in 0..4 {
                for x in 0..3 {
                    let r = red(&out, &s, y, x);
                    assert!(r == 0 || source.chunks(3).any(|p| p[0] == r), "{r}");
                }
            }
        }
    }

    #[test]
    fn erasing_blanks_a_rectangle_to_the_mean_and_draws_repeat_from_the_seed() {
        let s = spec(64, 32);
        let pixels = vec![250u8; 64 * 32 * 3];
        let erase = AugmentConfig {
            erasing: 1.0,
            ..none()
        };
        let mut a = vec![0.0; 64 * 32 * 3];
        let mut b = a.clone();
        augment_into(&pixels, &s, &erase, &mut slot_rng(5, 2, 3, 4), &mut a);
        augment_into(&pixels, &s, &erase, &mut slot_rng(5, 2, 3, 4), &mut b);
        assert_eq!(a, b);
        let zeros = a.iter().filter(|v| **v == 0.0).count() / 3;
        assert!(
            zeros >= (0.02 * 2048.0) as usize - 40 && zeros <= (0.4 * 2048.0) as usize + 40,
            "{zeros} erased pixels"
        );
        let mut c = a.clone();
        augment_into(&pixels, &s, &erase, &mut slot_rng(5, 2, 3, 5), &mut c);
        assert_ne!(a, c);
    }
}
