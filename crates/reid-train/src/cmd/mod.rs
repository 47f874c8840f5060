//! One module per subcommand; shared bits (finding the model file) here.

pub mod bench;
pub mod crops;
pub mod detect;
pub mod embed;
pub mod eval;
pub mod export;
pub mod footage;
pub mod import;
pub mod lookalike;
pub mod search;
pub mod synth;
pub mod temporal;
pub mod track;
pub mod train;
pub mod train_detector;

use std::path::{Path, PathBuf};

use anyhow::Context;

/// The shipped default model (committed), relative to the repository root.
pub const DEFAULT_MODEL: &str = "models/mobilenetv2-synth-bot.bpk";

/// The ImageNet model `cargo xtask model` builds (the starting point of training).
pub const IMAGENET_MODEL: &str = "models/mobilenetv2-imagenet.bpk";

/// Bytes as lowercase hexadecimal (how model cards write SHA-256 digests).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads a model file, with a hint on how to make the default one.
pub fn read_model(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| {
        if path == Path::new(DEFAULT_MODEL) {
            format!(
                "cannot read the default model {}: run reid from the repository root (the model is committed there), or pass --model FILE",
                path.display()
            )
        } else if path == Path::new(IMAGENET_MODEL) {
            format!(
                "cannot read the ImageNet model {}: run `cargo xtask model` in the repository root",
                path.display()
            )
        } else {
            format!("cannot read the model file {}", path.display())
        }
    })
}

/// Reads and decodes a picture, with the reason in words when it cannot be.
pub fn read_picture(path: &Path) -> Result<image::RgbImage, String> {
    std::fs::read(path)
        .map_err(|e| format!("cannot read the file: {e}"))
        .and_then(|b| reid_model::decode_image(&b).map_err(|e| e.to_string()))
}

/// The frame number of each of `files` (in order): the numbers their names are
/// (MOTChallenge's `000001.jpg`) when every name is one, else their places counted from 1.
pub fn frame_numbers(files: &[PathBuf]) -> Vec<u64> {
    let named: Option<Vec<u64>> = files
        .iter()
        .map(|p| p.file_stem()?.to_str()?.parse().ok())
        .collect();
    named.unwrap_or_else(|| (1..=files.len() as u64).collect())
}

/// Default for `--model`.
pub fn default_model() -> PathBuf {
    PathBuf::from(DEFAULT_MODEL)
}
