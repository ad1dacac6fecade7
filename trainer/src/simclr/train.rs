//! The SimCLR training loop: warm-up + cosine Adam/AdamW on NT-Xent, CSV
//! curves, periodic atomic checkpoints, exact resume and clean stops.
//!
//! Exact resume: the data order and every augmentation are functions of
//! `(seed, epoch, index)` (see `augment`), the LR is a function of the step,
//! and the checkpoint holds the weights, BatchNorm statistics (settled, with
//! the last step's update; see `SimClrModel::sync_running_stats`), optimiser
//! moments, step and epoch loss sums. A run stopped after `k` steps and resumed therefore
//! takes the very same steps as a straight run.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{Context, bail};
use burn::module::Module;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::{AdamConfig, AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor, TensorData};

use super::augment::{BatchLoader, ImageSet, LoaderPlan, augment_batch};
use super::checkpoint::{self, TrainState};
use super::config::TrainConfig;
use super::loss::nt_xent;
use super::model::SimClrModel;

/// Tag of the augmentation stream used for validation (the same views every epoch).
const VALIDATION_STREAM: u64 = u64::MAX;

/// Learning rate of step `step` (0-based): linear warm-up, then cosine decay.
pub fn learning_rate(config: &TrainConfig, step: usize, total_steps: usize) -> f64 {
    let o = &config.optimizer;
    let peak = o.learning_rate;
    let warmup = o.warmup_steps.min(total_steps.saturating_sub(1));
    if step < warmup {
        return peak * (step + 1) as f64 / warmup as f64;
    }
    let span = total_steps.saturating_sub(warmup).max(1) as f64;
    let progress = ((step - warmup) as f64 / span).min(1.0);
    let floor = peak * o.final_lr_fraction;
    floor + (peak - floor) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
}

/// Builds the configured optimiser.
pub fn build_optimizer(config: &TrainConfig) -> ModuleOptimizer {
    let o = &config.optimizer;
    if o.kind == "adamw" {
        AdamWConfig::new()
            .with_beta_1(o.beta_1 as f32)
            .with_beta_2(o.beta_2 as f32)
            .with_epsilon(o.epsilon as f32)
            .with_weight_decay(o.weight_decay as f32)
            .init()
    } else {
        AdamConfig::new()
            .with_beta_1(o.beta_1 as f32)
            .with_beta_2(o.beta_2 as f32)
            .with_epsilon(o.epsilon as f32)
            .with_weight_decay(
                (o.weight_decay > 0.0).then(|| WeightDecayConfig::new(o.weight_decay as f32)),
            )
            .init()
    }
}

/// Names, in a run folder, the checkpoint its weights started from.
pub const INIT_FROM_FILE: &str = "init_from.txt";

/// Everything a training run needs besides its images.
pub struct RunOptions {
    /// Run folder (`config.toml`, `steps.csv`, `epochs.csv`, `checkpoints/`).
    pub out: PathBuf,
    /// Continue from the newest checkpoint in `out`.
    pub resume: bool,
    /// Start a fresh run (new optimizer, schedule and data order) from these
    /// weights instead of random ones: a checkpoint of the same model, e.g.
    /// to train longer than the run that made it, or on another
    /// instrument's images.
    pub init_from: Option<PathBuf>,
    /// Device to train on (autodiff is enabled on it).
    pub device: Device,
    /// Set to stop cleanly (checkpoint, then return) — Ctrl-C.
    pub stop: Arc<AtomicBool>,
    /// Stop (with a checkpoint) once this many steps are done; for tests.
    pub stop_after: Option<usize>,
    /// Draw a progress bar.
    pub progress: bool,
}

/// What a run did.
#[derive(Debug)]
pub struct TrainSummary {
    /// Steps completed in total (including before a resume).
    pub steps: usize,
    /// Whether all scheduled steps were done.
    pub finished: bool,
    /// Mean loss of the last 10 steps run in this call.
    pub final_loss: Option<f64>,
    /// The newest checkpoint written.
    pub last_checkpoint: Option<PathBuf>,
    /// The model at the end.
    pub model: SimClrModel,
}

/// Trains on `train` (preprocessed at `config.augment.source_size`), with an
/// optional validation set for `epochs.csv`.
pub fn train(
    config: &TrainConfig,
    train: ImageSet,
    val: Option<ImageSet>,
    options: &RunOptions,
) -> anyhow::Result<TrainSummary> {
    config.validate()?;
    if train.size != config.augment.source_size {
        bail!(
            "training images are {} px but augment.source_size is {}",
            train.size,
            config.augment.source_size
        );
    }
    if train.len() < config.batch_size {
        bail!(
            "{} training images are fewer than one batch of {}",
            train.len(),
            config.batch_size
        );
    }
    let device = options.device.clone().autodiff();
    let out = &options.out;
    let checkpoints = out.join("checkpoints");
    fs::create_dir_all(&checkpoints)
        .with_context(|| format!("{}: cannot create", checkpoints.display()))?;
    let steps_per_epoch = config.steps_per_epoch(train.len());
    let total_steps = config.total_steps(train.len());

    // Fresh start or resume.
    let (mut model, mut optimizer, mut state) = if options.resume {
        let dir = checkpoint::latest(out)?.with_context(|| {
            format!(
                "{}: --resume but no checkpoint in checkpoints/",
                out.display()
            )
        })?;
        let (state, saved) = checkpoint::read_meta(&dir)?;
        if &saved != config {
            bail!(
                "{}: the config differs from the run's (a resumed run must keep its config; compare with {})",
                dir.display(),
                dir.join(checkpoint::CONFIG_FILE).display()
            );
        }
        if state.train_images != train.len() {
            bail!(
                "{}: the run trained on {} images, now {}: not the same data",
                dir.display(),
                state.train_images,
                train.len()
            );
        }
        let model = checkpoint::load_weights(&dir, config, &device)?;
        let opt_file = dir.join(checkpoint::OPTIMIZER_FILE);
        let optimizer = build_optimizer(config)
            .load(&opt_file)
            .map_err(|e| anyhow::anyhow!("{}: {e}", opt_file.display()))?;
        tracing::info!("resuming from {} (step {})", dir.display(), state.step);
        (model, optimizer, state)
    } else {
        if checkpoint::latest(out)?.is_some() {
            bail!(
                "{}: holds checkpoints already; pass --resume or choose another --out",
                out.display()
            );
        }
        let model = match &options.init_from {
            None => config.model.init_seeded(&device, config.seed),
            Some(path) => {
                let dir = checkpoint::resolve(path)?;
                let (_, saved) = checkpoint::read_meta(&dir)?;
                if saved.model != config.model {
                    bail!(
                        "{}: its model differs from this config's [model]; --init-from needs the same model",
                        dir.display()
                    );
                }
                let model = checkpoint::load_weights(&dir, config, &device)?;
                fs::write(out.join(INIT_FROM_FILE), format!("{}\n", dir.display()))?;
                tracing::info!("starting from the weights of {}", dir.display());
                model
            }
        };
        let state = TrainState {
            step: 0,
            steps_per_epoch,
            total_steps,
            epoch_loss_sum: 0.0,
            epoch_loss_count: 0,
            best_loss: None,
            train_images: train.len(),
        };
        (model, build_optimizer(config), state)
    };
    fs::write(out.join("config.toml"), config.to_toml_string()?)?;
    let mut steps_csv = open_csv(
        &out.join("steps.csv"),
        "step,epoch,lr,loss,views_per_s",
        state.step,
    )?;
    let mut epochs_csv = open_csv(
        &out.join("epochs.csv"),
        "epoch,train_loss,val_loss",
        state.step / steps_per_epoch,
    )?;

    let train = Arc::new(train);
    let end_step = options
        .stop_after
        .map_or(total_steps, |s| s.min(total_steps));
    let loader = BatchLoader::start(
        train.clone(),
        LoaderPlan {
            augment: config.augment.clone(),
            seed: config.seed,
            batch_size: config.batch_size,
            out_size: config.model.input_size,
            start_step: state.step,
            end_step,
            workers: config.workers,
            prefetch: config.prefetch,
        },
    )?;

    let bar = progress_bar(options.progress, total_steps, state.step);
    let size = config.model.input_size;
    let mut recent = std::collections::VecDeque::new();
    let mut last_checkpoint = None;
    let mut views_rate: Option<f64> = None;
    let mut tick = Instant::now();
    while state.step < end_step {
        if options.stop.load(Ordering::SeqCst) {
            break;
        }
        let batch = loader
            .next_batch()
            .context("the batch loader stopped early")?;
        debug_assert_eq!(batch.step, state.step);
        let lr = learning_rate(config, state.step, total_steps);
        let views = Tensor::<4>::from_data(
            TensorData::new(batch.views, [2 * batch.images, 1, size, size]),
            &device,
        );
        let (_, z) = model.forward(views);
        let loss = nt_xent(z, config.temperature);
        let loss_value = loss.clone().into_scalar::<f32>() as f64;
        if !loss_value.is_finite() {
            bail!(
                "step {}: loss is {loss_value}; stopping (last good checkpoint kept)",
                state.step + 1
            );
        }
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optimizer.step(lr, model, grads);
        state.step += 1;
        state.epoch_loss_sum += loss_value;
        state.epoch_loss_count += 1;

        let now = Instant::now();
        let rate = (2 * batch.images) as f64 / now.duration_since(tick).as_secs_f64().max(1e-9);
        tick = now;
        views_rate = Some(views_rate.map_or(rate, |r| 0.9 * r + 0.1 * rate));
        let epoch = batch.epoch + 1;
        writeln!(
            steps_csv,
            "{},{epoch},{lr:.6e},{loss_value:.6},{rate:.1}",
            state.step
        )?;
        steps_csv.flush()?;
        recent.push_back(loss_value);
        if recent.len() > 10 {
            recent.pop_front();
        }
        if let Some(bar) = &bar {
            bar.set_position(state.step as u64);
            bar.set_message(format!(
                "epoch {epoch} loss {loss_value:.4} {:.0} views/s lr {lr:.2e}",
                views_rate.unwrap_or(0.0)
            ));
        }

        let epoch_end = state.step % steps_per_epoch == 0;
        if epoch_end {
            let train_loss = state.epoch_loss_sum / state.epoch_loss_count.max(1) as f64;
            let val_loss = match &val {
                Some(val) => Some(validation_loss(&model, val, config, &device)?),
                None => None,
            };
            writeln!(
                epochs_csv,
                "{epoch},{train_loss:.6},{}",
                val_loss.map(|v| format!("{v:.6}")).unwrap_or_default()
            )?;
            epochs_csv.flush()?;
            state.epoch_loss_sum = 0.0;
            state.epoch_loss_count = 0;
            let judged = val_loss.unwrap_or(train_loss);
            if state.best_loss.is_none_or(|b| judged < b) {
                state.best_loss = Some(judged);
                checkpoint::save(&checkpoints.join("best"), &model, None, &state, config)?;
            }
        }
        if epoch_end || state.step % config.checkpoint_every == 0 || state.step == end_step {
            let dir = checkpoints.join(checkpoint::step_dir_name(state.step));
            checkpoint::save(&dir, &model, Some(&optimizer), &state, config)?;
            checkpoint::prune(&checkpoints, config.keep_last)?;
            last_checkpoint = Some(dir);
        }
    }
    if options.stop.load(Ordering::SeqCst) && state.step < end_step {
        let dir = checkpoints.join(checkpoint::step_dir_name(state.step));
        if last_checkpoint.as_ref() != Some(&dir) && state.step > 0 {
            checkpoint::save(&dir, &model, Some(&optimizer), &state, config)?;
            checkpoint::prune(&checkpoints, config.keep_last)?;
            last_checkpoint = Some(dir);
        }
        tracing::warn!("stopped at step {}; continue with --resume", state.step);
    }
    if let Some(bar) = bar {
        bar.finish();
    }
    let final_loss = (!recent.is_empty()).then(|| recent.iter().sum::<f64>() / recent.len() as f64);
    Ok(TrainSummary {
        steps: state.step,
        finished: state.step >= total_steps,
        final_loss,
        last_checkpoint,
        model,
    })
}

/// Mean NT-Xent of the validation images (eval-mode BatchNorm, fixed views).
pub fn validation_loss(
    model: &SimClrModel,
    val: &ImageSet,
    config: &TrainConfig,
    device: &Device,
) -> anyhow::Result<f64> {
    let eval = model.valid();
    let device = device.clone().without_autodiff();
    let n = if config.max_val_images > 0 {
        val.len().min(config.max_val_images)
    } else {
        val.len()
    };
    let size = config.model.input_size;
    let (mut sum, mut count) = (0.0, 0usize);
    let indices: Vec<usize> = (0..n).collect();
    for chunk in indices.chunks(config.batch_size) {
        if chunk.len() < 2 {
            continue; // one image has no negatives
        }
        let views = augment_batch(
            val,
            chunk,
            &config.augment,
            config.seed,
            VALIDATION_STREAM,
            size,
        );
        let x = Tensor::<4>::from_data(
            TensorData::new(views, [2 * chunk.len(), 1, size, size]),
            &device,
        );
        let (_, z) = eval.forward(x);
        let loss = nt_xent(z, config.temperature).into_scalar::<f32>() as f64;
        sum += loss * chunk.len() as f64;
        count += chunk.len();
    }
    if count == 0 {
        bail!("validation set has fewer than 2 images");
    }
    Ok(sum / count as f64)
}

/// Opens a CSV for appending; keeps the header and rows whose first column
/// is at most `keep_upto` (rows past a resumed checkpoint are dropped).
fn open_csv(path: &Path, header: &str, keep_upto: usize) -> anyhow::Result<fs::File> {
    let mut kept = String::new();
    if let Ok(text) = fs::read_to_string(path) {
        for line in text.lines().skip(1) {
            let first = line.split(',').next().and_then(|v| v.parse::<usize>().ok());
            if first.is_some_and(|v| v <= keep_upto) {
                kept.push_str(line);
                kept.push('\n');
            }
        }
    }
    fs::write(path, format!("{header}\n{kept}"))
        .with_context(|| format!("{}: cannot write", path.display()))?;
    OpenOptions::new()
        .append(true)
        .open(path)
        .with_context(|| format!("{}: cannot open", path.display()))
}

fn progress_bar(enabled: bool, total: usize, position: usize) -> Option<indicatif::ProgressBar> {
    if !enabled {
        return None;
    }
    let bar = crate::ui::add_bar(indicatif::ProgressBar::new(total as u64));
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:30} {pos}/{len} steps [{elapsed_precise}<{eta_precise}] {msg}",
        )
        .expect("static template"),
    );
    bar.set_position(position as u64);
    Some(bar)
}

/// All float tensors of a module (weights and BatchNorm statistics), in
/// visiting order: lets tests and tools compare two models value by value.
pub fn model_values(model: &SimClrModel) -> Vec<Vec<f32>> {
    struct Collect(Vec<Vec<f32>>);
    impl burn::module::ModuleVisitor for Collect {
        fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
            self.0.push(
                param
                    .val()
                    .into_data()
                    .try_into_vec_as::<f32>()
                    .unwrap_or_default(),
            );
        }
    }
    let mut c = Collect(Vec::new());
    model.sync_running_stats();
    model.visit(&mut c);
    c.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simclr::augment::AugmentConfig;
    use crate::simclr::model::ModelConfig;

    fn tiny_config() -> TrainConfig {
        let mut c = TrainConfig::new()
            .with_batch_size(4)
            .with_max_steps(6)
            .with_checkpoint_every(2)
            .with_keep_last(10)
            .with_workers(2)
            .with_seed(3);
        c.model = ModelConfig::new()
            .with_input_size(16)
            .with_stage_channels(vec![4, 8])
            .with_head_hidden(8)
            .with_projection_dim(8);
        c.augment = AugmentConfig::new().with_source_size(24);
        c.optimizer.warmup_steps = 2;
        c.optimizer.learning_rate = 1e-2;
        c
    }

    fn synthetic(n: usize, size: usize, seed: u64) -> ImageSet {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut pixels = vec![255u8; n * size * size];
        for im in pixels.chunks_mut(size * size) {
            // A dark rectangle of random size and place on white.
            let (w, h) = (rng.random_range(3..size / 2), rng.random_range(3..size / 2));
            let (x0, y0) = (rng.random_range(0..size - w), rng.random_range(0..size - h));
            let shade: u8 = rng.random_range(0..120);
            for y in y0..y0 + h {
                for x in x0..x0 + w {
                    im[y * size + x] = shade;
                }
            }
        }
        ImageSet { size, pixels }
    }

    fn options(out: &Path) -> RunOptions {
        RunOptions {
            out: out.to_path_buf(),
            resume: false,
            init_from: None,
            device: Device::flex(),
            stop: Arc::new(AtomicBool::new(false)),
            stop_after: None,
            progress: false,
        }
    }

    fn loss_column(run: &Path) -> Vec<String> {
        fs::read_to_string(run.join("steps.csv"))
            .unwrap()
            .lines()
            .skip(1)
            .map(|l| l.split(',').take(4).collect::<Vec<_>>().join(","))
            .collect()
    }

    #[test]
    fn resume_continues_exactly_like_a_straight_run() {
        let tmp = tempfile::tempdir().unwrap();
        let config = tiny_config();
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        let straight = train(
            &config,
            synthetic(12, 24, 1),
            Some(synthetic(5, 24, 2)),
            &options(&a),
        )
        .unwrap();
        assert_eq!(straight.steps, 6);
        assert!(straight.finished);

        let first = train(
            &config,
            synthetic(12, 24, 1),
            Some(synthetic(5, 24, 2)),
            &RunOptions {
                stop_after: Some(3),
                ..options(&b)
            },
        )
        .unwrap();
        assert_eq!(first.steps, 3);
        assert!(!first.finished);
        let resumed = train(
            &config,
            synthetic(12, 24, 1),
            Some(synthetic(5, 24, 2)),
            &RunOptions {
                resume: true,
                ..options(&b)
            },
        )
        .unwrap();
        assert_eq!(resumed.steps, 6);

        let (va, vb) = (model_values(&straight.model), model_values(&resumed.model));
        assert_eq!(va.len(), vb.len());
        for (x, y) in va.iter().zip(&vb) {
            for (p, q) in x.iter().zip(y) {
                assert!((p - q).abs() <= 1e-6, "weights differ: {p} vs {q}");
            }
        }
        // Same per-step losses, and the CSV has each step once.
        assert_eq!(loss_column(&a), loss_column(&b));
        assert_eq!(loss_column(&b).len(), 6);
        let epochs = fs::read_to_string(b.join("epochs.csv")).unwrap();
        assert_eq!(epochs.lines().count(), 3, "{epochs}");
        assert!(
            epochs
                .lines()
                .nth(1)
                .unwrap()
                .split(',')
                .nth(2)
                .unwrap()
                .parse::<f64>()
                .is_ok()
        );
        // Periodic checkpoints at 2, 3 (epoch end), 4, 6 and the best one.
        let steps: Vec<usize> = checkpoint::list_steps(&b.join("checkpoints"))
            .unwrap()
            .into_iter()
            .map(|(s, _)| s)
            .collect();
        assert_eq!(steps, vec![2, 3, 4, 6]);
        assert!(b.join("checkpoints/best/model.bpk").is_file());
        // And the final checkpoint reloads to the same model.
        let loaded =
            checkpoint::load_model(&b.join("checkpoints/step-0000006"), &Device::flex()).unwrap();
        assert_eq!(model_values(&loaded.model), vb);
    }

    /// Every file of a checkpoint folder, by name.
    fn checkpoint_files(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let p = e.unwrap().path();
                (
                    p.file_name().unwrap().to_string_lossy().into_owned(),
                    fs::read(&p).unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn a_run_stopped_mid_epoch_and_resumed_ends_with_the_same_checkpoint_bytes() {
        // No validation set: nothing but the checkpoint itself may settle
        // the BatchNorm statistics. 12 images of batch 4: 3 steps an epoch;
        // stops after steps 1, 2 and 4 (mid-epoch) and resumes each time.
        let tmp = tempfile::tempdir().unwrap();
        let config = tiny_config().with_max_steps(7).with_checkpoint_every(100);
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        let straight = train(&config, synthetic(12, 24, 1), None, &options(&a)).unwrap();
        assert!(straight.finished);
        for (stop, resume) in [(1, false), (2, true), (4, true)] {
            let part = train(
                &config,
                synthetic(12, 24, 1),
                None,
                &RunOptions {
                    stop_after: Some(stop),
                    resume,
                    ..options(&b)
                },
            )
            .unwrap();
            assert_eq!(part.steps, stop);
        }
        let resumed = train(
            &config,
            synthetic(12, 24, 1),
            None,
            &RunOptions {
                resume: true,
                ..options(&b)
            },
        )
        .unwrap();
        assert!(resumed.finished);
        let last = checkpoint::step_dir_name(7);
        let (fa, fb) = (
            checkpoint_files(&a.join("checkpoints").join(&last)),
            checkpoint_files(&b.join("checkpoints").join(&last)),
        );
        assert_eq!(
            fa.keys().collect::<Vec<_>>(),
            [
                CONFIG_NAME,
                checkpoint::MODEL_FILE,
                checkpoint::OPTIMIZER_FILE,
                checkpoint::STATE_FILE
            ]
        );
        for (name, bytes) in &fa {
            assert!(fb[name] == *bytes, "{name} differs after stop and resume");
        }
        // The BatchNorm statistics are what a reloaded model sees.
        let la =
            checkpoint::load_model(&a.join("checkpoints").join(&last), &Device::flex()).unwrap();
        let lb =
            checkpoint::load_model(&b.join("checkpoints").join(&last), &Device::flex()).unwrap();
        assert_eq!(running_stats(&la.model), running_stats(&lb.model));
        assert_eq!(running_stats(&la.model), running_stats(&straight.model));
    }

    const CONFIG_NAME: &str = checkpoint::CONFIG_FILE;

    fn running_stats(model: &SimClrModel) -> Vec<Vec<f32>> {
        model
            .blocks
            .iter()
            .flat_map(|b| {
                [
                    b.bn.running_mean.value_sync(),
                    b.bn.running_var.value_sync(),
                ]
            })
            .map(|t| t.into_data().try_into_vec_as::<f32>().unwrap())
            .collect()
    }

    #[test]
    fn a_stop_request_saves_a_checkpoint() {
        let tmp = tempfile::tempdir().unwrap();
        let config = tiny_config().with_checkpoint_every(100);
        let opts = options(tmp.path());
        opts.stop.store(true, Ordering::SeqCst);
        let summary = train(&config, synthetic(12, 24, 1), None, &opts).unwrap();
        assert_eq!(summary.steps, 0, "stop before the first step does nothing");
        // Stop after one step via stop_after; nothing must be lost.
        let tmp2 = tempfile::tempdir().unwrap();
        let summary = train(
            &config,
            synthetic(12, 24, 1),
            None,
            &RunOptions {
                stop_after: Some(1),
                ..options(tmp2.path())
            },
        )
        .unwrap();
        assert_eq!(summary.steps, 1);
        assert!(
            tmp2.path()
                .join("checkpoints/step-0000001/optimizer.bpk")
                .is_file()
        );
        // A second fresh run into the same folder is refused.
        let err = train(&config, synthetic(12, 24, 1), None, &options(tmp2.path())).unwrap_err();
        assert!(format!("{err:#}").contains("--resume"), "{err:#}");
    }

    #[test]
    fn init_from_starts_a_fresh_run_from_the_given_weights() {
        let tmp = tempfile::tempdir().unwrap();
        let config = tiny_config();
        let (a, b, c) = (
            tmp.path().join("a"),
            tmp.path().join("b"),
            tmp.path().join("c"),
        );
        let first = train(&config, synthetic(12, 24, 1), None, &options(&a)).unwrap();
        let last = a.join("checkpoints/step-0000006");
        // A new run with another seed and schedule, before its first step,
        // holds exactly the first run's final weights.
        let next = config.clone().with_seed(7).with_max_steps(2);
        let start = train(
            &next,
            synthetic(12, 24, 1),
            None,
            &RunOptions {
                init_from: Some(last.clone()),
                stop_after: Some(0),
                ..options(&b)
            },
        )
        .unwrap();
        assert_eq!(start.steps, 0);
        assert!(
            model_values(&start.model) == model_values(&first.model),
            "the new run does not start from the given weights"
        );
        assert!(b.join(INIT_FROM_FILE).is_file());
        // Another model shape is refused, naming the checkpoint.
        let mut other = next.clone();
        other.model = other.model.with_stage_channels(vec![4, 4]);
        let err = train(
            &other,
            synthetic(12, 24, 1),
            None,
            &RunOptions {
                init_from: Some(last),
                ..options(&c)
            },
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("--init-from"), "{err:#}");
    }

    #[test]
    fn resuming_with_another_config_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let config = tiny_config();
        train(
            &config,
            synthetic(12, 24, 1),
            None,
            &RunOptions {
                stop_after: Some(1),
                ..options(tmp.path())
            },
        )
        .unwrap();
        let other = config.with_seed(99);
        let err = train(
            &other,
            synthetic(12, 24, 1),
            None,
            &RunOptions {
                resume: true,
                ..options(tmp.path())
            },
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("config differs"), "{err:#}");
    }

    #[test]
    fn training_lowers_the_validation_loss_on_synthetic_data() {
        let tmp = tempfile::tempdir().unwrap();
        let mut config = tiny_config()
            .with_max_steps(40)
            .with_checkpoint_every(40)
            .with_batch_size(16);
        config.optimizer.warmup_steps = 4;
        // Milder views than the recipe, so a tiny net learns within 40 steps.
        config.model.stage_channels = vec![8, 16];
        config.augment = config
            .augment
            .with_rotation_degrees(0.0)
            .with_crop_scale_min(0.5)
            .with_blur_max_k(1);
        let val = synthetic(32, 24, 6);
        let device = Device::flex().autodiff();
        let before = validation_loss(
            &config.model.init_seeded(&device, config.seed),
            &val,
            &config,
            &device,
        )
        .unwrap();
        let summary = train(&config, synthetic(64, 24, 5), None, &options(tmp.path())).unwrap();
        let after = validation_loss(&summary.model, &val, &config, &device).unwrap();
        assert!(
            after < before - 0.2,
            "validation loss did not fall: {before} -> {after}"
        );
    }
}
