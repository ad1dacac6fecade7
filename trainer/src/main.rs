//! `seaclr`: the SeaCLR host command line.

use clap::{Parser, Subcommand};

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
    Data(seaclr_trainer::data::cli::DataCommand),
    /// Decode buoy telemetry (postcard + CRC, one Iridium SBD message each).
    #[command(subcommand)]
    Telemetry(TelemetryCommand),
    /// Quantize a float model to an int8 model blob (`.seaclr`).
    Quantize(seaclr_trainer::quant::cli::QuantizeArgs),
    /// Describe a model blob: layers, parameter bytes, MACs, arena, CRC, budgets.
    Inspect(seaclr_trainer::quant::cli::InspectArgs),
    /// Compare an int8 blob with its float model on images.
    Verify(seaclr_trainer::quant::cli::VerifyArgs),
    /// Train a SimCLR encoder (seaclr-s by default) on unlabelled images.
    Train(seaclr_trainer::simclr::cli::TrainArgs),
    /// Benchmarks (`seaclr bench train`: views/s of a training step).
    #[command(subcommand)]
    Bench(seaclr_trainer::simclr::cli::BenchCommand),
}

#[derive(Subcommand)]
enum TelemetryCommand {
    /// Decode a message: a file (raw bytes or hex lines) or hex on the command line.
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
        Command::Data(cmd) => seaclr_trainer::data::cli::run(cmd),
        Command::Telemetry(TelemetryCommand::Decode { message, classes }) => {
            seaclr_shared::telemetry::host::decode_to_text(&message, &classes)
                .map(|text| print!("{text}"))
                .map_err(anyhow::Error::msg)
        }
        Command::Quantize(args) => seaclr_trainer::quant::cli::run_quantize(args),
        Command::Inspect(args) => seaclr_trainer::quant::cli::run_inspect(args),
        Command::Verify(args) => seaclr_trainer::quant::cli::run_verify(args),
        Command::Train(args) => seaclr_trainer::simclr::cli::run_train(args),
        Command::Bench(cmd) => seaclr_trainer::simclr::cli::run_bench(cmd),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
