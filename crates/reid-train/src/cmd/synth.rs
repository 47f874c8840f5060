//! `reid synth`: generate a synthetic ReID dataset in Market-1501's layout (see
//! `reid_data::synth`), or a contact sheet of its people for a person to look at.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use reid_data::synth::{contact_sheet, generate, SynthConfig};

#[derive(Args, Debug)]
pub struct SynthArgs {
    /// Output folder (Market-1501 layout). Written to a temporary folder, renamed when complete.
    #[arg(long, short, required_unless_present = "contact_sheet")]
    out: Option<PathBuf>,
    /// Sizes and knobs to start from: tiny (tests), ablation (~6,000 crops), market (~30,000),
    /// mars (video tracklets).
    #[arg(long, default_value = "tiny", value_parser = clap::builder::PossibleValuesParser::new(SynthConfig::PRESETS))]
    preset: String,
    /// Seed of everything; the same seed gives the same bytes.
    #[arg(long)]
    seed: Option<u64>,
    /// Identities (half train, half test).
    #[arg(long)]
    identities: Option<u32>,
    /// Cameras (2 to 9).
    #[arg(long)]
    cameras: Option<u32>,
    /// Average crops of one identity in one camera.
    #[arg(long)]
    crops_per_camera: Option<u32>,
    /// Share of identities that copy an earlier one's clothing colours (0 to 1).
    #[arg(long)]
    lookalikes: Option<f32>,
    /// Probability of an occluder in front of the person (0 to 1).
    #[arg(long)]
    occlusion: Option<f32>,
    /// Gallery distractors (identity 0000).
    #[arg(long)]
    distractors: Option<u32>,
    /// Gallery junk images (identity -1, badly cropped).
    #[arg(long)]
    junk: Option<u32>,
    /// Crop width in pixels.
    #[arg(long)]
    width: Option<u32>,
    /// Crop height in pixels.
    #[arg(long)]
    height: Option<u32>,
    /// Frames per MARS-style video tracklet (0: no video).
    #[arg(long)]
    tracklet_frames: Option<u32>,
    /// MOTChallenge-style scenes per camera (0: none).
    #[arg(long)]
    scenes_per_camera: Option<u32>,
    /// Frames per scene.
    #[arg(long)]
    scene_frames: Option<u32>,
    /// People walking through each scene.
    #[arg(long)]
    scene_people: Option<u32>,
    /// Replace a non-empty output folder.
    #[arg(long)]
    force: bool,
    /// Write a contact sheet (identities x cameras) to this PNG instead of (or, with --out, as
    /// well as) the dataset.
    #[arg(long, value_name = "FILE")]
    contact_sheet: Option<PathBuf>,
    /// Identities on the contact sheet.
    #[arg(long, default_value_t = 12)]
    sheet_rows: u32,
}

pub fn run(args: SynthArgs) -> anyhow::Result<ExitCode> {
    let Some(mut config) = SynthConfig::preset(&args.preset) else {
        bail!("unknown preset {}", args.preset);
    };
    macro_rules! set {
        ($($field:ident),*) => { $(if let Some(v) = args.$field { config.$field = v; })* };
    }
    set!(
        seed,
        identities,
        cameras,
        crops_per_camera,
        lookalikes,
        occlusion,
        distractors,
        junk,
        width,
        height,
        tracklet_frames,
        scenes_per_camera,
        scene_frames,
        scene_people
    );
    if let Some(path) = &args.contact_sheet {
        let sheet = contact_sheet(config.clone(), args.sheet_rows)?;
        sheet
            .save_with_format(path, image::ImageFormat::Png)
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!(
            "wrote a contact sheet of {} identities to {}",
            args.sheet_rows,
            path.display()
        );
    }
    let Some(out) = &args.out else {
        return Ok(ExitCode::SUCCESS);
    };
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("[{bar:40}] {pos}/{len} images, {per_sec}, eta {eta}")
            .expect("valid template"),
    );
    let summary = generate(config, out, args.force, &|done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })?;
    bar.finish_and_clear();
    println!(
        "{}: {} train images ({} identities), {} query and {} gallery images ({} identities), {:.1} s, {:.0} images/s",
        out.display(),
        summary.train_images,
        summary.train_identities,
        summary.query_images,
        summary.gallery_images,
        summary.test_identities,
        summary.seconds,
        (summary.images() + summary.tracklet_frames) as f64 / summary.seconds.max(1e-9)
    );
    if summary.scenes > 0 {
        println!(
            "  and {} scenes ({} frames of 640x360, MOTChallenge layout: mot/*/img1, gt/gt.txt, seqinfo.ini)",
            summary.scenes, summary.scene_frames
        );
    }
    if summary.tracklets > 0 {
        println!(
            "  and {} video tracklets ({} frames, MARS layout: bbox_train/, bbox_test/, tracklets.json)",
            summary.tracklets, summary.tracklet_frames
        );
    }
    Ok(ExitCode::SUCCESS)
}
