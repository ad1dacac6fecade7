//! Telemetry: what a buoy sends home over a satellite link, one message per
//! counting interval.
//!
//! A message holds, for one interval, the number of frames seen, the number
//! flagged "unknown" and the count per class (class index = position). It is
//! postcard-encoded (integers as varints, so small counts cost one byte) and
//! followed by a CRC-16 so a corrupted message is rejected rather than
//! misread. It must fit a single Iridium SBD mobile-originated message
//! ([`SBD_MAX_BYTES`] = 340 bytes): with up to [`MAX_CLASSES`] = 100 classes
//! it always does, because every count saturates at [`MAX_COUNT`] (three
//! varint bytes). The test `worst_case_message_fits_one_sbd_message` proves
//! the bound by encoding the largest possible message.
//!
//! Wire layout: `MAGIC (1 byte) | postcard(TelemetryBody) | CRC-16/IBM-3740 (2 bytes LE)`.
//!
//! Class names travel too, so a counts message decodes without anyone typing
//! the names again: a buoy sends its class table ([`ClassTablePart`], magic
//! [`CLASS_TABLE_MAGIC`]) at boot and whenever its classes change, before
//! the next counts message, split into parts that each fit one SBD message.
//! The decoder names the counts of a message with the latest table of the
//! same buoy and model.

use serde::de::{SeqAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Largest payload of one Iridium SBD mobile-originated message, in bytes.
pub const SBD_MAX_BYTES: usize = 340;
/// Most classes a message can carry; chosen so the worst case fits [`SBD_MAX_BYTES`].
pub const MAX_CLASSES: usize = 100;
/// Counts saturate here (the largest value a 3-byte varint holds), which
/// bounds the message size; no realistic interval comes close.
pub const MAX_COUNT: u32 = (1 << 21) - 1;
/// First byte of every message: identifies the format and its version.
pub const MAGIC: u8 = 0xC1;
/// Format version carried in the body, bumped on any layout change.
pub const FORMAT_VERSION: u8 = 1;

const CRC16: crc::Crc<u16> = crc::Crc::<u16>::new(&crc::CRC_16_IBM_3740);

/// The bytes before the CRC of a message of kind `magic` (magic included),
/// once its length (at least `min_len`), magic and CRC-16 are checked.
fn checked_payload(bytes: &[u8], magic: u8, min_len: usize) -> Result<&[u8], TelemetryError> {
    if bytes.len() < min_len {
        return Err(TelemetryError::TooShort(bytes.len()));
    }
    if bytes[0] != magic {
        return Err(TelemetryError::BadMagic(bytes[0]));
    }
    let (payload, crc_bytes) = bytes.split_at(bytes.len() - 2);
    let stored = u16::from_le_bytes([crc_bytes[0], crc_bytes[1]]);
    let computed = CRC16.checksum(payload);
    if stored != computed {
        return Err(TelemetryError::BadCrc { stored, computed });
    }
    Ok(payload)
}

/// Why a message could not be encoded or decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TelemetryError {
    /// More classes than [`MAX_CLASSES`].
    TooManyClasses(usize),
    /// The output buffer is too small (needs up to [`SBD_MAX_BYTES`]).
    BufferTooSmall,
    /// Shorter than magic + CRC.
    TooShort(usize),
    /// First byte is not [`MAGIC`].
    BadMagic(u8),
    /// CRC mismatch: the message was corrupted.
    BadCrc {
        /// CRC stored in the message.
        stored: u16,
        /// CRC computed over the received bytes.
        computed: u16,
    },
    /// A version this decoder does not understand.
    UnsupportedVersion(u8),
    /// The body is not a valid postcard encoding of a message.
    Malformed,
    /// Bytes left over after the body.
    TrailingBytes(usize),
    /// A class count above [`MAX_COUNT`], which the encoder never writes.
    CountAboveMax {
        /// Class index.
        class: usize,
        /// The count.
        count: u32,
    },
    /// More unknown frames than frames.
    UnknownAboveFrames {
        /// Unknown frames.
        unknown: u32,
        /// Frames.
        frames: u32,
    },
    /// The class counts plus the unknown count exceed the message's own
    /// frame count (every classified frame is counted once).
    CountsAboveFrames {
        /// Sum of the class counts and the unknown count.
        total: u64,
        /// Frames.
        frames: u32,
    },
}

impl core::fmt::Display for TelemetryError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::TooManyClasses(n) => {
                write!(f, "{n} classes, at most {MAX_CLASSES} fit a message")
            }
            Self::BufferTooSmall => write!(f, "output buffer too small for the message"),
            Self::TooShort(n) => write!(f, "message is {n} bytes, too short to be telemetry"),
            Self::BadMagic(b) => write!(
                f,
                "first byte 0x{b:02x} is not the telemetry magic 0x{MAGIC:02x}"
            ),
            Self::BadCrc { stored, computed } => write!(
                f,
                "CRC mismatch (stored 0x{stored:04x}, computed 0x{computed:04x}): message corrupted"
            ),
            Self::UnsupportedVersion(v) => write!(
                f,
                "telemetry format version {v} is not supported (this decoder reads {FORMAT_VERSION})"
            ),
            Self::Malformed => write!(f, "message body is malformed"),
            Self::TrailingBytes(n) => write!(f, "{n} unexpected bytes after the message body"),
            Self::CountAboveMax { class, count } => write!(
                f,
                "class {class} count {count} is above the largest count a message carries ({MAX_COUNT})"
            ),
            Self::UnknownAboveFrames { unknown, frames } => write!(
                f,
                "unknown count {unknown} is above the message's frame count {frames}"
            ),
            Self::CountsAboveFrames { total, frames } => write!(
                f,
                "class counts plus unknown ({total}) exceed the message's frame count {frames}"
            ),
        }
    }
}

/// Per-class counts with a fixed capacity, so a message needs no heap.
/// Serialised as a postcard sequence (varint length, varint counts).
#[derive(Clone, PartialEq, Eq)]
pub struct ClassCounts {
    len: u8,
    counts: [u32; MAX_CLASSES],
}

impl ClassCounts {
    /// Counts copied from `counts` (saturated at [`MAX_COUNT`]).
    pub fn from_slice(counts: &[u32]) -> Result<Self, TelemetryError> {
        if counts.len() > MAX_CLASSES {
            return Err(TelemetryError::TooManyClasses(counts.len()));
        }
        let mut out = Self {
            len: counts.len() as u8,
            counts: [0; MAX_CLASSES],
        };
        for (dst, &c) in out.counts.iter_mut().zip(counts) {
            *dst = c.min(MAX_COUNT);
        }
        Ok(out)
    }

    /// The counts, one per class index.
    pub fn as_slice(&self) -> &[u32] {
        &self.counts[..self.len as usize]
    }
}

impl core::fmt::Debug for ClassCounts {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

impl Serialize for ClassCounts {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.len as usize))?;
        for c in self.as_slice() {
            seq.serialize_element(c)?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for ClassCounts {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct CountsVisitor;
        impl<'de> Visitor<'de> for CountsVisitor {
            type Value = ClassCounts;
            fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                write!(f, "at most {MAX_CLASSES} class counts")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ClassCounts, A::Error> {
                let mut out = ClassCounts {
                    len: 0,
                    counts: [0; MAX_CLASSES],
                };
                while let Some(c) = seq.next_element::<u32>()? {
                    if out.len as usize == MAX_CLASSES {
                        return Err(serde::de::Error::invalid_length(MAX_CLASSES + 1, &self));
                    }
                    out.counts[out.len as usize] = c;
                    out.len += 1;
                }
                Ok(out)
            }
        }
        deserializer.deserialize_seq(CountsVisitor)
    }
}

/// One interval's report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Telemetry {
    /// Format version ([`FORMAT_VERSION`]).
    pub version: u8,
    /// Which buoy sent it.
    pub buoy_id: u16,
    /// Message sequence number, to spot lost messages.
    pub sequence: u32,
    /// Interval start, seconds since the Unix epoch (or since boot when the
    /// buoy has no clock).
    pub interval_start_s: u32,
    /// Interval length in seconds.
    pub interval_len_s: u32,
    /// Identifies the model that classified (the model blob's payload CRC-32).
    pub model_id: u32,
    /// Frames classified in the interval (known + unknown).
    pub frames: u32,
    /// Frames whose best match was too far from every labelled example.
    pub unknown: u32,
    /// Frames per class index in the interval.
    pub counts: ClassCounts,
}

impl Telemetry {
    /// Encodes into `buf`, returning the used prefix (never more than
    /// [`SBD_MAX_BYTES`] bytes).
    pub fn encode<'b>(&self, buf: &'b mut [u8]) -> Result<&'b [u8], TelemetryError> {
        if buf.len() < 3 {
            return Err(TelemetryError::BufferTooSmall);
        }
        buf[0] = MAGIC;
        let body_len = {
            let end = buf.len() - 2;
            let used = postcard::to_slice(self, &mut buf[1..end])
                .map_err(|_| TelemetryError::BufferTooSmall)?;
            used.len()
        };
        let crc = CRC16.checksum(&buf[..1 + body_len]);
        buf[1 + body_len..3 + body_len].copy_from_slice(&crc.to_le_bytes());
        Ok(&buf[..3 + body_len])
    }

    /// Decodes and checks one message (magic, CRC, version, no trailing
    /// bytes, then [`Telemetry::check_counts`]).
    pub fn decode(bytes: &[u8]) -> Result<Self, TelemetryError> {
        let payload = checked_payload(bytes, MAGIC, 4)?;
        let body = &payload[1..];
        if body.first() != Some(&FORMAT_VERSION) {
            return Err(TelemetryError::UnsupportedVersion(
                body.first().copied().unwrap_or(0),
            ));
        }
        let (msg, rest): (Telemetry, &[u8]) =
            postcard::take_from_bytes(body).map_err(|_| TelemetryError::Malformed)?;
        if !rest.is_empty() {
            return Err(TelemetryError::TrailingBytes(rest.len()));
        }
        msg.check_counts()?;
        Ok(msg)
    }

    /// Checks that the counts agree with each other: every class count at
    /// most [`MAX_COUNT`], and the class counts plus the unknown count at
    /// most the frame count. A checksum only proves the bytes are the ones
    /// sent; [`Telemetry::decode`] runs this too, so a message from a buggy
    /// or hostile sender is refused rather than misread.
    pub fn check_counts(&self) -> Result<(), TelemetryError> {
        for (class, &count) in self.counts.as_slice().iter().enumerate() {
            if count > MAX_COUNT {
                return Err(TelemetryError::CountAboveMax { class, count });
            }
        }
        if self.unknown > self.frames {
            return Err(TelemetryError::UnknownAboveFrames {
                unknown: self.unknown,
                frames: self.frames,
            });
        }
        let total = self
            .counts
            .as_slice()
            .iter()
            .map(|&c| u64::from(c))
            .sum::<u64>()
            + u64::from(self.unknown);
        if total > u64::from(self.frames) {
            return Err(TelemetryError::CountsAboveFrames {
                total,
                frames: self.frames,
            });
        }
        Ok(())
    }
}

/// First byte of a class-table message.
pub const CLASS_TABLE_MAGIC: u8 = 0xC2;
/// Class-table format version.
pub const CLASS_TABLE_VERSION: u8 = 1;
/// Longest class name in a table (the device's limit).
pub const MAX_CLASS_NAME: usize = 32;
const TABLE_HEAD_LEN: usize = 15;

/// One part of a buoy's class table: the names of classes
/// `first .. first + count` of `total` (an empty name is a free slot).
///
/// Wire layout: `CLASS_TABLE_MAGIC | version u8 | buoy_id u16 LE | model_id
/// u32 LE | table_id u32 LE | first u8 | total u8 | count u8 | (len u8,
/// UTF-8 name)* | CRC-16/IBM-3740 (2 bytes LE)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClassTablePart<'b> {
    /// Which buoy sent it.
    pub buoy_id: u16,
    /// The model the classes were labelled for.
    pub model_id: u32,
    /// Changes whenever the buoy's classes change.
    pub table_id: u32,
    /// Index of this part's first class.
    pub first: u8,
    /// Classes in the whole table.
    pub total: u8,
    /// Names in this part.
    pub count: u8,
    names: &'b [u8],
}

impl<'b> ClassTablePart<'b> {
    /// This part's names, in class order.
    pub fn names(&self) -> impl Iterator<Item = &'b str> + 'b {
        let mut rest = self.names;
        core::iter::from_fn(move || {
            let (&len, tail) = rest.split_first()?;
            let (name, tail) = tail.split_at(usize::from(len));
            rest = tail;
            // Checked by `decode`.
            core::str::from_utf8(name).ok()
        })
    }

    /// Decodes and checks one part (magic, CRC, version, the name list
    /// exactly filling the body, names UTF-8 and at most
    /// [`MAX_CLASS_NAME`] bytes, `first + count <= total <= MAX_CLASSES`).
    pub fn decode(bytes: &'b [u8]) -> Result<Self, TelemetryError> {
        let payload = checked_payload(bytes, CLASS_TABLE_MAGIC, TABLE_HEAD_LEN + 2)?;
        if payload[1] != CLASS_TABLE_VERSION {
            return Err(TelemetryError::UnsupportedVersion(payload[1]));
        }
        let u32_at = |i: usize| {
            u32::from_le_bytes([payload[i], payload[i + 1], payload[i + 2], payload[i + 3]])
        };
        let part = Self {
            buoy_id: u16::from_le_bytes([payload[2], payload[3]]),
            model_id: u32_at(4),
            table_id: u32_at(8),
            first: payload[12],
            total: payload[13],
            count: payload[14],
            names: &payload[TABLE_HEAD_LEN..],
        };
        if usize::from(part.total) > MAX_CLASSES
            || usize::from(part.first) + usize::from(part.count) > usize::from(part.total)
        {
            return Err(TelemetryError::Malformed);
        }
        let mut rest = part.names;
        for _ in 0..part.count {
            let Some((&len, tail)) = rest.split_first() else {
                return Err(TelemetryError::Malformed);
            };
            let len = usize::from(len);
            if len > MAX_CLASS_NAME
                || tail.len() < len
                || core::str::from_utf8(&tail[..len]).is_err()
            {
                return Err(TelemetryError::Malformed);
            }
            rest = &tail[len..];
        }
        if !rest.is_empty() {
            return Err(TelemetryError::TrailingBytes(rest.len()));
        }
        Ok(part)
    }
}

/// Encodes a class table (`names[i]` names class `i`; `None` is a free
/// slot) as parts of at most [`SBD_MAX_BYTES`], calling `emit` with each;
/// returns the number of parts. Names longer than [`MAX_CLASS_NAME`] bytes
/// or more than [`MAX_CLASSES`] classes are refused.
pub fn encode_class_table<'n>(
    buoy_id: u16,
    model_id: u32,
    table_id: u32,
    names: impl Iterator<Item = Option<&'n str>> + Clone,
    mut emit: impl FnMut(&[u8]),
) -> Result<usize, TelemetryError> {
    let total = names.clone().count();
    if total > MAX_CLASSES {
        return Err(TelemetryError::TooManyClasses(total));
    }
    if names.clone().flatten().any(|n| n.len() > MAX_CLASS_NAME) {
        return Err(TelemetryError::Malformed);
    }
    let mut buf = [0u8; SBD_MAX_BYTES];
    let mut names = names.peekable();
    let (mut first, mut parts) = (0usize, 0usize);
    // One part even for an empty table, so the decoder learns it is empty.
    while parts == 0 || names.peek().is_some() {
        buf[0] = CLASS_TABLE_MAGIC;
        buf[1] = CLASS_TABLE_VERSION;
        buf[2..4].copy_from_slice(&buoy_id.to_le_bytes());
        buf[4..8].copy_from_slice(&model_id.to_le_bytes());
        buf[8..12].copy_from_slice(&table_id.to_le_bytes());
        let mut at = TABLE_HEAD_LEN;
        let mut count = 0usize;
        while let Some(name) = names.peek() {
            let name = name.unwrap_or("");
            if at + 1 + name.len() + 2 > SBD_MAX_BYTES {
                break;
            }
            buf[at] = name.len() as u8;
            buf[at + 1..at + 1 + name.len()].copy_from_slice(name.as_bytes());
            at += 1 + name.len();
            count += 1;
            names.next();
        }
        // The casts cannot truncate: total <= MAX_CLASSES < 256.
        buf[12] = first as u8;
        buf[13] = total as u8;
        buf[14] = count as u8;
        let crc = CRC16.checksum(&buf[..at]);
        buf[at..at + 2].copy_from_slice(&crc.to_le_bytes());
        emit(&buf[..at + 2]);
        first += count;
        parts += 1;
    }
    Ok(parts)
}

/// Host-side helpers: read a message given as a file path or hex text and
/// describe it for a person.
#[cfg(any(test, feature = "std"))]
pub mod host {
    use super::Telemetry;
    use std::format;
    use std::string::String;
    use std::vec;
    use std::vec::Vec;

    /// Parses hex text (whitespace, `0x` prefix and `:`/`-` separators allowed).
    pub fn parse_hex(text: &str) -> Result<Vec<u8>, String> {
        let t = text.trim();
        let t = t
            .strip_prefix("0x")
            .or_else(|| t.strip_prefix("0X"))
            .unwrap_or(t);
        let digits: Vec<u8> = t
            .bytes()
            .filter(|b| !b.is_ascii_whitespace() && *b != b':' && *b != b'-')
            .collect();
        if !digits.len().is_multiple_of(2) {
            return Err(format!(
                "hex text has an odd number of digits ({})",
                digits.len()
            ));
        }
        digits
            .chunks(2)
            .map(|p| {
                let s =
                    core::str::from_utf8(p).map_err(|_| String::from("hex text is not ASCII"))?;
                u8::from_str_radix(s, 16).map_err(|_| format!("'{s}' is not a hex byte"))
            })
            .collect()
    }

    /// Reads a message from `arg`: an existing file (raw bytes, or hex text
    /// if the file is all hex digits) or else hex on the command line.
    pub fn load(arg: &str) -> Result<Vec<u8>, String> {
        let path = std::path::Path::new(arg);
        if path.exists() {
            let bytes = crate::walk::read_regular_file(path, MAX_FILE_BYTES)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            let as_text = core::str::from_utf8(&bytes).ok().map(str::trim);
            match as_text {
                Some(t)
                    if !t.is_empty()
                        && t.bytes()
                            .all(|b| b.is_ascii_hexdigit() || b.is_ascii_whitespace())
                        && bytes[0] != super::MAGIC =>
                {
                    parse_hex(t).map_err(|e| format!("{}: {e}", path.display()))
                }
                _ => Ok(bytes),
            }
        } else {
            parse_hex(arg).map_err(|e| format!("'{arg}' is neither an existing file nor hex: {e}"))
        }
    }

    /// A short readable report of one message; `class_names[i]` names class `i` when given.
    pub fn describe(msg: &Telemetry, encoded_len: usize, class_names: &[String]) -> String {
        use core::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "telemetry v{} from buoy {} (message #{}, {} bytes of {} SBD)",
            msg.version,
            msg.buoy_id,
            msg.sequence,
            encoded_len,
            super::SBD_MAX_BYTES
        );
        let _ = writeln!(
            s,
            "interval: start {} s, length {} s; model {:08x}",
            msg.interval_start_s, msg.interval_len_s, msg.model_id
        );
        let _ = writeln!(s, "frames: {}  unknown: {}", msg.frames, msg.unknown);
        for (i, c) in msg.counts.as_slice().iter().enumerate() {
            match class_names.get(i) {
                Some(name) => {
                    let _ = writeln!(s, "  class {i:>3} {name:<24} {c}");
                }
                None => {
                    let _ = writeln!(s, "  class {i:>3} {c}");
                }
            }
        }
        s
    }

    /// One line of a telemetry file that could not be decoded.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct BadLine {
        /// 1-based line number in the file.
        pub line: usize,
        /// Why (hex or telemetry error).
        pub reason: String,
    }

    /// What [`decode_report`] made of its input.
    #[derive(Debug, Clone, Default, PartialEq, Eq)]
    pub struct DecodeReport {
        /// Descriptions of the messages that decoded, in input order.
        pub text: String,
        /// Messages decoded (counts and class-table parts).
        pub messages: usize,
        /// The counts messages, in input order (`seaclr telemetry decode --json`).
        pub decoded: Vec<Decoded>,
        /// Lines that did not decode (a hex file only).
        pub bad_lines: Vec<BadLine>,
    }

    /// One counts message [`decode_report`] decoded.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Decoded {
        /// 1-based line in a hex file (`None`: one raw message or hex text).
        pub line: Option<usize>,
        /// Encoded length in bytes.
        pub bytes: usize,
        /// The message.
        pub message: Telemetry,
        /// Class names by index, as the text names them (given on the
        /// command line, or from the buoy's class table; may be empty).
        pub class_names: Vec<String>,
    }

    /// Decodes `arg` (file or hex) and describes it: the `seaclr telemetry
    /// decode` command. A file whose first byte is [`super::MAGIC`] is one
    /// raw message; any other file is text with one hex message per line
    /// (the buoy simulator's `telemetry.hex`): every line is decoded on its
    /// own, so a bad line is reported with its number and reason and the
    /// lines before and after it are still described. Blank lines are
    /// skipped. Only an input that cannot be read at all (or one raw or
    /// command-line message that does not decode) is an `Err`.
    pub fn decode_report(arg: &str, class_names: &[String]) -> Result<DecodeReport, String> {
        let path = std::path::Path::new(arg);
        if path.exists() {
            // Never open a FIFO or a device: it may block forever.
            let bytes = crate::walk::read_regular_file(path, MAX_FILE_BYTES)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            if bytes.first() == Some(&super::MAGIC) {
                let msg = Telemetry::decode(&bytes)
                    .map_err(|e| format!("{}: not valid telemetry: {e}", path.display()))?;
                return Ok(DecodeReport {
                    text: describe(&msg, bytes.len(), class_names),
                    messages: 1,
                    decoded: std::vec![Decoded {
                        line: None,
                        bytes: bytes.len(),
                        message: msg,
                        class_names: class_names.to_vec(),
                    }],
                    bad_lines: Vec::new(),
                });
            }
            let mut report = DecodeReport::default();
            let mut tables = ClassTables::default();
            for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
                let line_no = i + 1;
                let decoded = core::str::from_utf8(line)
                    .map_err(|_| String::from("not text (invalid UTF-8)"))
                    .map(str::trim)
                    .and_then(|t| {
                        if t.is_empty() {
                            Ok(None)
                        } else {
                            parse_hex(t).map(Some)
                        }
                    });
                let text = match decoded {
                    Ok(None) => continue,
                    Ok(Some(msg)) if msg.first() == Some(&super::CLASS_TABLE_MAGIC) => {
                        super::ClassTablePart::decode(&msg)
                            .map(|part| (tables.add(&part), None))
                            .map_err(|e| format!("not a valid class table: {e}"))
                    }
                    Ok(Some(msg)) => Telemetry::decode(&msg)
                        .map(|m| {
                            let names = tables.names_for(&m, class_names);
                            let text = describe(&m, msg.len(), &names);
                            let decoded = Decoded {
                                line: Some(line_no),
                                bytes: msg.len(),
                                message: m,
                                class_names: names,
                            };
                            (text, Some(decoded))
                        })
                        .map_err(|e| format!("not valid telemetry: {e}")),
                    Err(e) => Err(e),
                };
                match text {
                    Ok((text, decoded)) => {
                        report.text.push_str(&text);
                        report.messages += 1;
                        report.decoded.extend(decoded);
                    }
                    Err(reason) => report.bad_lines.push(BadLine {
                        line: line_no,
                        reason,
                    }),
                }
            }
            if report.messages == 0 && report.bad_lines.is_empty() {
                return Err(format!(
                    "{}: no telemetry messages in the file",
                    path.display()
                ));
            }
            return Ok(report);
        }
        let bytes = parse_hex(arg)
            .map_err(|e| format!("'{arg}' is neither an existing file nor hex: {e}"))?;
        let msg =
            Telemetry::decode(&bytes).map_err(|e| format!("{arg}: not valid telemetry: {e}"))?;
        Ok(DecodeReport {
            text: describe(&msg, bytes.len(), class_names),
            messages: 1,
            decoded: std::vec![Decoded {
                line: None,
                bytes: bytes.len(),
                message: msg,
                class_names: class_names.to_vec(),
            }],
            bad_lines: Vec::new(),
        })
    }

    /// The class tables seen so far in a file, per buoy and model.
    #[derive(Default)]
    struct ClassTables {
        tables: Vec<(u16, u32, u32, Vec<String>)>,
    }

    impl ClassTables {
        /// Takes one part in (a new table id starts a new table); says what it held.
        fn add(&mut self, part: &super::ClassTablePart<'_>) -> String {
            let key =
                |t: &&mut (u16, u32, u32, Vec<String>)| t.0 == part.buoy_id && t.1 == part.model_id;
            let fresh = (
                part.buoy_id,
                part.model_id,
                part.table_id,
                vec![String::new(); usize::from(part.total)],
            );
            let table = match self.tables.iter_mut().find(key) {
                Some(t) if t.2 == part.table_id && t.3.len() == usize::from(part.total) => t,
                Some(t) => {
                    *t = fresh;
                    t
                }
                None => {
                    self.tables.push(fresh);
                    self.tables.last_mut().expect("just pushed")
                }
            };
            for (slot, name) in table.3[usize::from(part.first)..]
                .iter_mut()
                .zip(part.names())
            {
                *slot = name.into();
            }
            let listed: Vec<&str> = part
                .names()
                .map(|n| if n.is_empty() { "(free)" } else { n })
                .collect();
            format!(
                "class table #{} from buoy {} (model {:08x}): classes {}..{} of {}: {}\n",
                part.table_id,
                part.buoy_id,
                part.model_id,
                part.first,
                usize::from(part.first) + usize::from(part.count),
                part.total,
                listed.join(", ")
            )
        }

        /// The names for a counts message: `given` when not empty, else the
        /// latest table of its buoy and model (or none).
        fn names_for(&self, msg: &Telemetry, given: &[String]) -> Vec<String> {
            if !given.is_empty() {
                return given.to_vec();
            }
            self.tables
                .iter()
                .find(|t| t.0 == msg.buoy_id && t.1 == msg.model_id)
                .map(|t| t.3.clone())
                .unwrap_or_default()
        }
    }

    /// Largest telemetry file read (a day of hourly messages is a few KiB).
    pub const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

    /// [`decode_report`] as one text; any bad line makes it an `Err` that
    /// names the file and line (the good lines are lost: use
    /// [`decode_report`] to keep them).
    pub fn decode_to_text(arg: &str, class_names: &[String]) -> Result<String, String> {
        let report = decode_report(arg, class_names)?;
        match report.bad_lines.first() {
            None => Ok(report.text),
            Some(bad) => Err(format!("{arg}: line {}: {}", bad.line, bad.reason)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hex::Hex;

    #[test]
    fn class_tables_round_trip_in_parts_and_name_the_counts() {
        let long = "n".repeat(32);
        let names: std::vec::Vec<Option<&str>> = (0..64)
            .map(|i| if i == 3 { None } else { Some(long.as_str()) })
            .collect();
        let mut parts: std::vec::Vec<std::vec::Vec<u8>> = std::vec::Vec::new();
        let n =
            encode_class_table(7, 3, 9, names.iter().copied(), |p| parts.push(p.to_vec())).unwrap();
        assert_eq!(n, parts.len());
        assert!(n > 1 && parts.iter().all(|p| p.len() <= SBD_MAX_BYTES));
        let mut seen = 0;
        for p in &parts {
            let part = ClassTablePart::decode(p).unwrap();
            assert_eq!(
                (part.buoy_id, part.model_id, part.table_id, part.total),
                (7, 3, 9, 64)
            );
            assert_eq!(usize::from(part.first), seen);
            for (i, name) in part.names().enumerate() {
                assert_eq!(name, names[seen + i].unwrap_or(""));
            }
            seen += usize::from(part.count);
        }
        assert_eq!(seen, 64);
        // Every flipped bit and every truncation is refused.
        let p = &parts[0];
        for bit in 0..p.len() * 8 {
            let mut bad = p.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(ClassTablePart::decode(&bad).is_err(), "bit {bit}");
        }
        for cut in 0..p.len() {
            assert!(ClassTablePart::decode(&p[..cut]).is_err(), "cut {cut}");
        }
        // An empty table is one part; too many classes or a long name are refused.
        let mut empty = 0;
        assert_eq!(
            encode_class_table(1, 1, 1, core::iter::empty(), |_| empty += 1),
            Ok(1)
        );
        let too_long = "x".repeat(33);
        assert!(
            encode_class_table(1, 1, 1, [Some(too_long.as_str())].into_iter(), |_| ()).is_err()
        );
        assert!(encode_class_table(1, 1, 1, (0..101).map(|_| Some("a")), |_| ()).is_err());
    }

    #[test]
    fn a_telemetry_file_names_its_counts_from_the_class_table_it_carries() {
        let dir =
            std::env::temp_dir().join(std::format!("seaclr-tele-table-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut lines = std::vec::Vec::new();
        let hex = |b: &[u8]| std::format!("{}", Hex(b));
        encode_class_table(
            7,
            3,
            1,
            [Some("copepod"), Some("diatom")].into_iter(),
            |p| lines.push(hex(p)),
        )
        .unwrap();
        let mut buf = [0u8; SBD_MAX_BYTES];
        let msg = sample(&[4, 2]);
        lines.push(hex(msg.encode(&mut buf).unwrap()));
        let path = dir.join("telemetry.hex");
        std::fs::write(&path, lines.join("\n")).unwrap();
        let report = host::decode_report(path.to_str().unwrap(), &[]).unwrap();
        assert!(report.bad_lines.is_empty(), "{:?}", report.bad_lines);
        assert!(
            report.text.contains("class table #1 from buoy 7"),
            "{}",
            report.text
        );
        assert!(
            report.text.contains("copepod") && report.text.contains("diatom                   2"),
            "{}",
            report.text
        );
        // Names given on the command line win.
        let given = [
            std::string::String::from("a"),
            std::string::String::from("b"),
        ];
        let report = host::decode_report(path.to_str().unwrap(), &given).unwrap();
        assert!(report.text.contains("class   0 a"), "{}", report.text);
    }

    fn sample(counts: &[u32]) -> Telemetry {
        Telemetry {
            version: FORMAT_VERSION,
            buoy_id: 7,
            sequence: 42,
            interval_start_s: 1_790_000_000,
            interval_len_s: 3600,
            model_id: 3,
            frames: counts.iter().sum::<u32>() + 5,
            unknown: 5,
            counts: ClassCounts::from_slice(counts).unwrap(),
        }
    }

    #[test]
    fn round_trip() {
        let msg = sample(&[3, 0, 150, 20_000, 1]);
        let mut buf = [0u8; SBD_MAX_BYTES];
        let bytes = msg.encode(&mut buf).unwrap().to_vec();
        assert_eq!(Telemetry::decode(&bytes).unwrap(), msg);
        assert_eq!(bytes[0], MAGIC);
    }

    #[test]
    fn worst_case_message_fits_one_sbd_message() {
        let msg = Telemetry {
            version: FORMAT_VERSION,
            buoy_id: u16::MAX,
            sequence: u32::MAX,
            interval_start_s: u32::MAX,
            interval_len_s: u32::MAX,
            model_id: u32::MAX,
            frames: u32::MAX,
            unknown: u32::MAX,
            counts: ClassCounts::from_slice(&[u32::MAX; MAX_CLASSES]).unwrap(),
        };
        let mut buf = [0u8; 1024];
        let n = msg.encode(&mut buf).unwrap().len();
        assert!(n <= SBD_MAX_BYTES, "worst case is {n} bytes");
        // And it still encodes into exactly an SBD-sized buffer.
        let mut sbd = [0u8; SBD_MAX_BYTES];
        assert_eq!(msg.encode(&mut sbd).unwrap().len(), n);
    }

    #[test]
    fn counts_saturate() {
        let c = ClassCounts::from_slice(&[u32::MAX, 5]).unwrap();
        assert_eq!(c.as_slice(), &[MAX_COUNT, 5]);
    }

    #[test]
    fn too_many_classes_is_an_error() {
        assert_eq!(
            ClassCounts::from_slice(&[0; MAX_CLASSES + 1]),
            Err(TelemetryError::TooManyClasses(MAX_CLASSES + 1))
        );
    }

    #[test]
    fn every_single_bit_flip_is_rejected() {
        let msg = sample(&[1, 2, 3, 400]);
        let mut buf = [0u8; SBD_MAX_BYTES];
        let bytes = msg.encode(&mut buf).unwrap().to_vec();
        for i in 0..bytes.len() * 8 {
            let mut bad = bytes.clone();
            bad[i / 8] ^= 1 << (i % 8);
            assert!(Telemetry::decode(&bad).is_err(), "flip of bit {i} accepted");
        }
    }

    #[test]
    fn truncated_and_extended_messages_are_rejected() {
        let msg = sample(&[9, 9]);
        let mut buf = [0u8; SBD_MAX_BYTES];
        let bytes = msg.encode(&mut buf).unwrap().to_vec();
        assert!(Telemetry::decode(&bytes[..bytes.len() - 1]).is_err());
        assert_eq!(
            Telemetry::decode(&bytes[..2]),
            Err(TelemetryError::TooShort(2))
        );
        let mut longer = bytes.clone();
        longer.insert(longer.len() - 2, 0);
        assert!(Telemetry::decode(&longer).is_err());
    }

    #[test]
    fn small_buffer_is_an_error_not_a_panic() {
        let msg = sample(&[1; 50]);
        let mut buf = [0u8; 20];
        assert_eq!(msg.encode(&mut buf), Err(TelemetryError::BufferTooSmall));
    }

    #[test]
    fn hex_round_trip_and_description() {
        let msg = sample(&[4, 0, 7]);
        let mut buf = [0u8; SBD_MAX_BYTES];
        let bytes = msg.encode(&mut buf).unwrap();
        let hex = std::format!("{}", Hex(bytes));
        let names = [
            std::string::String::from("copepod"),
            std::string::String::from("diatom"),
        ];
        let text = host::decode_to_text(&hex, &names).unwrap();
        assert!(text.contains("buoy 7"), "{text}");
        assert!(text.contains("copepod"), "{text}");
        assert!(text.contains("unknown: 5"), "{text}");
        assert!(host::decode_to_text("zz", &[]).is_err());
        // A file of hex lines: one description per message; a bad line names its number.
        let p =
            std::env::temp_dir().join(std::format!("seaclr-telemetry-{}.hex", std::process::id()));
        std::fs::write(&p, std::format!("{hex}\n{hex}\n")).unwrap();
        let text = host::decode_to_text(p.to_str().unwrap(), &[]).unwrap();
        assert_eq!(text.matches("telemetry v1").count(), 2, "{text}");
        std::fs::write(&p, std::format!("{hex}\n00ff\n")).unwrap();
        let err = host::decode_to_text(p.to_str().unwrap(), &[]).unwrap_err();
        assert!(err.contains("line 2"), "{err}");
        assert!(host::decode_to_text("c100", &[]).is_err());
    }

    fn encode_raw(msg: &Telemetry) -> std::vec::Vec<u8> {
        let mut buf = [0u8; SBD_MAX_BYTES];
        msg.encode(&mut buf).unwrap().to_vec()
    }

    #[test]
    fn checksummed_but_inconsistent_counts_are_rejected() {
        // The encoder writes whatever it is given; the CRC is valid.
        let mut msg = sample(&[3, 4]);
        msg.counts.counts[1] = u32::MAX;
        assert_eq!(
            Telemetry::decode(&encode_raw(&msg)),
            Err(TelemetryError::CountAboveMax {
                class: 1,
                count: u32::MAX
            })
        );
        let mut msg = sample(&[3, 4]);
        msg.counts.counts[0] = MAX_COUNT;
        let err = Telemetry::decode(&encode_raw(&msg)).unwrap_err();
        assert_eq!(
            err,
            TelemetryError::CountsAboveFrames {
                total: u64::from(MAX_COUNT) + 4 + 5,
                frames: 12
            }
        );
        assert!(std::format!("{err}").contains("frame count 12"), "{err}");
        let mut msg = sample(&[]);
        msg.unknown = msg.frames + 1;
        assert_eq!(
            Telemetry::decode(&encode_raw(&msg)),
            Err(TelemetryError::UnknownAboveFrames {
                unknown: 6,
                frames: 5
            })
        );
        // Counts that add up to the frames (or fewer) are fine.
        let mut msg = sample(&[3, 4]);
        msg.frames = 7 + 5;
        Telemetry::decode(&encode_raw(&msg)).unwrap();
        msg.frames = u32::MAX;
        Telemetry::decode(&encode_raw(&msg)).unwrap();
        // Many large counts cannot overflow the sum.
        let mut msg = sample(&[MAX_COUNT; MAX_CLASSES]);
        msg.frames = u32::MAX;
        msg.unknown = u32::MAX;
        assert!(matches!(
            Telemetry::decode(&encode_raw(&msg)),
            Err(TelemetryError::CountsAboveFrames { .. })
        ));
    }

    #[test]
    fn decode_reports_bad_lines_and_describes_the_good_ones() {
        let hex = |msg: &Telemetry| std::format!("{}", Hex(&encode_raw(msg)));
        let good = |seq: u32| {
            let mut m = sample(&[1, 2]);
            m.sequence = seq;
            hex(&m)
        };
        let mut flipped = encode_raw(&sample(&[1, 2]));
        flipped[3] ^= 4;
        let flipped = std::format!("{}", Hex(&flipped));
        let mut inconsistent = sample(&[1, 2]);
        inconsistent.counts.counts[0] = u32::MAX;
        let text = std::format!(
            "{}\nnot hex\n{}\n\n{flipped}\n{}\n{}\n",
            good(1),
            good(2),
            hex(&inconsistent),
            good(3)
        );
        let mut bytes = text.into_bytes();
        bytes.extend_from_slice(b"\xff\xfe\n");
        bytes.extend_from_slice(good(4).as_bytes());
        let p = std::env::temp_dir().join(std::format!(
            "seaclr-telemetry-bad-{}.hex",
            std::process::id()
        ));
        std::fs::write(&p, &bytes).unwrap();
        let report = host::decode_report(p.to_str().unwrap(), &[]).unwrap();
        std::fs::remove_file(&p).unwrap();
        assert_eq!(report.messages, 4, "{}", report.text);
        for seq in 1..=4 {
            assert!(
                report.text.contains(&std::format!("message #{seq},")),
                "{}",
                report.text
            );
        }
        let lines: std::vec::Vec<usize> = report.bad_lines.iter().map(|b| b.line).collect();
        assert_eq!(lines, [2, 5, 6, 8], "{:?}", report.bad_lines);
        assert!(
            report.bad_lines[0].reason.contains("hex"),
            "{:?}",
            report.bad_lines
        );
        assert!(
            report.bad_lines[1].reason.contains("CRC"),
            "{:?}",
            report.bad_lines
        );
        assert!(
            report.bad_lines[2]
                .reason
                .contains("above the largest count"),
            "{:?}",
            report.bad_lines
        );
        assert!(
            report.bad_lines[3].reason.contains("UTF-8"),
            "{:?}",
            report.bad_lines
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_fifo_is_not_opened() {
        let p = std::env::temp_dir().join(std::format!(
            "seaclr-telemetry-fifo-{}.hex",
            std::process::id()
        ));
        let _ = std::fs::remove_file(&p);
        if !std::process::Command::new("mkfifo")
            .arg(&p)
            .status()
            .is_ok_and(|s| s.success())
        {
            return;
        }
        let err = host::decode_report(p.to_str().unwrap(), &[]).unwrap_err();
        std::fs::remove_file(&p).unwrap();
        assert!(err.contains("FIFO"), "{err}");
    }
}
