//! The synthetic pedestrian world (`reid synth`): identities with clothing and accessories,
//! cameras with their own viewpoint, light, background and image quality, articulated walking
//! figures drawn with shading and occlusion, written out in Market-1501's layout with
//! attributes, 14 keypoints per image and a description of how it was generated.
//!
//! Everything derives from one seed: every image has its own random stream (seeded from the
//! dataset seed and the image's identity, camera and number), so output does not depend on the
//! number of threads, and the same seed gives the same bytes.

pub mod attributes;
pub mod camera;
pub mod figure;
pub mod identity;
mod raster;
pub mod render;
pub mod scene;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::Serialize;

pub use camera::Camera;
pub use identity::Identity;
use raster::{Canvas, Light};
use render::Keypoints;

/// Sizes and difficulty knobs of a generated dataset.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SynthConfig {
    pub seed: u64,
    /// Identities in all; the first half (rounded up) trains, the rest are the test set.
    pub identities: u32,
    pub cameras: u32,
    /// Average crops of one identity in one camera (at least 2 for test identities).
    pub crops_per_camera: u32,
    /// Share of identities that copy an earlier identity's clothing colours.
    pub lookalikes: f32,
    /// Probability that something stands between the camera and the person.
    pub occlusion: f32,
    /// Gallery images with identity 0000 (no person, or a fragment): counted as wrong matches.
    pub distractors: u32,
    /// Gallery images with identity -1 (badly cropped people): ignored by the protocol.
    pub junk: u32,
    /// Crop size in pixels (Market-1501: 64 x 128).
    pub width: u32,
    pub height: u32,
    /// Frames per video tracklet in the MARS-style output (0: no video output).
    pub tracklet_frames: u32,
    /// MOTChallenge-style scenes per camera (0: none), their length and how many people walk
    /// through each.
    pub scenes_per_camera: u32,
    pub scene_frames: u32,
    pub scene_people: u32,
}

impl SynthConfig {
    /// A named preset: `tiny` (tests, with a little video), `ablation` (about 6,000 crops),
    /// `market` (Market-1501's scale: about 1,500 identities, 6 cameras, about 30,000 crops) or
    /// `mars` (video: 600 identities, 16-frame tracklets in 6 cameras).
    pub fn preset(name: &str) -> Option<Self> {
        let base = Self {
            seed: 1,
            identities: 12,
            cameras: 3,
            crops_per_camera: 3,
            lookalikes: 0.3,
            occlusion: 0.25,
            distractors: 8,
            junk: 4,
            width: 64,
            height: 128,
            tracklet_frames: 4,
            scenes_per_camera: 1,
            scene_frames: 5,
            scene_people: 3,
        };
        match name {
            "tiny" => Some(base),
            "ablation" => Some(Self {
                tracklet_frames: 0,
                scenes_per_camera: 0,
                identities: 300,
                cameras: 4,
                crops_per_camera: 7,
                distractors: 200,
                junk: 100,
                ..base
            }),
            "market" => Some(Self {
                tracklet_frames: 0,
                scenes_per_camera: 2,
                scene_frames: 100,
                scene_people: 8,
                identities: 1501,
                cameras: 6,
                crops_per_camera: 5,
                distractors: 1000,
                junk: 500,
                ..base
            }),
            // Video: one tracklet of 16 frames per identity and camera (and one still crop).
            "mars" => Some(Self {
                identities: 600,
                cameras: 6,
                crops_per_camera: 1,
                tracklet_frames: 16,
                scenes_per_camera: 0,
                distractors: 100,
                junk: 50,
                ..base
            }),
            _ => None,
        }
    }

    /// The preset names [`SynthConfig::preset`] knows.
    pub const PRESETS: [&'static str; 4] = ["tiny", "ablation", "market", "mars"];

    fn check(&self) -> Result<(), SynthError> {
        let bad = |why: String| Err(SynthError::Config(why));
        if self.identities < 2 {
            return bad(format!(
                "{} identities: at least 2 are needed (one to train, one to test)",
                self.identities
            ));
        }
        if self.identities > 9999 {
            return bad(format!(
                "{} identities: Market-1501 names have 4 digits (at most 9999)",
                self.identities
            ));
        }
        if self.cameras < 2 || self.cameras > 9 {
            return bad(format!("{} cameras: Market-1501 names allow 2 to 9 (at least 2 so that a query has a match in another camera)", self.cameras));
        }
        if self.tracklet_frames > 999 {
            return bad(format!(
                "{} frames per tracklet: MARS names have 3 digits (at most 999)",
                self.tracklet_frames
            ));
        }
        if self.scenes_per_camera > 99 || self.scene_frames > 999_999 {
            return bad("at most 99 scenes per camera of at most 999,999 frames".into());
        }
        if self.crops_per_camera == 0 {
            return bad("0 crops per camera".into());
        }
        if !(0.0..=1.0).contains(&self.lookalikes) || !(0.0..=1.0).contains(&self.occlusion) {
            return bad("--lookalikes and --occlusion are probabilities (0 to 1)".into());
        }
        if self.width < 16 || self.height < 32 || self.width > 1024 || self.height > 2048 {
            return bad(format!(
                "crop size {}x{}: use 16x32 to 1024x2048",
                self.width, self.height
            ));
        }
        Ok(())
    }
}

/// Why a dataset could not be generated.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    #[error("invalid settings: {0}")]
    Config(String),
    #[error("{0} exists and is not empty: choose another folder or pass --force to replace it")]
    Exists(PathBuf),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot encode {path}: {message}")]
    Encode { path: PathBuf, message: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SynthError + '_ {
    move |source| SynthError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A stream of randomness for one purpose, from the dataset seed and a few numbers.
fn stream(seed: u64, parts: &[u64]) -> ChaCha8Rng {
    let mut h = seed ^ 0x005E_ED0F_5EED;
    for &p in parts {
        h = (h ^ p).wrapping_mul(0x100_0000_01B3).rotate_left(29) ^ 0x9E37_79B9_7F4A_7C15;
    }
    ChaCha8Rng::seed_from_u64(h)
}

/// The people and cameras of a world, before any image is drawn.
pub struct World {
    pub config: SynthConfig,
    pub identities: Vec<Identity>,
    pub cameras: Vec<Camera>,
}

impl World {
    pub fn new(config: SynthConfig) -> Result<Self, SynthError> {
        config.check()?;
        let cameras = (1..=config.cameras)
            .map(|c| camera::sample(&mut stream(config.seed, &[1, u64::from(c)]), c))
            .collect();
        let train = config.identities.div_ceil(2);
        let mut identities: Vec<Identity> = Vec::with_capacity(config.identities as usize);
        for pid in 1..=config.identities {
            let mut rng = stream(config.seed, &[2, u64::from(pid)]);
            // Look-alikes copy someone from their own split, where they can be confused.
            let first = if pid <= train { 1 } else { train + 1 };
            let model = (pid > first && rng.random_bool(f64::from(config.lookalikes)))
                .then(|| rng.random_range(first..pid))
                .map(|m| &identities[(m - 1) as usize]);
            let id = identity::sample(&mut rng, pid, model);
            identities.push(id);
        }
        Ok(Self {
            config,
            identities,
            cameras,
        })
    }

    /// Renders one crop of `id` in `cam`; `junk` crops it badly (part of the person, off
    /// centre); without `id` it is a distractor (background, maybe an object).
    pub fn crop(
        &self,
        id: Option<&Identity>,
        cam: &Camera,
        seed: &[u64],
        junk: bool,
    ) -> (image::RgbImage, Keypoints) {
        let mut rng = stream(self.config.seed, seed);
        let shot = Shot::sample(&mut rng, cam, junk, self.config.occlusion);
        self.render(id, cam, &shot, &mut rng)
    }

    /// Renders `frames` consecutive frames of `id` walking through `cam` (one tracklet): the
    /// same view, light, background and occluder, the walk advancing and drifting sideways.
    pub fn sequence(
        &self,
        id: &Identity,
        cam: &Camera,
        seed: &[u64],
        frames: u32,
    ) -> Vec<(image::RgbImage, Keypoints)> {
        let mut rng = stream(self.config.seed, seed);
        let mut shot = Shot::sample(&mut rng, cam, false, self.config.occlusion);
        let drift = rng.random_range(-0.004..0.004);
        (0..frames)
            .map(|_| {
                let frame = self.render(Some(id), cam, &shot, &mut rng);
                shot.phase += 0.45;
                shot.origin[0] += drift;
                frame
            })
            .collect()
    }

    fn render(
        &self,
        id: Option<&Identity>,
        cam: &Camera,
        shot: &Shot,
        rng: &mut ChaCha8Rng,
    ) -> (image::RgbImage, Keypoints) {
        let (w, h) = (
            self.config.width as usize * 2,
            self.config.height as usize * 2,
        );
        let mut canvas = Canvas::new(w, h, [0.5; 3]);
        let unit = h as f32 * shot.scale;
        render::background(&mut canvas, &shot.scenery, unit * 0.5);
        let light = Light::new(shot.light_dir, shot.ambient);
        let mut keypoints = [[0.0f32; 3]; 14];
        if let Some(id) = id {
            let view = figure::View {
                yaw: shot.yaw,
                tilt: shot.tilt,
                scale: unit / id.height * shot.zoom,
                origin: [shot.origin[0] * w as f32, shot.origin[1] * h as f32],
            };
            let pose = figure::walking(id, shot.phase);
            keypoints = render::draw_person(&mut canvas, id, &pose, &view, &light).keypoints;
        }
        if let Some(seed) = shot.occluder.or(id.is_none().then_some(shot.shadow_seed)) {
            let covered =
                render::occluder(&mut canvas, &mut ChaCha8Rng::seed_from_u64(seed), &light);
            let hidden: std::collections::HashSet<usize> = covered.into_iter().collect();
            for k in keypoints.iter_mut() {
                let (x, y) = (k[0].floor(), k[1].floor());
                if x >= 0.0
                    && y >= 0.0
                    && (x as usize) < w
                    && (y as usize) < h
                    && hidden.contains(&(y as usize * w + x as usize))
                {
                    k[2] = 0.0;
                }
            }
        }
        if shot.shadow {
            render::shadow(
                &mut canvas,
                &mut ChaCha8Rng::seed_from_u64(shot.shadow_seed),
                cam.shadow,
            );
        }
        let image =
            render::camera_effects(&canvas, cam, rng, self.config.width, self.config.height);
        let (ow, oh) = (self.config.width as f32, self.config.height as f32);
        let keypoints = keypoints.map(|[x, y, v]| {
            let (x, y) = (x / 2.0, y / 2.0);
            let inside = x >= 0.0 && y >= 0.0 && x < ow && y < oh;
            [x, y, if inside && id.is_some() { v } else { 0.0 }]
        });
        (image, keypoints)
    }
}

/// The background behind one picture: mostly the camera's own kind and palette (slightly
/// varied), sometimes another kind, as where a person stands changes what is behind them.
fn scenery(rng: &mut ChaCha8Rng, cam: &Camera) -> render::Scenery {
    let (kind, palette) = if rng.random_bool(f64::from(cam.other_backgrounds)) {
        let kind = camera::random_background(rng);
        (kind, camera::background_palette(rng, kind))
    } else {
        let jitter = |rng: &mut ChaCha8Rng, c: identity::Colour| {
            c.map(|v| (v + rng.random_range(-0.06..0.06)).clamp(0.0, 1.0))
        };
        (
            cam.background,
            [jitter(rng, cam.palette[0]), jitter(rng, cam.palette[1])],
        )
    };
    render::Scenery {
        kind,
        palette,
        seed: rng.random(),
        offset: [rng.random_range(0.0..4000.0), rng.random_range(0.0..400.0)],
        horizon: rng.random_range(0.35..0.75),
    }
}

/// Everything about one picture that stays the same through a tracklet.
#[derive(Debug, Clone)]
struct Shot {
    yaw: f32,
    tilt: f32,
    /// Person height as a share of the crop height.
    scale: f32,
    /// A bad box zooms in (junk); 1 otherwise.
    zoom: f32,
    /// Feet position as a share of the crop's width and height.
    origin: [f32; 2],
    phase: f32,
    scenery: render::Scenery,
    light_dir: [f32; 3],
    ambient: f32,
    /// Seed of the occluder in front of the person, if any.
    occluder: Option<u64>,
    shadow: bool,
    shadow_seed: u64,
}

impl Shot {
    fn sample(rng: &mut ChaCha8Rng, cam: &Camera, junk: bool, occlusion: f32) -> Self {
        let mut shot = Shot {
            yaw: view_angle(rng, cam),
            tilt: (cam.tilt + rng.random_range(-0.1..0.1)).clamp(0.0, 1.0),
            scale: rng.random_range(0.8..0.9),
            zoom: 1.0,
            origin: [
                0.5 + rng.random_range(-0.06..0.06),
                rng.random_range(0.93..0.99),
            ],
            phase: rng.random_range(0.0..std::f32::consts::TAU),
            scenery: scenery(rng, cam),
            light_dir: [
                cam.light_dir[0] + rng.random_range(-0.2..0.2),
                cam.light_dir[1] + rng.random_range(-0.1..0.1),
                cam.light_dir[2],
            ],
            ambient: rng.random_range(0.4..0.55),
            occluder: None,
            shadow: false,
            shadow_seed: rng.random(),
        };
        if junk {
            // A detector's bad box: shifted half out of the crop, or far too tight.
            if rng.random_bool(0.5) {
                let side = if rng.random_bool(0.5) { 1.0 } else { -1.0 };
                shot.origin[0] += rng.random_range(0.35..0.6) * side;
            } else {
                shot.zoom = rng.random_range(1.6..2.4);
                shot.origin[1] += rng.random_range(0.2..0.8);
            }
        }
        if rng.random_bool(f64::from(occlusion)) {
            shot.occluder = Some(rng.random());
        }
        shot.shadow = cam.shadow > 0.1 && rng.random_bool(0.5);
        shot
    }
}

/// A view angle drawn from the camera's view distribution (front, back, side, oblique).
fn view_angle(rng: &mut impl Rng, cam: &Camera) -> f32 {
    use std::f32::consts::{FRAC_PI_2, FRAC_PI_4, PI};
    let total: f32 = cam.views.iter().sum();
    let mut x = rng.random::<f32>() * total;
    let mut which = 0;
    for (i, w) in cam.views.iter().enumerate() {
        if x < *w {
            which = i;
            break;
        }
        x -= w;
    }
    let sign = if rng.random_bool(0.5) { 1.0 } else { -1.0 };
    let base = match which {
        0 => 0.0,
        1 => PI,
        2 => sign * FRAC_PI_2,
        _ => {
            sign * if rng.random_bool(0.5) {
                FRAC_PI_4
            } else {
                3.0 * FRAC_PI_4
            }
        }
    };
    base + rng.random_range(-0.25..0.25)
}

/// One image to write: where, and what it shows.
struct Job {
    /// Path relative to the dataset root.
    file: String,
    pid: Option<u32>,
    camera: u32,
    seed: [u64; 4],
    junk: bool,
}

fn market_name(pid: i64, camera: u32, frame: u64) -> String {
    let pid = if pid < 0 {
        "-1".to_string()
    } else {
        format!("{pid:04}")
    };
    format!("{pid}_c{camera}s{}_{:06}_01.jpg", 1 + frame % 6, frame)
}

/// What was generated.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub train_images: usize,
    pub query_images: usize,
    pub gallery_images: usize,
    pub train_identities: u32,
    pub test_identities: u32,
    /// MARS-style tracklets and their frames.
    pub tracklets: usize,
    pub tracklet_frames: usize,
    /// MOTChallenge-style scenes and their frames.
    pub scenes: usize,
    pub scene_frames: usize,
    /// Wall time (not written to dataset.json, which must not depend on the machine).
    #[serde(skip)]
    pub seconds: f64,
}

impl Summary {
    /// Still crops (Market-1501 layout), not counting video frames.
    pub fn images(&self) -> usize {
        self.train_images + self.query_images + self.gallery_images
    }
}

/// The cameras identity `pid` walks through (2 or more, in the order it meets them).
fn cameras_of(c: &SynthConfig, pid: u32) -> Vec<u32> {
    let mut rng = stream(c.seed, &[3, u64::from(pid)]);
    let visits = rng.random_range(2..=c.cameras);
    let mut cams: Vec<u32> = (1..=c.cameras).collect();
    rand::seq::SliceRandom::shuffle(cams.as_mut_slice(), &mut rng);
    cams.truncate(visits as usize);
    cams
}

/// One video tracklet of the MARS-style output.
#[derive(Debug, Clone, Serialize)]
pub struct Tracklet {
    pub pid: u32,
    pub camera: u32,
    pub tracklet: u32,
    /// `train`, `query` or `gallery`.
    pub split: &'static str,
    /// Frame files relative to the dataset root, in order.
    pub frames: Vec<String>,
}

/// Plans the MARS-style tracklets: one per identity and camera it visits; a test identity's
/// first camera gives its query tracklet, the others its gallery tracklets.
fn plan_tracklets(world: &World) -> Vec<Tracklet> {
    let c = &world.config;
    if c.tracklet_frames == 0 {
        return Vec::new();
    }
    let train = c.identities.div_ceil(2);
    let mut out = Vec::new();
    for id in &world.identities {
        for (k, cam) in cameras_of(c, id.pid).into_iter().enumerate() {
            let (folder, split) = match (id.pid <= train, k) {
                (true, _) => ("bbox_train", "train"),
                (false, 0) => ("bbox_test", "query"),
                (false, _) => ("bbox_test", "gallery"),
            };
            let t = k as u32 + 1;
            out.push(Tracklet {
                pid: id.pid,
                camera: cam,
                tracklet: t,
                split,
                frames: (1..=c.tracklet_frames)
                    .map(|f| {
                        format!(
                            "{folder}/{:04}/{:04}C{cam}T{t:04}F{f:03}.jpg",
                            id.pid, id.pid
                        )
                    })
                    .collect(),
            });
        }
    }
    out
}

/// Writes the MOTChallenge-style scenes under `mot/c{camera}-{scene}/` (`img1/000001.jpg`,
/// `gt/gt.txt`, `seqinfo.ini`); the people are test identities that visit the camera, and the
/// ground truth's identity column is their dataset identity. Returns the number of scenes.
fn write_scenes(world: &World, root: &Path) -> Result<usize, SynthError> {
    let c = &world.config;
    if c.scenes_per_camera == 0 || c.scene_frames == 0 || c.scene_people == 0 {
        return Ok(0);
    }
    let train = c.identities.div_ceil(2);
    let mut planned = Vec::new();
    for cam in 1..=c.cameras {
        let pids: Vec<u32> = (train + 1..=c.identities)
            .filter(|&pid| cameras_of(c, pid).contains(&cam))
            .collect();
        if pids.is_empty() {
            continue;
        }
        for s in 1..=c.scenes_per_camera {
            let mut rng = stream(c.seed, &[10, u64::from(cam), u64::from(s)]);
            let scene = scene::Scene::plan(
                &mut rng,
                cam,
                &pids,
                c.scene_people as usize,
                c.scene_frames,
            );
            planned.push((format!("mot/c{cam}-{s:02}"), scene));
        }
    }
    for (dir, _) in &planned {
        for sub in ["img1", "gt"] {
            let d = root.join(dir).join(sub);
            std::fs::create_dir_all(&d).map_err(io(&d))?;
        }
    }
    let frames: Vec<(usize, u32)> = (0..planned.len())
        .flat_map(|k| (0..c.scene_frames).map(move |f| (k, f)))
        .collect();
    let truth: Vec<(usize, u32, Vec<scene::GroundTruth>)> = frames
        .par_iter()
        .map(|&(k, f)| {
            let (dir, scene) = &planned[k];
            let cam = &world.cameras[(scene.camera - 1) as usize];
            let (image, truth) = scene.frame(f, cam, &world.identities);
            let path = root
                .join(dir)
                .join("img1")
                .join(format!("{:06}.jpg", f + 1));
            write_jpeg(&image, &path, cam.jpeg_quality)?;
            Ok((k, f, truth))
        })
        .collect::<Result<_, SynthError>>()?;
    for (k, (dir, _)) in planned.iter().enumerate() {
        let mut gt = String::new();
        for (_, f, boxes) in truth.iter().filter(|t| t.0 == k) {
            for b in boxes {
                gt.push_str(&format!(
                    "{},{},{},{},{},{},1,1,{:.3}\n",
                    f + 1,
                    b.pid,
                    b.bbox[0],
                    b.bbox[1],
                    b.bbox[2],
                    b.bbox[3],
                    b.visibility
                ));
            }
        }
        let gt_path = root.join(dir).join("gt/gt.txt");
        std::fs::write(&gt_path, gt).map_err(io(&gt_path))?;
        let name = dir.trim_start_matches("mot/");
        let ini = format!(
            "[Sequence]\nname={name}\nimDir=img1\nframeRate=10\nseqLength={}\nimWidth={}\nimHeight={}\nimExt=.jpg\n",
            c.scene_frames,
            scene::WIDTH,
            scene::HEIGHT
        );
        let ini_path = root.join(dir).join("seqinfo.ini");
        std::fs::write(&ini_path, ini).map_err(io(&ini_path))?;
    }
    Ok(planned.len())
}

/// Plans the Market-1501 layout: which identity appears in which camera how often.
fn plan(world: &World) -> Vec<Job> {
    let c = &world.config;
    let train = c.identities.div_ceil(2);
    let mut jobs = Vec::new();
    let mut frame = 0u64;
    for id in &world.identities {
        let mut rng = stream(c.seed, &[3, u64::from(id.pid), 1]);
        let test = id.pid > train;
        for cam in cameras_of(c, id.pid) {
            let min = if test { 2 } else { 1 };
            let n = rng.random_range(
                min.max(c.crops_per_camera / 2)..=(c.crops_per_camera * 3 / 2).max(min),
            );
            for k in 0..n {
                frame += 1;
                let split = match (test, k) {
                    (false, _) => "bounding_box_train",
                    (true, 0) => "query",
                    (true, _) => "bounding_box_test",
                };
                jobs.push(Job {
                    file: format!("{split}/{}", market_name(i64::from(id.pid), cam, frame)),
                    pid: Some(id.pid),
                    camera: cam,
                    seed: [4, u64::from(id.pid), u64::from(cam), u64::from(k)],
                    junk: false,
                });
            }
        }
    }
    let mut rng = stream(c.seed, &[5]);
    for k in 0..c.distractors {
        frame += 1;
        let cam = rng.random_range(1..=c.cameras);
        jobs.push(Job {
            file: format!("bounding_box_test/{}", market_name(0, cam, frame)),
            pid: None,
            camera: cam,
            seed: [6, u64::from(k), 0, 0],
            junk: false,
        });
    }
    for k in 0..c.junk {
        frame += 1;
        let cam = rng.random_range(1..=c.cameras);
        let pid = rng.random_range(train + 1..=c.identities);
        jobs.push(Job {
            file: format!("bounding_box_test/{}", market_name(-1, cam, frame)),
            pid: Some(pid),
            camera: cam,
            seed: [7, u64::from(k), 0, 0],
            junk: true,
        });
    }
    jobs
}

#[derive(Serialize)]
struct DatasetJson<'a> {
    generator: &'static str,
    layout: &'static str,
    config: &'a SynthConfig,
    cameras: &'a [Camera],
    summary: &'a Summary,
}

/// Generates the dataset into `out` (Market-1501 layout plus `attributes.json`,
/// `keypoints.json` and `dataset.json`; with `tracklet_frames` also MARS-style tracklets in
/// `bbox_train/` and `bbox_test/`, listed in `tracklets.json`). It is written to a temporary sibling folder and
/// renamed at the end, so an interrupted run never leaves a folder that looks complete.
/// `progress` is called with the number of images written so far.
pub fn generate(
    config: SynthConfig,
    out: &Path,
    force: bool,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<Summary, SynthError> {
    let start = std::time::Instant::now();
    let world = World::new(config)?;
    if out.exists() {
        let empty = std::fs::read_dir(out).map_err(io(out))?.next().is_none();
        if !empty && !force {
            return Err(SynthError::Exists(out.to_path_buf()));
        }
    }
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "synth".into());
    let tmp = out.with_file_name(format!(".{name}.partial-{}", std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
    }
    for split in ["bounding_box_train", "query", "bounding_box_test"] {
        std::fs::create_dir_all(tmp.join(split)).map_err(io(&tmp))?;
    }
    let jobs = plan(&world);
    let done = std::sync::atomic::AtomicUsize::new(0);
    let keypoints: Vec<(String, Keypoints)> = jobs
        .par_iter()
        .map(|job| {
            let cam = &world.cameras[(job.camera - 1) as usize];
            let id = job.pid.map(|p| &world.identities[(p - 1) as usize]);
            let (image, kp) = world.crop(id, cam, &job.seed, job.junk);
            let path = tmp.join(&job.file);
            write_jpeg(&image, &path, cam.jpeg_quality)?;
            let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            progress(n, jobs.len());
            Ok((job.file.clone(), kp))
        })
        .collect::<Result<_, SynthError>>()?;
    let tracklets = plan_tracklets(&world);
    let mut keypoints = keypoints;
    if !tracklets.is_empty() {
        let frames: Vec<Vec<(String, Keypoints)>> = tracklets
            .par_iter()
            .map(|t| {
                let cam = &world.cameras[(t.camera - 1) as usize];
                let id = &world.identities[(t.pid - 1) as usize];
                let seed = [
                    9,
                    u64::from(t.pid),
                    u64::from(t.camera),
                    u64::from(t.tracklet),
                ];
                let rendered = world.sequence(id, cam, &seed, world.config.tracklet_frames);
                let dir = tmp
                    .join(&t.frames[0])
                    .parent()
                    .map(Path::to_path_buf)
                    .unwrap_or_default();
                std::fs::create_dir_all(&dir).map_err(io(&dir))?;
                t.frames
                    .iter()
                    .zip(rendered)
                    .map(|(file, (image, kp))| {
                        write_jpeg(&image, &tmp.join(file), cam.jpeg_quality)?;
                        Ok((file.clone(), kp))
                    })
                    .collect::<Result<Vec<_>, SynthError>>()
            })
            .collect::<Result<_, SynthError>>()?;
        keypoints.extend(frames.into_iter().flatten());
    }
    let scenes = write_scenes(&world, &tmp)?;
    let count = |prefix: &str| jobs.iter().filter(|j| j.file.starts_with(prefix)).count();
    let train = world.config.identities.div_ceil(2);
    let summary = Summary {
        train_images: count("bounding_box_train/"),
        query_images: count("query/"),
        gallery_images: count("bounding_box_test/"),
        train_identities: train,
        test_identities: world.config.identities - train,
        tracklets: tracklets.len(),
        scenes,
        scene_frames: scenes * world.config.scene_frames as usize,
        tracklet_frames: tracklets.iter().map(|t| t.frames.len()).sum(),
        seconds: start.elapsed().as_secs_f64(),
    };
    json(
        &tmp.join("dataset.json"),
        &DatasetJson {
            generator: concat!("reid synth ", env!("CARGO_PKG_VERSION")),
            layout: "Market-1501: bounding_box_train/, query/, bounding_box_test/ with PPPP_cCsS_FFFFFF_NN.jpg (0000 distractors, -1 junk); with tracklet_frames > 0 also MARS-style video tracklets (see tracklets.json); with scenes_per_camera > 0 MOTChallenge-style scenes in mot/ (gt/gt.txt: frame, identity, left, top, width, height, 1, 1, visibility)",
            config: &world.config,
            cameras: &world.cameras,
            summary: &summary,
        },
    )?;
    #[derive(Serialize)]
    struct Attributes<'a> {
        split: &'static str,
        #[serde(flatten)]
        identity: &'a Identity,
    }
    let attributes: Vec<Attributes> = world
        .identities
        .iter()
        .map(|id| Attributes {
            split: if id.pid <= train { "train" } else { "test" },
            identity: id,
        })
        .collect();
    json(&tmp.join("attributes.json"), &attributes)?;
    #[derive(Serialize)]
    struct KeypointsJson<'a> {
        joints: [&'static str; 14],
        format: &'static str,
        images: BTreeMap<&'a str, Keypoints>,
    }
    json(
        &tmp.join("keypoints.json"),
        &KeypointsJson {
            joints: figure::JOINT_NAMES,
            format: "per image: 14 x [x, y, visible] in pixels of the crop; visible 0 when hidden or outside",
            images: keypoints.iter().map(|(f, k)| (f.as_str(), *k)).collect(),
        },
    )?;
    if !tracklets.is_empty() {
        #[derive(Serialize)]
        struct TrackletsJson<'a> {
            layout: &'static str,
            tracklets: &'a [Tracklet],
        }
        json(
            &tmp.join("tracklets.json"),
            &TrackletsJson {
                layout:
                    "MARS: bbox_train/PPPP/ and bbox_test/PPPP/ holding PPPPCcTttttFfff.jpg frames",
                tracklets: &tracklets,
            },
        )?;
    }
    if out.exists() {
        std::fs::remove_dir_all(out).map_err(io(out))?;
    }
    std::fs::rename(&tmp, out).map_err(io(out))?;
    Ok(Summary {
        seconds: start.elapsed().as_secs_f64(),
        ..summary
    })
}

/// Writes `value` as pretty JSON.
fn json<T: Serialize>(path: &Path, value: &T) -> Result<(), SynthError> {
    let text = serde_json::to_string_pretty(value).expect("plain data serialises");
    std::fs::write(path, text).map_err(io(path))
}

fn write_jpeg(image: &image::RgbImage, path: &Path, quality: u8) -> Result<(), SynthError> {
    let mut bytes = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, quality)
        .encode_image(image)
        .map_err(|e| SynthError::Encode {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    std::fs::write(path, bytes).map_err(io(path))
}

/// A grid for people to look at: `rows` identities (rows) seen by every camera (columns),
/// two crops per camera, separated by thin gaps.
pub fn contact_sheet(config: SynthConfig, rows: u32) -> Result<image::RgbImage, SynthError> {
    let world = World::new(config)?;
    let (w, h) = (world.config.width, world.config.height);
    let per_cam = 2u32;
    let cols = world.config.cameras * per_cam;
    let gap = 4u32;
    let mut sheet = image::RgbImage::from_pixel(
        cols * (w + gap) + gap * world.config.cameras,
        rows.min(world.config.identities) * (h + gap) + gap,
        image::Rgb([255, 255, 255]),
    );
    let tiles: Vec<(u32, u32, image::RgbImage)> = (0..rows.min(world.config.identities))
        .flat_map(|r| (0..cols).map(move |c| (r, c)))
        .collect::<Vec<_>>()
        .par_iter()
        .map(|&(r, c)| {
            let id = &world.identities[r as usize];
            let cam = &world.cameras[(c / per_cam) as usize];
            let (img, _) = world.crop(Some(id), cam, &[8, u64::from(r), u64::from(c), 0], false);
            (r, c, img)
        })
        .collect();
    for (r, c, img) in tiles {
        let x = gap + c * (w + gap) + (c / per_cam) * gap;
        image::imageops::replace(
            &mut sheet,
            &img,
            i64::from(x),
            i64::from(gap + r * (h + gap)),
        );
    }
    Ok(sheet)
}

#[cfg(test)]
mod tests;
