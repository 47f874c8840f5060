//! One rolling checkpoint per run, `OUT/checkpoint/`: the training network (f32, so that a
//! resumed run continues exactly), the optimizer's state, the recipe and the progress. It is
//! written beside the old one and swapped in by renames, so an interruption at any moment leaves
//! a complete checkpoint (the new one, or the previous epoch's).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use burn::optim::ModuleOptimizer;
use burn_store::{BurnpackStore, ModuleSnapshot};
use serde::{Deserialize, Serialize};

use super::config::TrainConfig;
use super::net::TrainNet;

/// How far a run has come.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// Finished epochs.
    pub epochs_done: usize,
    /// Training images shown so far.
    pub images_seen: u64,
    /// Wall-clock seconds spent training so far (loading excluded).
    pub seconds: f64,
    /// Identities of the training split (the classifier's width).
    pub classes: usize,
}

const MODEL: &str = "model.bpk";
const OPTIMIZER: &str = "optimizer.bpk";
const RECIPE: &str = "recipe.toml";
const PROGRESS: &str = "progress.json";

/// The checkpoint folder of run folder `out`.
pub fn folder(out: &Path) -> PathBuf {
    out.join("checkpoint")
}

/// Whether `out` holds a checkpoint (or the previous one, left by an interrupted swap).
pub fn exists(out: &Path) -> bool {
    folder(out).is_dir() || out.join("checkpoint.old").is_dir()
}

/// Writes the checkpoint of `out`, replacing the previous one.
pub fn save(
    out: &Path,
    net: &TrainNet,
    optim: &ModuleOptimizer,
    config: &TrainConfig,
    progress: &Progress,
) -> anyhow::Result<()> {
    let new = out.join("checkpoint.new");
    let old = out.join("checkpoint.old");
    let current = folder(out);
    let _ = std::fs::remove_dir_all(&new);
    std::fs::create_dir_all(&new).with_context(|| format!("cannot create {}", new.display()))?;
    let mut store = BurnpackStore::from_file(new.join(MODEL));
    net.save_into(&mut store)
        .map_err(|e| anyhow::anyhow!("cannot write the checkpoint's network: {e}"))?;
    optim
        .save(new.join(OPTIMIZER))
        .map_err(|e| anyhow::anyhow!("cannot write the optimizer state: {e:?}"))?;
    std::fs::write(new.join(RECIPE), config.to_toml())?;
    std::fs::write(new.join(PROGRESS), serde_json::to_string_pretty(progress)?)?;
    if current.is_dir() {
        let _ = std::fs::remove_dir_all(&old);
        std::fs::rename(&current, &old)?;
    }
    std::fs::rename(&new, &current)?;
    let _ = std::fs::remove_dir_all(&old);
    Ok(())
}

/// Reads the recipe and progress of `out`'s checkpoint.
pub fn read_recipe(out: &Path) -> anyhow::Result<(TrainConfig, Progress)> {
    let dir = readable_folder(out)?;
    let recipe = TrainConfig::from_file(&dir.join(RECIPE))?;
    let progress: Progress = serde_json::from_str(
        &std::fs::read_to_string(dir.join(PROGRESS))
            .with_context(|| format!("cannot read {}", dir.join(PROGRESS).display()))?,
    )
    .with_context(|| format!("{}: damaged progress record", dir.join(PROGRESS).display()))?;
    Ok((recipe, progress))
}

/// Loads the checkpoint's weights into `net` (built for the same recipe) and its optimizer
/// state into `optim`.
pub fn load(
    out: &Path,
    mut net: TrainNet,
    optim: ModuleOptimizer,
) -> anyhow::Result<(TrainNet, ModuleOptimizer)> {
    let dir = readable_folder(out)?;
    let mut store = BurnpackStore::from_file(dir.join(MODEL));
    let result = net.load_from(&mut store).map_err(|e| {
        anyhow::anyhow!(
            "{}: the checkpoint does not fit this network ({e}); it was written by another architecture or recipe: train into a new --out folder",
            dir.display()
        )
    })?;
    if !result.missing.is_empty() || !result.unused.is_empty() {
        bail!(
            "{}: the checkpoint does not fit this network (missing {:?}, unused {:?}); train into a new --out folder",
            dir.display(),
            result.missing.iter().map(|(p, _)| p).take(3).collect::<Vec<_>>(),
            result.unused.iter().take(3).collect::<Vec<_>>()
        );
    }
    let optim = optim
        .load(dir.join(OPTIMIZER))
        .map_err(|e| anyhow::anyhow!("{}: damaged optimizer state: {e:?}", dir.display()))?;
    Ok((net, optim))
}

fn readable_folder(out: &Path) -> anyhow::Result<PathBuf> {
    let current = folder(out);
    if current.is_dir() {
        return Ok(current);
    }
    let old = out.join("checkpoint.old");
    if old.is_dir() {
        return Ok(old);
    }
    bail!(
        "{}: no checkpoint to resume from (a run writes one after each epoch)",
        out.display()
    )
}
