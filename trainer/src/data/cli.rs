//! `seaclr data ...` subcommands.

/// Data subcommands.
#[derive(clap::Subcommand)]
pub enum DataCommand {
    /// Counts images and classes.
    Stats {
        /// Dataset path.
        path: std::path::PathBuf,
    },
}

/// Runs a data subcommand.
pub fn run(cmd: DataCommand) -> anyhow::Result<()> {
    match cmd {
        DataCommand::Stats { path } => anyhow::bail!("{}: not implemented", path.display()),
    }
}
