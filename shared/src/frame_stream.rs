//! The raw frame stream: camera ROIs as gray bytes, one record per frame,
//! for a device that reads frames from a file or a serial link (the QEMU
//! board reads it over semihosting).
//!
//! # Format (version [`VERSION`], all integers little-endian)
//! ```text
//! stream header (12 bytes): MAGIC "SCLRFRMS" | version u16 | reserved u16 = 0
//! record, repeated until the end of the stream:
//!   width u16 | height u16 | id_len u8 | id bytes (id_len, <= MAX_ID_LEN)
//!   | gray pixels (width * height, row-major, white = 255)
//!   | CRC-32 u32 (ISO-HDLC, as the model blob) of everything before it in the record
//! ```
//! The id is opaque bytes (usually the UTF-8 file name). A frame is at most
//! [`MAX_WIDTH`] x [`MAX_HEIGHT`] pixels, the buoy camera's ROI buffer;
//! bigger ROIs are binned by the host before writing (or refused by the
//! encoder). The pixels are the *unprocessed* gray ROI: the device runs
//! [`crate::preprocess::preprocess_gray`] itself, as it does on camera frames.
//!
//! # Trust
//! Nothing in a record is used before its CRC checks: a torn record (the
//! stream ends inside it) is [`StreamError::Truncated`], a flipped bit is
//! [`StreamError::Checksum`], a size outside the cap is
//! [`StreamError::FrameTooLarge`]. Every error names the record's index.
//! After an error the decoder stops (a bad length field leaves no reliable
//! place to resume).
//!
//! # API
//! - Encoding into a caller buffer: [`write_header`], [`record_len`],
//!   [`encode_record`].
//! - Decoding from any [`Source`] (a byte slice, a file, a UART) into a
//!   caller buffer of [`MAX_RECORD_LEN`] bytes: [`Decoder::new`] reads the
//!   header, [`Decoder::next_frame`] returns one checked [`Frame`] at a time.

use crate::blob::crc32;

/// The stream's first 8 bytes.
pub const MAGIC: [u8; 8] = *b"SCLRFRMS";
/// The format version this module reads and writes.
pub const VERSION: u16 = 1;
/// Bytes of the stream header.
pub const HEADER_LEN: usize = 12;
/// Widest accepted frame (the camera's ROI buffer).
pub const MAX_WIDTH: usize = 320;
/// Tallest accepted frame.
pub const MAX_HEIGHT: usize = 320;
/// Longest frame id in bytes.
pub const MAX_ID_LEN: usize = 128;
/// Bytes before the id: width, height, id length.
pub const RECORD_HEAD_LEN: usize = 5;
/// Bytes of the trailing CRC-32.
pub const RECORD_CRC_LEN: usize = 4;
/// The largest record: a decoder buffer of this size holds any frame.
pub const MAX_RECORD_LEN: usize =
    RECORD_HEAD_LEN + MAX_ID_LEN + MAX_WIDTH * MAX_HEIGHT + RECORD_CRC_LEN;

/// Why a frame could not be encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncodeError {
    /// Width or height is 0 or above the cap.
    FrameTooLarge {
        /// Frame width.
        width: usize,
        /// Frame height.
        height: usize,
    },
    /// The id is longer than [`MAX_ID_LEN`].
    IdTooLong {
        /// Its length.
        len: usize,
    },
    /// `pixels.len()` is not `width * height`.
    PixelCount {
        /// `width * height`.
        expected: usize,
        /// `pixels.len()`.
        found: usize,
    },
    /// The output buffer is too small.
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
    },
}

impl core::fmt::Display for EncodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::FrameTooLarge { width, height } => write!(
                f,
                "frame is {width}x{height}, the stream takes 1x1 to {MAX_WIDTH}x{MAX_HEIGHT} (bin it first)"
            ),
            Self::IdTooLong { len } => {
                write!(f, "frame id has {len} bytes, at most {MAX_ID_LEN}")
            }
            Self::PixelCount { expected, found } => {
                write!(f, "frame has {found} pixels, width*height is {expected}")
            }
            Self::BufferTooSmall { needed } => {
                write!(f, "output buffer too small: {needed} bytes needed")
            }
        }
    }
}

impl core::error::Error for EncodeError {}

/// Why a stream could not be read. `frame` is the 0-based record index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamError<E> {
    /// The first 8 bytes are not [`MAGIC`] (or the stream is shorter).
    BadMagic,
    /// A version this build does not read.
    UnsupportedVersion {
        /// The version found.
        found: u16,
    },
    /// The stream ends inside a record (a torn write or a cut file).
    Truncated {
        /// The record.
        frame: u32,
        /// Bytes of it present.
        have: usize,
        /// Bytes it needs (as far as its header could be read).
        needed: usize,
    },
    /// The record's size fields are outside the cap (too big, or 0).
    FrameTooLarge {
        /// The record.
        frame: u32,
        /// Width field.
        width: usize,
        /// Height field.
        height: usize,
    },
    /// The id length field is above [`MAX_ID_LEN`].
    IdTooLong {
        /// The record.
        frame: u32,
        /// Id length field.
        len: usize,
    },
    /// The record's CRC does not match its bytes.
    Checksum {
        /// The record.
        frame: u32,
        /// CRC stored in the record.
        stored: u32,
        /// CRC of the bytes read.
        computed: u32,
    },
    /// The caller's buffer cannot hold the record.
    BufferTooSmall {
        /// The record.
        frame: u32,
        /// Bytes needed.
        needed: usize,
    },
    /// The source failed.
    Source(E),
}

impl<E: core::fmt::Display> core::fmt::Display for StreamError<E> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::BadMagic => write!(f, "not a frame stream (bad magic)"),
            Self::UnsupportedVersion { found } => write!(
                f,
                "frame stream version {found}, this build reads version {VERSION}"
            ),
            Self::Truncated {
                frame,
                have,
                needed,
            } => write!(
                f,
                "frame {frame}: stream ends inside the record ({have} of {needed} bytes)"
            ),
            Self::FrameTooLarge {
                frame,
                width,
                height,
            } => write!(
                f,
                "frame {frame}: size {width}x{height} is outside 1x1..{MAX_WIDTH}x{MAX_HEIGHT}"
            ),
            Self::IdTooLong { frame, len } => {
                write!(f, "frame {frame}: id of {len} bytes, at most {MAX_ID_LEN}")
            }
            Self::Checksum {
                frame,
                stored,
                computed,
            } => write!(
                f,
                "frame {frame}: CRC mismatch (stored {stored:08x}, computed {computed:08x}): record corrupt"
            ),
            Self::BufferTooSmall { frame, needed } => {
                write!(f, "frame {frame}: buffer too small ({needed} bytes needed)")
            }
            Self::Source(e) => write!(f, "reading the stream: {e}"),
        }
    }
}

impl<E: core::fmt::Debug + core::fmt::Display> core::error::Error for StreamError<E> {}

/// Writes the stream header into `out` (at least [`HEADER_LEN`] bytes) and
/// returns its length.
pub fn write_header(out: &mut [u8]) -> Result<usize, EncodeError> {
    let out = out
        .get_mut(..HEADER_LEN)
        .ok_or(EncodeError::BufferTooSmall { needed: HEADER_LEN })?;
    out[..8].copy_from_slice(&MAGIC);
    out[8..10].copy_from_slice(&VERSION.to_le_bytes());
    out[10..12].copy_from_slice(&0u16.to_le_bytes());
    Ok(HEADER_LEN)
}

fn check_size(width: usize, height: usize) -> bool {
    (1..=MAX_WIDTH).contains(&width) && (1..=MAX_HEIGHT).contains(&height)
}

/// Bytes of the record of a `width x height` frame with an `id_len`-byte id.
pub const fn record_len(width: usize, height: usize, id_len: usize) -> usize {
    RECORD_HEAD_LEN + id_len + width * height + RECORD_CRC_LEN
}

/// Encodes one frame record into `out` and returns its length.
pub fn encode_record(
    width: usize,
    height: usize,
    id: &[u8],
    pixels: &[u8],
    out: &mut [u8],
) -> Result<usize, EncodeError> {
    if !check_size(width, height) {
        return Err(EncodeError::FrameTooLarge { width, height });
    }
    if id.len() > MAX_ID_LEN {
        return Err(EncodeError::IdTooLong { len: id.len() });
    }
    if pixels.len() != width * height {
        return Err(EncodeError::PixelCount {
            expected: width * height,
            found: pixels.len(),
        });
    }
    let len = record_len(width, height, id.len());
    let out = out
        .get_mut(..len)
        .ok_or(EncodeError::BufferTooSmall { needed: len })?;
    // The casts cannot truncate: sizes were checked against the caps.
    out[0..2].copy_from_slice(&(width as u16).to_le_bytes());
    out[2..4].copy_from_slice(&(height as u16).to_le_bytes());
    out[4] = id.len() as u8;
    let body = RECORD_HEAD_LEN + id.len();
    out[RECORD_HEAD_LEN..body].copy_from_slice(id);
    out[body..body + pixels.len()].copy_from_slice(pixels);
    let crc = crc32(&out[..len - RECORD_CRC_LEN]);
    out[len - RECORD_CRC_LEN..].copy_from_slice(&crc.to_le_bytes());
    Ok(len)
}

/// Encodes a whole stream (header and records) into a `Vec`.
#[cfg(any(test, feature = "std"))]
pub fn encode_stream<'a>(
    frames: impl IntoIterator<Item = (usize, usize, &'a [u8], &'a [u8])>,
) -> Result<std::vec::Vec<u8>, EncodeError> {
    let mut out = std::vec![0u8; HEADER_LEN];
    write_header(&mut out)?;
    for (width, height, id, pixels) in frames {
        let start = out.len();
        out.resize(start + record_len(width, height, id.len()), 0);
        encode_record(width, height, id, pixels, &mut out[start..])?;
    }
    Ok(out)
}

/// Where a decoder reads bytes from.
pub trait Source {
    /// The source's error.
    type Error;
    /// Reads up to `buf.len()` bytes; `Ok(0)` means the end of the stream.
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error>;
}

impl Source for &[u8] {
    type Error = core::convert::Infallible;
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        let n = buf.len().min(self.len());
        buf[..n].copy_from_slice(&self[..n]);
        *self = &self[n..];
        Ok(n)
    }
}

/// Fills `buf` as far as the source allows; returns the bytes read.
fn fill<S: Source>(src: &mut S, buf: &mut [u8]) -> Result<usize, S::Error> {
    let mut have = 0;
    while have < buf.len() {
        let n = src.read(&mut buf[have..])?;
        if n == 0 {
            break;
        }
        have += n;
    }
    Ok(have)
}

/// One checked frame, borrowing the decoder buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame<'b> {
    /// 0-based record index in the stream.
    pub index: u32,
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// The id bytes (usually UTF-8).
    pub id: &'b [u8],
    /// `width * height` gray bytes, row-major.
    pub pixels: &'b [u8],
}

impl Frame<'_> {
    /// The id as text (`"?"` when it is not UTF-8).
    pub fn id_str(&self) -> &str {
        core::str::from_utf8(self.id).unwrap_or("?")
    }
}

/// A streaming decoder: one record in memory at a time.
pub struct Decoder<S> {
    src: S,
    next_index: u32,
    done: bool,
}

impl<S: Source> Decoder<S> {
    /// Reads and checks the stream header.
    pub fn new(mut src: S) -> Result<Self, StreamError<S::Error>> {
        let mut header = [0u8; HEADER_LEN];
        let n = fill(&mut src, &mut header).map_err(StreamError::Source)?;
        if n < HEADER_LEN || header[..8] != MAGIC {
            return Err(StreamError::BadMagic);
        }
        let found = u16::from_le_bytes([header[8], header[9]]);
        if found != VERSION {
            return Err(StreamError::UnsupportedVersion { found });
        }
        Ok(Self {
            src,
            next_index: 0,
            done: false,
        })
    }

    /// Index the next record will have (= records returned so far).
    pub fn next_index(&self) -> u32 {
        self.next_index
    }

    /// The next frame, `Ok(None)` at the clean end of the stream. `buf`
    /// holds the record ([`MAX_RECORD_LEN`] bytes fit any frame). After an
    /// error the decoder is finished and returns `Ok(None)`.
    pub fn next_frame<'b>(
        &mut self,
        buf: &'b mut [u8],
    ) -> Result<Option<Frame<'b>>, StreamError<S::Error>> {
        if self.done {
            return Ok(None);
        }
        let result = self.read_record(buf);
        match &result {
            Ok(Some(_)) => self.next_index += 1,
            _ => self.done = true,
        }
        result
    }

    fn read_record<'b>(
        &mut self,
        buf: &'b mut [u8],
    ) -> Result<Option<Frame<'b>>, StreamError<S::Error>> {
        let frame = self.next_index;
        let mut head = [0u8; RECORD_HEAD_LEN];
        let have = fill(&mut self.src, &mut head).map_err(StreamError::Source)?;
        if have == 0 {
            return Ok(None);
        }
        if have < RECORD_HEAD_LEN {
            return Err(StreamError::Truncated {
                frame,
                have,
                needed: RECORD_HEAD_LEN,
            });
        }
        let width = u16::from_le_bytes([head[0], head[1]]) as usize;
        let height = u16::from_le_bytes([head[2], head[3]]) as usize;
        let id_len = head[4] as usize;
        if !check_size(width, height) {
            return Err(StreamError::FrameTooLarge {
                frame,
                width,
                height,
            });
        }
        if id_len > MAX_ID_LEN {
            return Err(StreamError::IdTooLong { frame, len: id_len });
        }
        let len = record_len(width, height, id_len);
        let record = buf
            .get_mut(..len)
            .ok_or(StreamError::BufferTooSmall { frame, needed: len })?;
        record[..RECORD_HEAD_LEN].copy_from_slice(&head);
        let got =
            fill(&mut self.src, &mut record[RECORD_HEAD_LEN..]).map_err(StreamError::Source)?;
        if RECORD_HEAD_LEN + got < len {
            return Err(StreamError::Truncated {
                frame,
                have: RECORD_HEAD_LEN + got,
                needed: len,
            });
        }
        let (body, crc) = record.split_at(len - RECORD_CRC_LEN);
        let stored = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
        let computed = crc32(body);
        if stored != computed {
            return Err(StreamError::Checksum {
                frame,
                stored,
                computed,
            });
        }
        let id_end = RECORD_HEAD_LEN + id_len;
        Ok(Some(Frame {
            index: frame,
            width,
            height,
            id: &body[RECORD_HEAD_LEN..id_end],
            pixels: &body[id_end..],
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    fn frame_pixels(w: usize, h: usize, seed: u8) -> Vec<u8> {
        (0..w * h)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    fn sample_stream() -> Vec<u8> {
        let a = frame_pixels(3, 2, 1);
        let b = frame_pixels(320, 320, 2);
        let c = frame_pixels(1, 7, 3);
        encode_stream([
            (3, 2, &b"a.png"[..], &a[..]),
            (320, 320, &b"big"[..], &b[..]),
            (1, 7, &b""[..], &c[..]),
        ])
        .unwrap()
    }

    /// A decoded frame: width, height, id, pixels.
    type Owned = (usize, usize, Vec<u8>, Vec<u8>);

    fn decode_all(bytes: &[u8]) -> (Vec<Owned>, Option<StreamError<core::convert::Infallible>>) {
        let mut out = Vec::new();
        let mut dec = match Decoder::new(bytes) {
            Ok(d) => d,
            Err(e) => return (out, Some(e)),
        };
        let mut buf = std::vec![0u8; MAX_RECORD_LEN];
        loop {
            match dec.next_frame(&mut buf) {
                Ok(Some(f)) => out.push((f.width, f.height, f.id.to_vec(), f.pixels.to_vec())),
                Ok(None) => return (out, None),
                Err(e) => {
                    assert_eq!(dec.next_frame(&mut buf), Ok(None), "fused after an error");
                    return (out, Some(e));
                }
            }
        }
    }

    #[test]
    fn round_trip() {
        let (frames, err) = decode_all(&sample_stream());
        assert_eq!(err, None);
        assert_eq!(frames.len(), 3);
        assert_eq!(frames[0], (3, 2, b"a.png".to_vec(), frame_pixels(3, 2, 1)));
        assert_eq!(frames[1].3, frame_pixels(320, 320, 2));
        assert_eq!(frames[2], (1, 7, Vec::new(), frame_pixels(1, 7, 3)));
        // An empty stream (header only) is valid and has no frames.
        let mut header = [0u8; HEADER_LEN];
        write_header(&mut header).unwrap();
        assert_eq!(decode_all(&header), (Vec::new(), None));
    }

    #[test]
    fn every_truncation_is_reported_with_its_frame() {
        let stream = sample_stream();
        let first = HEADER_LEN + record_len(3, 2, 5);
        let second = first + record_len(320, 320, 3);
        for cut in 0..stream.len() {
            let (frames, err) = decode_all(&stream[..cut]);
            if cut < HEADER_LEN {
                assert_eq!(err, Some(StreamError::BadMagic), "cut {cut}");
            } else if cut == HEADER_LEN || cut == first || cut == second {
                assert_eq!(err, None, "cut {cut} at a record boundary is a clean end");
            } else {
                let frame = frames.len() as u32;
                assert!(
                    matches!(err, Some(StreamError::Truncated { frame: f, .. }) if f == frame),
                    "cut {cut}: {err:?}"
                );
            }
        }
    }

    #[test]
    fn any_flipped_bit_in_a_record_is_caught() {
        let stream = sample_stream();
        let end = HEADER_LEN + record_len(3, 2, 5);
        for byte in HEADER_LEN..end {
            for bit in 0..8 {
                let mut bad = stream.clone();
                bad[byte] ^= 1 << bit;
                let (frames, err) = decode_all(&bad);
                assert!(frames.is_empty(), "byte {byte} bit {bit}");
                assert!(
                    matches!(
                        err,
                        Some(
                            StreamError::Checksum { frame: 0, .. }
                                | StreamError::FrameTooLarge { frame: 0, .. }
                                | StreamError::IdTooLong { frame: 0, .. }
                                | StreamError::Truncated { frame: 0, .. }
                        )
                    ),
                    "byte {byte} bit {bit}: {err:?}"
                );
            }
        }
        // Pixels and CRC: exactly a checksum error.
        let mut bad = stream.clone();
        bad[HEADER_LEN + 5 + 5 + 2] ^= 0x10;
        assert!(matches!(
            decode_all(&bad).1,
            Some(StreamError::Checksum { frame: 0, .. })
        ));
    }

    #[test]
    fn wrong_sizes_are_refused() {
        let mut buf = std::vec![0u8; MAX_RECORD_LEN + 1000];
        assert_eq!(
            encode_record(321, 10, b"x", &std::vec![0; 3210], &mut buf),
            Err(EncodeError::FrameTooLarge {
                width: 321,
                height: 10
            })
        );
        assert_eq!(
            encode_record(0, 10, b"x", &[], &mut buf),
            Err(EncodeError::FrameTooLarge {
                width: 0,
                height: 10
            })
        );
        assert_eq!(
            encode_record(2, 2, b"x", &[0; 3], &mut buf),
            Err(EncodeError::PixelCount {
                expected: 4,
                found: 3
            })
        );
        assert_eq!(
            encode_record(2, 2, &[b'x'; MAX_ID_LEN + 1], &[0; 4], &mut buf),
            Err(EncodeError::IdTooLong {
                len: MAX_ID_LEN + 1
            })
        );
        assert_eq!(
            encode_record(2, 2, b"x", &[0; 4], &mut buf[..5]),
            Err(EncodeError::BufferTooSmall {
                needed: record_len(2, 2, 1)
            })
        );
        // A record claiming 400x400 (hand-made: the encoder refuses it).
        let mut stream = std::vec![0u8; HEADER_LEN];
        write_header(&mut stream).unwrap();
        stream.extend_from_slice(&400u16.to_le_bytes());
        stream.extend_from_slice(&400u16.to_le_bytes());
        stream.push(0);
        stream.extend(std::iter::repeat_n(0u8, 400 * 400 + 4));
        let (_, err) = decode_all(&stream);
        assert_eq!(
            err,
            Some(StreamError::FrameTooLarge {
                frame: 0,
                width: 400,
                height: 400
            })
        );
        // A caller buffer too small for a valid record.
        let stream = sample_stream();
        let mut dec = Decoder::new(&stream[..]).unwrap();
        let mut small = [0u8; 64];
        assert!(dec.next_frame(&mut small).unwrap().is_some());
        assert!(matches!(
            dec.next_frame(&mut small),
            Err(StreamError::BufferTooSmall { frame: 1, .. })
        ));
    }

    #[test]
    fn bad_header_is_refused() {
        let mut stream = sample_stream();
        stream[8] = 2;
        assert!(matches!(
            Decoder::new(&stream[..]),
            Err(StreamError::UnsupportedVersion { found: 2 })
        ));
        stream[0] = b'X';
        assert!(matches!(
            Decoder::new(&stream[..]),
            Err(StreamError::BadMagic)
        ));
    }

    #[test]
    fn errors_read_well() {
        let e: StreamError<core::convert::Infallible> = StreamError::Checksum {
            frame: 4,
            stored: 1,
            computed: 2,
        };
        assert_eq!(
            std::format!("{e}"),
            "frame 4: CRC mismatch (stored 00000001, computed 00000002): record corrupt"
        );
    }
}
