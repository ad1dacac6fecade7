//! `seaclr train` and `seaclr bench train`.

use std::path::{Path, PathBuf};

use anyhow::bail;
use burn::tensor::Device;

use super::augment::ImageSet;
use super::bench::bench_train;
use super::config::TrainConfig;
use super::train::{RunOptions, train};
use crate::data::{Group, Loaded, Subset};

/// Compute backend for training and benchmarks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendArg {
    /// burn-flex: pure Rust CPU (default).
    Flex,
    /// burn-ndarray: CPU (needs the `ndarray` feature; deprecated in burn 0.22).
    Ndarray,
    /// burn-wgpu: GPU via Vulkan/Metal/DX12 (needs the `gpu` feature).
    Wgpu,
}

impl BackendArg {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            BackendArg::Flex => "flex",
            BackendArg::Ndarray => "ndarray",
            BackendArg::Wgpu => "wgpu",
        }
    }

    /// The device, or an error saying which cargo feature is missing.
    pub fn device(self) -> anyhow::Result<Device> {
        match self {
            BackendArg::Flex => flex_device(),
            BackendArg::Ndarray => ndarray_device(),
            BackendArg::Wgpu => wgpu_device(),
        }
    }
}

#[cfg(feature = "flex")]
fn flex_device() -> anyhow::Result<Device> {
    Ok(Device::flex())
}
#[cfg(not(feature = "flex"))]
fn flex_device() -> anyhow::Result<Device> {
    bail!("the flex backend is not compiled in: rebuild with `--features flex`")
}

#[cfg(feature = "ndarray")]
#[allow(deprecated)] // burn 0.22 deprecates ndarray; the user asked to keep it working
fn ndarray_device() -> anyhow::Result<Device> {
    Ok(Device::ndarray())
}
#[cfg(not(feature = "ndarray"))]
fn ndarray_device() -> anyhow::Result<Device> {
    bail!("the ndarray backend is not compiled in: rebuild with `--features ndarray`")
}

#[cfg(feature = "gpu")]
fn wgpu_device() -> anyhow::Result<Device> {
    Ok(Device::wgpu(burn::tensor::DeviceKind::DefaultDevice))
}
#[cfg(not(feature = "gpu"))]
fn wgpu_device() -> anyhow::Result<Device> {
    bail!("the wgpu backend is not compiled in: rebuild with `--features gpu`")
}

/// Exit codes of `seaclr train`, for `--help` and scripts.
pub const TRAIN_EXIT_CODES: &str = "Exit codes: 0 = all scheduled steps done; 1 = error (bad \
config, data or checkpoint, or a non-finite loss; the newest checkpoint is kept); 130 = interrupted by SIGINT (Ctrl-C) and 143 = \
by SIGTERM, after writing a checkpoint of the last finished step (continue with --resume). A \
second Ctrl-C exits at once with 130, keeping the newest checkpoint already written.";

/// `seaclr train` stopped by a signal: its checkpoint is written, the run is
/// not finished. `main` turns it into exit code 128 + signal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interrupted {
    /// The signal number (SIGINT 2, SIGTERM 15).
    pub signal: i32,
    /// Steps done.
    pub step: usize,
    /// The checkpoint to resume from.
    pub checkpoint: Option<PathBuf>,
}

impl Interrupted {
    /// The process exit code: 128 + the signal number.
    pub fn exit_code(&self) -> u8 {
        u8::try_from(128 + self.signal).unwrap_or(1)
    }
}

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self.signal {
            libc::SIGINT => "SIGINT (Ctrl-C)".to_string(),
            libc::SIGTERM => "SIGTERM".to_string(),
            n => format!("signal {n}"),
        };
        write!(f, "interrupted by {name} at step {}", self.step)?;
        match &self.checkpoint {
            Some(dir) => write!(f, "; checkpoint {}; continue with --resume", dir.display()),
            None => write!(f, "; no step was finished, nothing to resume"),
        }
    }
}

impl std::error::Error for Interrupted {}

/// Arguments of `seaclr train`.
#[derive(clap::Args, Debug)]
#[command(after_help = TRAIN_EXIT_CODES)]
pub struct TrainArgs {
    /// Data root (class folders, flat folder, IFCB bins or manifest CSV).
    #[arg(long)]
    pub data: PathBuf,
    /// Split manifest: train on its seen/train images, validate on seen/val.
    #[arg(long)]
    pub split: Option<PathBuf>,
    /// Training config (TOML; missing keys take the defaults). On --resume
    /// the run's own config.toml is used when this is not given.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Run folder (created).
    #[arg(long)]
    pub out: PathBuf,
    /// Continue from the newest checkpoint in --out.
    #[arg(long)]
    pub resume: bool,
    /// Start from a checkpoint's weights (same model) instead of random
    /// ones, with this config's fresh optimizer and schedule: train longer
    /// than that run, or on another instrument's images.
    #[arg(long, conflicts_with = "resume")]
    pub init_from: Option<PathBuf>,
    /// Compute backend.
    #[arg(long, value_enum, default_value_t = BackendArg::Flex)]
    pub backend: BackendArg,
    /// No progress bar (as with -q, but keeping the logs).
    #[arg(long)]
    pub no_progress: bool,
    /// At the end, print one JSON object on stdout (finished, steps,
    /// final_loss, checkpoint, seconds); also when interrupted.
    #[arg(long)]
    pub json: bool,
}

/// `seaclr bench ...`.
#[derive(clap::Subcommand, Debug)]
pub enum BenchCommand {
    /// Views/s of a full SimCLR training step of seaclr-s (synthetic 64x64 images).
    Train(BenchTrainArgs),
}

/// Arguments of `seaclr bench train`.
#[derive(clap::Args, Debug)]
pub struct BenchTrainArgs {
    /// Timed steps.
    #[arg(long, default_value_t = 10)]
    pub steps: usize,
    /// Untimed warm-up steps.
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// Images per batch (2 views each).
    #[arg(long, default_value_t = 128)]
    pub batch: usize,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Compute backend.
    #[arg(long, value_enum, default_value_t = BackendArg::Flex)]
    pub backend: BackendArg,
    /// How the encoder blocks run: `fused` (the CPU backend's fused
    /// conv + BatchNorm + ReLU kernels where available) or `generic`
    /// (burn's own operations everywhere, for comparison).
    #[arg(long, value_enum, default_value_t = BlockArg::Fused)]
    pub block: BlockArg,
}

/// `seaclr bench train --block`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockArg {
    /// Fused kernels where the backend has them.
    Fused,
    /// burn's generic operations.
    Generic,
}

/// Runs `seaclr train`.
pub fn run_train(args: TrainArgs) -> anyhow::Result<()> {
    retain_freed_memory();
    let config = match (&args.config, args.resume) {
        (Some(path), _) => TrainConfig::from_toml_file(path)?,
        (None, true) => TrainConfig::from_toml_file(&args.out.join("config.toml"))?,
        (None, false) => TrainConfig::new(),
    };
    let device = args.backend.device()?;
    let size = config.augment.source_size;
    tracing::info!("loading {} at {size} px ...", args.data.display());
    let (train_set, val_set) = match &args.split {
        Some(split) => {
            let train =
                crate::ui::load_split(&args.data, split, Group::Seen, Some(Subset::Train), size)?;
            let val =
                crate::ui::load_split(&args.data, split, Group::Seen, Some(Subset::Val), size)?;
            (
                to_image_set(train, size, &args.data)?,
                Some(to_image_set(val, size, &args.data)?),
            )
        }
        None => (
            to_image_set(crate::ui::load(&args.data, size)?, size, &args.data)?,
            None,
        ),
    };
    let val_set = val_set.filter(|v| v.len() >= 2);
    tracing::info!(
        "{} training images, {} validation images, {} steps of {} images ({} per epoch) on {}",
        train_set.len(),
        val_set.as_ref().map_or(0, ImageSet::len),
        config.total_steps(train_set.len()),
        config.batch_size,
        config.steps_per_epoch(train_set.len()),
        args.backend.name()
    );
    let stop = interrupt::install()?;
    let started = std::time::Instant::now();
    let out = args.out.clone();
    let summary = train(
        &config,
        train_set,
        val_set,
        &RunOptions {
            out: args.out.clone(),
            resume: args.resume,
            init_from: args.init_from.clone(),
            device,
            stop,
            stop_after: None,
            progress: !args.no_progress && !crate::ui::quiet(),
        },
    )?;
    let seconds = started.elapsed().as_secs_f64();
    tracing::info!(
        "{} at step {} in {:.0} s; mean loss of the last steps {}; checkpoint {}",
        if summary.finished {
            "finished"
        } else {
            "stopped"
        },
        summary.steps,
        seconds,
        summary.final_loss.map_or("-".into(), |l| format!("{l:.4}")),
        summary
            .last_checkpoint
            .as_deref()
            .map_or("-".into(), |p| p.display().to_string())
    );
    if args.json {
        crate::ui::print_json(&serde_json::json!({
            "finished": summary.finished,
            "steps": summary.steps,
            "final_loss": summary.final_loss,
            "checkpoint": summary.last_checkpoint.as_deref().map(|p| p.display().to_string()),
            "seconds": seconds,
        }))?;
    }
    if !summary.finished
        && let Some(signal) = interrupt::received()
    {
        return Err(Interrupted {
            signal,
            step: summary.steps,
            checkpoint: summary
                .last_checkpoint
                .or_else(|| super::checkpoint::latest(&out).ok().flatten()),
        }
        .into());
    }
    Ok(())
}

/// Ctrl-C handling: the first SIGINT/SIGTERM asks the training loop to
/// finish its step and write a checkpoint; a second one exits at once.
///
/// A plain `signal(2)` handler that only touches atomics (async-signal-safe);
/// the `ctrlc` crate would do the same but pulls in `nix`, whose libc
/// features force a rebuild of all of burn.
mod interrupt {
    use std::sync::Arc;
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

    static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    /// The first signal received (0: none).
    static SIGNAL: AtomicI32 = AtomicI32::new(0);

    extern "C" fn on_signal(signal: libc::c_int) {
        let _ = SIGNAL.compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst);
        if let Some(flag) = FLAG.get()
            && flag.swap(true, Ordering::SeqCst)
        {
            // Second interrupt: leave now, without unwinding (not signal-safe).
            // SAFETY: _exit is async-signal-safe.
            unsafe { libc::_exit(128 + signal) };
        }
    }

    /// The signal that asked the run to stop, if any.
    pub fn received() -> Option<i32> {
        match SIGNAL.load(Ordering::SeqCst) {
            0 => None,
            n => Some(n),
        }
    }

    /// Installs the handler once and returns the stop flag.
    pub fn install() -> anyhow::Result<Arc<AtomicBool>> {
        let flag = FLAG
            .get_or_init(|| Arc::new(AtomicBool::new(false)))
            .clone();
        for signal in [libc::SIGINT, libc::SIGTERM] {
            // SAFETY: the handler only reads a OnceLock that is already set and
            // swaps an atomic, both async-signal-safe.
            let previous =
                unsafe { libc::signal(signal, on_signal as *const () as libc::sighandler_t) };
            if previous == libc::SIG_ERR {
                anyhow::bail!(
                    "cannot install the Ctrl-C handler: {}",
                    std::io::Error::last_os_error()
                );
            }
        }
        Ok(flag)
    }
}

/// Packs loaded records into one buffer, reporting what was skipped.
fn to_image_set(loaded: Loaded, size: usize, source: &Path) -> anyhow::Result<ImageSet> {
    if !loaded.skipped.is_empty() {
        tracing::warn!(
            "{}: skipped {} files, e.g.:",
            source.display(),
            loaded.skipped.len()
        );
        for s in loaded.skipped.iter().take(3) {
            tracing::warn!("  {}: {}", s.path, s.reason);
        }
        for s in loaded.skipped.iter().skip(3) {
            tracing::debug!("  {}: {}", s.path, s.reason);
        }
    }
    let mut pixels = Vec::with_capacity(loaded.records.len() * size * size);
    for r in &loaded.records {
        if r.pixels.len() != size * size {
            bail!(
                "{}: preprocessed to {} pixels, expected {}x{}",
                r.id,
                r.pixels.len(),
                size,
                size
            );
        }
        pixels.extend_from_slice(&r.pixels);
    }
    Ok(ImageSet { size, pixels })
}

/// Runs `seaclr bench ...`.
pub fn run_bench(cmd: BenchCommand) -> anyhow::Result<()> {
    retain_freed_memory();
    match cmd {
        BenchCommand::Train(args) => {
            if args.batch < 2 || args.steps == 0 {
                bail!("--batch must be at least 2 and --steps at least 1");
            }
            let device = args.backend.device()?;
            let config = TrainConfig::new();
            super::fused::use_generic_blocks(args.block == BlockArg::Generic);
            let result = bench_train(
                &config,
                device,
                args.backend.name(),
                args.batch,
                args.steps,
                args.warmup,
            )?;
            if args.json {
                crate::ui::print_json(&result)?;
            } else {
                println!(
                    "seaclr-s train step, batch {} ({} views) {}x{}, backend {} ({} blocks), {} threads, CPU features {}: {:.1} views/s ({:.3} s/step over {} steps)",
                    result.batch,
                    2 * result.batch,
                    result.image_size,
                    result.image_size,
                    result.backend,
                    result.block,
                    result.threads,
                    result.cpu_features.join(" "),
                    result.views_per_s,
                    result.seconds_per_step,
                    result.steps
                );
            }
            Ok(())
        }
    }
}

/// A training step allocates and frees the same large activation buffers
/// every step (up to tens of MB each). glibc hands blocks above its mmap
/// threshold back to the kernel on free, so every step paid page faults and
/// page zeroing for them again (about 12 % of a batch-256 step, BENCHMARKS.md).
/// This raises the threshold to its maximum and stops heap trimming, so
/// freed buffers are reused.
fn retain_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // glibc caps the mmap threshold at HEAP_MAX_SIZE / 2 (32 MiB on 64-bit).
        const MAX_MMAP_THRESHOLD: libc::c_int = 32 << 20;
        // SAFETY: mallopt only changes allocator tuning parameters; it is
        // called before the training threads start.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MAX_MMAP_THRESHOLD);
            libc::mallopt(libc::M_TRIM_THRESHOLD, libc::c_int::MAX);
        }
    }
}
