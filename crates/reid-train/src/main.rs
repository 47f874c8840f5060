//! `reid`: the native command line of the ReID toolbox. It shares every network and every
//! preprocessing step with the browser app (through `reid-model` and `reid-pipeline`) and adds
//! what only a native machine does: reading folders, importing PyTorch checkpoints, measuring.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc, told never to give freed memory back to the system (see [`keep_freed_memory`]).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A training step frees and allocates gigabytes of tensors. Handed back to the system, each
/// returns as fresh pages the kernel must zero first: with glibc's allocator (or mimalloc's
/// default 10 ms purge delay) that was a third of a MobileNetV2 training step here, and
/// MobileNetV2 trained at 8.4 img/s instead of 11.5 (`reid bench train`). Kept, the process
/// holds its high-water mark until it exits; `reid` commands are one job each.
fn keep_freed_memory() {
    // `mi_option_purge_delay` in mimalloc v3's include/mimalloc.h (the crate does not name its
    // options); -1 is "never purge".
    const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    // SAFETY: called first thing in `main`, before any other thread exists (the option setter
    // is not thread-safe).
    unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, -1) };
}

mod cmd;
mod report;
mod temporal;
mod train;
mod video;

/// Person re-identification toolbox.
#[derive(Parser, Debug)]
#[command(name = "reid", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Embed images and print each embedding's norm and the cosine-similarity matrix.
    Embed(cmd::embed::EmbedArgs),
    /// Convert pretrained PyTorch weights into a reid model file (burnpack).
    Import(cmd::import::ImportArgs),
    /// Rank-1/5/10, mAP and mINP (Market-1501 or CUHK03 protocol) from saved features or a dataset folder.
    Eval(cmd::eval::EvalArgs),
    /// Cut hand-annotated people out of full frames into a Market-1501 evaluation folder.
    Crops(cmd::crops::CropsArgs),
    /// Generate a synthetic ReID dataset (Market-1501 layout) or a contact sheet of its people.
    Synth(cmd::synth::SynthArgs),
    /// Train a ReID network (ID + triplet + center losses on P x K batches) into a run folder.
    Train(cmd::train::TrainArgs),
    /// Train the CNN people detector (CenterNet-style, MobileNetV2) on MOTChallenge-format sequences.
    TrainDetector(cmd::train_detector::TrainDetectorArgs),
    /// Train temporal aggregators (pooling, attention, GRU, LSTM, temporal convolution) on a video dataset's tracklets and compare them.
    Temporal(cmd::temporal::TemporalArgs),
    /// Write a trained run's model with its card (and metrics measured now) for the app and `reid`.
    Export(cmd::export::ExportArgs),
    /// Find pedestrians in images with the HOG people detector (OpenCV's default SVM) or a CNN detector file.
    Detect(cmd::detect::DetectArgs),
    /// Follow people through a video or a folder of frames (HOG, a CNN detector file, or MOTChallenge det.txt).
    Track(cmd::track::TrackArgs),
    /// Find a person in pictures, photos and videos: the gallery ranked by similarity to a query picture, with a result sheet.
    Search(cmd::search::SearchArgs),
    /// Measurements: embedding, search, re-ranking and evaluation speed.
    Bench(cmd::bench::BenchArgs),
}

fn main() -> ExitCode {
    keep_freed_memory();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Embed(args) => cmd::embed::run(args),
        Command::Import(args) => cmd::import::run(args),
        Command::Eval(args) => cmd::eval::run(args),
        Command::Synth(args) => cmd::synth::run(args),
        Command::Crops(args) => cmd::crops::run(args),
        Command::Detect(args) => cmd::detect::run(args),
        Command::Track(args) => cmd::track::run(args),
        Command::Search(args) => cmd::search::run(args),
        Command::Train(args) => cmd::train::run(args),
        Command::TrainDetector(args) => cmd::train_detector::run(args).map(|()| ExitCode::SUCCESS),
        Command::Temporal(args) => cmd::temporal::run(args),
        Command::Export(args) => cmd::export::run(args),
        Command::Bench(args) => cmd::bench::run(args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}
