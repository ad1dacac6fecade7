//! `seaclr-buoy`: the SeaCLR buoy simulator.
//!
//! `seaclr-buoy run --data DIR` boots a simulated buoy from a flash image
//! (created on first use with the default model), streams the frames,
//! classifies them on the device code, takes console commands, and ends
//! with screen PNGs and a short summary.

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use seaclr_device::buoy::{BootError, Config, FrameResult, Hex, Outcome};
use seaclr_firmware_sim::console::{self, Request};
use seaclr_firmware_sim::display::{Framebuffer, HEIGHT, WIDTH};
use seaclr_firmware_sim::flash_file::{FlashFile, Layout};
use seaclr_firmware_sim::frames::{
    FolderSource, FrameSource, IfcbSource, Next, Order, WatchedFolder,
};
use seaclr_firmware_sim::host::{self, HostMemory};
use seaclr_firmware_sim::operator::{self, Operator, Scored, class_token};
use seaclr_firmware_sim::power::PowerSupply;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

/// The SeaCLR buoy simulator: on-device plankton classification on simulated hardware.
#[derive(Parser)]
#[command(
    name = "seaclr-buoy",
    version,
    about,
    after_help = "Exit codes: 0 success; 1 error (unreadable input, a model refused before install, a flash image with no usable partition table); 3 the simulated power was cut (reboot with the same --flash); 4 the run finished with classification off (no usable model in the flash image)."
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the buoy on a stream of frames.
    Run(RunArgs),
    /// Create a flash image (or install a model into an existing one; the label store is kept).
    Flash(FlashArgs),
    /// Write frames as a raw frame stream for a board that reads one (the
    /// Cortex-M7 image under QEMU), with the simulated operator's console
    /// script and the folder labels for `score`.
    Frames(FramesArgs),
    /// Score a board's log (frame lines and acknowledged labels) against
    /// the folder labels `frames` wrote.
    Score(ScoreArgs),
}

#[derive(clap::Args)]
struct FramesArgs {
    /// An image folder (class subfolders give the labels) or an IFCB bin.
    #[arg(long)]
    data: PathBuf,
    /// The frame stream to write.
    #[arg(long)]
    out: PathBuf,
    /// The operator's console script (`@N command` lines) to write.
    #[arg(long)]
    script: Option<PathBuf>,
    /// Folder labels per frame number (CSV `frame,label`) to write.
    #[arg(long)]
    truth: Option<PathBuf>,
    /// The operator labels the first N frames of each class. 0 = off.
    #[arg(long, default_value_t = 3)]
    auto_label: usize,
    /// Order of folder frames.
    #[arg(long, value_enum, default_value_t = OrderArg::Interleaved)]
    order: OrderArg,
    /// Write at most this many frames.
    #[arg(long)]
    limit: Option<u64>,
}

#[derive(clap::Args)]
struct ScoreArgs {
    /// The board's log (UART output).
    #[arg(long)]
    log: PathBuf,
    /// The labels `frames --truth` wrote.
    #[arg(long)]
    truth: PathBuf,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum OrderArg {
    /// Round-robin over class folders, like a mixed sample.
    Interleaved,
    /// Sorted by path.
    Path,
}

#[derive(clap::Args)]
struct ModelArgs {
    /// Model blob to install (default: the committed models/seaclr-s.seaclr).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Install a random-weights model instead (for trying the simulator without a trained model).
    #[arg(long, conflicts_with = "model")]
    random_model: bool,
}

#[derive(clap::Args)]
struct FlashArgs {
    /// Flash image file.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    model: ModelArgs,
    /// A label store built on the host (`seaclr fewshot build --out labels.bin`)
    /// to install in the label-store region, replacing what is there. It must
    /// come from the same model as the one installed.
    #[arg(long)]
    labels: Option<PathBuf>,
    /// With --labels on an existing image: keep its model.
    #[arg(long, requires = "labels", conflicts_with_all = ["model", "random_model"])]
    keep_model: bool,
}

#[derive(clap::Args)]
struct RunArgs {
    /// Frames: an image folder (class subfolders give ground truth for the
    /// summary), an IFCB bin (.adc/.roi/.hdr or their stem), or a folder to
    /// watch (--watch). Default: the FlowCam demo images of planktonclas 0.2.4,
    /// downloaded once.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Output folder: flash image (unless --flash), screen PNGs, telemetry, log.
    #[arg(long, default_value = "buoy-out")]
    out: PathBuf,
    /// Flash image (default: OUT/flash.img, created with the model on first use).
    #[arg(long)]
    flash: Option<PathBuf>,
    #[command(flatten)]
    model: ModelArgs,
    /// Watch the --data folder for new image files (ends after --idle-s without one).
    #[arg(long)]
    watch: bool,
    /// With --watch: stop after this many seconds without a new file.
    #[arg(long, default_value_t = 10.0)]
    idle_s: f64,
    /// Camera frame rate; 0 = as fast as the simulator runs.
    #[arg(long, default_value_t = 0.0)]
    fps: f32,
    /// Counting window (telemetry interval), seconds.
    #[arg(long, default_value_t = 60)]
    window_s: u32,
    /// Order of folder frames.
    #[arg(long, value_enum, default_value_t = OrderArg::Interleaved)]
    order: OrderArg,
    /// Process at most this many frames.
    #[arg(long)]
    limit: Option<u64>,
    /// Console: `stdin`, `tcp:PORT` (loopback), or `none`.
    #[arg(long, default_value = "stdin")]
    console: String,
    /// Console commands from a file; a line `@N cmd` runs after frame N, others before the first frame.
    #[arg(long)]
    script: Option<PathBuf>,
    /// A simulated operator labels the first N frames of each class (ground truth
    /// from class folders) through the console. 0 = off.
    #[arg(long, default_value_t = 3)]
    auto_label: usize,
    /// Cut the power during flash write number N+1 (N writes complete; erases are not counted).
    #[arg(long)]
    cut_after_writes: Option<u64>,
    /// Cut the power at a random flash operation (write or erase, among the first 200) drawn from this seed.
    #[arg(long, conflicts_with = "cut_after_writes")]
    random_cut: Option<u64>,
    /// RAM budget, KiB.
    #[arg(long, default_value_t = 512)]
    ram_kib: usize,
    /// Largest ROI side the camera buffer holds (bigger ROIs are binned 2x2).
    #[arg(long, default_value_t = 320)]
    max_roi: usize,
    /// Save a screen PNG every N frames (and the last one).
    #[arg(long, default_value_t = 25)]
    png_every: u64,
    /// Buoy id in telemetry.
    #[arg(long, default_value_t = 1)]
    buoy_id: u16,
    /// Print the summary as one JSON object on stdout (progress lines go to stderr).
    #[arg(long)]
    json: bool,
}

fn default_model_path() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../models/seaclr-s.seaclr"
    ))
}

/// The blob to install: `--model`, `--random-model`, or the committed default.
fn model_bytes(args: &ModelArgs, calibration: &[Vec<u8>]) -> Result<Vec<u8>> {
    if args.random_model {
        eprintln!(
            "note: installing a RANDOM-WEIGHTS model (--random-model): classification relies on untrained features"
        );
        return seaclr_firmware_sim::dev_model::random_blob(0x5EAC1, 64, calibration)
            .map_err(|e| anyhow::anyhow!("{e}"));
    }
    let path = args.model.clone().unwrap_or_else(default_model_path);
    std::fs::read(&path).with_context(|| {
        format!(
            "{}: cannot read the model blob (pass --model FILE, or --random-model to try the simulator without a trained model)",
            path.display()
        )
    })
}

/// Opens the image at `path` (or creates it with the default layout) and
/// installs `blob`. The blob is checked by the engine first: a model the
/// firmware would refuse never replaces the installed one.
fn install(path: &Path, blob: &[u8]) -> Result<()> {
    let mut flash = if path.exists() {
        FlashFile::open(path, PowerSupply::steady())?
    } else {
        eprintln!("creating flash image {}", path.display());
        FlashFile::create(path, Layout::default())?
    };
    seaclr_device::flash::install_model(&mut flash, blob)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(())
}

fn flash_cmd(args: FlashArgs) -> Result<()> {
    if !args.keep_model || !args.out.exists() {
        let blob = model_bytes(&args.model, &[])?;
        install(&args.out, &blob)?;
        println!(
            "{}: model installed ({} bytes)",
            args.out.display(),
            blob.len()
        );
    }
    match &args.labels {
        None => println!("{}: label store region untouched", args.out.display()),
        Some(labels) => {
            let image = std::fs::read(labels).with_context(|| {
                format!("{}: cannot read the label store image", labels.display())
            })?;
            let classes = host::check_label_store(&image).map_err(|e| {
                anyhow::anyhow!("{}: not a usable label store image: {e}", labels.display())
            })?;
            let mut flash = FlashFile::open(&args.out, PowerSupply::steady())?;
            let table = seaclr_device::flash::read_table(&mut flash)
                .map_err(|e| anyhow::anyhow!("{}: {e}", args.out.display()))?
                .table;
            seaclr_device::flash::install_label_store(&mut flash, &table.layout, &image)
                .map_err(|e| anyhow::anyhow!("{}: {e}", args.out.display()))?;
            println!(
                "{}: label store from {} installed ({classes})",
                args.out.display(),
                labels.display()
            );
        }
    }
    Ok(())
}

/// Frames to a frame stream, binned to the camera buffer as the host board
/// does; unreadable files are skipped (and said) before they reach it.
fn frames_cmd(args: FramesArgs) -> Result<()> {
    use seaclr_shared::frame_stream::{MAX_ID_LEN, encode_stream};
    let mut source = open_source(&args.data, None, args.order)?;
    let mut records: Vec<(usize, usize, Vec<u8>, Vec<u8>)> = Vec::new();
    let mut operator = Operator::new(args.auto_label);
    let mut classes: Vec<String> = Vec::new();
    let (mut script, mut truth) = (String::new(), String::from("frame,label\n"));
    while let Some(next) = source.next_frame() {
        if args.limit.is_some_and(|l| records.len() as u64 >= l) {
            break;
        }
        let frame = match next {
            Ok(f) => f,
            Err(e) => {
                eprintln!("frame skipped: {e}");
                continue;
            }
        };
        let (w, h, gray) = host::bin_to_fit(
            frame.width as usize,
            frame.height as usize,
            frame.gray,
            seaclr_device::ram::MAX_ROI_SIDE,
        );
        let id = seaclr_device::ram::frame_id(&frame.id);
        let id = seaclr_device::console::clip(&id, MAX_ID_LEN)
            .as_bytes()
            .to_vec();
        let number = records.len() as u64 + 1;
        if let Some(t) = &frame.truth {
            let t = class_token(t);
            truth.push_str(&format!("{number},{t}\n"));
            // The device classifies what preprocessing accepts; label those.
            let mut probe = vec![0u8; 64 * 64];
            if seaclr_shared::preprocess::preprocess_gray(&gray, w, h, 64, &mut probe).is_ok() {
                let lines = operator.commands(number, &t, |c| classes.iter().any(|n| n == c));
                for line in &lines {
                    if let Some(name) = line.strip_prefix("addclass ") {
                        classes.push(name.to_string());
                    }
                    script.push_str(&format!("@{number} {line}\n"));
                }
                if !lines.is_empty() {
                    operator.acknowledged(number, &t);
                }
            }
        }
        records.push((w, h, id, gray));
    }
    let stream = encode_stream(
        records
            .iter()
            .map(|(w, h, id, px)| (*w, *h, id.as_slice(), px.as_slice())),
    )
    .map_err(|e| anyhow::anyhow!("{}: {e}", args.out.display()))?;
    std::fs::write(&args.out, &stream)
        .with_context(|| format!("{}: cannot write", args.out.display()))?;
    println!(
        "{}: {} frames ({} bytes)",
        args.out.display(),
        records.len(),
        stream.len()
    );
    if let Some(p) = &args.script {
        std::fs::write(p, &script).with_context(|| format!("{}: cannot write", p.display()))?;
        let (labelled, n) = operator.labelled();
        println!(
            "{}: the operator labels {labelled} frames of {n} classes",
            p.display()
        );
    }
    if let Some(p) = &args.truth {
        std::fs::write(p, &truth).with_context(|| format!("{}: cannot write", p.display()))?;
    }
    Ok(())
}

/// Scores a board's log against the folder labels, as `run` scores itself.
fn score_cmd(args: ScoreArgs) -> Result<()> {
    let read = |p: &Path| {
        std::fs::read_to_string(p).with_context(|| format!("{}: cannot read", p.display()))
    };
    let mut truth: BTreeMap<u64, String> = BTreeMap::new();
    for (i, line) in read(&args.truth)?.lines().enumerate().skip(1) {
        let (n, label) = line
            .split_once(',')
            .and_then(|(n, l)| Some((n.parse::<u64>().ok()?, l)))
            .with_context(|| {
                format!(
                    "{}: line {}: not `frame,label`",
                    args.truth.display(),
                    i + 1
                )
            })?;
        truth.insert(n, label.to_string());
    }
    let log = read(&args.log)?;
    let mut frames: Vec<Scored> = Vec::new();
    let mut operator = Operator::new(0);
    for line in log.lines() {
        if let Some((number, unknown, class)) = operator::parse_log_line(line) {
            frames.push(Scored {
                number,
                classified: true,
                unknown,
                class,
                truth: truth.get(&number).cloned(),
            });
        } else if let Some(rest) = line.strip_prefix("ok frame ") {
            // An acknowledged label: `ok frame N (ID) labelled 'CLASS' as ...`.
            let number = rest.split(' ').next().and_then(|n| n.parse::<u64>().ok());
            let class = rest
                .split_once(" labelled '")
                .and_then(|(_, r)| r.split_once('\''))
                .map(|(c, _)| c);
            if let (Some(n), Some(c)) = (number, class) {
                operator.acknowledged(n, c);
            }
        }
    }
    if frames.is_empty() {
        bail!("{}: no frame lines in the log", args.log.display());
    }
    let unknown = frames.iter().filter(|f| f.unknown).count();
    println!("frames: {} classified, {unknown} unknown", frames.len());
    for line in operator::accuracy_lines(&frames, &operator) {
        println!("{line}");
    }
    Ok(())
}

/// The FlowCam demo images of planktonclas 0.2.4 (Apache-2.0), fetched once with pip.
fn demo_data() -> Result<PathBuf> {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .context("no HOME or XDG_CACHE_HOME for the download cache")?
        .join("seaclr/planktonclas-0.2.4");
    let marker = cache.join(".complete");
    if marker.exists() {
        return find_demo_images(&cache);
    }
    eprintln!(
        "no --data given: downloading the FlowCam demo images of the PyPI package planktonclas 0.2.4 (Apache-2.0) once into {}",
        cache.display()
    );
    std::fs::create_dir_all(&cache)
        .with_context(|| format!("{}: cannot create cache folder", cache.display()))?;
    let status = std::process::Command::new("pip")
        .args(["download", "planktonclas==0.2.4", "--no-deps", "-d"])
        .arg(&cache)
        .status()
        .context("cannot run `pip download` (is pip installed?); pass --data DIR instead")?;
    if !status.success() {
        bail!(
            "`pip download planktonclas==0.2.4 --no-deps` failed ({status}); pass --data DIR instead"
        );
    }
    let wheel = std::fs::read_dir(&cache)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == "whl"))
        .context("pip downloaded no wheel for planktonclas 0.2.4")?;
    let status = std::process::Command::new("unzip")
        .args(["-q", "-o"])
        .arg(&wheel)
        .arg("-d")
        .arg(cache.join("wheel"))
        .status()
        .context("cannot run `unzip` on the wheel")?;
    if !status.success() {
        bail!("{}: unzip failed", wheel.display());
    }
    std::fs::write(&marker, b"ok")?;
    find_demo_images(&cache)
}

/// The folder inside the unpacked wheel whose class subfolders hold the demo images.
fn find_demo_images(cache: &Path) -> Result<PathBuf> {
    let dir = cache.join("wheel/planktonclas/resources/demo-images");
    if dir.is_dir() {
        Ok(dir)
    } else {
        bail!(
            "{}: not found in the unpacked planktonclas wheel (delete {} to download again)",
            dir.display(),
            cache.display()
        )
    }
}

/// The frame source for `data`: a watched folder (`watch_idle_s`: end
/// after that many seconds without a new file), an IFCB bin, or a folder.
fn open_source(
    data: &Path,
    watch_idle_s: Option<f64>,
    order: OrderArg,
) -> Result<Box<dyn FrameSource>> {
    if let Some(idle_s) = watch_idle_s {
        let poll = Duration::from_millis(200);
        let idle_polls = (idle_s / poll.as_secs_f64()).ceil().max(1.0) as u32;
        return Ok(Box::new(WatchedFolder::new(data, poll, Some(idle_polls))?));
    }
    let is_ifcb = ["adc", "roi", "hdr"]
        .iter()
        .any(|e| data.extension().is_some_and(|x| x == *e))
        || (!data.exists() && data.with_extension("adc").exists());
    if is_ifcb {
        return Ok(Box::new(IfcbSource::open(data)?));
    }
    if !data.is_dir() {
        bail!(
            "{}: not a folder, IFCB bin or existing path",
            data.display()
        );
    }
    let order = if order == OrderArg::Path {
        Order::ByPath
    } else {
        Order::Interleaved
    };
    Ok(Box::new(FolderSource::new(data, order)?))
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Flash(a) => flash_cmd(a).map(|()| 0),
        Cmd::Run(a) => run(a),
        Cmd::Frames(a) => frames_cmd(a).map(|()| 0),
        Cmd::Score(a) => score_cmd(a).map(|()| 0),
    };
    match result {
        Ok(code) => std::process::ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Runs the buoy; returns the exit code ([`EXIT_POWER_CUT`], [`EXIT_MODEL_OFF`]).
fn run(args: RunArgs) -> Result<u8> {
    // With --json, stdout carries only the summary object; the progress
    // lines (boot, frames, console) go to stderr.
    let json = args.json;
    macro_rules! say {
        ($($t:tt)*) => {
            if json { eprintln!($($t)*) } else { println!($($t)*) }
        };
    }
    macro_rules! say_raw {
        ($($t:tt)*) => {
            if json { eprint!($($t)*) } else { print!($($t)*) }
        };
    }
    let data = match &args.data {
        Some(d) => d.clone(),
        None => demo_data()?,
    };
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("{}: cannot create output folder", args.out.display()))?;
    let flash_path = args
        .flash
        .clone()
        .unwrap_or_else(|| args.out.join("flash.img"));
    let power = match (args.cut_after_writes, args.random_cut) {
        (Some(n), _) => PowerSupply::cut_after(n),
        (None, Some(seed)) => PowerSupply::random_cut(seed, 200),
        _ => PowerSupply::steady(),
    };
    if !flash_path.exists() || args.model.model.is_some() || args.model.random_model {
        // Calibration images for a random model: the first frames of the stream.
        let mut calibration = Vec::new();
        if args.model.random_model {
            let mut src = open_source(&data, args.watch.then_some(args.idle_s), args.order)?;
            while calibration.len() < 64 {
                match src.next_frame() {
                    Some(Ok(f)) => {
                        let (w, h, g) = host::bin_to_fit(
                            f.width as usize,
                            f.height as usize,
                            f.gray,
                            args.max_roi,
                        );
                        let mut out = vec![0u8; 64 * 64];
                        if seaclr_shared::preprocess::preprocess_gray(&g, w, h, 64, &mut out)
                            .is_ok()
                        {
                            calibration.push(out);
                        }
                    }
                    Some(Err(_)) => {}
                    None => break,
                }
            }
        }
        let blob = model_bytes(&args.model, &calibration)?;
        install(&flash_path, &blob)?;
    }
    let flash = FlashFile::open(&flash_path, power)?;
    let config = Config {
        buoy_id: args.buoy_id,
        window_s: args.window_s,
        ram_budget: args.ram_kib * 1024,
    };
    let mut memory = HostMemory::new();
    let mut buoy = match memory.boot(config, flash.clone()) {
        Ok(b) => b,
        Err(e) if flash.power_cut() => {
            say!("POWER CUT during boot ({e}); reboot with the same --flash to see what survived");
            return Ok(EXIT_POWER_CUT);
        }
        Err(e @ BootError::Table(_)) => bail!("{}: {e}", flash_path.display()),
        Err(e) => return Err(anyhow::anyhow!("{e}")),
    };
    say!("boot: flash image {}", flash_path.display());
    let mut report = String::new();
    // Writing into a String cannot fail.
    let _ = buoy.boot_report(&mut report);
    say_raw!("{report}");

    let console_rx: Option<Receiver<Request>> = match args.console.as_str() {
        "none" => None,
        "stdin" => Some(console::spawn_stdin()),
        tcp if tcp.starts_with("tcp:") => {
            let port: u16 = tcp[4..]
                .parse()
                .with_context(|| format!("bad console port in '{tcp}'"))?;
            let (rx, bound) = console::spawn_tcp(port)
                .with_context(|| format!("cannot listen on 127.0.0.1:{port}"))?;
            say!("console: listening on 127.0.0.1:{bound}");
            Some(rx)
        }
        other => bail!("--console must be stdin, tcp:PORT or none, not '{other}'"),
    };
    let mut script: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    if let Some(p) = &args.script {
        let text = std::fs::read_to_string(p)
            .with_context(|| format!("{}: cannot read console script", p.display()))?;
        for line in text.lines() {
            let (at, cmd) = match line.trim().strip_prefix('@') {
                Some(rest) => {
                    let (n, cmd) = rest.split_once(' ').unwrap_or((rest, ""));
                    (
                        n.parse::<u64>().with_context(|| {
                            format!("{}: bad frame number in '{line}'", p.display())
                        })?,
                        cmd.to_string(),
                    )
                }
                None => (0, line.to_string()),
            };
            script.entry(at).or_default().push(cmd);
        }
    }

    let mut source = open_source(&data, args.watch.then_some(args.idle_s), args.order)?;
    let mut screen = Framebuffer::new(WIDTH, HEIGHT);
    let mut pngs: Vec<PathBuf> = Vec::new();
    let mut telemetry_log = Vec::new();
    let mut operator = Operator::new(args.auto_label);
    let mut results: Vec<(FrameResult, Option<String>)> = Vec::new();
    let mut skipped = 0usize;
    let started = Instant::now();
    let mut power_cut = false;
    let handle = |buoy: &mut host::HostBuoy<'_>, line: &str, echo: bool| -> Vec<String> {
        let replies = host::console_lines(buoy, line.as_bytes());
        if echo {
            say!("> {line}");
            for r in &replies {
                say!("{r}");
            }
        }
        replies
    };
    // The console is served between frames and whenever the source has
    // nothing yet, so an operator is answered while the buoy waits.
    let serve_console = |buoy: &mut host::HostBuoy<'_>, wait: Duration| {
        let Some(rx) = &console_rx else {
            std::thread::sleep(wait);
            return;
        };
        let started = Instant::now();
        let mut first = match rx.recv_timeout(wait) {
            Ok(req) => Some(req),
            // The console's input has ended (stdin closed): still wait, so
            // a watched folder's idle time is time, not a busy loop.
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                std::thread::sleep(wait.saturating_sub(started.elapsed()));
                None
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => None,
        };
        while let Some(req) = first.take().or_else(|| rx.try_recv().ok()) {
            if !req.client_connected() {
                continue;
            }
            for r in host::console_lines(buoy, &req.line) {
                let _ = req.reply.send(r);
            }
        }
    };
    for cmd in script.remove(&0).unwrap_or_default() {
        handle(&mut buoy, &cmd, true);
    }
    loop {
        if args.limit.is_some_and(|l| buoy.frames() >= l) {
            break;
        }
        let frame = match source.poll() {
            Next::End => break,
            Next::Wait(wait) => {
                serve_console(&mut buoy, wait);
                continue;
            }
            Next::Frame(Ok(f)) => f,
            Next::Frame(Err(e)) => {
                say!("frame skipped: {e}");
                skipped += 1;
                continue;
            }
        };
        if args.fps > 0.0 {
            let due = started + Duration::from_secs_f64(buoy.frames() as f64 / args.fps as f64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        // The buoy's clock: simulated from --fps, or the wall clock.
        let now_ms = if args.fps > 0.0 {
            (buoy.frames() as f64 * 1000.0 / args.fps as f64) as u64
        } else {
            started.elapsed().as_millis() as u64
        };
        let truth = frame.truth.clone();
        let (result, closed) = host::present(&mut buoy, &frame, args.max_roi, now_ms, &mut screen);
        say!("{result}");
        if args.png_every > 0 && result.number % args.png_every == 1 {
            save_png(&screen, &args.out, result.number, &mut pngs);
        }
        if let Some(report) = closed {
            buoy.class_table_update(|part| {
                let hex = Hex(part).to_string();
                say!("telemetry class table ({} bytes): {hex}", part.len());
                telemetry_log.push(hex);
            });
            let hex = Hex(&report.bytes).to_string();
            say!(
                "telemetry #{} ({} bytes): {hex}",
                report.message.sequence,
                report.bytes.len()
            );
            telemetry_log.push(hex);
        }
        let number = result.number;
        // The simulated operator: label the first N frames of each class.
        if let (Some(t), true) = (&truth, result.classification().is_some()) {
            let lines =
                operator.commands(number, t, |c| buoy.class_names().flatten().any(|n| n == c));
            let mut acknowledged = false;
            for line in lines {
                acknowledged = handle(&mut buoy, &line, true)
                    .first()
                    .is_some_and(|r| r.starts_with("ok"));
            }
            if acknowledged {
                operator.acknowledged(number, t);
            }
        }
        results.push((result, truth.map(|t| class_token(&t))));
        for cmd in script.remove(&number).unwrap_or_default() {
            handle(&mut buoy, &cmd, true);
        }
        serve_console(&mut buoy, Duration::ZERO);
        if flash.power_cut() {
            power_cut = true;
            break;
        }
    }
    if power_cut {
        let (writes, erases) = flash.operation_counts();
        say!(
            "POWER CUT after {writes} flash writes and {erases} sector erases (frame {}): the buoy stops here; reboot with the same --flash to see what survived",
            buoy.frames()
        );
        return Ok(EXIT_POWER_CUT);
    }
    buoy.class_table_update(|part| telemetry_log.push(Hex(part).to_string()));
    let last = buoy.close_window();
    telemetry_log.push(Hex(&last.bytes).to_string());
    let tele_path = args.out.join("telemetry.hex");
    std::fs::write(&tele_path, telemetry_log.join("\n") + "\n")
        .with_context(|| format!("{}: cannot write", tele_path.display()))?;
    save_png(&screen, &args.out, buoy.frames(), &mut pngs);

    // Summary.
    let classified: Vec<_> = results
        .iter()
        .filter(|(r, _)| r.classification().is_some())
        .collect();
    let unknown = classified
        .iter()
        .filter(|(r, _)| r.classification().is_some_and(|c| c.unknown))
        .count();
    // Frames the device itself refused (too big for the camera buffer,
    // preprocessing failed), as opposed to files that could not be read.
    let refused = results
        .iter()
        .filter(|(r, _)| {
            matches!(
                r.outcome,
                Outcome::BadSize | Outcome::Preprocess(_) | Outcome::Encode(_)
            )
        })
        .count();
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for (r, _) in &classified {
        if r.classification().is_some_and(|c| !c.unknown) {
            *counts
                .entry(r.class_name.as_deref().unwrap_or_default().to_string())
                .or_default() += 1;
        }
    }
    say!();
    say!("== summary ==");
    say!(
        "frames: {} ({} classified, {} unknown, {skipped} unreadable skipped, {refused} refused by the device) in {:.1} s",
        results.len(),
        classified.len(),
        unknown,
        started.elapsed().as_secs_f64()
    );
    if let Some(why) = buoy.model_problem() {
        say!("classification was OFF: {why}");
    }
    for (name, n) in &counts {
        say!("  {name:<24} {n}");
    }
    let scored: Vec<Scored> = results
        .iter()
        .map(|(r, truth)| Scored {
            number: r.number,
            classified: r.classification().is_some(),
            unknown: r.classification().is_some_and(|c| c.unknown),
            class: r.class_name.as_deref().map(str::to_string),
            truth: truth.clone(),
        })
        .collect();
    for line in operator::accuracy_lines(&scored, &operator) {
        say!("{line}");
    }
    say!(
        "labelled examples in the flash store: {}",
        buoy.labelled_examples()
    );
    say_raw!("{}", resources(&buoy, ""));
    say!(
        "telemetry: {} message(s), last {} bytes -> {} (decode: seaclr telemetry decode --data FILE|HEX)",
        telemetry_log.len(),
        last.bytes.len(),
        tele_path.display()
    );
    say!(
        "screens: {} PNGs in {}, last {}",
        pngs.len(),
        args.out.display(),
        pngs.last()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    );
    if json {
        let accuracy = |t: operator::Tally| {
            serde_json::json!({
                "correct": t.correct,
                "total": t.total,
                "fraction": t.fraction(),
            })
        };
        let last_label = operator.last_label_frame;
        let (labelled, classes) = operator.labelled();
        let operator = (last_label > 0).then(|| {
            serde_json::json!({
                "labelled_frames": labelled,
                "per_class": args.auto_label,
                "classes": classes,
                "up_to_frame": last_label,
                "accuracy_during": accuracy(operator::score(&scored, 0, last_label)),
                "accuracy_after": accuracy(operator::score(&scored, last_label, u64::MAX)),
                "chance": 1.0 / classes.max(1) as f64,
            })
        });
        let summary = serde_json::json!({
            "frames": results.len(),
            "classified": classified.len(),
            "unknown": unknown,
            "unreadable_skipped": skipped,
            "refused_by_device": refused,
            "seconds": started.elapsed().as_secs_f64(),
            "model_problem": buoy.model_problem().map(|p| p.to_string()),
            "counts": counts,
            "operator": operator,
            "labelled_examples_in_store": buoy.labelled_examples(),
            "resources": resources(&buoy, "").lines().collect::<Vec<_>>(),
            "telemetry": {
                "messages": telemetry_log.len(),
                "last_bytes": last.bytes.len(),
                "file": tele_path,
            },
            "screens": pngs,
            "flash_image": flash_path,
        });
        println!("{}", serde_json::to_string_pretty(&summary)?);
    }
    if buoy.model_problem().is_some() {
        return Ok(EXIT_MODEL_OFF);
    }
    Ok(0)
}

/// Exit code: the simulated power failed (reboot with the same flash).
const EXIT_POWER_CUT: u8 = 3;
/// Exit code: the buoy ran with classification off (no usable model).
const EXIT_MODEL_OFF: u8 = 4;

/// The device's resource report, one line per resource.
fn resources(buoy: &host::HostBuoy<'_>, prefix: &str) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = buoy.resources(&mut out, prefix);
    out
}

/// Saves the screen as `screen-<frame>.png` in `dir`.
fn save_png(screen: &Framebuffer, dir: &Path, frame: u64, pngs: &mut Vec<PathBuf>) {
    let path = dir.join(format!("screen-{frame:05}.png"));
    match screen.save_png(&path) {
        Ok(()) => pngs.push(path),
        Err(e) => eprintln!("warning: {e}"),
    }
}
