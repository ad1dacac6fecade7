//! The buoy's flash partition table: where the model slot and the label
//! store live on the NOR flash, and which model is installed (length and
//! CRC-32), read by the host tools and by every board.
//!
//! ```text
//! sector 0          table copy A  (TABLE_LEN bytes, then erased)
//! sector 1          table copy B
//! model region      the model blob exactly as the trainer wrote it
//! label-store region  owned by the label store (erased = 0xFF)
//! ```
//!
//! The table is kept twice, each copy with a sequence number and its own
//! CRC-32. A new table is always written over the copy that is *not* the
//! newest valid one, so a power cut while erasing or writing it, or one
//! flipped bit in either copy, leaves the other copy to boot from: no single
//! fault locks the label store away. [`choose`] picks the valid copy with
//! the highest sequence number and says which copy was damaged and why.
//!
//! ```
//! use seaclr_shared::partition::{Layout, Table, choose, ERASE_SIZE};
//! let table = Table { layout: Layout::default(), model_len: 0, model_crc: 0, sequence: 1 };
//! let a = table.to_bytes();
//! let b = [0xFF; 64]; // copy B erased, e.g. a cut between erase and write
//! let chosen = choose(&a, &b).unwrap();
//! assert_eq!(chosen.table, table);
//! assert!(chosen.damaged.is_some());
//! assert_eq!(Layout::default().model_offset() as usize, 2 * ERASE_SIZE);
//! ```

use core::fmt;

/// Smallest programmable unit of the buoy's flash (a 32-bit word).
pub const WRITE_SIZE: usize = 4;
/// Smallest erasable unit (a 4 KiB sector, as on common SPI NOR and nRF52).
pub const ERASE_SIZE: usize = 4096;
/// Magic at the start of each table copy.
pub const MAGIC: [u8; 8] = *b"SCLRFLSH";
/// Table format version: 2 = two copies with sequence numbers.
pub const LAYOUT_VERSION: u32 = 2;
/// Bytes of one table copy.
pub const TABLE_LEN: usize = 64;
/// Sectors taken by the table copies (A, B).
pub const TABLE_SECTORS: usize = 2;
/// Model region of the default layout: 636 KiB (the blob budget is 256 KiB).
pub const DEFAULT_MODEL_CAPACITY: u32 = 636 * 1024;
/// Label-store region of the default layout: 384 KiB, the edge store's
/// default (two halves, each a full 1,000-example head plus a log).
pub const DEFAULT_STORE_CAPACITY: u32 = 384 * 1024;

const CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);
const CRC_AT: usize = 56;

/// CRC-32 of a model slot's bytes, as the table records it.
pub fn model_crc(bytes: &[u8]) -> u32 {
    CRC32.checksum(bytes)
}

/// Sizes of the regions; offsets follow from them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Model region capacity in bytes (a multiple of [`ERASE_SIZE`]).
    pub model_capacity: u32,
    /// Label-store region capacity in bytes (a multiple of [`ERASE_SIZE`]).
    pub store_capacity: u32,
}

impl Default for Layout {
    /// A 1,044 KiB flash: two table sectors, the model region, the label store.
    fn default() -> Self {
        Self {
            model_capacity: DEFAULT_MODEL_CAPACITY,
            store_capacity: DEFAULT_STORE_CAPACITY,
        }
    }
}

impl Layout {
    /// Offset of the model region (after the two table sectors).
    pub const fn model_offset(&self) -> u32 {
        (TABLE_SECTORS * ERASE_SIZE) as u32
    }
    /// Offset of the label-store region (after the model region).
    pub const fn store_offset(&self) -> u32 {
        self.model_offset() + self.model_capacity
    }
    /// Total flash size.
    pub const fn total(&self) -> u32 {
        self.store_offset() + self.store_capacity
    }
    /// Both regions non-empty and made of whole sectors.
    pub fn check(&self) -> Result<(), CopyError> {
        let e = ERASE_SIZE as u32;
        let ok = |c: u32| c > 0 && c.is_multiple_of(e);
        let fits = self
            .model_offset()
            .checked_add(self.model_capacity)
            .and_then(|s| s.checked_add(self.store_capacity))
            .is_some();
        if ok(self.model_capacity) && ok(self.store_capacity) && fits {
            Ok(())
        } else {
            Err(CopyError::BadLayout)
        }
    }
}

/// One copy of the partition table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Table {
    /// Region sizes.
    pub layout: Layout,
    /// Bytes of model installed in the model region (0 = none).
    pub model_len: u32,
    /// CRC-32 of those bytes.
    pub model_crc: u32,
    /// Higher = newer; the newest valid copy wins.
    pub sequence: u32,
}

/// Why one table copy was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyError {
    /// Erased (all `0xFF`): never written, or a cut after its erase.
    Erased,
    /// No SeaCLR magic.
    BadMagic,
    /// The bytes do not match their CRC (torn write, bit flip).
    CrcMismatch,
    /// A table of another format version.
    Version(u32),
    /// Written for a flash with another write/erase size.
    Geometry,
    /// Region sizes that are zero, not whole sectors, or overflow.
    BadLayout,
    /// Stored offsets disagree with the sizes.
    Inconsistent,
    /// The recorded model length exceeds the model region.
    ModelTooLong,
}

impl fmt::Display for CopyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Erased => f.write_str("erased"),
            Self::BadMagic => f.write_str("no SeaCLR partition table (bad magic)"),
            Self::CrcMismatch => f.write_str("CRC mismatch (corrupted or torn)"),
            Self::Version(v) => write!(
                f,
                "partition table version {v} (this build reads {LAYOUT_VERSION}; write a new image with `seaclr-buoy flash`)"
            ),
            Self::Geometry => write!(
                f,
                "written for another flash geometry (this build: write {WRITE_SIZE}, erase {ERASE_SIZE})"
            ),
            Self::BadLayout => f.write_str("region sizes are not whole, non-empty sectors"),
            Self::Inconsistent => f.write_str("offsets are inconsistent with the region sizes"),
            Self::ModelTooLong => f.write_str("recorded model length exceeds the model region"),
        }
    }
}

/// Neither table copy is usable: why each was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoTable {
    /// Why copy A was refused.
    pub a: CopyError,
    /// Why copy B was refused.
    pub b: CopyError,
}

impl fmt::Display for NoTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "no usable partition table: copy A {}, copy B {}",
            self.a, self.b
        )
    }
}

/// Which of the two table copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableCopy {
    /// Sector 0.
    A,
    /// Sector 1.
    B,
}

impl TableCopy {
    /// Flash offset of this copy.
    pub const fn offset(self) -> u32 {
        match self {
            TableCopy::A => 0,
            TableCopy::B => ERASE_SIZE as u32,
        }
    }
    /// The other copy.
    pub const fn other(self) -> TableCopy {
        match self {
            TableCopy::A => TableCopy::B,
            TableCopy::B => TableCopy::A,
        }
    }
}

impl fmt::Display for TableCopy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TableCopy::A => "A",
            TableCopy::B => "B",
        })
    }
}

/// The table to use, and what was wrong with the other copy, if anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chosen {
    /// The newest valid table.
    pub table: Table,
    /// The copy it came from.
    pub from: TableCopy,
    /// The other copy's problem (`None`: valid, only older or equal).
    pub damaged: Option<CopyError>,
}

impl Chosen {
    /// Where the next table goes: over the copy that is not the one in use.
    pub fn next_slot(&self) -> TableCopy {
        self.from.other()
    }
}

impl Table {
    /// The copy's bytes (unused tail `0xFF`, as erased flash).
    pub fn to_bytes(&self) -> [u8; TABLE_LEN] {
        let mut b = [0xFFu8; TABLE_LEN];
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
            self.sequence,
        ];
        for (i, w) in words.iter().enumerate() {
            b[8 + 4 * i..12 + 4 * i].copy_from_slice(&w.to_le_bytes());
        }
        let crc = CRC32.checksum(&b[..CRC_AT]);
        b[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Checks one copy completely: magic, CRC, version, geometry, layout,
    /// offsets and the model length against its region.
    pub fn from_bytes(b: &[u8]) -> Result<Self, CopyError> {
        if b.len() < TABLE_LEN {
            return Err(CopyError::CrcMismatch);
        }
        if b[..TABLE_LEN].iter().all(|&x| x == 0xFF) {
            return Err(CopyError::Erased);
        }
        if b[0..8] != MAGIC {
            return Err(CopyError::BadMagic);
        }
        let word = |i: usize| {
            let at = 8 + 4 * i;
            u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
        };
        let stored = u32::from_le_bytes([b[CRC_AT], b[CRC_AT + 1], b[CRC_AT + 2], b[CRC_AT + 3]]);
        if CRC32.checksum(&b[..CRC_AT]) != stored {
            // A version-1 table is shorter and has its CRC elsewhere: name it.
            if word(0) != LAYOUT_VERSION {
                return Err(CopyError::Version(word(0)));
            }
            return Err(CopyError::CrcMismatch);
        }
        if word(0) != LAYOUT_VERSION {
            return Err(CopyError::Version(word(0)));
        }
        if word(1) != WRITE_SIZE as u32 || word(2) != ERASE_SIZE as u32 {
            return Err(CopyError::Geometry);
        }
        let layout = Layout {
            model_capacity: word(5),
            store_capacity: word(7),
        };
        layout.check()?;
        if word(3) != layout.total()
            || word(4) != layout.model_offset()
            || word(6) != layout.store_offset()
        {
            return Err(CopyError::Inconsistent);
        }
        if word(8) > layout.model_capacity {
            return Err(CopyError::ModelTooLong);
        }
        Ok(Self {
            layout,
            model_len: word(8),
            model_crc: word(9),
            sequence: word(10),
        })
    }

    /// The table that follows this one with another model installed.
    pub fn with_model(&self, model: &[u8]) -> Table {
        Table {
            model_len: model.len() as u32,
            model_crc: model_crc(model),
            sequence: self.sequence.wrapping_add(1),
            ..*self
        }
    }
}

/// Picks the newest valid copy of the two (sequence numbers compared with
/// wrap-around), or says why neither can be used.
pub fn choose(a: &[u8], b: &[u8]) -> Result<Chosen, NoTable> {
    match (Table::from_bytes(a), Table::from_bytes(b)) {
        (Ok(ta), Ok(tb)) => {
            let b_newer = (tb.sequence.wrapping_sub(ta.sequence) as i32) > 0;
            Ok(if b_newer {
                Chosen {
                    table: tb,
                    from: TableCopy::B,
                    damaged: None,
                }
            } else {
                Chosen {
                    table: ta,
                    from: TableCopy::A,
                    damaged: None,
                }
            })
        }
        (Ok(table), Err(e)) => Ok(Chosen {
            table,
            from: TableCopy::A,
            damaged: Some(e),
        }),
        (Err(e), Ok(table)) => Ok(Chosen {
            table,
            from: TableCopy::B,
            damaged: Some(e),
        }),
        (Err(a), Err(b)) => Err(NoTable { a, b }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;

    fn table(sequence: u32) -> Table {
        Table {
            layout: Layout::default(),
            model_len: 1000,
            model_crc: 0xDEAD_BEEF,
            sequence,
        }
    }

    #[test]
    fn a_copy_round_trips() {
        let t = table(7);
        assert_eq!(Table::from_bytes(&t.to_bytes()), Ok(t));
    }

    #[test]
    fn every_single_bit_flip_in_one_copy_falls_back_to_the_other() {
        let (a, b) = (table(3), table(4));
        for bit in 0..TABLE_LEN * 8 {
            let mut damaged = b.to_bytes();
            damaged[bit / 8] ^= 1 << (bit % 8);
            let chosen = choose(&a.to_bytes(), &damaged).unwrap();
            // The flipped copy is either refused (then A is used) or, for a
            // flip in the unused tail, still reads as B itself.
            if chosen.from == TableCopy::A {
                assert_eq!(chosen.table, a, "bit {bit}");
                assert!(chosen.damaged.is_some(), "bit {bit}");
            } else {
                assert_eq!(chosen.table, b, "bit {bit}");
            }
        }
    }

    #[test]
    fn the_newest_valid_copy_wins_across_wraparound() {
        let c = choose(&table(5).to_bytes(), &table(6).to_bytes()).unwrap();
        assert_eq!(
            (c.from, c.table.sequence, c.next_slot()),
            (TableCopy::B, 6, TableCopy::A)
        );
        let c = choose(&table(u32::MAX).to_bytes(), &table(0).to_bytes()).unwrap();
        assert_eq!(c.from, TableCopy::B);
        let c = choose(&table(9).to_bytes(), &[0xFF; TABLE_LEN]).unwrap();
        assert_eq!((c.from, c.damaged), (TableCopy::A, Some(CopyError::Erased)));
    }

    #[test]
    fn neither_copy_usable_names_both_reasons() {
        let mut a = table(1).to_bytes();
        a[20] ^= 1;
        let e = choose(&a, &[0xFF; TABLE_LEN]).unwrap_err();
        assert_eq!(
            e,
            NoTable {
                a: CopyError::CrcMismatch,
                b: CopyError::Erased
            }
        );
        let text = e.to_string();
        assert!(
            text.contains("copy A CRC") && text.contains("copy B erased"),
            "{text}"
        );
    }

    #[test]
    fn checksummed_but_inconsistent_fields_are_refused() {
        let fix_crc = |mut b: [u8; TABLE_LEN]| {
            let crc = CRC32.checksum(&b[..CRC_AT]);
            b[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_le_bytes());
            b
        };
        let set = |b: &mut [u8; TABLE_LEN], word: usize, v: u32| {
            b[8 + 4 * word..12 + 4 * word].copy_from_slice(&v.to_le_bytes())
        };
        let cases: [(usize, u32, CopyError); 5] = [
            (0, 1, CopyError::Version(1)),
            (2, 512, CopyError::Geometry),
            (5, 100, CopyError::BadLayout),
            (4, 0, CopyError::Inconsistent),
            (8, DEFAULT_MODEL_CAPACITY + 1, CopyError::ModelTooLong),
        ];
        for (word, value, expected) in cases {
            let mut b = table(1).to_bytes();
            set(&mut b, word, value);
            assert_eq!(Table::from_bytes(&fix_crc(b)), Err(expected), "word {word}");
        }
    }

    #[test]
    fn with_model_records_length_crc_and_the_next_sequence() {
        let t = table(u32::MAX).with_model(b"blob");
        assert_eq!(
            (t.model_len, t.model_crc, t.sequence),
            (4, model_crc(b"blob"), 0)
        );
    }
}
