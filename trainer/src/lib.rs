//! SeaCLR host tools: data ingestion, SimCLR training with burn, evaluation,
//! int8 quantization and few-shot store building.
//!
//! One module per concern; each has a `cli` submodule with its clap
//! arguments and a `run` function that `main.rs` dispatches to.

pub mod data;
pub mod embedder;
pub mod eval;
pub mod fewshot;
pub mod float_encoder;
pub mod interop;
pub mod quant;
pub mod simclr;
pub mod ui;
