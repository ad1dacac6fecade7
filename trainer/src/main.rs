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
    /// Few-shot label store images for the device (build, inspect).
    #[command(subcommand)]
    Fewshot(seaclr_trainer::fewshot::cli::FewshotCommand),
    /// Pick the open-set "unknown" threshold from labelled data and store it.
    CalibrateThreshold(seaclr_trainer::fewshot::cli::CalibrateArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Data(cmd) => seaclr_trainer::data::cli::run(cmd),
        Command::Fewshot(cmd) => seaclr_trainer::fewshot::cli::run(cmd),
        Command::CalibrateThreshold(args) => seaclr_trainer::fewshot::cli::run_calibrate(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
