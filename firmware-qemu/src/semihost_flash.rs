//! A NOR flash backed by a host file over semihosting, for the label store
//! (`seaclr_edge::store::LabelStore`) and later the model slot.
//!
//! NOR rules, as the host simulator's flash file: erase sets whole
//! [`ERASE_SIZE`] sectors to `0xFF`; writes are [`WRITE_SIZE`]-aligned and
//! may only clear bits (a 0 -> 1 write is refused with
//! [`FlashError::NeedsErase`]). Reads come from a RAM mirror (the file is
//! read once at open); every erase and write goes **through to the file
//! before it returns**, sector by sector and (with
//! [`SemihostFlash::set_word_by_word`]) word by word, so QEMU killed in the
//! middle of an operation leaves exactly what real flash would: every
//! completed operation, and a prefix of the interrupted one.
//!
//! A missing file is created `0xFF`-filled (blank flash) at the requested
//! size; an existing file of another size is refused.

use crate::semihost::{HostError, HostFile, Mode};
use crate::statics::Slot;
use embedded_storage::nor_flash::{
    ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};

/// Smallest programmable unit (a 32-bit word).
pub const WRITE_SIZE: usize = 4;
/// Smallest erasable unit (a 4 KiB sector).
pub const ERASE_SIZE: usize = 4096;
/// Busy-wait after each word in word-by-word mode (a NOR word program
/// takes time; a power cut then lands inside a write most of the time).
pub const PROGRAM_DELAY_CYCLES: u32 = 20_000;
/// Largest flash this model holds (its RAM mirror is static).
pub const MAX_CAPACITY: usize = 2 * 1024 * 1024;

static MIRROR: Slot<[u8; MAX_CAPACITY]> = Slot::new();

/// A flash operation error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlashError {
    /// Offset or length not a multiple of the write/erase size.
    NotAligned,
    /// Outside the flash.
    OutOfBounds,
    /// A write would set a 0 bit to 1 (erase first); flash-relative offset.
    NeedsErase {
        /// The first offending byte.
        offset: u32,
    },
    /// The host file could not be written or read.
    Host(HostError),
}

impl core::fmt::Display for FlashError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NotAligned => write!(f, "not aligned to the write/erase size"),
            Self::OutOfBounds => write!(f, "out of the flash's bounds"),
            Self::NeedsErase { offset } => write!(
                f,
                "write at offset {offset} would set a 0 bit to 1 (erase first)"
            ),
            Self::Host(e) => write!(f, "flash file: {e}"),
        }
    }
}

impl NorFlashError for FlashError {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            Self::NotAligned => NorFlashErrorKind::NotAligned,
            Self::OutOfBounds => NorFlashErrorKind::OutOfBounds,
            _ => NorFlashErrorKind::Other,
        }
    }
}

impl From<HostError> for FlashError {
    fn from(e: HostError) -> Self {
        Self::Host(e)
    }
}

/// Why the flash file could not be opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenError {
    /// Capacity 0, above [`MAX_CAPACITY`] or not whole sectors.
    Capacity(usize),
    /// The mirror is already in use (one flash per firmware run).
    InUse,
    /// The file exists with another size.
    WrongSize {
        /// Its size.
        found: usize,
        /// The size asked for.
        expected: usize,
    },
    /// A semihosting call failed.
    Host(HostError),
}

impl core::fmt::Display for OpenError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Capacity(c) => write!(
                f,
                "capacity {c} is not 1..={MAX_CAPACITY} bytes of whole {ERASE_SIZE}-byte sectors"
            ),
            Self::InUse => write!(f, "the flash model is already open"),
            Self::WrongSize { found, expected } => write!(
                f,
                "flash file has {found} bytes, this flash is {expected} (delete it to start blank)"
            ),
            Self::Host(e) => write!(f, "flash file: {e}"),
        }
    }
}

impl From<HostError> for OpenError {
    fn from(e: HostError) -> Self {
        Self::Host(e)
    }
}

/// What opening found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opened {
    /// The file existed and was loaded.
    Existing,
    /// The file was missing and was created blank.
    Created,
}

/// The NOR flash model (see the module doc).
pub struct SemihostFlash {
    file: HostFile,
    data: &'static mut [u8],
    word_by_word: bool,
    writes: u32,
    erases: u32,
}

impl SemihostFlash {
    /// Opens (or creates blank) the flash file `path` of `capacity` bytes.
    pub fn open(path: &str, capacity: usize) -> Result<(Self, Opened), OpenError> {
        if capacity == 0 || capacity > MAX_CAPACITY || !capacity.is_multiple_of(ERASE_SIZE) {
            return Err(OpenError::Capacity(capacity));
        }
        let (mut file, opened) = match HostFile::open(path, Mode::ReadWrite) {
            Ok(f) => (f, Opened::Existing),
            Err(HostError::Open) => (HostFile::open(path, Mode::Create)?, Opened::Created),
            Err(e) => return Err(e.into()),
        };
        let mirror = MIRROR.take_zeroed().ok_or(OpenError::InUse)?;
        let data = &mut mirror[..capacity];
        match opened {
            Opened::Created => {
                data.fill(0xFF);
                for sector in data.chunks(ERASE_SIZE) {
                    file.write_all(sector)?;
                }
            }
            Opened::Existing => {
                let found = file.file_len()?;
                if found != capacity {
                    return Err(OpenError::WrongSize {
                        found,
                        expected: capacity,
                    });
                }
                let mut have = 0;
                while have < capacity {
                    match file.read(&mut data[have..])? {
                        0 => return Err(HostError::Short.into()),
                        n => have += n,
                    }
                }
            }
        }
        Ok((
            Self {
                file,
                data,
                word_by_word: false,
                writes: 0,
                erases: 0,
            },
            opened,
        ))
    }

    /// Program (and persist) one word at a time, as a real NOR part does,
    /// so a kill inside a write leaves a torn record. Slower; for power-cut
    /// tests.
    pub fn set_word_by_word(&mut self, on: bool) {
        self.word_by_word = on;
    }

    /// `(writes, sector erases)` so far.
    pub fn counts(&self) -> (u32, u32) {
        (self.writes, self.erases)
    }

    fn persist(&mut self, start: usize, end: usize) -> Result<(), FlashError> {
        self.file.seek(start)?;
        self.file.write_all(&self.data[start..end])?;
        Ok(())
    }

    fn range(&self, offset: u32, len: usize) -> Result<(usize, usize), FlashError> {
        let start = offset as usize;
        let end = start.checked_add(len).ok_or(FlashError::OutOfBounds)?;
        if end > self.data.len() {
            return Err(FlashError::OutOfBounds);
        }
        Ok((start, end))
    }
}

impl ErrorType for SemihostFlash {
    type Error = FlashError;
}

impl ReadNorFlash for SemihostFlash {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), FlashError> {
        let (start, end) = self.range(offset, bytes.len())?;
        bytes.copy_from_slice(&self.data[start..end]);
        Ok(())
    }

    fn capacity(&self) -> usize {
        self.data.len()
    }
}

impl NorFlash for SemihostFlash {
    const WRITE_SIZE: usize = WRITE_SIZE;
    const ERASE_SIZE: usize = ERASE_SIZE;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), FlashError> {
        if to < from {
            return Err(FlashError::OutOfBounds);
        }
        let (start, end) = self.range(from, (to - from) as usize)?;
        if !start.is_multiple_of(ERASE_SIZE) || !end.is_multiple_of(ERASE_SIZE) {
            return Err(FlashError::NotAligned);
        }
        for sector in (start..end).step_by(ERASE_SIZE) {
            self.data[sector..sector + ERASE_SIZE].fill(0xFF);
            self.persist(sector, sector + ERASE_SIZE)?;
            self.erases += 1;
        }
        Ok(())
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), FlashError> {
        let (start, end) = self.range(offset, bytes.len())?;
        if !start.is_multiple_of(WRITE_SIZE) || !bytes.len().is_multiple_of(WRITE_SIZE) {
            return Err(FlashError::NotAligned);
        }
        if let Some(i) = bytes
            .iter()
            .zip(&self.data[start..end])
            .position(|(new, old)| new & !old != 0)
        {
            return Err(FlashError::NeedsErase {
                offset: (start + i) as u32,
            });
        }
        let step = if self.word_by_word {
            WRITE_SIZE
        } else {
            bytes.len().max(WRITE_SIZE)
        };
        for (at, chunk) in (start..end).step_by(step).zip(bytes.chunks(step)) {
            for (dst, &b) in self.data[at..at + chunk.len()].iter_mut().zip(chunk) {
                *dst &= b;
            }
            self.persist(at, at + chunk.len())?;
            if self.word_by_word {
                // A real NOR part takes tens of microseconds per word.
                cortex_m::asm::delay(PROGRAM_DELAY_CYCLES);
            }
        }
        self.writes += 1;
        Ok(())
    }
}
