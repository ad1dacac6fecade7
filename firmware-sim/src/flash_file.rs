//! The buoy's NOR flash, simulated as a file laid out like a real MCU's.
//!
//! Layout (all offsets in bytes, sectors of [`ERASE_SIZE`]):
//!
//! | sector(s)          | content                                            |
//! |--------------------|----------------------------------------------------|
//! | 0                  | partition table ([`Header`], CRC-32 protected)      |
//! | model region       | the model blob, exactly as the trainer wrote it     |
//! | label-store region | owned by the label store (erased = `0xFF`)          |
//!
//! The header records the length and CRC-32 of the installed model, so a
//! corrupt or missing model is detected before the engine ever parses it.
//!
//! Each region implements [`ReadNorFlash`] and [`NorFlash`] with real NOR
//! rules: erase sets whole sectors to `0xFF`, a write may only clear bits
//! (1 -> 0) and must be word-aligned. Every completed operation is written
//! through to the file before it returns, so the file is always exactly the
//! flash contents: killing the process, or a simulated power cut from
//! [`PowerSupply`], loses only the operation in flight. That operation is
//! left half done, as on real flash: an interrupted write programs only a
//! prefix of its words, an interrupted erase leaves the sector partly erased.

use crate::power::{Operation, PowerSupply};
use embedded_storage::nor_flash::{
    ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};
use std::cell::RefCell;
use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// Smallest programmable unit (a 32-bit word, as on STM32 and nRF52 flash).
pub const WRITE_SIZE: usize = 4;
/// Smallest erasable unit (a 4 KiB sector, as on common SPI NOR and nRF52).
pub const ERASE_SIZE: usize = 4096;
/// Magic at the start of the partition table.
pub const MAGIC: [u8; 8] = *b"SCLRFLSH";
/// Partition table layout version.
pub const LAYOUT_VERSION: u32 = 1;
const HEADER_LEN: usize = 56;
const CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

/// Sizes of the flash and its regions; offsets follow from them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Model region capacity in bytes (multiple of [`ERASE_SIZE`]).
    pub model_capacity: u32,
    /// Label-store region capacity in bytes (multiple of [`ERASE_SIZE`]).
    pub store_capacity: u32,
}

impl Default for Layout {
    /// A 1 MiB flash: 4 KiB table, 636 KiB model region (the blob budget is
    /// 256 KiB), 384 KiB label store (the edge store's default region: two
    /// halves, each holding a full 1,000-example head plus a log).
    fn default() -> Self {
        Self {
            model_capacity: 636 * 1024,
            store_capacity: seaclr_edge::store::DEFAULT_REGION_SIZE as u32,
        }
    }
}

impl Layout {
    /// Offset of the model region (right after the table sector).
    pub fn model_offset(&self) -> u32 {
        ERASE_SIZE as u32
    }
    /// Offset of the label-store region (after the model region).
    pub fn store_offset(&self) -> u32 {
        self.model_offset() + self.model_capacity
    }
    /// Total flash size.
    pub fn total(&self) -> u32 {
        self.store_offset() + self.store_capacity
    }
    fn check(&self) -> Result<(), FlashFileError> {
        let e = ERASE_SIZE as u32;
        if self.model_capacity == 0
            || self.store_capacity == 0
            || !self.model_capacity.is_multiple_of(e)
            || !self.store_capacity.is_multiple_of(e)
        {
            return Err(FlashFileError::BadLayout(format!(
                "region sizes must be non-zero multiples of {ERASE_SIZE} bytes (model {}, store {})",
                self.model_capacity, self.store_capacity
            )));
        }
        Ok(())
    }
}

/// The partition table in sector 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Region sizes.
    pub layout: Layout,
    /// Bytes of model installed in the model region (0 = none).
    pub model_len: u32,
    /// CRC-32 of those bytes.
    pub model_crc: u32,
}

impl Header {
    fn to_bytes(self) -> [u8; HEADER_LEN] {
        let mut b = [0xFFu8; HEADER_LEN];
        b[0..8].copy_from_slice(&MAGIC);
        let words = [
            LAYOUT_VERSION,
            WRITE_SIZE as u32,
            ERASE_SIZE as u32,
            self.layout.total(),
            self.layout.model_offset(),
            self.layout.model_capacity,
            self.layout.store_offset(),
            self.layout.store_capacity,
            self.model_len,
            self.model_crc,
        ];
        for (i, w) in words.iter().enumerate() {
            b[8 + 4 * i..12 + 4 * i].copy_from_slice(&w.to_le_bytes());
        }
        let crc = CRC32.checksum(&b[..48]);
        b[48..52].copy_from_slice(&crc.to_le_bytes());
        b[52..56].copy_from_slice(&[0; 4]);
        b
    }

    fn from_bytes(b: &[u8]) -> Result<Self, String> {
        if b.len() < HEADER_LEN {
            return Err("file too short for a partition table".into());
        }
        if b[0..8] != MAGIC {
            return Err("no SeaCLR partition table (bad magic)".into());
        }
        let word = |i: usize| u32::from_le_bytes(b[8 + 4 * i..12 + 4 * i].try_into().unwrap());
        let stored_crc = u32::from_le_bytes(b[48..52].try_into().unwrap());
        if CRC32.checksum(&b[..48]) != stored_crc {
            return Err("partition table CRC mismatch (table corrupted)".into());
        }
        if word(0) != LAYOUT_VERSION {
            return Err(format!(
                "partition table version {} (this build reads {LAYOUT_VERSION})",
                word(0)
            ));
        }
        if word(1) != WRITE_SIZE as u32 || word(2) != ERASE_SIZE as u32 {
            return Err(format!(
                "flash geometry write {} / erase {} differs from this build's {WRITE_SIZE} / {ERASE_SIZE}",
                word(1),
                word(2)
            ));
        }
        let layout = Layout {
            model_capacity: word(5),
            store_capacity: word(7),
        };
        layout.check().map_err(|e| e.to_string())?;
        if word(3) != layout.total()
            || word(4) != layout.model_offset()
            || word(6) != layout.store_offset()
        {
            return Err("partition table offsets are inconsistent".into());
        }
        Ok(Self {
            layout,
            model_len: word(8),
            model_crc: word(9),
        })
    }
}

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

/// Why the installed model cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSlotError {
    /// Nothing installed.
    Missing,
    /// Recorded length exceeds the region.
    BadLength(u32),
    /// Bytes do not match the recorded CRC.
    CrcMismatch {
        /// Recorded CRC.
        expected: u32,
        /// CRC of the region's bytes.
        found: u32,
    },
}

impl std::fmt::Display for ModelSlotError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Missing => write!(f, "no model installed in the model region"),
            Self::BadLength(n) => write!(f, "model length {n} exceeds the model region"),
            Self::CrcMismatch { expected, found } => write!(
                f,
                "model region corrupt: CRC-32 is 0x{found:08x}, the partition table says 0x{expected:08x}"
            ),
        }
    }
}

/// A flash operation error (the region's `NorFlash` error type).
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
    header: Header,
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

    fn write(&mut self, abs: usize, bytes: &[u8], region_start: usize) -> Result<(), FlashError> {
        if let Some(i) = bytes
            .iter()
            .zip(&self.data[abs..abs + bytes.len()])
            .position(|(new, old)| new & !old != 0)
        {
            return Err(FlashError::NeedsErase {
                offset: (abs + i - region_start) as u32,
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

/// Which region of the flash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegionKind {
    /// The model blob.
    Model,
    /// The label store.
    Store,
}

impl FlashFile {
    /// Creates a fresh image at `path` (all `0xFF`, table written, no model),
    /// replacing any file there atomically (write to a temporary, then rename).
    pub fn create(path: &Path, layout: Layout) -> Result<Self, FlashFileError> {
        layout.check()?;
        let header = Header {
            layout,
            model_len: 0,
            model_crc: 0,
        };
        let mut data = vec![0xFFu8; layout.total() as usize];
        data[..HEADER_LEN].copy_from_slice(&header.to_bytes());
        let tmp = path.with_extension("img.tmp");
        std::fs::write(&tmp, &data).map_err(|e| FlashFileError::Io(tmp.clone(), e))?;
        std::fs::rename(&tmp, path).map_err(|e| FlashFileError::Io(path.to_path_buf(), e))?;
        Self::open(path, PowerSupply::steady())
    }

    /// Opens an existing image; `power` decides when flash operations fail.
    pub fn open(path: &Path, power: PowerSupply) -> Result<Self, FlashFileError> {
        let data = std::fs::read(path).map_err(|e| FlashFileError::Io(path.to_path_buf(), e))?;
        let header = Header::from_bytes(&data)
            .map_err(|why| FlashFileError::BadImage(path.to_path_buf(), why))?;
        if data.len() != header.layout.total() as usize {
            return Err(FlashFileError::BadImage(
                path.to_path_buf(),
                format!(
                    "file is {} bytes, the partition table says {}",
                    data.len(),
                    header.layout.total()
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
                header,
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

    /// The partition table.
    pub fn header(&self) -> Header {
        self.inner.borrow().header
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

    /// Installs `blob` in the model region: erase, program, then rewrite the
    /// table with its length and CRC. The label store is not touched.
    pub fn install_model(&self, blob: &[u8]) -> Result<(), FlashFileError> {
        let layout = self.header().layout;
        if blob.len() > layout.model_capacity as usize {
            return Err(FlashFileError::ModelTooLarge {
                len: blob.len(),
                capacity: layout.model_capacity,
            });
        }
        let mut region = self.region(RegionKind::Model);
        let used = blob.len().div_ceil(ERASE_SIZE) * ERASE_SIZE;
        region
            .erase(0, used as u32)
            .map_err(FlashFileError::Flash)?;
        let whole = blob.len() / WRITE_SIZE * WRITE_SIZE;
        if whole > 0 {
            region
                .write(0, &blob[..whole])
                .map_err(FlashFileError::Flash)?;
        }
        if whole < blob.len() {
            let mut tail = [0xFFu8; WRITE_SIZE];
            tail[..blob.len() - whole].copy_from_slice(&blob[whole..]);
            region
                .write(whole as u32, &tail)
                .map_err(FlashFileError::Flash)?;
        }
        self.write_header(Header {
            layout,
            model_len: blob.len() as u32,
            model_crc: CRC32.checksum(blob),
        })
    }

    fn write_header(&self, header: Header) -> Result<(), FlashFileError> {
        let mut inner = self.inner.borrow_mut();
        inner.erase(0, ERASE_SIZE).map_err(FlashFileError::Flash)?;
        inner
            .write(0, &header.to_bytes(), 0)
            .map_err(FlashFileError::Flash)?;
        inner.header = header;
        Ok(())
    }

    /// The installed model's bytes, checked against the table's length and CRC.
    pub fn model(&self) -> Result<Vec<u8>, ModelSlotError> {
        let inner = self.inner.borrow();
        let h = inner.header;
        if h.model_len == 0 {
            return Err(ModelSlotError::Missing);
        }
        if h.model_len > h.layout.model_capacity {
            return Err(ModelSlotError::BadLength(h.model_len));
        }
        let start = h.layout.model_offset() as usize;
        let bytes = &inner.data[start..start + h.model_len as usize];
        let found = CRC32.checksum(bytes);
        if found != h.model_crc {
            return Err(ModelSlotError::CrcMismatch {
                expected: h.model_crc,
                found,
            });
        }
        Ok(bytes.to_vec())
    }

    /// A NOR-flash view of one region (offsets relative to its start).
    pub fn region(&self, kind: RegionKind) -> FlashRegion {
        let layout = self.header().layout;
        let (start, len) = match kind {
            RegionKind::Model => (layout.model_offset(), layout.model_capacity),
            RegionKind::Store => (layout.store_offset(), layout.store_capacity),
        };
        FlashRegion {
            flash: self.clone(),
            start: start as usize,
            len: len as usize,
        }
    }

    /// Bytes of the label-store region that are not erased (a rough "used" figure).
    pub fn store_bytes_used(&self) -> usize {
        let inner = self.inner.borrow();
        let l = inner.header.layout;
        let region = &inner.data[l.store_offset() as usize..l.total() as usize];
        // Used = up to the last programmed word (stores append from the start of each sector).
        region
            .chunks(ERASE_SIZE)
            .map(|s| s.iter().rposition(|&b| b != 0xFF).map_or(0, |p| p + 1))
            .sum()
    }
}

/// One region as a NOR flash device.
#[derive(Clone)]
pub struct FlashRegion {
    flash: FlashFile,
    start: usize,
    len: usize,
}

impl ErrorType for FlashRegion {
    type Error = FlashError;
}

impl ReadNorFlash for FlashRegion {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), FlashError> {
        let o = offset as usize;
        if o.checked_add(bytes.len()).is_none_or(|end| end > self.len) {
            return Err(FlashError::OutOfBounds);
        }
        let inner = self.flash.inner.borrow();
        bytes.copy_from_slice(&inner.data[self.start + o..self.start + o + bytes.len()]);
        Ok(())
    }

    fn capacity(&self) -> usize {
        self.len
    }
}

impl NorFlash for FlashRegion {
    const WRITE_SIZE: usize = WRITE_SIZE;
    const ERASE_SIZE: usize = ERASE_SIZE;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), FlashError> {
        let (from, to) = (from as usize, to as usize);
        if from > to || to > self.len {
            return Err(FlashError::OutOfBounds);
        }
        if !from.is_multiple_of(ERASE_SIZE) || !to.is_multiple_of(ERASE_SIZE) {
            return Err(FlashError::NotAligned);
        }
        self.flash
            .inner
            .borrow_mut()
            .erase(self.start + from, self.start + to)
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), FlashError> {
        let o = offset as usize;
        if o.checked_add(bytes.len()).is_none_or(|end| end > self.len) {
            return Err(FlashError::OutOfBounds);
        }
        if !o.is_multiple_of(WRITE_SIZE) || !bytes.len().is_multiple_of(WRITE_SIZE) {
            return Err(FlashError::NotAligned);
        }
        if bytes.is_empty() {
            return Ok(());
        }
        self.flash
            .inner
            .borrow_mut()
            .write(self.start + o, bytes, self.start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn fresh_image_has_table_no_model_and_erased_regions() {
        let p = tmp("fresh.img");
        let f = FlashFile::create(&p, small()).unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().len(), small().total() as u64);
        assert_eq!(f.model(), Err(ModelSlotError::Missing));
        let mut r = f.region(RegionKind::Store);
        let mut buf = [0u8; 64];
        r.read(100, &mut buf).unwrap();
        assert!(buf.iter().all(|&b| b == 0xFF));
        assert_eq!(r.capacity(), 2 * ERASE_SIZE);
    }

    #[test]
    fn model_round_trips_through_the_file_and_corruption_is_detected() {
        let p = tmp("model.img");
        let f = FlashFile::create(&p, small()).unwrap();
        let blob: Vec<u8> = (0..5003u32).map(|i| (i * 7 % 251) as u8).collect();
        f.install_model(&blob).unwrap();
        drop(f);
        let f = FlashFile::open(&p, PowerSupply::steady()).unwrap();
        assert_eq!(f.model().unwrap(), blob);
        drop(f);
        // Flip one byte of the model in the file.
        let mut bytes = std::fs::read(&p).unwrap();
        bytes[ERASE_SIZE + 1234] ^= 0x40;
        std::fs::write(&p, &bytes).unwrap();
        let f = FlashFile::open(&p, PowerSupply::steady()).unwrap();
        assert!(matches!(f.model(), Err(ModelSlotError::CrcMismatch { .. })));
        assert!(f.model().unwrap_err().to_string().contains("corrupt"));
    }

    #[test]
    fn model_too_large_is_refused() {
        let p = tmp("big.img");
        let f = FlashFile::create(&p, small()).unwrap();
        let err = f.install_model(&vec![1u8; 5 * ERASE_SIZE]).unwrap_err();
        assert!(matches!(err, FlashFileError::ModelTooLarge { .. }));
    }

    #[test]
    fn installing_a_model_leaves_the_store_untouched() {
        let p = tmp("untouched.img");
        let f = FlashFile::create(&p, small()).unwrap();
        let mut store = f.region(RegionKind::Store);
        store.write(8, &[1, 2, 3, 4]).unwrap();
        f.install_model(&[9u8; 100]).unwrap();
        let mut b = [0u8; 4];
        store.read(8, &mut b).unwrap();
        assert_eq!(b, [1, 2, 3, 4]);
    }

    #[test]
    fn nor_rules_are_enforced() {
        let p = tmp("rules.img");
        let f = FlashFile::create(&p, small()).unwrap();
        let mut r = f.region(RegionKind::Store);
        assert_eq!(r.write(2, &[0; 4]), Err(FlashError::NotAligned));
        assert_eq!(r.write(0, &[0; 3]), Err(FlashError::NotAligned));
        assert_eq!(
            r.write((2 * ERASE_SIZE) as u32, &[0; 4]),
            Err(FlashError::OutOfBounds)
        );
        assert_eq!(r.erase(0, 100), Err(FlashError::NotAligned));
        assert_eq!(
            r.erase(0, 3 * ERASE_SIZE as u32),
            Err(FlashError::OutOfBounds)
        );
        r.write(0, &[0b1010_1010, 0xFF, 0xFF, 0xFF]).unwrap();
        // Clearing more bits is allowed ...
        r.write(0, &[0b1000_1000, 0xFF, 0xFF, 0xFF]).unwrap();
        // ... setting one back is not, and changes nothing.
        assert_eq!(
            r.write(0, &[0b1100_1000, 0xFF, 0xFF, 0xFF]),
            Err(FlashError::NeedsErase { offset: 0 })
        );
        let mut b = [0u8; 1];
        r.read(0, &mut b).unwrap();
        assert_eq!(b[0], 0b1000_1000);
        r.erase(0, ERASE_SIZE as u32).unwrap();
        r.read(0, &mut b).unwrap();
        assert_eq!(b[0], 0xFF);
    }

    #[test]
    fn completed_writes_survive_reopen_and_cut_leaves_only_the_interrupted_words() {
        let p = tmp("cut.img");
        FlashFile::create(&p, small()).unwrap();
        let f = FlashFile::open(&p, PowerSupply::cut_after(2)).unwrap();
        let mut r = f.region(RegionKind::Store);
        r.write(0, &[0x11; 8]).unwrap();
        r.write(8, &[0x22; 8]).unwrap();
        assert_eq!(r.write(16, &[0x00; 16]), Err(FlashError::PowerCut));
        assert!(f.power_cut());
        // Dead after the cut.
        assert_eq!(r.write(64, &[0x00; 4]), Err(FlashError::PowerCut));
        drop((r, f));
        let f = FlashFile::open(&p, PowerSupply::steady()).unwrap();
        let mut r = f.region(RegionKind::Store);
        let mut b = [0u8; 36];
        r.read(0, &mut b).unwrap();
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
        assert!(e.contains("garbage.img") && e.contains("too short"), "{e}");
        let p2 = tmp("trunc.img");
        FlashFile::create(&p2, small()).unwrap();
        let bytes = std::fs::read(&p2).unwrap();
        std::fs::write(&p2, &bytes[..bytes.len() - 10]).unwrap();
        let e = FlashFile::open(&p2, PowerSupply::steady())
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("partition table says"), "{e}");
        let mut bytes = std::fs::read(&p2).unwrap();
        bytes[20] ^= 1;
        std::fs::write(&p2, &bytes).unwrap();
        let e = FlashFile::open(&p2, PowerSupply::steady())
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("CRC"), "{e}");
        let missing = tmp("does-not-exist.img");
        assert!(FlashFile::open(&missing, PowerSupply::steady()).is_err());
    }
}
