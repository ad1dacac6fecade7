//! The SeaCLR buoy simulator: the device's own code (preprocessing, int8
//! encoder, kNN head, flash label store) driven by simulated hardware — a
//! camera (frame sources), a NOR flash (an image file), a small screen
//! (PNG frames), a serial console and a satellite modem (telemetry).

pub mod app;
pub mod console;
pub mod dev_model;
pub mod display;
pub mod edge_adapters;
pub mod flash_file;
pub mod frames;
pub mod power;
pub mod resources;
