//! The contract shared by the SeaCLR trainer (host) and the device (edge):
//! what the encoder sees (preprocessing), how a model travels (the blob),
//! how labels are stored.
#![no_std]
#![deny(missing_docs, unsafe_code)]

#[cfg(any(test, feature = "std"))]
extern crate std;

pub mod blob;
#[cfg(feature = "image")]
pub mod decode;
pub mod frame_stream;
pub mod hex;
pub mod ifcb;
pub mod labels;
pub mod partition;
pub mod preprocess;
pub mod telemetry;
#[doc(hidden)]
pub mod testing;
#[cfg(any(test, feature = "std"))]
pub mod walk;
