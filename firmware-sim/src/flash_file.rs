//! The buoy's NOR flash chip, simulated as an image file.
//!
//! The file holds the whole chip, laid out by the partition table of
//! `seaclr_shared::partition` (two table copies, the model region, the
//! label-store region); `seaclr_device::flash` reads and writes that layout
//! through the [`NorFlash`] implementation here, exactly as on a board.
//!
//! Real NOR rules: erase sets whole sectors to `0xFF`, a write may only
//! clear bits (1 -> 0) and must be word-aligned. Every completed operation
//! is written through to the file before it returns, so the file is always
//! exactly the flash contents: killing the process, or a simulated power
//! cut from [`PowerSupply`], loses only the operation in flight. That
//! operation is left half done, as on real flash: an interrupted write
//! programs only a prefix of its words, an interrupted erase leaves the
//! sector partly erased.

use crate::power::{Operation, PowerSupply};
use embedded_storage::nor_flash::{
    ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};
use std::cell::RefCell;
use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::rc::Rc;

pub use seaclr_shared::partition::{ERASE_SIZE, Layout, WRITE_SIZE};

/// Errors opening, creating or updating a flash image file.
#[derive(Debug)]
pub enum FlashFileError {
    /// File system error, with the path.
    Io(PathBuf, std::io::Error),
    /// The file is not a valid flash image.
    BadImage(PathBuf, String),
    /// Region sizes are invalid.
    BadLayout(String),
    /// The model does not fit its region.
    ModelTooLarge {
        /// Model size.
        len: usize,
        /// Region capacity.
        capacity: u32,
    },
    /// A flash operation failed (power cut, rule violation).
    Flash(FlashError),
}

impl std::fmt::Display for FlashFileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Io(p, e) => write!(f, "{}: {e}", p.display()),
            Self::BadImage(p, why) => write!(f, "{}: not a usable flash image: {why}", p.display()),
            Self::BadLayout(why) => write!(f, "bad flash layout: {why}"),
            Self::ModelTooLarge { len, capacity } => {
                write!(
                    f,
                    "model is {len} bytes but the model region holds {capacity}"
                )
            }
            Self::Flash(e) => write!(f, "flash operation failed: {e}"),
        }
    }
}

impl std::error::Error for FlashFileError {}

/// A flash operation error (the chip's `NorFlash` error type).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlashError {
    /// Offset or length not a multiple of the write/erase size.
    NotAligned,
    /// Outside the region.
    OutOfBounds,
    /// A write tried to turn a 0 bit into 1 without an erase.
    NeedsErase {
        /// Region-relative offset of the first offending byte.
        offset: u32,
    },
    /// The power failed during this operation.
    PowerCut,
    /// Writing the image file failed.
    Io(String),
}

impl std::fmt::Display for FlashError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotAligned => write!(f, "not aligned to the write/erase size"),
            Self::OutOfBounds => write!(f, "out of the region's bounds"),
            Self::NeedsErase { offset } => write!(
                f,
                "write at offset {offset} would set a 0 bit to 1 (erase first)"
            ),
            Self::PowerCut => write!(f, "power cut"),
            Self::Io(e) => write!(f, "image file write failed: {e}"),
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

struct Inner {
    path: PathBuf,
    file: File,
    data: Vec<u8>,
    power: PowerSupply,
    writes: u64,
    erases: u64,
}

impl Inner {
    /// Persists `data[start..end]` to the file (write-through).
    fn persist(&mut self, start: usize, end: usize) -> Result<(), FlashError> {
        self.file
            .seek(SeekFrom::Start(start as u64))
            .and_then(|_| self.file.write_all(&self.data[start..end]))
            .map_err(|e| FlashError::Io(format!("{}: {e}", self.path.display())))
    }

    fn erase(&mut self, abs_from: usize, abs_to: usize) -> Result<(), FlashError> {
        for sector in (abs_from..abs_to).step_by(ERASE_SIZE) {
            if !self.power.begin_operation(Operation::Erase) {
                // Interrupted erase: the sector is left partly erased.
                self.data[sector..sector + ERASE_SIZE / 2].fill(0xFF);
                self.persist(sector, sector + ERASE_SIZE)?;
                return Err(FlashError::PowerCut);
            }
            self.data[sector..sector + ERASE_SIZE].fill(0xFF);
            self.erases += 1;
            self.persist(sector, sector + ERASE_SIZE)?;
        }
        Ok(())
    }

    fn write(&mut self, abs: usize, bytes: &[u8]) -> Result<(), FlashError> {
        if let Some(i) = bytes
            .iter()
            .zip(&self.data[abs..abs + bytes.len()])
            .position(|(new, old)| new & !old != 0)
        {
            return Err(FlashError::NeedsErase {
                offset: (abs + i) as u32,
            });
        }
        if !self.power.begin_operation(Operation::Write) {
            // Interrupted write: only the first half of the words got programmed,
            // and the word in flight only partly (its low bits are still 1).
            let words = bytes.len() / WRITE_SIZE;
            let done = words / 2 * WRITE_SIZE;
            for (dst, &b) in self.data[abs..abs + done].iter_mut().zip(bytes) {
                *dst &= b;
            }
            if done < bytes.len() {
                self.data[abs + done] &= bytes[done] | 0x0F;
            }
            self.persist(abs, abs + bytes.len())?;
            return Err(FlashError::PowerCut);
        }
        for (dst, &b) in self.data[abs..abs + bytes.len()].iter_mut().zip(bytes) {
            *dst &= b;
        }
        self.writes += 1;
        self.persist(abs, abs + bytes.len())
    }
}

/// An open flash image; cheap to clone (all clones share one flash).
#[derive(Clone)]
pub struct FlashFile {
    inner: Rc<RefCell<Inner>>,
}

impl FlashFile {
    /// Creates a fresh image at `path` (all `0xFF`, both table copies
    /// written, no model), replacing any file there atomically (written to
    /// a temporary, then renamed).
    pub fn create(path: &Path, layout: Layout) -> Result<Self, FlashFileError> {
        layout
            .check()
            .map_err(|e| FlashFileError::BadLayout(e.to_string()))?;
        let tmp = path.with_extension("img.tmp");
        std::fs::write(&tmp, vec![0xFFu8; layout.total() as usize])
            .map_err(|e| FlashFileError::Io(tmp.clone(), e))?;
        let mut chip = Self::open(&tmp, PowerSupply::steady())?;
        seaclr_device::flash::format(&mut chip, layout)
            .map_err(|e| FlashFileError::BadImage(tmp.clone(), e.to_string()))?;
        drop(chip);
        std::fs::rename(&tmp, path).map_err(|e| FlashFileError::Io(path.to_path_buf(), e))?;
        Self::open(path, PowerSupply::steady())
    }

    /// Opens an existing image; `power` decides when flash operations fail.
    /// The partition table is read by whoever boots from it.
    pub fn open(path: &Path, power: PowerSupply) -> Result<Self, FlashFileError> {
        let meta =
            std::fs::metadata(path).map_err(|e| FlashFileError::Io(path.to_path_buf(), e))?;
        if !meta.is_file() {
            return Err(FlashFileError::BadImage(
                path.to_path_buf(),
                "not a regular file".into(),
            ));
        }
        let data = std::fs::read(path).map_err(|e| FlashFileError::Io(path.to_path_buf(), e))?;
        if data.is_empty() || !data.len().is_multiple_of(ERASE_SIZE) {
            return Err(FlashFileError::BadImage(
                path.to_path_buf(),
                format!(
                    "{} bytes is not a whole number of {ERASE_SIZE}-byte sectors",
                    data.len()
                ),
            ));
        }
        let file = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| FlashFileError::Io(path.to_path_buf(), e))?;
        Ok(Self {
            inner: Rc::new(RefCell::new(Inner {
                path: path.to_path_buf(),
                file,
                data,
                power,
                writes: 0,
                erases: 0,
            })),
        })
    }

    /// The image file's path.
    pub fn path(&self) -> PathBuf {
        self.inner.borrow().path.clone()
    }

    /// Whether the simulated power has failed.
    pub fn power_cut(&self) -> bool {
        self.inner.borrow().power.is_cut()
    }

    /// (completed writes, completed sector erases) since opening.
    pub fn operation_counts(&self) -> (u64, u64) {
        let i = self.inner.borrow();
        (i.writes, i.erases)
    }
}

impl ErrorType for FlashFile {
    type Error = FlashError;
}

impl ReadNorFlash for FlashFile {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), FlashError> {
        let inner = self.inner.borrow();
        let o = offset as usize;
        let src = o
            .checked_add(bytes.len())
            .and_then(|end| inner.data.get(o..end))
            .ok_or(FlashError::OutOfBounds)?;
        bytes.copy_from_slice(src);
        Ok(())
    }

    fn capacity(&self) -> usize {
        self.inner.borrow().data.len()
    }
}

impl NorFlash for FlashFile {
    const WRITE_SIZE: usize = WRITE_SIZE;
    const ERASE_SIZE: usize = ERASE_SIZE;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), FlashError> {
        let (from, to) = (from as usize, to as usize);
        if from > to || to > self.capacity() {
            return Err(FlashError::OutOfBounds);
        }
        if !from.is_multiple_of(ERASE_SIZE) || !to.is_multiple_of(ERASE_SIZE) {
            return Err(FlashError::NotAligned);
        }
        self.inner.borrow_mut().erase(from, to)
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), FlashError> {
        let o = offset as usize;
        if o.checked_add(bytes.len())
            .is_none_or(|end| end > self.capacity())
        {
            return Err(FlashError::OutOfBounds);
        }
        if !o.is_multiple_of(WRITE_SIZE) || !bytes.len().is_multiple_of(WRITE_SIZE) {
            return Err(FlashError::NotAligned);
        }
        if bytes.is_empty() {
            return Ok(());
        }
        self.inner.borrow_mut().write(o, bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use seaclr_device::flash::{self, ModelSlotError};

    fn small() -> Layout {
        Layout {
            model_capacity: 4 * ERASE_SIZE as u32,
            store_capacity: 2 * ERASE_SIZE as u32,
        }
    }

    fn tmp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("seaclr-flash-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(name)
    }

    #[test]
    fn fresh_image_has_both_tables_no_model_and_erased_regions() {
        let p = tmp("fresh.img");
        let mut f = FlashFile::create(&p, small()).unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().len(), small().total() as u64);
        let chosen = flash::read_table(&mut f).unwrap();
        assert_eq!((chosen.table.layout, chosen.damaged), (small(), None));
        let mut buf = vec![0u8; 1 << 16];
        assert_eq!(
            flash::read_model(&mut f, &chosen.table, &mut buf),
            Err(ModelSlotError::Missing)
        );
        let mut region = [0u8; 64];
        f.read(small().store_offset() + 100, &mut region).unwrap();
        assert!(region.iter().all(|&b| b == 0xFF));
    }

    #[test]
    fn model_round_trips_through_the_file_and_corruption_is_detected() {
        let p = tmp("model.img");
        let mut f = FlashFile::create(&p, small()).unwrap();
        let blob = seaclr_device_test_blob();
        let table = flash::install_model(&mut f, &blob).unwrap();
        drop(f);
        let mut f = FlashFile::open(&p, PowerSupply::steady()).unwrap();
        let mut buf = vec![0u8; 1 << 16];
        assert_eq!(
            flash::read_model(&mut f, &table, &mut buf).unwrap(),
            &blob[..]
        );
        drop(f);
        // Flip one byte of the model in the file.
        let mut bytes = std::fs::read(&p).unwrap();
        bytes[small().model_offset() as usize + 123] ^= 0x40;
        std::fs::write(&p, &bytes).unwrap();
        let mut f = FlashFile::open(&p, PowerSupply::steady()).unwrap();
        let e = flash::read_model(&mut f, &table, &mut buf).unwrap_err();
        assert!(matches!(e, ModelSlotError::CrcMismatch { .. }));
        assert!(e.to_string().contains("corrupt"));
    }

    fn seaclr_device_test_blob() -> Vec<u8> {
        crate::dev_model::random_blob(1, 16, &[]).unwrap()
    }

    #[test]
    fn installing_a_model_leaves_the_store_untouched() {
        let p = tmp("untouched.img");
        let mut f = FlashFile::create(&p, small()).unwrap();
        let at = small().store_offset() + 8;
        f.write(at, &[1, 2, 3, 4]).unwrap();
        flash::install_model(&mut f, &seaclr_device_test_blob()).unwrap();
        let mut b = [0u8; 4];
        f.read(at, &mut b).unwrap();
        assert_eq!(b, [1, 2, 3, 4]);
    }

    #[test]
    fn nor_rules_are_enforced() {
        let p = tmp("rules.img");
        let mut r = FlashFile::create(&p, small()).unwrap();
        let base = small().store_offset();
        assert_eq!(r.write(base + 2, &[0; 4]), Err(FlashError::NotAligned));
        assert_eq!(r.write(base, &[0; 3]), Err(FlashError::NotAligned));
        assert_eq!(
            r.write(small().total(), &[0; 4]),
            Err(FlashError::OutOfBounds)
        );
        assert_eq!(r.erase(base, base + 100), Err(FlashError::NotAligned));
        assert_eq!(
            r.erase(base, small().total() + ERASE_SIZE as u32),
            Err(FlashError::OutOfBounds)
        );
        r.write(base, &[0b1010_1010, 0xFF, 0xFF, 0xFF]).unwrap();
        // Clearing more bits is allowed ...
        r.write(base, &[0b1000_1000, 0xFF, 0xFF, 0xFF]).unwrap();
        // ... setting one back is not, and changes nothing.
        assert_eq!(
            r.write(base, &[0b1100_1000, 0xFF, 0xFF, 0xFF]),
            Err(FlashError::NeedsErase { offset: base })
        );
        let mut b = [0u8; 1];
        r.read(base, &mut b).unwrap();
        assert_eq!(b[0], 0b1000_1000);
        r.erase(base, base + ERASE_SIZE as u32).unwrap();
        r.read(base, &mut b).unwrap();
        assert_eq!(b[0], 0xFF);
    }

    #[test]
    fn completed_writes_survive_reopen_and_cut_leaves_only_the_interrupted_words() {
        let p = tmp("cut.img");
        FlashFile::create(&p, small()).unwrap();
        let base = small().store_offset();
        let mut f = FlashFile::open(&p, PowerSupply::cut_after(2)).unwrap();
        f.write(base, &[0x11; 8]).unwrap();
        f.write(base + 8, &[0x22; 8]).unwrap();
        assert_eq!(f.write(base + 16, &[0x00; 16]), Err(FlashError::PowerCut));
        assert!(f.power_cut());
        // Dead after the cut.
        assert_eq!(f.write(base + 64, &[0x00; 4]), Err(FlashError::PowerCut));
        drop(f);
        let mut f = FlashFile::open(&p, PowerSupply::steady()).unwrap();
        let mut b = [0u8; 36];
        f.read(base, &mut b).unwrap();
        assert_eq!(&b[0..8], &[0x11; 8]);
        assert_eq!(&b[8..16], &[0x22; 8]);
        // Interrupted write: first half programmed, the next word partly.
        assert_eq!(&b[16..24], &[0x00; 8]);
        assert_eq!(b[24], 0x0F);
        assert_eq!(&b[25..36], &[0xFF; 11]);
    }

    #[test]
    fn bad_images_are_rejected_with_the_path() {
        let p = tmp("garbage.img");
        std::fs::write(&p, b"hello").unwrap();
        let e = FlashFile::open(&p, PowerSupply::steady())
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("garbage.img") && e.contains("sectors"), "{e}");
        let missing = tmp("does-not-exist.img");
        assert!(FlashFile::open(&missing, PowerSupply::steady()).is_err());
        // A whole-sector file with no table opens; booting from it names the problem.
        let p = tmp("blank.img");
        std::fs::write(&p, vec![0xFFu8; 4 * ERASE_SIZE]).unwrap();
        let mut f = FlashFile::open(&p, PowerSupply::steady()).unwrap();
        let e = flash::read_table(&mut f).unwrap_err().to_string();
        assert!(e.contains("copy A erased, copy B erased"), "{e}");
    }
}
