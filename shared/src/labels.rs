//! Label records: the operations of the few-shot label memory, and their
//! byte encoding in the flash label store.
//!
//! The host (`seaclr fewshot build`) and the device (`seaclr_edge::store`)
//! write and read the same records, so a store image built on the host boots
//! on the buoy. Every record is one self-checking frame:
//!
//! ```text
//! offset 0   u16 LE  payload length L
//! offset 2   u8      tag (which record)
//! offset 3   u8      tag ^ 0xA5 (cheap sanity check before the CRC)
//! offset 4   L bytes payload (fields little endian, see `LabelRecord`)
//! offset 4+L u32 LE  CRC-32 (ISO-HDLC) over bytes 0..4+L
//! then 0xFF padding up to the store's write alignment
//! ```
//!
//! A frame whose first word is `FF FF FF FF` is erased flash (the end of a
//! log). Postcard is not used: the frame must be parsable from a fixed-size
//! header before its length is trusted, and a hand-written layout keeps the
//! flash format explicit.

use crc::{CRC_32_ISO_HDLC, Crc};

/// Embedding length of the default SeaCLR encoder (int8 values).
pub const EMBEDDING_DIM: usize = 128;
/// Largest embedding a record can carry.
pub const MAX_EMBEDDING_DIM: usize = 256;
/// Most classes a label memory can hold (class ids are `0..MAX_CLASSES`).
pub const MAX_CLASSES: usize = 64;
/// Longest class name in bytes (UTF-8).
pub const MAX_CLASS_NAME: usize = 32;
/// Bytes before the payload: length, tag, check byte.
pub const FRAME_HEADER_LEN: usize = 4;
/// Bytes after the payload: the CRC-32.
pub const FRAME_CRC_LEN: usize = 4;
/// Largest payload of any record (an `AddExample` with the largest embedding).
pub const MAX_PAYLOAD_LEN: usize = 4 + 1 + 4 + MAX_EMBEDDING_DIM;
/// Largest frame before padding.
pub const MAX_FRAME_LEN: usize = FRAME_HEADER_LEN + MAX_PAYLOAD_LEN + FRAME_CRC_LEN;
/// Magic in every half header: "SCLS" (SeaCLR label store).
pub const STORE_MAGIC: u32 = u32::from_le_bytes(*b"SCLS");
/// Version of this record format, in every half header.
pub const STORE_FORMAT_VERSION: u8 = 1;
/// Marks "no example evicted" in the `evicted` field of `AddExample`.
const NO_EXAMPLE: u32 = u32::MAX;

const CRC32: Crc<u32> = Crc::<u32>::new(&CRC_32_ISO_HDLC);

/// A class slot in the label memory (`0..MAX_CLASSES`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClassId(pub u8);

/// A stored example. Ids are never reused while the store lives, so a
/// forget request cannot hit a newer example by accident.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ExampleId(pub u32);

/// One record of the label store: either log bookkeeping (`HalfHeader`,
/// `SnapshotEnd`) or one atomic operation on the label memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LabelRecord<'a> {
    /// First record of a flash half; the valid half with the highest
    /// generation is the live one.
    HalfHeader {
        /// Bumped by every compaction.
        generation: u32,
        /// log2 of the record alignment the half was written with (the
        /// flash write size, at least 4 bytes); a reader with another
        /// alignment must refuse the half rather than misparse it.
        align_log2: u8,
    },
    /// Ends the snapshot at the start of a half: only a half with this
    /// record is complete (compaction is atomic because of it).
    SnapshotEnd {
        /// The id the next new example gets (ids survive compaction).
        next_example_id: u32,
    },
    /// Creates class `class` named `name`.
    AddClass {
        /// Slot of the new class.
        class: ClassId,
        /// UTF-8 name, at most `MAX_CLASS_NAME` bytes.
        name: &'a str,
    },
    /// Stores an example; if `evicted` is set, that example is removed in the
    /// same atomic step (the memory was full).
    AddExample {
        /// Id of the new example.
        id: ExampleId,
        /// Its class.
        class: ClassId,
        /// The example dropped to make room, if any.
        evicted: Option<ExampleId>,
        /// The int8 embedding as two's-complement bytes.
        embedding: &'a [u8],
    },
    /// Removes one example.
    ForgetExample {
        /// The example to remove.
        id: ExampleId,
    },
    /// Removes a class and all its examples.
    ForgetClass {
        /// The class to remove.
        class: ClassId,
    },
    /// Merges class `from` into class `into`; `from` disappears.
    Relabel {
        /// The class that is merged away.
        from: ClassId,
        /// The class that receives the examples.
        into: ClassId,
    },
    /// Sets the open-set threshold: a best cosine similarity below
    /// `similarity_q15 / 32768` means "unknown".
    SetThreshold {
        /// Cosine similarity in Q15 (32768 = 1.0).
        similarity_q15: i32,
    },
}

const TAG_HALF_HEADER: u8 = 1;
const TAG_SNAPSHOT_END: u8 = 2;
const TAG_ADD_CLASS: u8 = 3;
const TAG_ADD_EXAMPLE: u8 = 4;
const TAG_FORGET_EXAMPLE: u8 = 5;
const TAG_FORGET_CLASS: u8 = 6;
const TAG_RELABEL: u8 = 7;
const TAG_SET_THRESHOLD: u8 = 8;
const TAG_CHECK: u8 = 0xA5;

/// Why a record could not be encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncodeError {
    /// The output buffer is shorter than the frame.
    BufferTooSmall,
    /// A class name is empty or longer than `MAX_CLASS_NAME` bytes.
    BadName,
    /// An embedding is empty or longer than `MAX_EMBEDDING_DIM`.
    BadEmbedding,
    /// A class id is not below `MAX_CLASSES`.
    BadClass,
}

/// Why bytes are not a valid record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The first word is `FF FF FF FF`: erased flash, the end of a log.
    Erased,
    /// Fewer bytes than the frame needs.
    Truncated,
    /// The header is malformed (length too large or bad check byte).
    BadHeader,
    /// The CRC does not match: a torn write or flipped bits.
    BadCrc,
    /// The CRC matches but the payload does not fit the tag.
    BadPayload,
}

impl core::fmt::Display for EncodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::BufferTooSmall => "record buffer too small",
            Self::BadName => "class name empty or longer than 32 bytes",
            Self::BadEmbedding => "embedding empty or longer than 256 values",
            Self::BadClass => "class id out of range",
        })
    }
}

impl core::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::Erased => "erased flash",
            Self::Truncated => "record truncated",
            Self::BadHeader => "malformed record header",
            Self::BadCrc => "record CRC mismatch",
            Self::BadPayload => "malformed record payload",
        })
    }
}

/// `len` rounded up to a multiple of `align` (a power of two).
pub const fn padded_len(len: usize, align: usize) -> usize {
    (len + align - 1) & !(align - 1)
}

/// Frame length (before padding) of an `AddExample` with `dim` values:
/// what one stored example costs in flash, plus alignment padding.
pub const fn add_example_frame_len(dim: usize) -> usize {
    FRAME_HEADER_LEN + 9 + dim + FRAME_CRC_LEN
}

impl<'a> LabelRecord<'a> {
    fn tag(&self) -> u8 {
        match self {
            Self::HalfHeader { .. } => TAG_HALF_HEADER,
            Self::SnapshotEnd { .. } => TAG_SNAPSHOT_END,
            Self::AddClass { .. } => TAG_ADD_CLASS,
            Self::AddExample { .. } => TAG_ADD_EXAMPLE,
            Self::ForgetExample { .. } => TAG_FORGET_EXAMPLE,
            Self::ForgetClass { .. } => TAG_FORGET_CLASS,
            Self::Relabel { .. } => TAG_RELABEL,
            Self::SetThreshold { .. } => TAG_SET_THRESHOLD,
        }
    }

    fn payload_len(&self) -> usize {
        match self {
            Self::HalfHeader { .. } => 10,
            Self::SnapshotEnd { .. } => 4,
            Self::AddClass { name, .. } => 1 + name.len(),
            Self::AddExample { embedding, .. } => 9 + embedding.len(),
            Self::ForgetExample { .. } => 4,
            Self::ForgetClass { .. } => 1,
            Self::Relabel { .. } => 2,
            Self::SetThreshold { .. } => 4,
        }
    }

    /// Frame length of this record before padding.
    pub fn frame_len(&self) -> usize {
        FRAME_HEADER_LEN + self.payload_len() + FRAME_CRC_LEN
    }

    fn check(&self) -> Result<(), EncodeError> {
        let class_ok = |c: &ClassId| (c.0 as usize) < MAX_CLASSES;
        match self {
            Self::AddClass { class, name } => {
                if !class_ok(class) {
                    return Err(EncodeError::BadClass);
                }
                if name.is_empty() || name.len() > MAX_CLASS_NAME {
                    return Err(EncodeError::BadName);
                }
            }
            Self::AddExample {
                class, embedding, ..
            } => {
                if !class_ok(class) {
                    return Err(EncodeError::BadClass);
                }
                if embedding.is_empty() || embedding.len() > MAX_EMBEDDING_DIM {
                    return Err(EncodeError::BadEmbedding);
                }
            }
            Self::ForgetClass { class } if !class_ok(class) => return Err(EncodeError::BadClass),
            Self::Relabel { from, into } if !class_ok(from) || !class_ok(into) => {
                return Err(EncodeError::BadClass);
            }
            _ => {}
        }
        Ok(())
    }

    /// Writes the frame into `out` and returns its length (before padding).
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, EncodeError> {
        self.check()?;
        let payload_len = self.payload_len();
        let total = FRAME_HEADER_LEN + payload_len + FRAME_CRC_LEN;
        if out.len() < total {
            return Err(EncodeError::BufferTooSmall);
        }
        let tag = self.tag();
        out[0..2].copy_from_slice(&(payload_len as u16).to_le_bytes());
        out[2] = tag;
        out[3] = tag ^ TAG_CHECK;
        let p = &mut out[FRAME_HEADER_LEN..FRAME_HEADER_LEN + payload_len];
        match *self {
            Self::HalfHeader {
                generation,
                align_log2,
            } => {
                p[0..4].copy_from_slice(&STORE_MAGIC.to_le_bytes());
                p[4] = STORE_FORMAT_VERSION;
                p[5..9].copy_from_slice(&generation.to_le_bytes());
                p[9] = align_log2;
            }
            Self::SnapshotEnd { next_example_id } => {
                p.copy_from_slice(&next_example_id.to_le_bytes())
            }
            Self::AddClass { class, name } => {
                p[0] = class.0;
                p[1..].copy_from_slice(name.as_bytes());
            }
            Self::AddExample {
                id,
                class,
                evicted,
                embedding,
            } => {
                p[0..4].copy_from_slice(&id.0.to_le_bytes());
                p[4] = class.0;
                let ev = evicted.map_or(NO_EXAMPLE, |e| e.0);
                p[5..9].copy_from_slice(&ev.to_le_bytes());
                p[9..].copy_from_slice(embedding);
            }
            Self::ForgetExample { id } => p.copy_from_slice(&id.0.to_le_bytes()),
            Self::ForgetClass { class } => p[0] = class.0,
            Self::Relabel { from, into } => {
                p[0] = from.0;
                p[1] = into.0;
            }
            Self::SetThreshold { similarity_q15 } => {
                p.copy_from_slice(&similarity_q15.to_le_bytes())
            }
        }
        let crc = CRC32.checksum(&out[..FRAME_HEADER_LEN + payload_len]);
        out[FRAME_HEADER_LEN + payload_len..total].copy_from_slice(&crc.to_le_bytes());
        Ok(total)
    }

    /// Total frame length announced by a 4-byte header, after checking the
    /// header is plausible (not erased, length in range, check byte).
    pub fn frame_len_from_header(header: &[u8]) -> Result<usize, DecodeError> {
        if header.len() < FRAME_HEADER_LEN {
            return Err(DecodeError::Truncated);
        }
        if header[..4] == [0xFF; 4] {
            return Err(DecodeError::Erased);
        }
        let payload_len = u16::from_le_bytes([header[0], header[1]]) as usize;
        if payload_len > MAX_PAYLOAD_LEN || header[3] != header[2] ^ TAG_CHECK {
            return Err(DecodeError::BadHeader);
        }
        Ok(FRAME_HEADER_LEN + payload_len + FRAME_CRC_LEN)
    }

    /// Parses one frame at the start of `bytes`; returns the record (which
    /// borrows names and embeddings from `bytes`) and its unpadded length.
    pub fn decode(bytes: &'a [u8]) -> Result<(Self, usize), DecodeError> {
        let total = Self::frame_len_from_header(bytes)?;
        if bytes.len() < total {
            return Err(DecodeError::Truncated);
        }
        let body_end = total - FRAME_CRC_LEN;
        let stored_crc = u32::from_le_bytes([
            bytes[body_end],
            bytes[body_end + 1],
            bytes[body_end + 2],
            bytes[body_end + 3],
        ]);
        if CRC32.checksum(&bytes[..body_end]) != stored_crc {
            return Err(DecodeError::BadCrc);
        }
        let p = &bytes[FRAME_HEADER_LEN..body_end];
        let u32_at = |i: usize| u32::from_le_bytes([p[i], p[i + 1], p[i + 2], p[i + 3]]);
        let class_at = |i: usize| {
            let c = p[i];
            if (c as usize) < MAX_CLASSES {
                Ok(ClassId(c))
            } else {
                Err(DecodeError::BadPayload)
            }
        };
        let exact = |n: usize| {
            if p.len() == n {
                Ok(())
            } else {
                Err(DecodeError::BadPayload)
            }
        };
        let record = match bytes[2] {
            TAG_HALF_HEADER => {
                exact(10)?;
                if u32_at(0) != STORE_MAGIC || p[4] != STORE_FORMAT_VERSION {
                    return Err(DecodeError::BadPayload);
                }
                Self::HalfHeader {
                    generation: u32_at(5),
                    align_log2: p[9],
                }
            }
            TAG_SNAPSHOT_END => {
                exact(4)?;
                Self::SnapshotEnd {
                    next_example_id: u32_at(0),
                }
            }
            TAG_ADD_CLASS => {
                if p.len() < 2 || p.len() > 1 + MAX_CLASS_NAME {
                    return Err(DecodeError::BadPayload);
                }
                let name = core::str::from_utf8(&p[1..]).map_err(|_| DecodeError::BadPayload)?;
                Self::AddClass {
                    class: class_at(0)?,
                    name,
                }
            }
            TAG_ADD_EXAMPLE => {
                if p.len() < 10 {
                    return Err(DecodeError::BadPayload);
                }
                let ev = u32_at(5);
                Self::AddExample {
                    id: ExampleId(u32_at(0)),
                    class: class_at(4)?,
                    evicted: (ev != NO_EXAMPLE).then_some(ExampleId(ev)),
                    embedding: &p[9..],
                }
            }
            TAG_FORGET_EXAMPLE => {
                exact(4)?;
                Self::ForgetExample {
                    id: ExampleId(u32_at(0)),
                }
            }
            TAG_FORGET_CLASS => {
                exact(1)?;
                Self::ForgetClass {
                    class: class_at(0)?,
                }
            }
            TAG_RELABEL => {
                exact(2)?;
                Self::Relabel {
                    from: class_at(0)?,
                    into: class_at(1)?,
                }
            }
            TAG_SET_THRESHOLD => {
                exact(4)?;
                Self::SetThreshold {
                    similarity_q15: u32_at(0) as i32,
                }
            }
            _ => return Err(DecodeError::BadPayload),
        };
        Ok((record, total))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> [LabelRecord<'static>; 9] {
        [
            LabelRecord::HalfHeader {
                generation: 7,
                align_log2: 2,
            },
            LabelRecord::SnapshotEnd {
                next_example_id: 42,
            },
            LabelRecord::AddClass {
                class: ClassId(3),
                name: "Chaetoceros",
            },
            LabelRecord::AddExample {
                id: ExampleId(9),
                class: ClassId(3),
                evicted: None,
                embedding: &[1, 2, 255, 128],
            },
            LabelRecord::AddExample {
                id: ExampleId(10),
                class: ClassId(63),
                evicted: Some(ExampleId(2)),
                embedding: &[0; 128],
            },
            LabelRecord::ForgetExample { id: ExampleId(5) },
            LabelRecord::ForgetClass { class: ClassId(1) },
            LabelRecord::Relabel {
                from: ClassId(1),
                into: ClassId(2),
            },
            LabelRecord::SetThreshold {
                similarity_q15: -1234,
            },
        ]
    }

    #[test]
    fn every_record_round_trips() {
        for r in samples() {
            let mut buf = [0u8; MAX_FRAME_LEN];
            let n = r.encode(&mut buf).unwrap();
            assert_eq!(n, r.frame_len());
            let (back, m) = LabelRecord::decode(&buf[..n]).unwrap();
            assert_eq!(back, r);
            assert_eq!(m, n);
        }
    }

    #[test]
    fn every_single_bit_flip_is_detected() {
        for r in samples() {
            let mut buf = [0u8; MAX_FRAME_LEN];
            let n = r.encode(&mut buf).unwrap();
            for bit in 0..n * 8 {
                let mut b = buf;
                b[bit / 8] ^= 1 << (bit % 8);
                assert!(LabelRecord::decode(&b[..n]).is_err(), "{r:?} bit {bit}");
            }
        }
    }

    #[test]
    fn erased_and_truncated_are_reported() {
        assert_eq!(
            LabelRecord::decode(&[0xFF; 16]).unwrap_err(),
            DecodeError::Erased
        );
        let mut buf = [0u8; MAX_FRAME_LEN];
        let n = LabelRecord::ForgetExample { id: ExampleId(1) }
            .encode(&mut buf)
            .unwrap();
        assert_eq!(
            LabelRecord::decode(&buf[..n - 1]).unwrap_err(),
            DecodeError::Truncated
        );
    }

    #[test]
    fn invalid_records_are_refused_at_encode() {
        let mut buf = [0u8; MAX_FRAME_LEN];
        let long = "a-name-that-is-longer-than-32-bytes";
        assert_eq!(
            LabelRecord::AddClass {
                class: ClassId(0),
                name: long
            }
            .encode(&mut buf),
            Err(EncodeError::BadName)
        );
        assert_eq!(
            LabelRecord::ForgetClass { class: ClassId(64) }.encode(&mut buf),
            Err(EncodeError::BadClass)
        );
        assert_eq!(
            LabelRecord::SetThreshold { similarity_q15: 0 }.encode(&mut buf[..5]),
            Err(EncodeError::BufferTooSmall)
        );
    }

    proptest::proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let _ = LabelRecord::decode(&bytes);
        }
    }
}
