//! The model blob: how a quantized encoder travels from the host to flash.
//!
//! Layout (all integers little-endian, no alignment assumed anywhere):
//!
//! ```text
//! offset  size  field
//!      0     8  magic            b"SEACLRM\0"
//!      8     2  format_version   u16 (this crate reads FORMAT_VERSION only)
//!     10     2  header_len       u16 (= HEADER_LEN for version 1)
//!     12     4  payload_len      u32 bytes of postcard payload after the header
//!     16     4  payload_crc32    u32 CRC-32/ISO-HDLC of the payload
//!     20     2  input_size       u16 side of the square gray input
//!     22     2  preprocess_id    u16 preprocessing algorithm the model expects
//!     24     2  embedding_dim    u16 length of the int8 embedding
//!     26     2  layer_count      u16 records in the payload
//!     28     4  arena_bytes      u32 working memory `encode` needs
//!     32     4  macs             u32 multiply-accumulates per image (conv + linear)
//!     36     4  param_bytes      u32 weights + biases + multipliers + shifts
//!     40     1  input_zero_point i8  (-128: q = 127 - p, scale 1/255)
//!     41     1  input_encoding   u8  (INPUT_ENCODING_INVERTED_GRAY)
//!     42     1  output_zero_point i8 zero point of the embedding (0: symmetric)
//!     43     1  reserved (0)
//!     44     4  output_scale     f32 bits: real = scale * (q - zp); host-side only
//!     48    12  reserved (0)
//!     60     4  header_crc32     u32 CRC-32/ISO-HDLC of bytes 0..60
//! ```
//!
//! The payload is `layer_count` postcard records of [`Layer`], one after the
//! other. [`Blob::parse`] checks magic, version, lengths and both CRCs before
//! it decodes a single record, then walks the records once (one at a time,
//! `postcard::take_from_bytes`, no allocation) to check every shape, length
//! and the header's derived figures. Weights stay `&[u8]` borrowed from the
//! input (the blob may live in flash) and are decoded on access.
//!
//! A matching CRC only says the bytes are the ones that were written, not
//! that the writer was sane, so every field is range-checked after the CRCs
//! too: scales must be finite and positive ([`BlobError::BadScale`]),
//! reserved bytes zero, each layer must read the zero point the previous one
//! wrote, and `embedding_dim`, `macs`, `param_bytes`, `arena_bytes`,
//! `output_zero_point` and `output_scale` must equal what the layers give.
//!
//! Input quantization is fixed by [`INPUT_ENCODING_INVERTED_GRAY`]: a
//! preprocessed pixel `p` (white background 255) becomes `q = 127 - p`, with
//! scale 1/255 and zero point -128, so real = (255 - p) / 255 and the
//! background is exactly the zero point (which is also the padding value).
//!
//! Tensor layout on the device is HWC (channels last). Conv weights are
//! `[out][ky][kx][in]`; linear weights are `[out][in]` with inputs in HWC
//! order.

use serde::{Deserialize, Serialize};

/// Magic bytes at offset 0: says "this is a SeaCLR model" before anything else is read.
pub const MAGIC: [u8; 8] = *b"SEACLRM\0";
/// The only format version this crate reads and writes.
pub const FORMAT_VERSION: u16 = 1;
/// Length of the fixed header of format version 1.
pub const HEADER_LEN: usize = 64;
/// Input encoding id: `q = 127 - p`, scale 1/255, zero point -128.
pub const INPUT_ENCODING_INVERTED_GRAY: u8 = 1;
/// Input zero point of [`INPUT_ENCODING_INVERTED_GRAY`].
pub const INPUT_ZERO_POINT: i8 = -128;
/// Preprocessing id the models of this crate are made for: the one
/// algorithm in [`crate::preprocess`].
pub use crate::preprocess::PREPROCESS_ID;
/// Largest requantization left shift accepted (TFLite allows small left shifts).
pub const MAX_LEFT_SHIFT: i8 = 30;
/// Largest requantization right shift accepted (a Q31 value shifted further is 0).
pub const MAX_RIGHT_SHIFT: i8 = 31;

const CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

/// CRC-32/ISO-HDLC (the zip/Ethernet CRC) used for header and payload.
pub fn crc32(bytes: &[u8]) -> u32 {
    CRC32.checksum(bytes)
}

/// Everything that can be wrong with a blob. The parser returns one of these
/// for any input; it never panics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlobError {
    /// The first bytes are not [`MAGIC`]: not a SeaCLR model at all.
    BadMagic,
    /// A format version this build cannot read.
    UnsupportedVersion {
        /// Version stored in the blob.
        found: u16,
        /// Version this build reads.
        supported: u16,
    },
    /// The header length field does not match the version's fixed layout.
    BadHeaderLength {
        /// Length stored in the blob.
        found: u16,
        /// Length the version defines.
        expected: u16,
    },
    /// The bytes end before the header or the payload does.
    Truncated {
        /// Bytes the header says are needed.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
    /// The header bytes do not match their CRC.
    HeaderChecksumMismatch {
        /// CRC stored in the header.
        stored: u32,
        /// CRC of the header bytes.
        computed: u32,
    },
    /// The payload does not match its CRC (corrupt flash, partial write).
    ChecksumMismatch {
        /// CRC stored in the header.
        stored: u32,
        /// CRC of the payload bytes.
        computed: u32,
    },
    /// A header field is out of range or contradicts the layers.
    InvalidHeader {
        /// Which field and why.
        reason: &'static str,
    },
    /// A layer record cannot be decoded or does not fit the layers around it.
    InvalidLayer {
        /// Zero-based layer index.
        index: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// Bytes left in the payload after the last layer record.
    TrailingPayload {
        /// Unused payload bytes.
        count: usize,
    },
    /// A real-valued scale (checksummed, so written that way) that is NaN,
    /// infinite, zero or negative: it would turn every embedding into NaN
    /// or garbage on the host.
    BadScale {
        /// The layer whose requantization holds it; `None` for the header's
        /// `output_scale`.
        layer: Option<usize>,
        /// The raw `f32` bits as stored.
        bits: u32,
    },
    /// The model expects a different preprocessing than this device runs.
    PreprocessMismatch {
        /// Id stored in the blob.
        found: u16,
        /// Id this build implements.
        expected: u16,
    },
}

impl core::fmt::Display for BlobError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            BlobError::BadMagic => write!(f, "bad magic: not a SeaCLR model blob"),
            BlobError::UnsupportedVersion { found, supported } => {
                write!(
                    f,
                    "unsupported blob format version {found} (this build reads {supported})"
                )
            }
            BlobError::BadHeaderLength { found, expected } => {
                write!(f, "header length {found} bytes, expected {expected}")
            }
            BlobError::Truncated { needed, available } => {
                write!(
                    f,
                    "truncated blob: needs {needed} bytes, {available} available"
                )
            }
            BlobError::HeaderChecksumMismatch { stored, computed } => {
                write!(
                    f,
                    "header CRC mismatch: stored {stored:#010x}, computed {computed:#010x}"
                )
            }
            BlobError::ChecksumMismatch { stored, computed } => {
                write!(
                    f,
                    "payload CRC mismatch: stored {stored:#010x}, computed {computed:#010x}"
                )
            }
            BlobError::InvalidHeader { reason } => write!(f, "invalid header: {reason}"),
            BlobError::InvalidLayer { index, reason } => {
                write!(f, "invalid layer {index}: {reason}")
            }
            BlobError::TrailingPayload { count } => {
                write!(f, "{count} payload bytes after the last layer")
            }
            BlobError::BadScale { layer, bits } => {
                let value = f32::from_bits(*bits);
                match layer {
                    Some(index) => write!(f, "invalid layer {index}: output_scale {value}")?,
                    None => write!(f, "invalid header: output_scale {value}")?,
                }
                write!(f, " (bits {bits:#010x}) is not a finite positive number")
            }
            BlobError::PreprocessMismatch { found, expected } => {
                write!(
                    f,
                    "model expects preprocessing {found}, this build implements {expected}"
                )
            }
        }
    }
}

impl core::error::Error for BlobError {}

/// Little-endian `i32` values borrowed from the blob, decoded on access.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LeI32s<'a>(#[serde(borrow)] pub &'a [u8]);

impl<'a> LeI32s<'a> {
    /// Number of values (a trailing partial value is not counted).
    pub fn len(&self) -> usize {
        self.0.len() / 4
    }
    /// Whether there are no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The `i`-th value, `None` past the end.
    pub fn get(&self, i: usize) -> Option<i32> {
        let b = self
            .0
            .get(i.checked_mul(4)?..i.checked_mul(4)?.checked_add(4)?)?;
        Some(i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    /// All values in order.
    pub fn iter(&self) -> impl Iterator<Item = i32> + 'a {
        self.0
            .chunks_exact(4)
            .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// `i8` values borrowed from the blob (stored as raw bytes, two's complement).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct I8s<'a>(#[serde(borrow)] pub &'a [u8]);

impl<'a> I8s<'a> {
    /// Number of values.
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// Whether there are no values.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// The `i`-th value, `None` past the end.
    pub fn get(&self, i: usize) -> Option<i8> {
        self.0.get(i).map(|&b| b as i8)
    }
    /// All values in order.
    pub fn iter(&self) -> impl Iterator<Item = i8> + 'a {
        self.0.iter().map(|&b| b as i8)
    }
}

/// Per-channel requantization: `out = zp + clamp(mult_shift(acc, multiplier[c], shift[c]))`.
///
/// `multiplier` is a Q31 value in `[0, 2^31)`; `shift > 0` shifts left
/// before the high multiply, `shift < 0` is a rounding right shift after it
/// (the TFLite Micro / CMSIS-NN convention).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Requant<'a> {
    /// Zero point of the layer input (subtracted from every input value).
    pub input_zero_point: i8,
    /// Zero point added after requantization.
    pub output_zero_point: i8,
    /// Lower clamp (ReLU folds in here as the output zero point).
    pub activation_min: i8,
    /// Upper clamp.
    pub activation_max: i8,
    /// Q31 multipliers, one per output channel.
    #[serde(borrow)]
    pub multipliers: LeI32s<'a>,
    /// Shifts, one per output channel.
    #[serde(borrow)]
    pub shifts: I8s<'a>,
    /// Real scale of one output step; informational for the host
    /// (dequantization, inspection). The device never reads it.
    pub output_scale: f32,
}

/// 3x3 convolution, padding 1 with the input zero point, stride 1 or 2.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Conv3x3<'a> {
    /// Input channels.
    pub in_channels: u16,
    /// Output channels.
    pub out_channels: u16,
    /// 1 or 2.
    pub stride: u8,
    /// int8 weights in [-127, 127], zero point 0, `[out][ky][kx][in]`.
    #[serde(borrow)]
    pub weights: I8s<'a>,
    /// int32 bias per output channel at scale `input_scale * weight_scale[c]`.
    #[serde(borrow)]
    pub bias: LeI32s<'a>,
    /// Output quantization.
    #[serde(borrow)]
    pub requant: Requant<'a>,
}

/// Mean over all positions of each channel (`H x W x C -> C`).
///
/// `acc = sum(q - input_zp)` is requantized with a single multiplier that
/// already contains `1 / (H * W)` (stored as a one-element per-channel list).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct GlobalAvgPool<'a> {
    /// Channels (must equal the previous layer's).
    pub channels: u16,
    /// Output quantization (exactly one multiplier and shift).
    #[serde(borrow)]
    pub requant: Requant<'a>,
}

/// Fully connected layer over the HWC-flattened input.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Linear<'a> {
    /// Input features (`H * W * C` of the previous tensor).
    pub in_features: u16,
    /// Output features.
    pub out_features: u16,
    /// int8 weights `[out][in]`, zero point 0.
    #[serde(borrow)]
    pub weights: I8s<'a>,
    /// int32 bias per output feature.
    #[serde(borrow)]
    pub bias: LeI32s<'a>,
    /// Output quantization.
    #[serde(borrow)]
    pub requant: Requant<'a>,
}

/// One record of the payload.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Layer<'a> {
    /// See [`Conv3x3`].
    #[serde(borrow)]
    Conv3x3(Conv3x3<'a>),
    /// See [`GlobalAvgPool`].
    #[serde(borrow)]
    GlobalAvgPool(GlobalAvgPool<'a>),
    /// See [`Linear`].
    #[serde(borrow)]
    Linear(Linear<'a>),
}

/// Shape of an activation tensor (HWC).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
    /// Channels.
    pub channels: usize,
}

impl Shape {
    /// Number of int8 values.
    pub fn len(&self) -> usize {
        self.height * self.width * self.channels
    }
    /// Whether the tensor holds no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Figures derived from the layer list, written into (and checked against) the header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Plan {
    /// Multiply-accumulates of conv and linear layers per image.
    pub macs: u64,
    /// Bytes of weights, biases, multipliers and shifts.
    pub param_bytes: u64,
    /// Largest activation tensor (input included), in bytes.
    pub max_activation_bytes: u64,
    /// Largest scratch row a kernel needs (`i16` patch of a conv, bytes).
    pub scratch_bytes: u64,
    /// Number of layers.
    pub layer_count: u64,
    /// Length of the final tensor (the embedding).
    pub output_len: u64,
}

impl Plan {
    /// Arena layout: up to 3 bytes to align the scratch, the scratch
    /// (rounded up to 4 bytes), then two ping-pong activation buffers.
    pub fn arena_bytes(&self) -> u64 {
        3 + self.scratch_bytes.div_ceil(4) * 4 + 2 * self.max_activation_bytes
    }
}

/// Largest channel / feature count accepted (keeps all arithmetic in range).
pub const MAX_CHANNELS: usize = 4096;
/// Largest input side accepted.
pub const MAX_INPUT_SIZE: usize = 1024;
/// Largest activation tensor accepted, in values (keeps `usize` products in
/// range on 32-bit targets).
pub const MAX_TENSOR_LEN: u64 = 1 << 26;

/// Checks that a real-valued scale is finite and positive.
pub fn check_scale(scale: f32, layer: Option<usize>) -> Result<(), BlobError> {
    if scale.is_finite() && scale > 0.0 {
        Ok(())
    } else {
        Err(BlobError::BadScale {
            layer,
            bits: scale.to_bits(),
        })
    }
}

impl<'a> Layer<'a> {
    /// The layer's output quantization.
    pub fn requant(&self) -> &Requant<'a> {
        match self {
            Layer::Conv3x3(c) => &c.requant,
            Layer::GlobalAvgPool(p) => &p.requant,
            Layer::Linear(l) => &l.requant,
        }
    }
}

/// Checks that a layer reads the zero point the previous layer wrote
/// (`incoming`; [`INPUT_ZERO_POINT`] for the first) and returns the zero
/// point it writes. A mismatch would shift every value silently.
pub fn check_zero_point(index: usize, layer: &Layer<'_>, incoming: i8) -> Result<i8, BlobError> {
    let rq = layer.requant();
    if rq.input_zero_point != incoming {
        return Err(BlobError::InvalidLayer {
            index,
            reason: "input_zero_point differs from the previous layer's output_zero_point",
        });
    }
    Ok(rq.output_zero_point)
}

/// Checks one layer against the incoming shape; returns the outgoing shape.
/// Shared by the parser and the serializer so both agree on every rule.
pub fn check_layer(
    index: usize,
    layer: &Layer<'_>,
    input: Shape,
    plan: &mut Plan,
) -> Result<Shape, BlobError> {
    let bad = |reason| BlobError::InvalidLayer { index, reason };
    let check_requant = |rq: &Requant<'_>, channels: usize| -> Result<(), BlobError> {
        if rq.multipliers.0.len() != channels * 4 {
            return Err(bad("multiplier count does not match channels"));
        }
        if rq.shifts.len() != channels {
            return Err(bad("shift count does not match channels"));
        }
        if rq.multipliers.iter().any(|m| m < 0) {
            return Err(bad("negative multiplier"));
        }
        if rq
            .shifts
            .iter()
            .any(|s| !(-MAX_RIGHT_SHIFT..=MAX_LEFT_SHIFT).contains(&s))
        {
            return Err(bad("shift out of range"));
        }
        if rq.activation_min > rq.activation_max {
            return Err(bad("activation_min above activation_max"));
        }
        check_scale(rq.output_scale, Some(index))?;
        Ok(())
    };
    let output = match layer {
        Layer::Conv3x3(conv) => {
            let (cin, cout) = (conv.in_channels as usize, conv.out_channels as usize);
            if cin != input.channels {
                return Err(bad("in_channels differs from the previous layer"));
            }
            if cout == 0 || cout > MAX_CHANNELS {
                return Err(bad("out_channels out of range"));
            }
            if conv.stride != 1 && conv.stride != 2 {
                return Err(bad("stride must be 1 or 2"));
            }
            if input.height == 0 || input.width == 0 {
                return Err(bad("empty input"));
            }
            if conv.weights.len() != cout * cin * 9 {
                return Err(bad("weight count is not out * in * 9"));
            }
            if conv.weights.iter().any(|w| w == i8::MIN) {
                return Err(bad("weight -128 (weights are symmetric, [-127, 127])"));
            }
            if conv.bias.0.len() != cout * 4 {
                return Err(bad("bias count does not match out_channels"));
            }
            check_requant(&conv.requant, cout)?;
            let s = conv.stride as usize;
            let (oh, ow) = ((input.height - 1) / s + 1, (input.width - 1) / s + 1);
            if oh as u64 * ow as u64 * cout as u64 > MAX_TENSOR_LEN {
                return Err(bad("output tensor too large"));
            }
            let out = Shape {
                height: oh,
                width: ow,
                channels: cout,
            };
            plan.macs += (out.height * out.width) as u64 * (cout * cin * 9) as u64;
            plan.param_bytes +=
                (conv.weights.len() + conv.bias.0.len() + conv.requant.multipliers.0.len() + cout)
                    as u64;
            plan.scratch_bytes = plan.scratch_bytes.max((9 * cin * 2) as u64);
            out
        }
        Layer::GlobalAvgPool(pool) => {
            if pool.channels as usize != input.channels {
                return Err(bad("channels differ from the previous layer"));
            }
            if input.height == 0 || input.width == 0 {
                return Err(bad("empty input"));
            }
            check_requant(&pool.requant, 1)?;
            plan.param_bytes += 5;
            Shape {
                height: 1,
                width: 1,
                channels: input.channels,
            }
        }
        Layer::Linear(lin) => {
            let (fin, fout) = (lin.in_features as usize, lin.out_features as usize);
            if fin != input.len() {
                return Err(bad("in_features differs from the previous tensor's length"));
            }
            if fout == 0 || fout > MAX_CHANNELS {
                return Err(bad("out_features out of range"));
            }
            if lin.weights.len() != fout * fin {
                return Err(bad("weight count is not out * in"));
            }
            if lin.weights.iter().any(|w| w == i8::MIN) {
                return Err(bad("weight -128 (weights are symmetric, [-127, 127])"));
            }
            if lin.bias.0.len() != fout * 4 {
                return Err(bad("bias count does not match out_features"));
            }
            check_requant(&lin.requant, fout)?;
            plan.macs += (fin * fout) as u64;
            plan.param_bytes +=
                (lin.weights.len() + lin.bias.0.len() + lin.requant.multipliers.0.len() + fout)
                    as u64;
            Shape {
                height: 1,
                width: 1,
                channels: fout,
            }
        }
    };
    plan.max_activation_bytes = plan.max_activation_bytes.max(output.len() as u64);
    plan.layer_count += 1;
    plan.output_len = output.len() as u64;
    Ok(output)
}

/// The fixed-layout header, decoded.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Header {
    /// Format version (equals [`FORMAT_VERSION`] once parsed).
    pub format_version: u16,
    /// Bytes of payload after the header.
    pub payload_len: u32,
    /// CRC-32 of the payload.
    pub payload_crc32: u32,
    /// Side of the square input image.
    pub input_size: u16,
    /// Preprocessing algorithm the model expects.
    pub preprocess_id: u16,
    /// Length of the embedding.
    pub embedding_dim: u16,
    /// Layer records in the payload.
    pub layer_count: u16,
    /// Working memory `encode` needs.
    pub arena_bytes: u32,
    /// Multiply-accumulates per image.
    pub macs: u32,
    /// Parameter bytes (weights, biases, multipliers, shifts).
    pub param_bytes: u32,
    /// Zero point of the input (see [`INPUT_ENCODING_INVERTED_GRAY`]).
    pub input_zero_point: i8,
    /// How pixels become int8 inputs.
    pub input_encoding: u8,
    /// Zero point of the embedding.
    pub output_zero_point: i8,
    /// Real scale of one embedding step (host-side dequantization only).
    pub output_scale: f32,
    /// CRC-32 of header bytes 0..60.
    pub header_crc32: u32,
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

impl Header {
    /// Decodes and checks the header: magic, version, header length, header
    /// CRC and field ranges. Does not look at the payload.
    pub fn parse(bytes: &[u8]) -> Result<Header, BlobError> {
        if bytes.len() < MAGIC.len() {
            return Err(if MAGIC.starts_with(bytes) {
                BlobError::Truncated {
                    needed: HEADER_LEN,
                    available: bytes.len(),
                }
            } else {
                BlobError::BadMagic
            });
        }
        if bytes[..8] != MAGIC {
            return Err(BlobError::BadMagic);
        }
        if bytes.len() < 12 {
            return Err(BlobError::Truncated {
                needed: HEADER_LEN,
                available: bytes.len(),
            });
        }
        let format_version = u16_at(bytes, 8);
        if format_version != FORMAT_VERSION {
            return Err(BlobError::UnsupportedVersion {
                found: format_version,
                supported: FORMAT_VERSION,
            });
        }
        let header_len = u16_at(bytes, 10);
        if header_len as usize != HEADER_LEN {
            return Err(BlobError::BadHeaderLength {
                found: header_len,
                expected: HEADER_LEN as u16,
            });
        }
        if bytes.len() < HEADER_LEN {
            return Err(BlobError::Truncated {
                needed: HEADER_LEN,
                available: bytes.len(),
            });
        }
        let header_crc32 = u32_at(bytes, 60);
        let computed = crc32(&bytes[..60]);
        if computed != header_crc32 {
            return Err(BlobError::HeaderChecksumMismatch {
                stored: header_crc32,
                computed,
            });
        }
        let h = Header {
            format_version,
            payload_len: u32_at(bytes, 12),
            payload_crc32: u32_at(bytes, 16),
            input_size: u16_at(bytes, 20),
            preprocess_id: u16_at(bytes, 22),
            embedding_dim: u16_at(bytes, 24),
            layer_count: u16_at(bytes, 26),
            arena_bytes: u32_at(bytes, 28),
            macs: u32_at(bytes, 32),
            param_bytes: u32_at(bytes, 36),
            input_zero_point: bytes[40] as i8,
            input_encoding: bytes[41],
            output_zero_point: bytes[42] as i8,
            output_scale: f32::from_bits(u32_at(bytes, 44)),
            header_crc32,
        };
        if h.input_encoding != INPUT_ENCODING_INVERTED_GRAY
            || h.input_zero_point != INPUT_ZERO_POINT
        {
            return Err(BlobError::InvalidHeader {
                reason: "unknown input encoding",
            });
        }
        if h.input_size == 0 || h.input_size as usize > MAX_INPUT_SIZE {
            return Err(BlobError::InvalidHeader {
                reason: "input_size out of range",
            });
        }
        if h.layer_count == 0 {
            return Err(BlobError::InvalidHeader {
                reason: "no layers",
            });
        }
        if h.embedding_dim == 0 {
            return Err(BlobError::InvalidHeader {
                reason: "embedding_dim is 0",
            });
        }
        if bytes[43] != 0 || bytes[48..60].iter().any(|&b| b != 0) {
            return Err(BlobError::InvalidHeader {
                reason: "reserved bytes are not zero",
            });
        }
        if (h.payload_len as u64) < h.layer_count as u64 {
            return Err(BlobError::InvalidHeader {
                reason: "payload_len is shorter than one byte per layer",
            });
        }
        check_scale(h.output_scale, None)?;
        Ok(h)
    }

    /// Encodes the header, computing its CRC (the `header_crc32` field is ignored).
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[..8].copy_from_slice(&MAGIC);
        b[8..10].copy_from_slice(&self.format_version.to_le_bytes());
        b[10..12].copy_from_slice(&(HEADER_LEN as u16).to_le_bytes());
        b[12..16].copy_from_slice(&self.payload_len.to_le_bytes());
        b[16..20].copy_from_slice(&self.payload_crc32.to_le_bytes());
        b[20..22].copy_from_slice(&self.input_size.to_le_bytes());
        b[22..24].copy_from_slice(&self.preprocess_id.to_le_bytes());
        b[24..26].copy_from_slice(&self.embedding_dim.to_le_bytes());
        b[26..28].copy_from_slice(&self.layer_count.to_le_bytes());
        b[28..32].copy_from_slice(&self.arena_bytes.to_le_bytes());
        b[32..36].copy_from_slice(&self.macs.to_le_bytes());
        b[36..40].copy_from_slice(&self.param_bytes.to_le_bytes());
        b[40] = self.input_zero_point as u8;
        b[41] = self.input_encoding;
        b[42] = self.output_zero_point as u8;
        b[44..48].copy_from_slice(&self.output_scale.to_bits().to_le_bytes());
        let crc = crc32(&b[..60]);
        b[60..64].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Total blob length: header plus payload.
    pub fn total_len(&self) -> usize {
        HEADER_LEN + self.payload_len as usize
    }
}

/// A checked model blob borrowing its bytes.
#[derive(Clone, Copy, Debug)]
pub struct Blob<'a> {
    header: Header,
    payload: &'a [u8],
    plan: Plan,
}

impl<'a> Blob<'a> {
    /// Checks everything before trusting anything: header (magic, version,
    /// length, CRC), payload length and CRC, then every layer record in
    /// order (decode, shapes, lengths, ranges) and the header's derived
    /// figures against the layers. Bytes after the payload are ignored
    /// (a flash region is usually larger than the blob).
    pub fn parse(bytes: &'a [u8]) -> Result<Blob<'a>, BlobError> {
        let header = Header::parse(bytes)?;
        let available = bytes.len();
        let end = HEADER_LEN.checked_add(header.payload_len as usize).ok_or(
            BlobError::InvalidHeader {
                reason: "payload_len overflows",
            },
        )?;
        if available < end {
            return Err(BlobError::Truncated {
                needed: end,
                available,
            });
        }
        let payload = &bytes[HEADER_LEN..end];
        let computed = crc32(payload);
        if computed != header.payload_crc32 {
            return Err(BlobError::ChecksumMismatch {
                stored: header.payload_crc32,
                computed,
            });
        }
        let mut plan = Plan::default();
        let size = header.input_size as usize;
        let mut shape = Shape {
            height: size,
            width: size,
            channels: 1,
        };
        plan.max_activation_bytes = shape.len() as u64;
        let mut rest = payload;
        let mut zero_point = INPUT_ZERO_POINT;
        let mut last_scale = None;
        for index in 0..header.layer_count as usize {
            let (layer, tail) = postcard::take_from_bytes::<Layer<'a>>(rest).map_err(|_| {
                BlobError::InvalidLayer {
                    index,
                    reason: "record does not decode",
                }
            })?;
            rest = tail;
            shape = check_layer(index, &layer, shape, &mut plan)?;
            zero_point = check_zero_point(index, &layer, zero_point)?;
            last_scale = Some(layer.requant().output_scale);
        }
        if !rest.is_empty() {
            return Err(BlobError::TrailingPayload { count: rest.len() });
        }
        if header.output_zero_point != zero_point {
            return Err(BlobError::InvalidHeader {
                reason: "output_zero_point differs from the last layer's",
            });
        }
        if last_scale.map(f32::to_bits) != Some(header.output_scale.to_bits()) {
            return Err(BlobError::InvalidHeader {
                reason: "output_scale differs from the last layer's",
            });
        }
        if plan.output_len != header.embedding_dim as u64 {
            return Err(BlobError::InvalidHeader {
                reason: "embedding_dim differs from the last layer's output",
            });
        }
        if plan.macs != header.macs as u64 {
            return Err(BlobError::InvalidHeader {
                reason: "macs differs from the layers",
            });
        }
        if plan.param_bytes != header.param_bytes as u64 {
            return Err(BlobError::InvalidHeader {
                reason: "param_bytes differs from the layers",
            });
        }
        if (header.arena_bytes as u64) < plan.arena_bytes() {
            return Err(BlobError::InvalidHeader {
                reason: "arena_bytes below what the layers need",
            });
        }
        if header.arena_bytes as u64 != plan.arena_bytes() {
            return Err(BlobError::InvalidHeader {
                reason: "arena_bytes differs from what the layers need",
            });
        }
        Ok(Blob {
            header,
            payload,
            plan,
        })
    }

    /// The decoded header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Figures derived from the layers while parsing.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The layers in execution order, decoded one at a time from the
    /// borrowed payload. Parsing already checked every record, so this
    /// iterator yields exactly `layer_count` layers.
    pub fn layers(&self) -> Layers<'a> {
        Layers {
            rest: self.payload,
            left: self.header.layer_count as usize,
        }
    }
}

/// Iterator over the layer records of a parsed [`Blob`].
#[derive(Clone, Debug)]
pub struct Layers<'a> {
    rest: &'a [u8],
    left: usize,
}

impl<'a> Iterator for Layers<'a> {
    type Item = Layer<'a>;
    fn next(&mut self) -> Option<Layer<'a>> {
        if self.left == 0 {
            return None;
        }
        // Checked by `Blob::parse`; a failure here would mean the bytes
        // changed under us, and ending the iteration is the safe answer.
        let (layer, rest) = postcard::take_from_bytes::<Layer<'a>>(self.rest).ok()?;
        self.rest = rest;
        self.left -= 1;
        Some(layer)
    }
}

/// Host-side serializer.
#[cfg(any(test, feature = "std"))]
pub mod write {
    use super::*;
    use std::vec::Vec;

    /// Why a real multiplier has no Q31 form.
    #[derive(Clone, Copy, Debug, PartialEq)]
    pub enum MultiplierError {
        /// NaN, infinite or negative.
        NotFiniteNonNegative(f64),
        /// Needs a left shift above 30.
        TooLarge(f64),
    }

    impl core::fmt::Display for MultiplierError {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            match self {
                Self::NotFiniteNonNegative(m) => {
                    write!(f, "multiplier {m} is not a finite non-negative number")
                }
                Self::TooLarge(m) => write!(f, "multiplier {m} is too large to requantize"),
            }
        }
    }

    /// A real multiplier as a Q31 integer `q` in `[2^30, 2^31)` and a
    /// power-of-two shift (frexp): `real = q * 2^shift / 2^31`, the form the
    /// device's `multiply_by_quantized_multiplier` applies. Multipliers
    /// below one step of the Q31 range after the largest right shift
    /// become `(0, 0)`.
    pub fn quantize_multiplier(real: f64) -> Result<(i32, i8), MultiplierError> {
        if !real.is_finite() || real < 0.0 {
            return Err(MultiplierError::NotFiniteNonNegative(real));
        }
        if real == 0.0 {
            return Ok((0, 0));
        }
        // real = m * 2^e with m in [0.5, 1)
        let mut e = real.log2().floor() as i32 + 1;
        let mut m = real / 2f64.powi(e);
        while m >= 1.0 {
            m /= 2.0;
            e += 1;
        }
        while m < 0.5 {
            m *= 2.0;
            e -= 1;
        }
        let mut q = (m * (1u64 << 31) as f64).round() as i64;
        if q == 1i64 << 31 {
            q /= 2;
            e += 1;
        }
        if e < -31 {
            return Ok((0, 0));
        }
        if e > 30 {
            return Err(MultiplierError::TooLarge(real));
        }
        Ok((q as i32, e as i8))
    }

    /// Encodes `i32` values little-endian, the layout [`LeI32s`] reads.
    pub fn le_i32_bytes(values: &[i32]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    /// Encodes `i8` values as raw bytes, the layout [`I8s`] reads.
    pub fn i8_bytes(values: &[i8]) -> Vec<u8> {
        values.iter().map(|&v| v as u8).collect()
    }

    /// Output quantization with owned values (see [`Requant`]).
    #[derive(Clone, Debug, PartialEq)]
    pub struct OwnedRequant {
        /// See [`Requant::input_zero_point`].
        pub input_zero_point: i8,
        /// See [`Requant::output_zero_point`].
        pub output_zero_point: i8,
        /// See [`Requant::activation_min`].
        pub activation_min: i8,
        /// See [`Requant::activation_max`].
        pub activation_max: i8,
        /// Q31 multipliers, one per channel.
        pub multipliers: Vec<i32>,
        /// Shifts, one per channel.
        pub shifts: Vec<i8>,
        /// See [`Requant::output_scale`].
        pub output_scale: f32,
    }

    /// A layer with owned, already encoded parameters; [`OwnedLayer::layer`]
    /// borrows it as the [`Layer`] the blob stores.
    #[derive(Clone, Debug, PartialEq)]
    pub struct OwnedLayer {
        kind: Kind,
        weights: Vec<u8>,
        bias: Vec<u8>,
        multipliers: Vec<u8>,
        shifts: Vec<u8>,
        requant: OwnedRequant,
    }

    #[derive(Clone, Copy, Debug, PartialEq)]
    enum Kind {
        Conv3x3 {
            in_channels: u16,
            out_channels: u16,
            stride: u8,
        },
        GlobalAvgPool {
            channels: u16,
        },
        Linear {
            in_features: u16,
            out_features: u16,
        },
    }

    impl OwnedLayer {
        fn new(kind: Kind, weights: &[i8], bias: &[i32], requant: OwnedRequant) -> OwnedLayer {
            OwnedLayer {
                kind,
                weights: i8_bytes(weights),
                bias: le_i32_bytes(bias),
                multipliers: le_i32_bytes(&requant.multipliers),
                shifts: i8_bytes(&requant.shifts),
                requant,
            }
        }
        /// A 3x3 convolution; `weights` are `[out][ky][kx][in]`.
        pub fn conv3x3(
            in_channels: u16,
            out_channels: u16,
            stride: u8,
            weights: &[i8],
            bias: &[i32],
            requant: OwnedRequant,
        ) -> OwnedLayer {
            OwnedLayer::new(
                Kind::Conv3x3 {
                    in_channels,
                    out_channels,
                    stride,
                },
                weights,
                bias,
                requant,
            )
        }
        /// A global average pool (one multiplier containing `1 / (H * W)`).
        pub fn global_avg_pool(channels: u16, requant: OwnedRequant) -> OwnedLayer {
            OwnedLayer::new(Kind::GlobalAvgPool { channels }, &[], &[], requant)
        }
        /// A linear layer; `weights` are `[out][in]` with HWC-ordered inputs.
        pub fn linear(
            in_features: u16,
            out_features: u16,
            weights: &[i8],
            bias: &[i32],
            requant: OwnedRequant,
        ) -> OwnedLayer {
            OwnedLayer::new(
                Kind::Linear {
                    in_features,
                    out_features,
                },
                weights,
                bias,
                requant,
            )
        }
        /// The quantization values this layer was built with.
        pub fn requant_values(&self) -> &OwnedRequant {
            &self.requant
        }
        /// Borrows the layer as a blob record.
        pub fn layer(&self) -> Layer<'_> {
            let requant = Requant {
                input_zero_point: self.requant.input_zero_point,
                output_zero_point: self.requant.output_zero_point,
                activation_min: self.requant.activation_min,
                activation_max: self.requant.activation_max,
                multipliers: LeI32s(&self.multipliers),
                shifts: I8s(&self.shifts),
                output_scale: self.requant.output_scale,
            };
            match self.kind {
                Kind::Conv3x3 {
                    in_channels,
                    out_channels,
                    stride,
                } => Layer::Conv3x3(Conv3x3 {
                    in_channels,
                    out_channels,
                    stride,
                    weights: I8s(&self.weights),
                    bias: LeI32s(&self.bias),
                    requant,
                }),
                Kind::GlobalAvgPool { channels } => {
                    Layer::GlobalAvgPool(GlobalAvgPool { channels, requant })
                }
                Kind::Linear {
                    in_features,
                    out_features,
                } => Layer::Linear(Linear {
                    in_features,
                    out_features,
                    weights: I8s(&self.weights),
                    bias: LeI32s(&self.bias),
                    requant,
                }),
            }
        }
    }

    /// [`write_blob`] for owned layers.
    pub fn write_owned(info: ModelInfo, layers: &[OwnedLayer]) -> Result<Vec<u8>, BlobError> {
        let borrowed: Vec<Layer<'_>> = layers.iter().map(OwnedLayer::layer).collect();
        write_blob(info, &borrowed)
    }

    /// Facts the layers cannot tell.
    #[derive(Clone, Copy, Debug, PartialEq)]
    pub struct ModelInfo {
        /// Side of the square input.
        pub input_size: u16,
        /// Preprocessing algorithm.
        pub preprocess_id: u16,
    }

    /// Checks the layers with the parser's own rules and writes header + payload.
    pub fn write_blob(info: ModelInfo, layers: &[Layer<'_>]) -> Result<Vec<u8>, BlobError> {
        let size = info.input_size as usize;
        if size == 0 || size > MAX_INPUT_SIZE {
            return Err(BlobError::InvalidHeader {
                reason: "input_size out of range",
            });
        }
        let mut shape = Shape {
            height: size,
            width: size,
            channels: 1,
        };
        let mut plan = Plan {
            max_activation_bytes: shape.len() as u64,
            ..Plan::default()
        };
        let mut payload = Vec::new();
        let mut zero_point = INPUT_ZERO_POINT;
        for (index, layer) in layers.iter().enumerate() {
            shape = check_layer(index, layer, shape, &mut plan)?;
            zero_point = check_zero_point(index, layer, zero_point)?;
            let bytes = postcard::to_allocvec(layer).map_err(|_| BlobError::InvalidLayer {
                index,
                reason: "record does not encode",
            })?;
            payload.extend_from_slice(&bytes);
        }
        let last = match layers.last() {
            Some(Layer::Conv3x3(c)) => c.requant,
            Some(Layer::GlobalAvgPool(p)) => p.requant,
            Some(Layer::Linear(l)) => l.requant,
            None => {
                return Err(BlobError::InvalidHeader {
                    reason: "no layers",
                });
            }
        };
        let too_big = |reason| BlobError::InvalidHeader { reason };
        let header = Header {
            format_version: FORMAT_VERSION,
            payload_len: u32::try_from(payload.len()).map_err(|_| too_big("payload over 4 GiB"))?,
            payload_crc32: crc32(&payload),
            input_size: info.input_size,
            preprocess_id: info.preprocess_id,
            embedding_dim: u16::try_from(plan.output_len)
                .map_err(|_| too_big("embedding over 65535"))?,
            layer_count: u16::try_from(layers.len()).map_err(|_| too_big("over 65535 layers"))?,
            arena_bytes: u32::try_from(plan.arena_bytes())
                .map_err(|_| too_big("arena over 4 GiB"))?,
            macs: u32::try_from(plan.macs).map_err(|_| too_big("macs over 2^32"))?,
            param_bytes: u32::try_from(plan.param_bytes)
                .map_err(|_| too_big("params over 4 GiB"))?,
            input_zero_point: INPUT_ZERO_POINT,
            input_encoding: INPUT_ENCODING_INVERTED_GRAY,
            output_zero_point: last.output_zero_point,
            output_scale: last.output_scale,
            header_crc32: 0,
        };
        let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
        out.extend_from_slice(&header.to_bytes());
        out.extend_from_slice(&payload);
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
