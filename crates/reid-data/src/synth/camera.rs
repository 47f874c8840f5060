//! Cameras with their own character: where people face, how high the camera hangs, its light,
//! its background, and its image quality. The same person looks different between cameras the
//! way real cameras differ.

use rand::Rng;
use serde::Serialize;

use super::identity::Colour;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Background {
    /// Brick or panelled walls above pavement.
    Wall,
    /// Paving slabs seen from above.
    Pavement,
    /// Hedges and trees.
    Foliage,
    /// Shop fronts, signs and objects.
    Clutter,
}

/// One camera's character.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Camera {
    /// 1-based, as in the file names.
    pub id: u32,
    /// Relative frequency of front, back, side and oblique views.
    pub views: [f32; 4],
    /// Looking down: 0 (eye level) to 1 (steep), foreshortens the body.
    pub tilt: f32,
    /// Overall exposure (1 is neutral).
    pub brightness: f32,
    /// Per-channel gain of the light's colour temperature (warm to cool).
    pub light: Colour,
    /// Direction the light comes from, in the image plane (x right, y up) plus depth.
    pub light_dir: [f32; 3],
    /// How dark cast shadows are (0: none).
    pub shadow: f32,
    pub background: Background,
    /// The background's palette: base colour and a second tone.
    pub palette: [Colour; 2],
    /// Share of this camera's crops whose background is another kind (a camera sees walls,
    /// pavement, hedges and shop fronts depending on where the person stands).
    pub other_backgrounds: f32,
    /// Downscale factor before upscaling back (1: full resolution; 0.4: a poor camera).
    pub resolution: f32,
    /// Gaussian blur sigma, in pixels of the output crop.
    pub blur: f32,
    /// Sensor noise standard deviation (0..1 scale).
    pub noise: f32,
    pub jpeg_quality: u8,
}

/// A palette for a background of `kind`.
pub fn background_palette(rng: &mut impl Rng, kind: Background) -> [Colour; 2] {
    let tone = |rng: &mut dyn rand::RngCore, base: Colour, spread: f32| -> Colour {
        base.map(|v| (v + (rng.random::<f32>() - 0.5) * spread).clamp(0.0, 1.0))
    };
    match kind {
        Background::Wall => [
            tone(rng, [0.62, 0.42, 0.34], 0.25),
            tone(rng, [0.75, 0.72, 0.66], 0.2),
        ],
        Background::Pavement => [
            tone(rng, [0.55, 0.54, 0.52], 0.2),
            tone(rng, [0.42, 0.41, 0.40], 0.15),
        ],
        Background::Foliage => [
            tone(rng, [0.22, 0.38, 0.16], 0.15),
            tone(rng, [0.10, 0.20, 0.08], 0.1),
        ],
        Background::Clutter => [
            tone(rng, [0.55, 0.50, 0.45], 0.3),
            tone(rng, [0.30, 0.30, 0.35], 0.3),
        ],
    }
}

/// One of the background kinds, uniformly.
pub fn random_background(rng: &mut impl Rng) -> Background {
    match rng.random_range(0..4) {
        0 => Background::Wall,
        1 => Background::Pavement,
        2 => Background::Foliage,
        _ => Background::Clutter,
    }
}

/// Samples camera `id` (1-based). Cameras differ in viewpoint, light, background and quality.
pub fn sample(rng: &mut impl Rng, id: u32) -> Camera {
    let background = random_background(rng);
    // A camera mostly sees people walking one way along its path, so one or two views dominate.
    let mut views = [0.15f32; 4];
    views[rng.random_range(0..4)] += 1.0;
    views[rng.random_range(0..4)] += 0.5;
    // Cameras balance white and set exposure automatically, never perfectly: a residual cast
    // from warm (sodium, tungsten) to cool (shade, fluorescent), and some under- or
    // over-exposure.
    let warmth: f32 = rng.random_range(-1.0..1.0);
    let light = [
        1.0 + 0.1 * warmth,
        1.0 + 0.02 * warmth.abs(),
        1.0 - 0.12 * warmth,
    ];
    Camera {
        id,
        views,
        tilt: rng.random_range(0.0..0.8),
        brightness: rng.random_range(0.75..1.2),
        light,
        light_dir: [
            rng.random_range(-0.8..0.8),
            rng.random_range(0.2..0.9),
            rng.random_range(0.4..1.0),
        ],
        shadow: rng.random_range(0.0..0.5),
        background,
        palette: background_palette(rng, background),
        other_backgrounds: rng.random_range(0.3..0.6),
        resolution: rng.random_range(0.45..1.0),
        blur: rng.random_range(0.0..1.0),
        noise: rng.random_range(0.005..0.04),
        jpeg_quality: rng.random_range(55..95),
    }
}
