//! `seaclr`: the SeaCLR host command line.

use clap::{Parser, Subcommand};
use seaclr_trainer::{data, eval, fewshot, quant, simclr};

/// SeaCLR: self-supervised plankton embeddings, from workstation to buoy.
#[derive(Parser)]
#[command(name = "seaclr", version, about, long_about = None)]
struct Cli {
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
    /// Writes one embedding per image to a CSV (`path,label,e0,...`).
    Embed(eval::cli::EmbedArgs),
    /// Few-shot transfer, baselines, distances, maps and images: report.html + metrics.json.
    Eval(eval::cli::EvalArgs),
    /// Quantize a float model to an int8 model blob (`.seaclr`).
    Quantize(quant::cli::QuantizeArgs),
    /// Describe a model blob: layers, parameter bytes, MACs, arena, CRC, budgets.
    Inspect(quant::cli::InspectArgs),
    /// Compare an int8 blob with its float model on images.
    Verify(quant::cli::VerifyArgs),
    /// Few-shot label store images for the device (build, inspect).
    #[command(subcommand)]
    Fewshot(fewshot::cli::FewshotCommand),
    /// Pick the open-set "unknown" threshold from labelled data and store it.
    CalibrateThreshold(fewshot::cli::CalibrateArgs),
    /// Decode buoy telemetry (postcard + CRC, one Iridium SBD message each).
    #[command(subcommand)]
    Telemetry(TelemetryCommand),
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
        lines are still printed) or an unreadable input."
    )]
    Decode {
        /// File or hex text.
        message: String,
        /// Class names by index, comma separated.
        #[arg(long, value_delimiter = ',')]
        classes: Vec<String>,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Data(cmd) => data::cli::run(cmd),
        Command::Train(args) => simclr::cli::run_train(args),
        Command::Bench(cmd) => simclr::cli::run_bench(cmd),
        Command::Embed(args) => eval::cli::run_embed(args),
        Command::Eval(args) => eval::cli::run_eval(args),
        Command::Quantize(args) => quant::cli::run_quantize(args),
        Command::Inspect(args) => quant::cli::run_inspect(args),
        Command::Verify(args) => quant::cli::run_verify(args),
        Command::Fewshot(cmd) => fewshot::cli::run(cmd),
        Command::CalibrateThreshold(args) => fewshot::cli::run_calibrate(args),
        Command::Telemetry(TelemetryCommand::Decode { message, classes }) => {
            decode_telemetry(&message, &classes)
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

/// `seaclr telemetry decode`: good messages on stdout, bad lines on stderr.
fn decode_telemetry(message: &str, classes: &[String]) -> anyhow::Result<()> {
    let report = seaclr_shared::telemetry::host::decode_report(message, classes)
        .map_err(anyhow::Error::msg)?;
    print!("{}", report.text);
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
