//! `reid crops`: cuts hand-annotated people (a `frame,identity,x1,y1,x2,y2` CSV) out of full
//! frames into a Market-1501 evaluation folder that `reid eval --dataset` reads, with optional
//! unlabelled distractor pictures in the gallery.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

#[derive(Args, Debug)]
pub struct CropsArgs {
    /// The annotation: a header line, then `frame,identity,x1,y1,x2,y2` per person box (pixels).
    #[arg(long, value_name = "CSV")]
    boxes: PathBuf,
    /// The folder holding the frames the CSV names.
    #[arg(long, value_name = "DIR")]
    frames: PathBuf,
    /// Pictures of other people (files or folders) added to the gallery as distractors.
    #[arg(long, value_name = "PATH")]
    distractors: Vec<PathBuf>,
    /// Pixels trimmed from each side of every distractor (16 for INRIA's 96x160 windows).
    #[arg(long, default_value_t = 0)]
    trim: u32,
    /// The Market-1501 folder to write (query/, bounding_box_test/).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

pub fn run(args: CropsArgs) -> anyhow::Result<ExitCode> {
    let boxes = reid_data::annotated::read_boxes(&args.boxes)?;
    let distractors: Vec<PathBuf> = if args.distractors.is_empty() {
        Vec::new()
    } else {
        reid_data::collect_images(&args.distractors)?
            .into_iter()
            .map(|e| e.path)
            .collect()
    };
    let written = reid_data::annotated::write_market(
        &boxes,
        &args.frames,
        &distractors,
        args.trim,
        &args.out,
    )?;
    println!(
        "{} identities: {} queries, {} gallery pictures and {} distractors in {}",
        written.identities,
        written.queries,
        written.gallery,
        written.distractors,
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}
