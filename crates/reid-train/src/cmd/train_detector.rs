//! `reid train-detector SEQUENCES... --out DIR`: trains the CNN people detector
//! (`reid_model::detect::centernet`) on MOTChallenge-format sequences (a folder with `img1/`
//! frames and `gt/gt.txt` boxes, such as the synthetic world's `mot/*` scenes, or any MOT
//! folder a user has), starting from the ImageNet MobileNetV2.
//!
//! Each epoch visits every `--every`-th frame of every sequence once, in a seeded order, in
//! batches; each picture is a random crop of 60 to 100% of the frame (same aspect) or the whole
//! frame, mirrored half the time. People less visible than `--min-visibility`, shorter than
//! `--min-height` or flagged not to be considered (a 0 in the 7th column) are ignored: neither
//! asked for nor punished. Adam, the learning rate warmed up over the first 100 steps then
//! decayed along a cosine. After each epoch `DIR/detector.bpk` (with its model card) and
//! `DIR/detector.json` hold the latest weights and `DIR/metrics.csv` the epoch's mean losses.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Instant;

use anyhow::{bail, Context};
use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Tensor, TensorData};
use clap::Args;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use reid_core::{parse_mot_rows, BBox};
use reid_model::detect::centernet::{self, CenterNet, CenterNetConfig, TargetBox};
use reid_model::network::Backbone;

use super::train::DeviceArg;

#[derive(Args, Debug)]
pub struct TrainDetectorArgs {
    /// MOTChallenge sequences (folders holding `img1/` and `gt/gt.txt`), or folders of them
    /// (such as a `reid synth` dataset's `mot/`).
    #[arg(required = true)]
    data: Vec<PathBuf>,
    /// The run's folder (created; an existing detector there is refused).
    #[arg(long)]
    out: PathBuf,
    /// Starting weights: a MobileNetV2 model file (`cargo xtask model` makes ImageNet's).
    #[arg(long, default_value = super::IMAGENET_MODEL)]
    init: PathBuf,
    /// Passes over the frames.
    #[arg(long, default_value_t = 6)]
    epochs: usize,
    /// Pictures per batch.
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// Peak learning rate (Adam).
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// Network input width, pixels (a multiple of 16).
    #[arg(long, default_value_t = 448)]
    width: usize,
    /// Network input height, pixels (a multiple of 16).
    #[arg(long, default_value_t = 256)]
    height: usize,
    /// Use every N-th frame of each sequence (neighbouring frames are nearly the same).
    #[arg(long, default_value_t = 2)]
    every: usize,
    /// People less visible than this share are ignored.
    #[arg(long, default_value_t = 0.3)]
    min_visibility: f32,
    /// People shorter than this, frame pixels, are ignored.
    #[arg(long, default_value_t = 24.0)]
    min_height: f32,
    /// Freeze MobileNetV2's stem (1) and its first N - 1 blocks (faster; 0 trains everything).
    #[arg(long, default_value_t = 0)]
    freeze: usize,
    /// Seed of the order, crops and new layers.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Where to train.
    #[arg(long, value_enum, default_value_t = DeviceArg::Cpu)]
    device: DeviceArg,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

/// One frame and its people, in frame pixels.
#[derive(Debug, Clone)]
struct Sample {
    path: PathBuf,
    people: Vec<TargetBox>,
}

const CSV_HEADER: &str = "epoch,lr,heatmap_loss,size_loss,offset_loss,images_per_second\n";
const WARMUP_STEPS: usize = 100;

pub fn run(args: TrainDetectorArgs) -> anyhow::Result<()> {
    let config = CenterNetConfig::new()
        .with_width(args.width)
        .with_height(args.height);
    config.validate()?;
    if args.batch == 0 || args.every == 0 || args.epochs == 0 {
        bail!("--batch, --every and --epochs must be above 0");
    }
    if args.out.join("detector.bpk").exists() {
        bail!(
            "{} already holds a detector: choose another --out",
            args.out.display()
        );
    }
    let samples = load_samples(&args)?;
    let people: usize = samples
        .iter()
        .map(|s| s.people.iter().filter(|p| !p.ignore).count())
        .sum();
    eprintln!(
        "{} frames, {people} people boxes (ignored ones aside)",
        samples.len()
    );
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let (device, hardware) = super::train::device(args.device)?;
    let bytes = super::read_model(&args.init)?;
    let (start, start_config) = reid_model::weights::from_burnpack_bytes(&bytes, &device)
        .with_context(|| format!("starting weights {}", args.init.display()))?;
    let Backbone::MobileNetV2(backbone) = start.backbone else {
        bail!(
            "the starting weights {} are {}: the detector needs a MobileNetV2",
            args.init.display(),
            start_config.backbone.label()
        );
    };
    device.seed(args.seed);
    let mut net = freeze(config.init_from(backbone, &device), args.freeze);
    let mut optim = AdamConfig::new().with_epsilon(1e-8).init();
    std::fs::write(args.out.join("metrics.csv"), CSV_HEADER)?;
    let steps = samples.len().div_ceil(args.batch);
    let total_steps = steps * args.epochs;
    let started_run = Instant::now();
    let mut images_seen = 0u64;
    for epoch in 0..args.epochs {
        let started = Instant::now();
        let mut order: Vec<usize> = (0..samples.len()).collect();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(
            args.seed ^ (epoch as u64) << 32,
        ));
        let (sender, receiver) = mpsc::sync_channel::<anyhow::Result<Batch>>(2);
        let loader = {
            let (samples, config) = (samples.clone(), config.clone());
            let (batch, seed) = (args.batch, args.seed);
            std::thread::spawn(move || {
                for (b, chunk) in order.chunks(batch).enumerate() {
                    let mut rng = ChaCha8Rng::seed_from_u64(
                        seed ^ ((epoch as u64) << 32) ^ b as u64 ^ 0x5eed,
                    );
                    let made = make_batch(&samples, chunk, &config, &mut rng);
                    if sender.send(made).is_err() {
                        break;
                    }
                }
            })
        };
        let bar = crate::train::epoch_bar(!args.quiet, steps, epoch, args.epochs);
        let mut sums = [0.0f64; 3];
        let mut lr = 0.0;
        let mut seen = 0;
        for (step, batch) in receiver.iter().enumerate() {
            let batch = batch?;
            lr = learning_rate(args.lr, epoch * steps + step, total_steps);
            let n = batch.people.len();
            let images = Tensor::<4>::from_data(
                TensorData::new(batch.pixels, [n, 3, config.height, config.width]),
                &device,
            );
            let targets = centernet::targets(&batch.people, &config);
            let out = net.forward(images);
            let (total, parts) = net.loss(&out, &targets, 0.1);
            let grads = GradientsParams::from_grads(total.backward(), &net);
            net = optim.step(lr, net, grads);
            let parts = parts
                .into_data()
                .convert::<f32>()
                .try_into_vec::<f32>()
                .map_err(|e| anyhow::anyhow!("{e:?}"))?;
            if parts.iter().any(|v| !v.is_finite()) {
                bail!(
                    "the loss became {parts:?} at epoch {} step {step}: lower --lr",
                    epoch + 1
                );
            }
            for (s, v) in sums.iter_mut().zip(&parts) {
                *s += f64::from(*v);
            }
            seen += n;
            let k = (step + 1) as f64;
            bar.set_message(format!(
                "heatmap {:.3}, size {:.3}, offset {:.3}",
                sums[0] / k,
                sums[1] / k,
                sums[2] / k
            ));
            bar.inc(1);
        }
        loader
            .join()
            .map_err(|_| anyhow::anyhow!("the batch loader failed"))?;
        bar.finish_and_clear();
        images_seen += seen as u64;
        let rate = seen as f64 / started.elapsed().as_secs_f64();
        let means = sums.map(|s| s / steps as f64);
        let mut csv = std::fs::OpenOptions::new()
            .append(true)
            .open(args.out.join("metrics.csv"))?;
        writeln!(
            csv,
            "{},{lr:.6e},{:.6},{:.6},{:.6},{rate:.2}",
            epoch + 1,
            means[0],
            means[1],
            means[2]
        )?;
        eprintln!(
            "epoch {}/{}: lr {lr:.2e}, heatmap {:.4}, size {:.4}, offset {:.4}, {rate:.1} img/s",
            epoch + 1,
            args.epochs,
            means[0],
            means[1],
            means[2]
        );
        let card = serde_json::json!({
            "kind": "people detector (CenterNet-style, MobileNetV2 backbone)",
            "architecture": &config,
            "training": {
                "data": args.data.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
                "frames": samples.len(),
                "people": people,
                "starting_weights": args.init.display().to_string(),
                "epochs": epoch + 1,
                "of_epochs": args.epochs,
                "batch": args.batch,
                "lr": args.lr,
                "every": args.every,
                "min_visibility": args.min_visibility,
                "min_height": args.min_height,
                "freeze": args.freeze,
                "seed": args.seed,
                "images_seen": images_seen,
                "wall_clock_hours": started_run.elapsed().as_secs_f64() / 3600.0,
                "hardware": hardware,
                "command": std::env::args().collect::<Vec<_>>().join(" "),
            },
        });
        save(&args.out, &net, &config, &card)?;
    }
    println!("{}", args.out.join("detector.bpk").display());
    Ok(())
}

/// Freezes the stem (`stages >= 1`) and the first `stages - 1` blocks.
fn freeze(mut net: CenterNet, stages: usize) -> CenterNet {
    if stages == 0 {
        return net;
    }
    net.stem = net.stem.freeze();
    for block in net.blocks.iter_mut().take(stages - 1) {
        *block = block.clone().freeze();
    }
    net
}

fn save(
    out: &Path,
    net: &CenterNet,
    config: &CenterNetConfig,
    card: &serde_json::Value,
) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(card)?;
    let metadata = vec![(reid_model::weights::CARD_KEY.to_string(), text.clone())];
    let bytes = centernet::to_burnpack_bytes(net, config, &metadata)?;
    // Written aside then renamed, so a stopped run never leaves half a file.
    let path = out.join("detector.bpk");
    let partial = out.join("detector.bpk.partial");
    std::fs::write(&partial, bytes)
        .with_context(|| format!("cannot write {}", partial.display()))?;
    std::fs::rename(&partial, &path)?;
    std::fs::write(out.join("detector.json"), text + "\n")?;
    Ok(())
}

/// Peak `lr`, linear warm-up over [`WARMUP_STEPS`], then half a cosine to 0 at `total`.
fn learning_rate(lr: f64, step: usize, total: usize) -> f64 {
    let warm = WARMUP_STEPS.min(total / 4).max(1);
    if step < warm {
        return lr * (step + 1) as f64 / warm as f64;
    }
    let t = (step - warm) as f64 / (total - warm).max(1) as f64;
    lr * 0.5 * (1.0 + (std::f64::consts::PI * t.min(1.0)).cos())
}

/// The sequences named by `args.data` and their every-N-th frames with people.
fn load_samples(args: &TrainDetectorArgs) -> anyhow::Result<Vec<Sample>> {
    let mut sequences = Vec::new();
    for path in &args.data {
        if path.join("gt/gt.txt").is_file() {
            sequences.push(path.clone());
            continue;
        }
        let entries =
            std::fs::read_dir(path).with_context(|| format!("cannot read {}", path.display()))?;
        let mut found: Vec<PathBuf> = entries
            .filter_map(|e| Some(e.ok()?.path()))
            .filter(|p| p.join("gt/gt.txt").is_file())
            .collect();
        if found.is_empty() {
            bail!(
                "{} is not a MOTChallenge sequence (no gt/gt.txt) and holds none",
                path.display()
            );
        }
        found.sort();
        sequences.extend(found);
    }
    let mut samples = Vec::new();
    for seq in &sequences {
        let gt = seq.join("gt/gt.txt");
        let text = std::fs::read_to_string(&gt)
            .with_context(|| format!("cannot read {}", gt.display()))?;
        let rows = parse_mot_rows(&text)
            .with_context(|| format!("{} is not a MOTChallenge ground-truth file", gt.display()))?;
        let mut by_frame: std::collections::BTreeMap<u64, Vec<TargetBox>> = Default::default();
        for r in rows {
            by_frame.entry(r.frame).or_default().push(TargetBox {
                bbox: r.bbox,
                ignore: r.confidence == 0.0
                    || r.bbox.h < args.min_height
                    || r.visibility.is_some_and(|v| v < args.min_visibility),
            });
        }
        let mut frames: Vec<PathBuf> = reid_data::collect_images(&[seq.join("img1")])?
            .into_iter()
            .map(|e| e.path)
            .collect();
        frames.sort();
        let numbers = super::frame_numbers(&frames);
        for (i, (path, number)) in frames.into_iter().zip(numbers).enumerate() {
            if i % args.every != 0 {
                continue;
            }
            samples.push(Sample {
                path,
                people: by_frame.remove(&number).unwrap_or_default(),
            });
        }
    }
    if samples.is_empty() {
        bail!("no frames in the sequences given");
    }
    Ok(samples)
}

/// A batch's normalised pixels and each picture's people in input pixels.
struct Batch {
    pixels: Vec<f32>,
    people: Vec<Vec<TargetBox>>,
}

fn make_batch(
    samples: &[Sample],
    chunk: &[usize],
    config: &CenterNetConfig,
    rng: &mut ChaCha8Rng,
) -> anyhow::Result<Batch> {
    let spec = config.input_spec();
    let mut pixels = Vec::with_capacity(chunk.len() * 3 * config.height * config.width);
    let mut people = Vec::with_capacity(chunk.len());
    for &i in chunk {
        let sample = &samples[i];
        let frame = super::read_picture(&sample.path)
            .map_err(|e| anyhow::anyhow!("{}: {e}", sample.path.display()))?;
        let (picture, boxes) = augment(&frame, &sample.people, config, rng);
        let raw = picture.as_raw();
        for c in 0..3 {
            pixels.extend(raw.chunks_exact(3).map(|px| spec.normalise_pixel(px, c)));
        }
        people.push(boxes);
    }
    Ok(Batch { pixels, people })
}

/// A random crop (60-100% of the frame's sides, half the time the whole frame) mirrored half
/// the time, resized to the input size, and its people moved with it. A person cut to less
/// than half their box by the crop is ignored; one whose box leaves it is dropped.
fn augment(
    frame: &image::RgbImage,
    people: &[TargetBox],
    config: &CenterNetConfig,
    rng: &mut ChaCha8Rng,
) -> (image::RgbImage, Vec<TargetBox>) {
    let (fw, fh) = (frame.width() as f32, frame.height() as f32);
    let share = if rng.random_bool(0.5) {
        1.0
    } else {
        rng.random_range(0.6f32..1.0)
    };
    let (cw, ch) = ((fw * share).round().max(1.0), (fh * share).round().max(1.0));
    let cx = rng.random_range(0.0..=(fw - cw).max(0.0)).round();
    let cy = rng.random_range(0.0..=(fh - ch).max(0.0)).round();
    let crop =
        image::imageops::crop_imm(frame, cx as u32, cy as u32, cw as u32, ch as u32).to_image();
    let mut picture = config.input_spec().resize(&crop);
    let mirror = rng.random_bool(0.5);
    if mirror {
        image::imageops::flip_horizontal_in_place(&mut picture);
    }
    let (sx, sy) = (config.width as f32 / cw, config.height as f32 / ch);
    let boxes = people
        .iter()
        .filter_map(|p| {
            let b = p.bbox;
            let (x0, y0) = (b.x.max(cx), b.y.max(cy));
            let (x1, y1) = ((b.x + b.w).min(cx + cw), (b.y + b.h).min(cy + ch));
            if x1 <= x0 || y1 <= y0 {
                return None;
            }
            let kept = (x1 - x0) * (y1 - y0) / (b.w * b.h).max(1e-6);
            let mut x = (b.x - cx) * sx;
            let w = b.w * sx;
            if mirror {
                x = config.width as f32 - x - w;
            }
            Some(TargetBox {
                bbox: BBox::new(x, (b.y - cy) * sy, w, b.h * sy),
                ignore: p.ignore || kept < 0.5,
            })
        })
        .collect();
    (picture, boxes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_learning_rate_warms_up_then_decays_to_zero() {
        assert!((learning_rate(1.0, 0, 1000) - 0.01).abs() < 1e-12);
        assert!((learning_rate(1.0, 99, 1000) - 1.0).abs() < 1e-12);
        assert!(learning_rate(1.0, 500, 1000) < 1.0);
        assert!(learning_rate(1.0, 999, 1000) < 1e-4);
    }

    #[test]
    fn people_move_with_the_crop_and_the_mirror() {
        let config = CenterNetConfig::new().with_width(64).with_height(32);
        let frame = image::RgbImage::new(128, 64);
        let person = TargetBox {
            bbox: BBox::new(10.0, 4.0, 20.0, 50.0),
            ignore: false,
        };
        for seed in 0..40 {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let (picture, boxes) = augment(&frame, &[person], &config, &mut rng);
            assert_eq!(picture.dimensions(), (64, 32));
            for b in boxes {
                // Scaled by at least the whole frame's 0.5 and at most 0.5 / 0.6.
                assert!(b.bbox.w >= 9.9 && b.bbox.w <= 20.0 / 1.2 + 1e-3, "{b:?}");
                // Both sides scale alike (up to the crop's rounding to whole pixels).
                assert!((b.bbox.h / b.bbox.w - 2.5).abs() < 0.05, "{b:?}");
            }
        }
        // The whole frame unmirrored: exactly halved.
        let whole = (0..200)
            .map(|seed| {
                augment(
                    &frame,
                    &[person],
                    &config,
                    &mut ChaCha8Rng::seed_from_u64(seed),
                )
                .1
            })
            .find(|b| b.len() == 1 && b[0].bbox == BBox::new(5.0, 2.0, 10.0, 25.0));
        assert!(whole.is_some());
    }
}
