//! The SeaCLR buoy application, as every board runs it: boot (partition
//! table, model slot, RAM plan, label store), the per-frame pipeline
//! (preprocess -> int8 encode -> kNN head -> counts), the serial console,
//! counting windows and telemetry, and the screen.
//!
//! `#![no_std]` and without a heap: all RAM is one [`ram::DeviceRam`] the
//! board places (a `static` on a microcontroller), containers are
//! fixed-capacity, time is integer milliseconds given by the board, console
//! replies go to any `core::fmt::Write`. A board supplies the hardware:
//! a NOR flash (`embedded-storage`), a display (`embedded-graphics`
//! `DrawTarget<Color = Rgb565>`), camera frames (gray bytes written into
//! [`buoy::Buoy::roi_buffer`]), console bytes, a clock, and an uplink for
//! the [`buoy::WindowReport`]s. Boards: the host simulator
//! (`seaclr-firmware-sim`) and the Cortex-M7 image (`firmware-qemu/`).
//!
//! ```
//! use embedded_graphics::{mock_display::MockDisplay, pixelcolor::Rgb565};
//! use seaclr_device::buoy::{Buoy, Config};
//! use seaclr_device::flash;
//! use seaclr_device::ram::DeviceRam;
//! use seaclr_edge::store::mock_flash::MockFlash;
//! use seaclr_shared::partition::Layout;
//!
//! // A blank chip with a partition table and no model: the buoy boots,
//! // says why it cannot classify, and refuses label updates.
//! let layout = Layout { model_capacity: 4096, store_capacity: 8 * 4096 };
//! let mut memory = vec![0xFF; 12 * 4096];
//! let mut chip = MockFlash::<4, 4096>::new(&mut memory);
//! flash::format(&mut chip, layout).unwrap();
//! let mut ram = Box::new(DeviceRam::new());
//! let mut model = [0u8; 4096];
//! let mut buoy = Buoy::boot(Config::default(), chip, &mut model, &mut ram).unwrap();
//! assert!(buoy.model_problem().is_some());
//! let mut reply = String::new();
//! buoy.handle_line("addclass copepod", &mut reply).unwrap();
//! assert!(reply.starts_with("error:"));
//! ```
#![no_std]
#![deny(missing_docs, unsafe_code)]

#[cfg(test)]
extern crate std;

pub mod buoy;
pub mod console;
pub mod flash;
pub mod ram;
pub mod screen;

#[cfg(test)]
mod tests;
