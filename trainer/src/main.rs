//! `seaclr`: the SeaCLR host command line.
//!
//! Layout: `seaclr [-v|-vv|-q] <command>`. Commands are grouped by what they
//! act on (`data`, `model`, `fewshot`, `telemetry`); the old top-level
//! spellings (`seaclr quantize`, `inspect`, `verify`, `calibrate-threshold`)
//! still work, hidden, with a deprecation note on stderr.

use clap::{Parser, Subcommand};
use seaclr_trainer::{data, eval, fewshot, interop, quant, simclr, ui};

/// SeaCLR: self-supervised plankton embeddings, from workstation to buoy.
#[derive(Parser)]
#[command(name = "seaclr", version, about, long_about = None, after_help = ui::EXIT_CODES)]
struct Cli {
    /// More logs on stderr: -v debug, -vv trace.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Only warnings and errors on stderr, no progress bars.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Inspect, preview and split image data (folders, IFCB bins, manifests).
    #[command(subcommand)]
    Data(data::cli::DataCommand),
    /// Train a SimCLR encoder (seaclr-s by default) on unlabelled images.
    Train(simclr::cli::TrainArgs),
    /// Benchmarks (`seaclr bench train`: views/s of a training step).
    #[command(subcommand)]
    Bench(simclr::cli::BenchCommand),
    /// Writes one embedding per image: CSV (`path,label,e0,...`) or NumPy `.npy` (`--format npy`).
    Embed(EmbedCommandArgs),
    /// Few-shot transfer, baselines, distances, maps and images: report.html + metrics.json.
    Eval(eval::cli::EvalArgs),
    /// Models: quantize a float checkpoint to an int8 blob, inspect, verify, export to ONNX.
    #[command(subcommand)]
    Model(ModelCommand),
    /// Few-shot label stores for the device (build, inspect, check, calibrate-threshold).
    #[command(subcommand)]
    Fewshot(fewshot::cli::FewshotCommand),
    /// EcoTaxa TSV: labels in (label store, manifest), predictions and embeddings out.
    #[command(subcommand)]
    Ecotaxa(interop::cli::EcotaxaCommand),
    /// Decode buoy telemetry (postcard + CRC, one Iridium SBD message each).
    #[command(subcommand)]
    Telemetry(TelemetryCommand),

    // Old spellings, kept for scripts: hidden, each prints a deprecation note.
    /// Deprecated: `seaclr model quantize`.
    #[command(hide = true)]
    Quantize(quant::cli::QuantizeArgs),
    /// Deprecated: `seaclr model inspect`.
    #[command(hide = true)]
    Inspect(quant::cli::InspectArgs),
    /// Deprecated: `seaclr model verify`.
    #[command(hide = true)]
    Verify(quant::cli::VerifyArgs),
    /// Deprecated: `seaclr fewshot calibrate-threshold`.
    #[command(hide = true)]
    CalibrateThreshold(fewshot::cli::CalibrateArgs),
}

/// `seaclr model ...`: everything that makes, describes or converts a model.
#[derive(Subcommand)]
enum ModelCommand {
    /// Quantize a float checkpoint to an int8 model blob (`.seaclr`).
    Quantize(quant::cli::QuantizeArgs),
    /// Describe a model blob: layers, parameter bytes, MACs, arena, CRC, budgets.
    Inspect(quant::cli::InspectArgs),
    /// Compare an int8 blob with the float model it came from, on images.
    Verify(quant::cli::VerifyArgs),
    /// Export to ONNX: an int8 blob as a QDQ graph, a float checkpoint as a float graph.
    Export(interop::cli::ModelExportArgs),
}

/// `seaclr embed`: the evaluation's arguments plus the output format.
#[derive(clap::Args)]
struct EmbedCommandArgs {
    #[command(flatten)]
    embed: eval::cli::EmbedArgs,
    #[command(flatten)]
    format: interop::cli::EmbedFormatArgs,
}

#[derive(Subcommand)]
enum TelemetryCommand {
    /// Decode a message: a file (raw bytes or hex lines) or hex on the command line.
    #[command(
        long_about = "Decodes buoy telemetry: a file holding one raw message (first byte 0xc1), a \
        text file with one hex message per line (the buoy's telemetry.hex), or hex on the command \
        line. Every line of a file is decoded on its own: the good ones are described on stdout, \
        each bad one is reported on stderr with its line number and reason.",
        after_help = "Exit codes: 0 = every message decoded; 1 = a bad line or message (the good \
        lines are still printed) or an unreadable input; 2 = usage error."
    )]
    Decode(DecodeArgs),
}

#[derive(clap::Args)]
struct DecodeArgs {
    /// Telemetry: a file (one raw message, or hex lines like the buoy's
    /// telemetry.hex) or hex text.
    #[arg(long, value_name = "FILE_OR_HEX", required_unless_present = "message")]
    data: Option<String>,
    /// Old spelling of --data.
    #[arg(hide = true, conflicts_with = "data")]
    message: Option<String>,
    /// Class names by index, comma separated (default: from the buoy's
    /// class table in the file).
    #[arg(long, value_delimiter = ',')]
    classes: Vec<String>,
    /// Print one JSON object (input, messages with their line, bytes, fields
    /// and class_names, bad_lines with line and reason) instead of text. Bad
    /// lines still go to stderr and still make the exit code 1.
    #[arg(long)]
    json: bool,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    ui::init_logging(cli.verbose, cli.quiet);
    let result = match cli.command {
        Command::Data(cmd) => data::cli::run(cmd),
        Command::Train(args) => simclr::cli::run_train(args),
        Command::Bench(cmd) => simclr::cli::run_bench(cmd),
        Command::Embed(args) => interop::cli::run_embed(args.embed, args.format),
        Command::Eval(args) => eval::cli::run_eval(args),
        Command::Model(cmd) => run_model(cmd),
        Command::Fewshot(cmd) => fewshot::cli::run(cmd),
        Command::Ecotaxa(cmd) => interop::cli::run_ecotaxa(cmd),
        Command::Telemetry(TelemetryCommand::Decode(args)) => decode_telemetry(args),
        Command::Quantize(args) => {
            ui::deprecated("seaclr quantize", "seaclr model quantize");
            run_model(ModelCommand::Quantize(args))
        }
        Command::Inspect(args) => {
            ui::deprecated("seaclr inspect", "seaclr model inspect");
            run_model(ModelCommand::Inspect(args))
        }
        Command::Verify(args) => {
            ui::deprecated("seaclr verify", "seaclr model verify");
            run_model(ModelCommand::Verify(args))
        }
        Command::CalibrateThreshold(args) => {
            ui::deprecated(
                "seaclr calibrate-threshold",
                "seaclr fewshot calibrate-threshold",
            );
            fewshot::cli::run_calibrate(args)
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            if let Some(interrupted) = e.downcast_ref::<simclr::cli::Interrupted>() {
                eprintln!("{interrupted}");
                return std::process::ExitCode::from(interrupted.exit_code());
            }
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Runs a `seaclr model` subcommand.
fn run_model(cmd: ModelCommand) -> anyhow::Result<()> {
    match cmd {
        ModelCommand::Quantize(args) => quant::cli::run_quantize(args),
        ModelCommand::Inspect(args) => quant::cli::run_inspect(args),
        ModelCommand::Verify(args) => quant::cli::run_verify(args),
        ModelCommand::Export(args) => interop::cli::run_model_export(args),
    }
}

/// `seaclr telemetry decode`: good messages on stdout, bad lines on stderr.
fn decode_telemetry(args: DecodeArgs) -> anyhow::Result<()> {
    let message = match (args.data, args.message) {
        (Some(m), _) => m,
        (None, Some(m)) => {
            ui::deprecated(
                &format!("seaclr telemetry decode {m}"),
                &format!("seaclr telemetry decode --data {m}"),
            );
            m
        }
        (None, None) => anyhow::bail!("--data is required"),
    };
    let report = seaclr_shared::telemetry::host::decode_report(&message, &args.classes)
        .map_err(anyhow::Error::msg)?;
    if args.json {
        let messages: Vec<serde_json::Value> = report
            .decoded
            .iter()
            .map(|d| {
                let mut m = serde_json::to_value(&d.message).unwrap_or_default();
                if let Some(obj) = m.as_object_mut() {
                    obj.insert("line".into(), d.line.into());
                    obj.insert("bytes".into(), d.bytes.into());
                    obj.insert("class_names".into(), d.class_names.clone().into());
                }
                m
            })
            .collect();
        let bad: Vec<serde_json::Value> = report
            .bad_lines
            .iter()
            .map(|b| serde_json::json!({"line": b.line, "reason": b.reason}))
            .collect();
        ui::print_json(&serde_json::json!({
            "input": message,
            "messages": messages,
            "bad_lines": bad,
        }))?;
    } else {
        print!("{}", report.text);
    }
    for bad in &report.bad_lines {
        eprintln!("{message}: line {}: {}", bad.line, bad.reason);
    }
    if !report.bad_lines.is_empty() {
        anyhow::bail!(
            "{message}: {} line(s) could not be decoded, {} message(s) decoded",
            report.bad_lines.len(),
            report.messages
        );
    }
    Ok(())
}
