//! Frames from the host: a frame stream file (`seaclr_shared::frame_stream`)
//! read over semihosting, one record at a time into a static buffer the
//! size of the camera's largest ROI record.

use crate::semihost::{HostError, HostFile, Mode};
use crate::statics::Slot;
use seaclr_shared::frame_stream::{Decoder, MAX_RECORD_LEN, Source, StreamError};

static RECORD: Slot<[u8; MAX_RECORD_LEN]> = Slot::new();

/// The record buffer (one per run; about 100 KiB of static RAM).
pub fn record_buffer() -> Option<&'static mut [u8; MAX_RECORD_LEN]> {
    RECORD.take_zeroed()
}

/// A host file as a frame-stream source.
pub struct HostSource(HostFile);

impl Source for HostSource {
    type Error = HostError;
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, HostError> {
        self.0.read(buf)
    }
}

/// Opens the frame stream file at `path` and checks its header.
pub fn open(path: &str) -> Result<Decoder<HostSource>, StreamError<HostError>> {
    let file = HostFile::open(path, Mode::Read).map_err(StreamError::Source)?;
    Decoder::new(HostSource(file))
}
