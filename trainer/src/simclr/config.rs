//! Training configuration: every knob of a run in one TOML-serialisable
//! struct, with defaults that reproduce the seed's recipe (Adam, lr 1.4e-3,
//! batch 256, tau 0.1) plus a warm-up + cosine schedule.
//!
//! A TOML file only needs the keys it changes: it is merged over the
//! defaults, and an unknown key is an error naming the key (a typo must not
//! silently train with the default).

use std::path::Path;

use anyhow::{Context, bail};
use burn::config::Config;

use super::augment::AugmentConfig;
use super::model::ModelConfig;

/// Optimiser settings.
#[derive(Config, Debug, PartialEq)]
pub struct OptimizerConfig {
    /// `adam` (the seed) or `adamw`.
    #[config(default = "String::from(\"adam\")")]
    pub kind: String,
    /// Peak learning rate (the seed's constant rate).
    #[config(default = 1.4e-3)]
    pub learning_rate: f64,
    /// Weight decay (decoupled for AdamW, L2 for Adam); 0 disables it.
    #[config(default = 0.0)]
    pub weight_decay: f64,
    /// Linear warm-up from 0 to the peak rate over this many steps.
    #[config(default = 200)]
    pub warmup_steps: usize,
    /// Cosine decay ends at `learning_rate * final_lr_fraction`.
    #[config(default = 0.01)]
    pub final_lr_fraction: f64,
    /// Adam beta 1.
    #[config(default = 0.9)]
    pub beta_1: f64,
    /// Adam beta 2.
    #[config(default = 0.999)]
    pub beta_2: f64,
    /// Adam epsilon.
    #[config(default = 1e-8)]
    pub epsilon: f64,
}

/// All settings of one training run (`config.toml` in the run folder).
#[derive(Config, Debug, PartialEq)]
pub struct TrainConfig {
    /// The encoder and projection head.
    #[config(default = "ModelConfig::seaclr_s()")]
    pub model: ModelConfig,
    /// Augmentation recipe.
    #[config(default = "AugmentConfig::new()")]
    pub augment: AugmentConfig,
    /// Optimiser and learning-rate schedule.
    #[config(default = "OptimizerConfig::new()")]
    pub optimizer: OptimizerConfig,
    /// Images per batch (each gives two views, so 2x this many views).
    #[config(default = 256)]
    pub batch_size: usize,
    /// NT-Xent temperature.
    #[config(default = 0.1)]
    pub temperature: f64,
    /// Number of passes over the data; ignored when `max_steps > 0`.
    #[config(default = 50)]
    pub epochs: usize,
    /// Stop after this many optimiser steps (0: run `epochs` epochs).
    #[config(default = 0)]
    pub max_steps: usize,
    /// Seed of the weight init, the data order and every augmentation.
    #[config(default = 42)]
    pub seed: u64,
    /// Write a checkpoint every this many steps (and at each epoch end).
    #[config(default = 100)]
    pub checkpoint_every: usize,
    /// Keep this many periodic checkpoints (plus `best`).
    #[config(default = 3)]
    pub keep_last: usize,
    /// Augmentation worker threads (0: one per core).
    #[config(default = 0)]
    pub workers: usize,
    /// Batches prepared ahead of the training step.
    #[config(default = 4)]
    pub prefetch: usize,
    /// Cap on validation images per epoch (0: all), to bound its cost.
    #[config(default = 2048)]
    pub max_val_images: usize,
}

impl TrainConfig {
    /// Views per step.
    pub fn views_per_step(&self) -> usize {
        2 * self.batch_size
    }

    /// Total optimiser steps for a data set of `n_images` (last partial batch dropped).
    pub fn total_steps(&self, n_images: usize) -> usize {
        if self.max_steps > 0 {
            self.max_steps
        } else {
            self.epochs * self.steps_per_epoch(n_images)
        }
    }

    /// Full batches per epoch.
    pub fn steps_per_epoch(&self, n_images: usize) -> usize {
        (n_images / self.batch_size).max(1)
    }

    /// Checks values that would otherwise fail deep inside training.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.batch_size < 2 {
            bail!(
                "batch_size must be at least 2 (NT-Xent needs negatives), got {}",
                self.batch_size
            );
        }
        in_range("temperature", self.temperature, "above 0", |v| v > 0.0)?;
        let o = &self.optimizer;
        in_range(
            "optimizer.learning_rate",
            o.learning_rate,
            "in (0, 10]",
            |v| v > 0.0 && v <= 10.0,
        )?;
        in_range("optimizer.weight_decay", o.weight_decay, "in [0, 1]", |v| {
            (0.0..=1.0).contains(&v)
        })?;
        in_range(
            "optimizer.final_lr_fraction",
            o.final_lr_fraction,
            "in [0, 1]",
            |v| (0.0..=1.0).contains(&v),
        )?;
        in_range("optimizer.beta_1", o.beta_1, "in [0, 1)", |v| {
            (0.0..1.0).contains(&v)
        })?;
        in_range("optimizer.beta_2", o.beta_2, "in [0, 1)", |v| {
            (0.0..1.0).contains(&v)
        })?;
        in_range("optimizer.epsilon", o.epsilon, "above 0", |v| v > 0.0)?;
        if self.epochs == 0 && self.max_steps == 0 {
            bail!("set epochs or max_steps above 0");
        }
        if !matches!(self.optimizer.kind.as_str(), "adam" | "adamw") {
            bail!(
                "optimizer.kind must be \"adam\" or \"adamw\", got {:?}",
                self.optimizer.kind
            );
        }
        if self.checkpoint_every == 0 {
            bail!("checkpoint_every must be at least 1");
        }
        self.model.validate()?;
        self.augment.validate()?;
        Ok(())
    }

    /// Parses a TOML text, merging it over the defaults.
    pub fn from_toml_str(text: &str) -> anyhow::Result<Self> {
        let user: toml::Table = toml::from_str(text).context("not valid TOML")?;
        let mut merged =
            toml::Table::try_from(TrainConfig::new()).context("serialising defaults")?;
        merge_table(&mut merged, user, "")?;
        let config: TrainConfig = toml::Value::Table(merged)
            .try_into()
            .context("invalid value")?;
        config.validate()?;
        Ok(config)
    }

    /// Reads a TOML file (see [`TrainConfig::from_toml_str`]).
    pub fn from_toml_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("{}: cannot read", path.display()))?;
        Self::from_toml_str(&text)
            .with_context(|| format!("{}: bad training config", path.display()))
    }

    /// The full config as TOML (every key, defaults included).
    pub fn to_toml_string(&self) -> anyhow::Result<String> {
        Ok(toml::to_string_pretty(self)?)
    }
}

/// Checks that a float setting is finite and within its range; the error
/// names the key, the range and the value (`NaN`, `inf`, ...).
fn in_range(key: &str, value: f64, range: &str, ok: impl Fn(f64) -> bool) -> anyhow::Result<()> {
    if value.is_finite() && ok(value) {
        return Ok(());
    }
    bail!("{key} must be a finite number {range}, got {value}")
}

/// Overwrites `base` with `user`, recursing into tables; rejects keys the
/// defaults do not have.
fn merge_table(base: &mut toml::Table, user: toml::Table, prefix: &str) -> anyhow::Result<()> {
    for (key, value) in user {
        let full = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match (base.get_mut(&key), value) {
            (None, _) => bail!("unknown key `{full}`"),
            (Some(toml::Value::Table(b)), toml::Value::Table(u)) => merge_table(b, u, &full)?,
            (Some(toml::Value::Table(_)), _) => bail!("`{full}` must be a table"),
            (Some(slot), value) => {
                // Accept an integer where a float is expected (`learning_rate = 1`).
                *slot = match (&*slot, value) {
                    (toml::Value::Float(_), toml::Value::Integer(i)) => {
                        toml::Value::Float(i as f64)
                    }
                    (_, v) => v,
                };
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_seed_recipe() {
        let c = TrainConfig::new();
        assert_eq!(c.batch_size, 256);
        assert_eq!(c.temperature, 0.1);
        assert_eq!(c.optimizer.kind, "adam");
        assert_eq!(c.optimizer.learning_rate, 1.4e-3);
        c.validate().unwrap();
    }

    #[test]
    fn partial_toml_overrides_only_its_keys() {
        let c = TrainConfig::from_toml_str("batch_size = 16\n[optimizer]\nlearning_rate = 1\n")
            .unwrap();
        assert_eq!(c.batch_size, 16);
        assert_eq!(c.optimizer.learning_rate, 1.0);
        assert_eq!(c.optimizer.kind, "adam");
        assert_eq!(c.model, ModelConfig::seaclr_s());
    }

    #[test]
    fn round_trips_through_toml() {
        let c = TrainConfig::new().with_batch_size(32).with_seed(7);
        let text = c.to_toml_string().unwrap();
        assert_eq!(TrainConfig::from_toml_str(&text).unwrap(), c);
    }

    #[test]
    fn unknown_key_is_named() {
        let err = TrainConfig::from_toml_str("[optimizer]\nlearning_rat = 0.1\n").unwrap_err();
        assert!(
            format!("{err:#}").contains("optimizer.learning_rat"),
            "{err:#}"
        );
    }

    #[test]
    fn non_finite_and_out_of_range_values_are_rejected_naming_the_key() {
        let cases = [
            (
                "[optimizer]\nlearning_rate = nan",
                "optimizer.learning_rate",
                "NaN",
            ),
            (
                "[optimizer]\nlearning_rate = inf",
                "optimizer.learning_rate",
                "inf",
            ),
            (
                "[optimizer]\nlearning_rate = -0.1",
                "optimizer.learning_rate",
                "-0.1",
            ),
            (
                "[optimizer]\nlearning_rate = 0",
                "optimizer.learning_rate",
                "0",
            ),
            (
                "[optimizer]\nweight_decay = nan",
                "optimizer.weight_decay",
                "NaN",
            ),
            (
                "[optimizer]\nfinal_lr_fraction = 2",
                "optimizer.final_lr_fraction",
                "2",
            ),
            ("[optimizer]\nbeta_1 = 1", "optimizer.beta_1", "1"),
            ("[optimizer]\nbeta_2 = -inf", "optimizer.beta_2", "-inf"),
            ("[optimizer]\nepsilon = nan", "optimizer.epsilon", "NaN"),
            ("temperature = nan", "temperature", "NaN"),
            ("temperature = inf", "temperature", "inf"),
            ("[model]\nbn_momentum = nan", "model.bn_momentum", "NaN"),
            ("[model]\nbn_epsilon = 0", "model.bn_epsilon", "0"),
            ("[augment]\nrotation_degrees = inf", "augment", "finite"),
            ("[augment]\nblur_sigma_max = inf", "augment", "finite"),
        ];
        for (text, key, value) in cases {
            let err = format!("{:#}", TrainConfig::from_toml_str(text).unwrap_err());
            assert!(err.contains(key), "{text}: {err}");
            assert!(err.contains(value), "{text}: {err}");
        }
        // The edges of the ranges are accepted.
        TrainConfig::from_toml_str("[optimizer]\nlearning_rate = 10\nfinal_lr_fraction = 0\n")
            .unwrap();
    }

    #[test]
    fn bad_values_are_rejected() {
        assert!(TrainConfig::from_toml_str("batch_size = 1").is_err());
        assert!(TrainConfig::from_toml_str("temperature = 0.0").is_err());
        assert!(TrainConfig::from_toml_str("[optimizer]\nkind = \"sgd\"").is_err());
    }
}
