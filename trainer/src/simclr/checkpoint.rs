//! Checkpoints: one folder per checkpoint, written atomically (a temporary
//! folder renamed into place), so a run stopped at any moment leaves only
//! complete checkpoints behind.
//!
//! Layout of `runs/NAME/checkpoints/step-0000123/`:
//! - `model.bpk`: model weights and BatchNorm statistics (burnpack; the
//!   statistics settled first, see [`SimClrModel::sync_running_stats`]),
//! - `optimizer.bpk`: optimiser state (burnpack, keyed by parameter id),
//! - `state.json`: step, epoch, running epoch loss, best loss,
//! - `config.toml`: the full training config (model architecture included).
//!
//! `best/` has the same layout. A model folder such as `models/seaclr-s/`
//! may hold a checkpoint's files directly.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::store::ModuleRecord;
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use super::config::TrainConfig;
use super::model::SimClrModel;

/// Where training stands; enough (with the seed) to resume exactly.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Optimiser steps completed.
    pub step: usize,
    /// Steps in one epoch of this run's data.
    pub steps_per_epoch: usize,
    /// Total steps the run is scheduled for (fixes the LR schedule).
    pub total_steps: usize,
    /// Sum of the training losses of the current epoch so far.
    pub epoch_loss_sum: f64,
    /// Steps summed in `epoch_loss_sum`.
    pub epoch_loss_count: usize,
    /// Best epoch loss so far (validation loss if there is a validation set).
    pub best_loss: Option<f64>,
    /// Images the run trains on (to catch resuming on other data).
    pub train_images: usize,
}

/// A checkpoint loaded for inference.
pub struct LoadedModel {
    /// The network, on the requested device.
    pub model: SimClrModel,
    /// Its training config.
    pub config: TrainConfig,
    /// Where training stood.
    pub state: TrainState,
    /// The checkpoint folder it came from.
    pub dir: PathBuf,
}

/// Names of the files in a checkpoint folder.
pub const MODEL_FILE: &str = "model.bpk";
/// Optimiser state file.
pub const OPTIMIZER_FILE: &str = "optimizer.bpk";
/// Training state file.
pub const STATE_FILE: &str = "state.json";
/// Config file.
pub const CONFIG_FILE: &str = "config.toml";

/// Folder name of the periodic checkpoint after `step` steps.
pub fn step_dir_name(step: usize) -> String {
    format!("step-{step:07}")
}

/// Writes a checkpoint folder atomically to `dest` (replacing it if present).
pub fn save(
    dest: &Path,
    model: &SimClrModel,
    optimizer: Option<&ModuleOptimizer>,
    state: &TrainState,
    config: &TrainConfig,
) -> anyhow::Result<()> {
    let parent = dest.parent().context("checkpoint path has no parent")?;
    fs::create_dir_all(parent).with_context(|| format!("{}: cannot create", parent.display()))?;
    let name = dest
        .file_name()
        .context("checkpoint path has no name")?
        .to_string_lossy()
        .to_string();
    let tmp = parent.join(format!(".tmp-{name}-{}", std::process::id()));
    if tmp.exists() {
        fs::remove_dir_all(&tmp)?;
    }
    fs::create_dir(&tmp).with_context(|| format!("{}: cannot create", tmp.display()))?;
    model.sync_running_stats();
    model
        .clone()
        .into_record()
        .save(tmp.join(MODEL_FILE))
        .map_err(|e| anyhow::anyhow!("{}: {e}", tmp.join(MODEL_FILE).display()))?;
    if let Some(optimizer) = optimizer {
        let file = tmp.join(OPTIMIZER_FILE);
        optimizer
            .save(&file)
            .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
        canonical_order(&file)?;
    }
    fs::write(tmp.join(STATE_FILE), serde_json::to_string_pretty(state)?)?;
    fs::write(tmp.join(CONFIG_FILE), config.to_toml_string()?)?;
    for file in fs::read_dir(&tmp)? {
        fs::File::open(file?.path())?.sync_all()?;
    }
    replace_dir(&tmp, dest)
}

/// Rewrites a burnpack file with its tensors in name order. burn writes an
/// optimizer's tensors in hash-map order, which differs from run to run;
/// with a fixed order, two runs that reach the same state write the same
/// bytes. Loading looks tensors up by name, so it reads either order.
fn canonical_order(file: &Path) -> anyhow::Result<()> {
    let bad = |e: burn_pack::Error| anyhow::anyhow!("{}: {e}", file.display());
    let bytes = fs::read(file).with_context(|| format!("{}: cannot read", file.display()))?;
    let reader =
        burn_pack::Reader::from_bytes(burn_pack::Bytes::from_bytes_vec(bytes)).map_err(bad)?;
    let metadata = reader.metadata().clone();
    let scalars = reader.scalars().clone();
    // The reader lists tensors in name order.
    let tensors = reader.into_tensors().map_err(bad)?;
    let mut writer = burn_pack::Writer::new(tensors);
    for (key, value) in &metadata {
        writer = writer.with_metadata(key, value);
    }
    for (key, value) in scalars {
        writer = writer.with_scalar(&key, value);
    }
    let out = writer.into_bytes().map_err(bad)?;
    fs::write(file, &out[..]).with_context(|| format!("{}: cannot write", file.display()))
}

/// Moves `src` to `dest`; an existing `dest` is moved aside first and removed
/// after, so some complete copy exists at every moment.
fn replace_dir(src: &Path, dest: &Path) -> anyhow::Result<()> {
    if dest.exists() {
        let old = dest.with_file_name(format!(
            ".old-{}-{}",
            dest.file_name().unwrap_or_default().to_string_lossy(),
            std::process::id()
        ));
        if old.exists() {
            fs::remove_dir_all(&old)?;
        }
        fs::rename(dest, &old)?;
        fs::rename(src, dest)?;
        fs::remove_dir_all(&old)?;
    } else {
        fs::rename(src, dest)
            .with_context(|| format!("{}: cannot move into place", dest.display()))?;
    }
    Ok(())
}

/// Periodic checkpoints of a `checkpoints/` folder, oldest first.
pub fn list_steps(checkpoints: &Path) -> anyhow::Result<Vec<(usize, PathBuf)>> {
    let mut found = Vec::new();
    if !checkpoints.is_dir() {
        return Ok(found);
    }
    for entry in fs::read_dir(checkpoints)? {
        let path = entry?.path();
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        if let Some(step) = name
            .strip_prefix("step-")
            .and_then(|s| s.parse::<usize>().ok())
            && path.join(STATE_FILE).is_file()
        {
            found.push((step, path));
        }
    }
    found.sort();
    Ok(found)
}

/// Removes all but the newest `keep` periodic checkpoints.
pub fn prune(checkpoints: &Path, keep: usize) -> anyhow::Result<()> {
    let steps = list_steps(checkpoints)?;
    let excess = steps.len().saturating_sub(keep.max(1));
    for (_, path) in steps.into_iter().take(excess) {
        fs::remove_dir_all(&path).with_context(|| format!("{}: cannot remove", path.display()))?;
    }
    Ok(())
}

/// The newest periodic checkpoint of a run folder.
pub fn latest(run_dir: &Path) -> anyhow::Result<Option<PathBuf>> {
    Ok(list_steps(&run_dir.join("checkpoints"))?
        .pop()
        .map(|(_, p)| p))
}

/// Finds the checkpoint folder `path` names: a checkpoint folder itself, a
/// model file inside one, or a run folder (its `best`, else latest).
pub fn resolve(path: &Path) -> anyhow::Result<PathBuf> {
    if path.is_file() && path.file_name().is_some_and(|n| n == MODEL_FILE) {
        return Ok(path.parent().unwrap_or(Path::new(".")).to_path_buf());
    }
    if path.join(MODEL_FILE).is_file() {
        return Ok(path.to_path_buf());
    }
    let checkpoints = path.join("checkpoints");
    if checkpoints.join("best").join(MODEL_FILE).is_file() {
        return Ok(checkpoints.join("best"));
    }
    if let Some(latest) = latest(path)? {
        return Ok(latest);
    }
    if !path.exists() {
        bail!("{}: no such file or folder", path.display());
    }
    bail!(
        "{}: not a SeaCLR checkpoint (expected {MODEL_FILE} here, or a run folder with checkpoints/)",
        path.display()
    )
}

/// Reads `state.json` and `config.toml` of a checkpoint folder.
pub fn read_meta(dir: &Path) -> anyhow::Result<(TrainState, TrainConfig)> {
    let state_path = dir.join(STATE_FILE);
    let state_text = fs::read_to_string(&state_path)
        .with_context(|| format!("{}: cannot read", state_path.display()))?;
    let state: TrainState = serde_json::from_str(&state_text)
        .with_context(|| format!("{}: bad training state", state_path.display()))?;
    let config = TrainConfig::from_toml_file(&dir.join(CONFIG_FILE))?;
    Ok((state, config))
}

/// Loads the weights in `dir` into a model built from `config` on `device`.
pub fn load_weights(
    dir: &Path,
    config: &TrainConfig,
    device: &Device,
) -> anyhow::Result<SimClrModel> {
    let file = dir.join(MODEL_FILE);
    let record =
        ModuleRecord::load(&file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    config
        .model
        .init(device)
        .try_load_record(record)
        .map(SimClrModel::with_fixed_running_ids)
        .map_err(|e| {
            anyhow::anyhow!(
                "{}: does not fit the model in its config.toml: {e}",
                file.display()
            )
        })
}

/// Loads a checkpoint (see [`resolve`] for what `path` may be) for inference.
pub fn load_model(path: &Path, device: &Device) -> anyhow::Result<LoadedModel> {
    let dir = resolve(path)?;
    let (state, config) = read_meta(&dir)?;
    let model = load_weights(&dir, &config, device)?;
    Ok(LoadedModel {
        model,
        config,
        state,
        dir,
    })
}
