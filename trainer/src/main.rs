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
    /// Train a SimCLR encoder (seaclr-s by default) on unlabelled images.
    Train(seaclr_trainer::simclr::cli::TrainArgs),
    /// Benchmarks (`seaclr bench train`: views/s of a training step).
    #[command(subcommand)]
    Bench(seaclr_trainer::simclr::cli::BenchCommand),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Data(cmd) => seaclr_trainer::data::cli::run(cmd),
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
