//! The SeaCLR buoy simulator: the host board of the device application
//! (`seaclr_device`). The application — boot, pipeline, console protocol,
//! counting windows, screen — is the same no_std code a microcontroller
//! runs; this crate supplies simulated hardware around it: a camera (frame
//! sources), a NOR flash (an image file that survives power cuts), a
//! screen (PNG frames), a serial console (stdin or TCP) and a satellite
//! modem (telemetry lines).

pub mod console;
pub mod dev_model;
pub mod display;
pub mod flash_file;
pub mod frames;
pub mod host;
pub mod operator;
pub mod power;
