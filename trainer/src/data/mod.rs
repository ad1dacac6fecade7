//! Data ingestion: image folders, IFCB raw bins and manifest CSVs.

pub mod cli;
