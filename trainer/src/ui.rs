//! What every `seaclr` command shares on the terminal: log levels (`-v`,
//! `-q`), progress bars, the `--model` convention, JSON output and the
//! deprecation notes of old spellings.
//!
//! Output rules: a command's result (its report, table or JSON object) goes
//! to stdout; logs and progress go to stderr. Progress bars are drawn only
//! when stderr is a terminal and `-q` is not given; log lines are printed
//! above the bars (the bars are suspended while a line is written).

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

/// Exit codes of `seaclr`, for `--help` and the README.
pub const EXIT_CODES: &str = "Exit codes (every command): 0 = success; 1 = error (unreadable \
input, bad model or data, a failed check; the reason is printed on stderr); 2 = usage error \
(unknown command or flag, missing or invalid argument). `seaclr train` also: 130 = stopped by \
SIGINT (Ctrl-C) and 143 = by SIGTERM, after writing a checkpoint (continue with --resume). \
`seaclr telemetry decode`: 1 when any line did not decode (the good ones are still printed).

Output: results on stdout (with --json: one JSON object), logs and progress bars on stderr; bars \
only when stderr is a terminal. -v = debug logs, -vv = trace, -q = warnings and errors only (no \
bars); without -v/-q, RUST_LOG (e.g. RUST_LOG=seaclr_trainer=debug) sets the filter.

--model is always a model, whatever its name: a folder (a checkpoint, or a run for its best else \
newest checkpoint) or a FloatEncoder .json is a float model; any other file is an int8 blob \
(.seaclr, checked). Commands that need one kind say so and refuse the other. Data is always \
--data.";

static QUIET: AtomicBool = AtomicBool::new(false);
static BARS: OnceLock<MultiProgress> = OnceLock::new();

/// All progress bars live here, so log lines can be printed above them.
fn bars() -> &'static MultiProgress {
    BARS.get_or_init(MultiProgress::new)
}

/// True after `-q`: no progress bars.
pub fn quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// Installs the log subscriber: `-q` warnings and errors only, default info
/// for SeaCLR's own crates (warnings for dependencies), `-v` debug, `-vv`
/// trace. Without `-v`/`-q`, a set `RUST_LOG` decides. Logs go to stderr.
/// Calling it twice keeps the first setting.
pub fn init_logging(verbose: u8, quiet: bool) {
    use tracing_subscriber::EnvFilter;
    QUIET.store(quiet, Ordering::Relaxed);
    let filter = match (quiet, verbose) {
        (true, _) => EnvFilter::new("warn"),
        (false, 0) => EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| EnvFilter::new("warn,seaclr=info,seaclr_trainer=info")),
        (false, 1) => EnvFilter::new("info,seaclr=debug,seaclr_trainer=debug"),
        (false, _) => EnvFilter::new("trace"),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| BarAwareStderr)
        .with_ansi(std::io::stderr().is_terminal());
    // Already installed (tests, a second call): keep it.
    let _ = if verbose > 0 {
        builder
            .with_target(true)
            .with_timer(tracing_subscriber::fmt::time::uptime())
            .try_init()
    } else {
        builder.event_format(PlainFormat).try_init()
    };
}

/// Log lines as a command-line tool prints them: info as plain text,
/// others prefixed `warning: `, `error: `, `debug: `, `trace: `.
struct PlainFormat;

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for PlainFormat
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let prefix = match *event.metadata().level() {
            tracing::Level::ERROR => "error: ",
            tracing::Level::WARN => "warning: ",
            tracing::Level::INFO => "",
            tracing::Level::DEBUG => "debug: ",
            tracing::Level::TRACE => "trace: ",
        };
        write!(writer, "{prefix}")?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// Writes log lines to stderr with the progress bars moved out of the way.
struct BarAwareStderr;

impl std::io::Write for BarAwareStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        bars().suspend(|| std::io::stderr().write_all(buf))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// A progress bar of `total` items, e.g. `progress(n, "embedding")`; hidden
/// when stderr is not a terminal or after `-q`. Call `finish_and_clear` (or
/// drop it) when done.
pub fn progress(total: usize, what: &str) -> ProgressBar {
    if quiet() {
        return ProgressBar::hidden();
    }
    let bar = bars().add(ProgressBar::new(total as u64));
    bar.set_style(
        ProgressStyle::with_template(
            "{msg:>12} [{bar:30}] {human_pos}/{human_len} [{elapsed_precise}<{eta_precise}]",
        )
        .expect("static template")
        .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}

/// A spinner with elapsed time for a step whose length is unknown (e.g.
/// listing a folder, calibrating); same visibility rules as [`progress`].
pub fn spinner(what: &str) -> ProgressBar {
    if quiet() {
        return ProgressBar::hidden();
    }
    let bar = bars().add(ProgressBar::new_spinner());
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} [{elapsed_precise}]")
            .expect("static template"),
    );
    bar.set_message(what.to_string());
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// A `seaclr` progress bar for code that makes its own (e.g. training):
/// registered with the log writer, hidden after `-q`.
pub fn add_bar(bar: ProgressBar) -> ProgressBar {
    if quiet() {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        return bar;
    }
    bars().add(bar)
}

/// Images decoded per progress step by [`load`].
const LOAD_CHUNK: usize = 256;

/// Lists the dataset at `path` (any layout `seaclr data` reads) and decodes
/// it to `size x size` with a progress bar: [`crate::data::load`] with
/// progress. Unreadable files are in the result's `skipped`.
pub fn load(path: &Path, size: usize) -> Result<crate::data::Loaded> {
    let listing = spinner(&format!("listing {}", path.display()));
    let catalog = crate::data::scan(path)?;
    listing.finish_and_clear();
    load_catalog(&catalog, size, "decoding")
}

/// [`load`] for one group (and optionally one subset) of a split manifest:
/// [`crate::data::load_split`] with progress.
pub fn load_split(
    data_root: &Path,
    split_csv: &Path,
    group: crate::data::Group,
    subset: Option<crate::data::Subset>,
    size: usize,
) -> Result<crate::data::Loaded> {
    let catalog = crate::data::scan_split(data_root, split_csv, group, subset)?;
    load_catalog(&catalog, size, "decoding")
}

/// Decodes a listed catalog with a progress bar (same result as
/// `Catalog::load`).
pub fn load_catalog(
    catalog: &crate::data::Catalog,
    size: usize,
    what: &str,
) -> Result<crate::data::Loaded> {
    let total = catalog.items.len();
    let bar = progress(total, what);
    let mut all = crate::data::Loaded::default();
    let mut done = 0;
    catalog.for_each_chunk(size, LOAD_CHUNK, |chunk| {
        all.records.extend(chunk.records);
        all.skipped.extend(chunk.skipped);
        done = (done + LOAD_CHUNK).min(total);
        bar.set_position(done as u64);
        Ok(())
    })?;
    bar.finish_and_clear();
    tracing::debug!(
        "decoded {} images, skipped {} inputs",
        all.records.len(),
        all.skipped.len()
    );
    Ok(all)
}

/// Runs `f` over `0..items` in ranges of `chunk`, concatenating the results,
/// with a progress bar: e.g. embedding many images.
pub fn in_chunks<T>(
    items: usize,
    chunk: usize,
    what: &str,
    mut f: impl FnMut(std::ops::Range<usize>) -> Result<Vec<T>>,
) -> Result<Vec<T>> {
    let bar = progress(items, what);
    let mut out = Vec::with_capacity(items);
    let mut start = 0;
    while start < items {
        let end = (start + chunk.max(1)).min(items);
        out.extend(f(start..end)?);
        bar.set_position(end as u64);
        start = end;
    }
    bar.finish_and_clear();
    Ok(out)
}

/// Images embedded per progress step.
pub const EMBED_CHUNK: usize = 128;

/// Prints `value` as one JSON object on stdout (pretty, one trailing newline).
pub fn print_json<T: serde::Serialize>(value: &T) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// The kind of model a `--model` path holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelKind {
    /// An int8 model blob (`.seaclr`), run by the edge engine.
    Int8,
    /// A float model: a training checkpoint (or run) folder, or a
    /// FloatEncoder `.json`.
    Float,
}

/// Tells an int8 blob from a float model by what the path is, not by its
/// name: a folder (checkpoint or run), a `.json` (FloatEncoder) or a
/// checkpoint's `model.bpk` is a float model; any other file is read as an
/// int8 blob, whose parser then checks magic, lengths and CRCs and names the
/// exact defect of a damaged one.
pub fn model_kind(path: &Path) -> Result<ModelKind> {
    let meta = std::fs::metadata(path).with_context(|| format!("{}", path.display()))?;
    if meta.is_dir() {
        return Ok(ModelKind::Float);
    }
    if !meta.is_file() {
        bail!("{}: not a regular file or folder", path.display());
    }
    let float_file = path.extension().is_some_and(|e| e == "json")
        || path
            .file_name()
            .is_some_and(|n| n == crate::simclr::checkpoint::MODEL_FILE);
    Ok(if float_file {
        ModelKind::Float
    } else {
        ModelKind::Int8
    })
}

/// Checks that `--model` holds an int8 blob (for commands that run the
/// device's engine).
pub fn require_int8(path: &Path) -> Result<()> {
    if model_kind(path)? == ModelKind::Float {
        bail!(
            "{}: a float model; this command needs an int8 blob (.seaclr): make one with \
             `seaclr model quantize --model {} --data DATA --out model.seaclr`",
            path.display(),
            path.display()
        );
    }
    Ok(())
}

/// Checks that `path` holds a float model (checkpoint or FloatEncoder JSON).
pub fn require_float(path: &Path, flag: &str) -> Result<()> {
    if model_kind(path)? == ModelKind::Int8 {
        bail!(
            "{}: an int8 blob; {flag} needs the float model (a checkpoint folder, a run folder or a \
             FloatEncoder .json)",
            path.display()
        );
    }
    Ok(())
}

/// Notes an old spelling still accepted: one warning line on stderr, for
/// the first old spelling of a command line only.
pub fn deprecated(old: &str, new: &str) {
    static NOTED: AtomicBool = AtomicBool::new(false);
    if !NOTED.swap(true, Ordering::Relaxed) {
        tracing::warn!("`{old}` is deprecated and will be removed: use `{new}`");
    }
}

/// The value of a flag that replaced a positional argument: the flag if
/// given, else the old positional (with a deprecation note).
pub fn flag_or_positional(
    flag: Option<PathBuf>,
    positional: Option<PathBuf>,
    command: &str,
    name: &str,
) -> Result<PathBuf> {
    match (flag, positional) {
        (Some(p), None) => Ok(p),
        (None, Some(p)) => {
            deprecated(
                &format!("{command} {}", p.display()),
                &format!("{command} {name} {}", p.display()),
            );
            Ok(p)
        }
        (Some(_), Some(_)) => bail!("give {name} once, not also as a positional argument"),
        (None, None) => bail!("{name} is required"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_kind_reads_the_content() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(model_kind(dir.path()).unwrap(), ModelKind::Float);
        let blob = dir.path().join("renamed.bin");
        let mut bytes = seaclr_shared::blob::MAGIC.to_vec();
        bytes.extend([0u8; 16]);
        std::fs::write(&blob, &bytes).unwrap();
        assert_eq!(model_kind(&blob).unwrap(), ModelKind::Int8);
        let json = dir.path().join("m.json");
        std::fs::write(&json, "{}").unwrap();
        assert_eq!(model_kind(&json).unwrap(), ModelKind::Float);
        let bpk = dir.path().join("model.bpk");
        std::fs::write(&bpk, "x").unwrap();
        assert_eq!(model_kind(&bpk).unwrap(), ModelKind::Float);
        assert!(model_kind(&dir.path().join("missing")).is_err());
        assert!(
            require_int8(&json)
                .unwrap_err()
                .to_string()
                .contains("quantize")
        );
        assert!(require_float(&blob, "--float").is_err());
    }
}
