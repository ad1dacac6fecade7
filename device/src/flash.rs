//! The buoy's flash as partitions: the redundant partition table, the model
//! slot (length and CRC checked before the engine sees a byte), and the
//! label-store region as a NOR flash of its own.
//!
//! The byte format of the table is `seaclr_shared::partition`; this module
//! does the flash operations on any `embedded-storage` NOR flash, so the
//! host tools, the host simulator and the Cortex-M board share them.

use core::fmt;
use embedded_storage::nor_flash::{
    ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};
use seaclr_edge::engine::Engine;
use seaclr_shared::blob::BlobError;
use seaclr_shared::partition::{
    Chosen, ERASE_SIZE, Layout, NoTable, TABLE_LEN, Table, TableCopy, model_crc,
};

/// Why a flash-level operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlashError<E> {
    /// The flash driver failed (power cut, bus error, NOR rule).
    Flash(E),
    /// Neither partition table copy is usable.
    NoTable(NoTable),
    /// The table describes more flash than the chip has.
    TooSmall {
        /// Bytes the table describes.
        needed: u32,
        /// Bytes the flash has.
        capacity: usize,
    },
    /// Region sizes that are zero or not whole sectors.
    BadLayout(Layout),
    /// The chip's write or erase size does not divide the table's.
    Geometry,
    /// A model larger than the model region.
    ModelTooLarge {
        /// Model bytes.
        len: usize,
        /// Region capacity.
        capacity: u32,
    },
    /// A label-store image that is not exactly the store region's size.
    StoreImageSize {
        /// Image bytes.
        len: usize,
        /// Region capacity.
        capacity: u32,
    },
    /// The model failed validation and was not installed (the installed one
    /// is untouched).
    ModelRejected(BlobError),
}

impl<E: fmt::Debug> fmt::Display for FlashError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Flash(e) => write!(f, "flash operation failed: {e:?}"),
            Self::NoTable(e) => write!(f, "{e}"),
            Self::TooSmall { needed, capacity } => write!(
                f,
                "the partition table describes {needed} bytes but the flash holds {capacity}"
            ),
            Self::BadLayout(l) => write!(
                f,
                "bad flash layout: model region {} and store region {} must be non-zero multiples of {ERASE_SIZE} bytes",
                l.model_capacity, l.store_capacity
            ),
            Self::Geometry => write!(
                f,
                "flash write/erase sizes do not divide the partition table's ({ERASE_SIZE}-byte sectors)"
            ),
            Self::ModelTooLarge { len, capacity } => write!(
                f,
                "model is {len} bytes but the model region holds {capacity}"
            ),
            Self::StoreImageSize { len, capacity } => write!(
                f,
                "label store image is {len} bytes but the label-store region is {capacity}"
            ),
            Self::ModelRejected(e) => write!(f, "model rejected, the installed model is kept: {e}"),
        }
    }
}

/// Why the installed model cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelSlotError {
    /// Nothing installed.
    Missing,
    /// The model is larger than the buffer the board maps it into.
    TooLarge {
        /// Recorded length.
        len: u32,
        /// Buffer size.
        buffer: usize,
    },
    /// The model region could not be read.
    Unreadable,
    /// Bytes do not match the recorded CRC (corrupt flash, cut install).
    CrcMismatch {
        /// Recorded CRC.
        expected: u32,
        /// CRC of the region's bytes.
        found: u32,
    },
    /// The bytes are intact but not a model this firmware can run.
    Rejected(BlobError),
}

impl fmt::Display for ModelSlotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing => write!(f, "no model installed in the model region"),
            Self::TooLarge { len, buffer } => write!(
                f,
                "model of {len} bytes does not fit the {buffer}-byte model buffer"
            ),
            Self::Unreadable => write!(f, "model region unreadable"),
            Self::CrcMismatch { expected, found } => write!(
                f,
                "model region corrupt: CRC-32 is 0x{found:08x}, the partition table says 0x{expected:08x}"
            ),
            Self::Rejected(e) => write!(f, "model rejected: {e}"),
        }
    }
}

/// Reads both table copies and picks the newest valid one.
pub fn read_table<F: ReadNorFlash>(flash: &mut F) -> Result<Chosen, FlashError<F::Error>> {
    let mut a = [0u8; TABLE_LEN];
    let mut b = [0u8; TABLE_LEN];
    flash
        .read(TableCopy::A.offset(), &mut a)
        .map_err(FlashError::Flash)?;
    flash
        .read(TableCopy::B.offset(), &mut b)
        .map_err(FlashError::Flash)?;
    let chosen = seaclr_shared::partition::choose(&a, &b).map_err(FlashError::NoTable)?;
    let needed = chosen.table.layout.total();
    if needed as usize > flash.capacity() {
        return Err(FlashError::TooSmall {
            needed,
            capacity: flash.capacity(),
        });
    }
    Ok(chosen)
}

fn check_geometry<F: NorFlash>() -> Result<(), FlashError<F::Error>> {
    if !ERASE_SIZE.is_multiple_of(F::ERASE_SIZE) || !TABLE_LEN.is_multiple_of(F::WRITE_SIZE) {
        return Err(FlashError::Geometry);
    }
    Ok(())
}

/// Erases one table copy's sector and writes `table` there.
pub fn write_table<F: NorFlash>(
    flash: &mut F,
    slot: TableCopy,
    table: &Table,
) -> Result<(), FlashError<F::Error>> {
    check_geometry::<F>()?;
    let at = slot.offset();
    flash
        .erase(at, at + ERASE_SIZE as u32)
        .map_err(FlashError::Flash)?;
    flash
        .write(at, &table.to_bytes())
        .map_err(FlashError::Flash)
}

/// Writes a fresh table (no model) to both copies; the regions are not
/// touched, so a label store already there is kept.
pub fn format<F: NorFlash>(flash: &mut F, layout: Layout) -> Result<Table, FlashError<F::Error>> {
    layout.check().map_err(|_| FlashError::BadLayout(layout))?;
    if layout.total() as usize > flash.capacity() {
        return Err(FlashError::TooSmall {
            needed: layout.total(),
            capacity: flash.capacity(),
        });
    }
    let table = Table {
        layout,
        model_len: 0,
        model_crc: 0,
        sequence: 1,
    };
    write_table(flash, TableCopy::A, &table)?;
    write_table(flash, TableCopy::B, &table)?;
    Ok(table)
}

/// Rewrites a damaged table copy from the one in use, so the next fault
/// finds two good copies. Nothing is written when both are fine.
pub fn repair_table<F: NorFlash>(
    flash: &mut F,
    chosen: &Chosen,
) -> Result<bool, FlashError<F::Error>> {
    if chosen.damaged.is_none() {
        return Ok(false);
    }
    write_table(flash, chosen.next_slot(), &chosen.table)?;
    Ok(true)
}

/// Replaces the table: the copy not in use first, then the other, so at
/// every instant one valid copy holds either the old or the new table, and
/// after both writes a fault in either copy falls back to the same table.
pub fn commit_table<F: NorFlash>(
    flash: &mut F,
    chosen: &Chosen,
    table: &Table,
) -> Result<(), FlashError<F::Error>> {
    write_table(flash, chosen.next_slot(), table)?;
    write_table(flash, chosen.from, table)
}

/// Installs `blob` as the model: it is first checked completely by the
/// engine (a model the firmware would refuse never replaces the installed
/// one), then the model region is erased and programmed, then the table
/// (both copies, see [`commit_table`]). The label store is not touched.
pub fn install_model<F: NorFlash>(
    flash: &mut F,
    blob: &[u8],
) -> Result<Table, FlashError<F::Error>> {
    check_geometry::<F>()?;
    Engine::new(blob).map_err(FlashError::ModelRejected)?;
    let chosen = read_table(flash)?;
    let layout = chosen.table.layout;
    if blob.len() > layout.model_capacity as usize {
        return Err(FlashError::ModelTooLarge {
            len: blob.len(),
            capacity: layout.model_capacity,
        });
    }
    let start = layout.model_offset();
    let used = blob.len().div_ceil(ERASE_SIZE) * ERASE_SIZE;
    flash
        .erase(start, start + used as u32)
        .map_err(FlashError::Flash)?;
    let whole = blob.len() / F::WRITE_SIZE * F::WRITE_SIZE;
    if whole > 0 {
        flash
            .write(start, &blob[..whole])
            .map_err(FlashError::Flash)?;
    }
    if whole < blob.len() {
        // The tail, padded with erased bytes to one write unit (at most 64).
        let mut tail = [0xFFu8; 64];
        let n = F::WRITE_SIZE.min(tail.len());
        tail[..blob.len() - whole].copy_from_slice(&blob[whole..]);
        flash
            .write(start + whole as u32, &tail[..n])
            .map_err(FlashError::Flash)?;
    }
    let table = chosen.table.with_model(blob);
    commit_table(flash, &chosen, &table)?;
    Ok(table)
}

/// Replaces the label-store region with `image` (a store built on the
/// host, e.g. by `seaclr fewshot build`): the region is erased and
/// programmed in full. The caller checks that the image mounts first; a
/// cut while this runs leaves a store that mount either recovers or
/// formats, so install label images on the bench, not in the field.
pub fn install_label_store<F: NorFlash>(
    flash: &mut F,
    layout: &Layout,
    image: &[u8],
) -> Result<(), FlashError<F::Error>> {
    check_geometry::<F>()?;
    if image.len() != layout.store_capacity as usize || !image.len().is_multiple_of(F::WRITE_SIZE) {
        return Err(FlashError::StoreImageSize {
            len: image.len(),
            capacity: layout.store_capacity,
        });
    }
    let start = layout.store_offset();
    flash
        .erase(start, start + layout.store_capacity)
        .map_err(FlashError::Flash)?;
    // Erased pages need no programming; skipping them keeps the image's
    // erased tail erased, so the store can append there.
    for (i, page) in image.chunks(ERASE_SIZE).enumerate() {
        if page.iter().all(|&b| b == 0xFF) {
            continue;
        }
        flash
            .write(start + (i * ERASE_SIZE) as u32, page)
            .map_err(FlashError::Flash)?;
    }
    Ok(())
}

/// Reads the installed model into `buffer` (what memory-mapped flash would
/// show) and checks its length and CRC against the table.
pub fn read_model<'b, F: ReadNorFlash>(
    flash: &mut F,
    table: &Table,
    buffer: &'b mut [u8],
) -> Result<&'b [u8], ModelSlotError> {
    let len = table.model_len as usize;
    if len == 0 {
        return Err(ModelSlotError::Missing);
    }
    if len > buffer.len() {
        return Err(ModelSlotError::TooLarge {
            len: table.model_len,
            buffer: buffer.len(),
        });
    }
    let bytes = &mut buffer[..len];
    flash
        .read(table.layout.model_offset(), bytes)
        .map_err(|_| ModelSlotError::Unreadable)?;
    let found = model_crc(bytes);
    if found != table.model_crc {
        return Err(ModelSlotError::CrcMismatch {
            expected: table.model_crc,
            found,
        });
    }
    Ok(bytes)
}

/// A window onto part of a NOR flash (offsets relative to its start), so
/// the label store owns its region and cannot reach the rest.
pub struct Region<F> {
    flash: F,
    start: u32,
    len: u32,
}

impl<F: NorFlash> Region<F> {
    /// The label-store region of `layout` on `flash`.
    pub fn store(flash: F, layout: &Layout) -> Self {
        Self {
            flash,
            start: layout.store_offset(),
            len: layout.store_capacity,
        }
    }

    /// The whole flash back.
    pub fn into_inner(self) -> F {
        self.flash
    }

    /// The whole flash, borrowed.
    pub fn inner(&self) -> &F {
        &self.flash
    }

    fn bounds(&self, offset: u32, len: usize) -> Result<u32, RegionError<F::Error>> {
        match (offset as usize).checked_add(len) {
            Some(end) if end <= self.len as usize => Ok(self.start + offset),
            _ => Err(RegionError::OutOfBounds),
        }
    }
}

/// A region operation error: outside the region, or the flash's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegionError<E> {
    /// Outside the region.
    OutOfBounds,
    /// The underlying flash failed.
    Flash(E),
}

impl<E: NorFlashError> NorFlashError for RegionError<E> {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            Self::OutOfBounds => NorFlashErrorKind::OutOfBounds,
            Self::Flash(e) => e.kind(),
        }
    }
}

impl<F: NorFlash> ErrorType for Region<F> {
    type Error = RegionError<F::Error>;
}

impl<F: NorFlash> ReadNorFlash for Region<F> {
    const READ_SIZE: usize = F::READ_SIZE;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        let at = self.bounds(offset, bytes.len())?;
        self.flash.read(at, bytes).map_err(RegionError::Flash)
    }

    fn capacity(&self) -> usize {
        self.len as usize
    }
}

impl<F: NorFlash> NorFlash for Region<F> {
    const WRITE_SIZE: usize = F::WRITE_SIZE;
    const ERASE_SIZE: usize = F::ERASE_SIZE;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        if from > to {
            return Err(RegionError::OutOfBounds);
        }
        let at = self.bounds(from, (to - from) as usize)?;
        self.flash
            .erase(at, at + (to - from))
            .map_err(RegionError::Flash)
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        let at = self.bounds(offset, bytes.len())?;
        self.flash.write(at, bytes).map_err(RegionError::Flash)
    }
}
