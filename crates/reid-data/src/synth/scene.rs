//! MOTChallenge-style scenes: full frames of a camera with several people walking through,
//! each with its box, identity and visibility per frame (`gt/gt.txt`), for detection and
//! tracking. Identities are the dataset's, so the same person can be followed across cameras.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::camera::Camera;
use super::figure::{self, View};
use super::identity::Identity;
use super::raster::{Canvas, Light};
use super::render;

/// Frame size of the scenes.
pub const WIDTH: usize = 640;
pub const HEIGHT: usize = 360;

/// One person's walk through a scene: feet position at frame 0, velocity, view.
#[derive(Debug, Clone)]
pub struct Walker {
    pub pid: u32,
    pub start: [f32; 2],
    pub velocity: [f32; 2],
    pub yaw: f32,
    pub phase: f32,
    /// First frame (0-based) on which the walker is in the scene.
    pub enters: u32,
}

/// A planned scene: its camera, walkers and the randomness of its frames.
#[derive(Debug, Clone)]
pub struct Scene {
    pub camera: u32,
    pub walkers: Vec<Walker>,
    pub horizon: f32,
    pub seed: u64,
}

/// One person's ground truth in one frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GroundTruth {
    pub pid: u32,
    /// Tight box of the person's visible and hidden pixels, clipped to the frame:
    /// left, top, width, height.
    pub bbox: [f32; 4],
    /// Share of the person's pixels not hidden by someone nearer.
    pub visibility: f32,
}

/// Person height in pixels for feet at image row `y` (farther is higher and smaller).
fn height_at(horizon: f32, y: f32) -> f32 {
    let t = ((y - horizon) / (HEIGHT as f32 - horizon)).clamp(0.0, 1.2);
    HEIGHT as f32 * (0.18 + 0.55 * t)
}

impl Scene {
    /// Plans a scene of `people` walkers chosen from `pids` in camera `camera`.
    pub fn plan(
        rng: &mut ChaCha8Rng,
        camera: u32,
        pids: &[u32],
        people: usize,
        frames: u32,
    ) -> Self {
        use std::f32::consts::{FRAC_PI_2, PI};
        let horizon = HEIGHT as f32 * rng.random_range(0.35..0.5);
        // Each person walks through once.
        let mut chosen = pids.to_vec();
        rand::seq::SliceRandom::shuffle(chosen.as_mut_slice(), rng);
        chosen.truncate(people);
        let walkers = chosen
            .into_iter()
            .map(|pid| {
                let y = rng.random_range(horizon + 30.0..HEIGHT as f32 + 20.0);
                let speed = height_at(horizon, y) * rng.random_range(0.012..0.02);
                let (start, velocity, yaw) = match rng.random_range(0..4) {
                    // Across the frame, left to right or right to left.
                    0 => ([-30.0, y], [speed, 0.0], FRAC_PI_2),
                    1 => ([WIDTH as f32 + 30.0, y], [-speed, 0.0], -FRAC_PI_2),
                    // Toward the camera or away from it, slightly diagonal.
                    2 => (
                        [rng.random_range(80.0..560.0), horizon + 25.0],
                        [rng.random_range(-0.5..0.5), speed * 0.6],
                        0.0,
                    ),
                    _ => (
                        [rng.random_range(80.0..560.0), HEIGHT as f32 + 15.0],
                        [rng.random_range(-0.5..0.5), -speed * 0.6],
                        PI,
                    ),
                };
                Walker {
                    pid,
                    start,
                    velocity,
                    yaw: yaw + rng.random_range(-0.2..0.2),
                    phase: rng.random_range(0.0..std::f32::consts::TAU),
                    enters: rng.random_range(0..frames.max(1) / 2 + 1),
                }
            })
            .collect();
        Self {
            camera,
            walkers,
            horizon,
            seed: rng.random(),
        }
    }

    /// Draws frame `f` (0-based) before the camera's effects, and the ground truth of every
    /// person at least partly in view. With `people == false` only the background is drawn
    /// (tests compare the two).
    pub fn draw(
        &self,
        f: u32,
        cam: &Camera,
        identities: &[Identity],
        people: bool,
    ) -> (Canvas, Vec<GroundTruth>) {
        let mut canvas = Canvas::new(WIDTH, HEIGHT, [0.5; 3]);
        let unit = HEIGHT as f32 * 0.25;
        let scenery = render::Scenery {
            kind: cam.background,
            palette: cam.palette,
            seed: self.seed,
            offset: [0.0, 0.0],
            horizon: self.horizon / HEIGHT as f32,
        };
        render::background(&mut canvas, &scenery, unit);
        let light = Light::new(cam.light_dir, 0.5);
        // Farther people (feet higher in the image) first.
        let mut present: Vec<(&Walker, [f32; 2])> = self
            .walkers
            .iter()
            .filter(|w| f >= w.enters)
            .map(|w| {
                let t = (f - w.enters) as f32;
                (
                    w,
                    [
                        w.start[0] + w.velocity[0] * t,
                        w.start[1] + w.velocity[1] * t,
                    ],
                )
            })
            .filter(|(_, p)| p[1] > self.horizon)
            .collect();
        present.sort_by(|a, b| a.1[1].total_cmp(&b.1[1]));
        let mut owner: Vec<i32> = vec![-1; WIDTH * HEIGHT];
        let mut drawn: Vec<(u32, Vec<usize>)> = Vec::new();
        if people {
            for (k, (w, feet)) in present.iter().enumerate() {
                let id = &identities[(w.pid - 1) as usize];
                let view = View {
                    yaw: w.yaw,
                    tilt: cam.tilt * 0.5,
                    scale: height_at(self.horizon, feet[1]) / id.height,
                    origin: *feet,
                };
                let phase = w.phase + 0.45 * (f - w.enters) as f32;
                let pose = figure::walking(id, phase);
                let d = render::draw_person(&mut canvas, id, &pose, &view, &light);
                for &p in &d.pixels {
                    owner[p] = k as i32;
                }
                drawn.push((w.pid, d.pixels));
            }
        }
        let truth = drawn
            .iter()
            .enumerate()
            .filter(|(_, (_, px))| !px.is_empty())
            .map(|(k, (pid, px))| {
                let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0, 0);
                for &p in px {
                    let (x, y) = (p % WIDTH, p / WIDTH);
                    x0 = x0.min(x);
                    y0 = y0.min(y);
                    x1 = x1.max(x);
                    y1 = y1.max(y);
                }
                let visible = px.iter().filter(|&&p| owner[p] == k as i32).count();
                GroundTruth {
                    pid: *pid,
                    bbox: [
                        x0 as f32,
                        y0 as f32,
                        (x1 - x0 + 1) as f32,
                        (y1 - y0 + 1) as f32,
                    ],
                    visibility: visible as f32 / px.len() as f32,
                }
            })
            .collect();
        (canvas, truth)
    }

    /// The finished frame (camera effects applied) and its ground truth.
    pub fn frame(
        &self,
        f: u32,
        cam: &Camera,
        identities: &[Identity],
    ) -> (image::RgbImage, Vec<GroundTruth>) {
        let (canvas, truth) = self.draw(f, cam, identities, true);
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ u64::from(f).wrapping_mul(0x9E37_79B9));
        let image = render::camera_effects(&canvas, cam, &mut rng, WIDTH as u32, HEIGHT as u32);
        (image, truth)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::{SynthConfig, World};

    #[test]
    fn every_drawn_person_pixel_lies_in_a_ground_truth_box_and_only_shadows_fall_outside() {
        let world = World::new(SynthConfig::preset("tiny").unwrap()).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let pids: Vec<u32> = (7..=12).collect();
        let scene = Scene::plan(&mut rng, 1, &pids, 5, 40);
        let cam = &world.cameras[0];
        let mut boxes_seen = 0;
        for f in [0, 10, 20, 39] {
            let (with, truth) = scene.draw(f, cam, &world.identities, true);
            let (without, none) = scene.draw(f, cam, &world.identities, false);
            assert!(none.is_empty());
            let inside = |x: usize, y: usize, b: &GroundTruth| {
                let (x, y) = (x as f32, y as f32);
                x >= b.bbox[0] - 1.0
                    && y >= b.bbox[1] - 1.0
                    && x <= b.bbox[0] + b.bbox[2]
                    && y <= b.bbox[1] + b.bbox[3]
            };
            let mut hits = vec![0usize; truth.len()];
            for (i, (a, b)) in with.px.iter().zip(&without.px).enumerate() {
                if a.iter().zip(b).any(|(p, q)| (p - q).abs() > 1e-4) {
                    let (x, y) = (i % WIDTH, i / WIDTH);
                    let owners: Vec<usize> = (0..truth.len())
                        .filter(|&k| inside(x, y, &truth[k]))
                        .collect();
                    // Outside the boxes only the ground may change: darkened (every channel by
                    // the same factor) by a contact shadow around someone's feet.
                    let shadow = a.iter().zip(b).all(|(p, q)| *p <= q + 1e-4)
                        && (0..3).all(|c| (a[c] * b[0] - a[0] * b[c]).abs() < 1e-3)
                        && truth.iter().any(|t| {
                            let (fx, fy) = (x as f32, y as f32);
                            let feet = t.bbox[1] + t.bbox[3];
                            (fy - feet).abs() <= 0.1 * t.bbox[3]
                                && fx >= t.bbox[0] - 0.5 * t.bbox[2]
                                && fx <= t.bbox[0] + 1.5 * t.bbox[2]
                        });
                    assert!(
                        !owners.is_empty() || shadow,
                        "frame {f}: changed pixel ({x}, {y}) outside every box {truth:?}"
                    );
                    owners.iter().for_each(|&k| hits[k] += 1);
                }
            }
            for (b, h) in truth.iter().zip(hits) {
                assert!(h > 20, "frame {f}: box {b:?} holds {h} changed pixels");
                assert!((0.0..=1.0).contains(&b.visibility));
                assert!(b.bbox[0] >= 0.0 && b.bbox[1] >= 0.0);
                assert!(
                    b.bbox[0] + b.bbox[2] <= WIDTH as f32 && b.bbox[1] + b.bbox[3] <= HEIGHT as f32
                );
            }
            boxes_seen += truth.len();
        }
        assert!(boxes_seen >= 6, "{boxes_seen}");
    }
}
