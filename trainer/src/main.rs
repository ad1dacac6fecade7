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
    /// Writes one embedding per image to a CSV (`path,label,e0,...`).
    Embed(seaclr_trainer::eval::cli::EmbedArgs),
    /// Few-shot transfer, baselines, distances, maps and images: report.html + metrics.json.
    Eval(seaclr_trainer::eval::cli::EvalArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Data(cmd) => seaclr_trainer::data::cli::run(cmd),
        Command::Embed(args) => seaclr_trainer::eval::cli::run_embed(args),
        Command::Eval(args) => seaclr_trainer::eval::cli::run_eval(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
