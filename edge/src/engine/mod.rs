//! The int8 encoder engine: runs a checked model blob on one preprocessed
//! image inside a caller-provided arena, without a heap.
//!
//! Arena layout (its size is stated in the blob header and checked before
//! anything is written): up to 3 bytes of alignment padding, an `i16` patch
//! scratch for the convolutions, then two equal activation buffers that the
//! layers ping-pong between.

use crate::kernels;
use seaclr_shared::blob::{Blob, BlobError, Header, Layer, PREPROCESS_ID, Shape};

#[cfg(test)]
mod tests;

/// Why one `encode` call could not run. The model itself was checked in
/// [`Engine::new`], so these are all about the caller's buffers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EngineError {
    /// The arena is smaller than the header's `arena_bytes`.
    ArenaTooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes given.
        given: usize,
    },
    /// The image is not `input_size * input_size` bytes.
    ImageSize {
        /// Bytes expected.
        expected: usize,
        /// Bytes given.
        found: usize,
    },
    /// The arena start could not be aligned for the `i16` scratch (never
    /// happens on byte-addressed targets; reported rather than panicking).
    ArenaUnaligned,
    /// The output slice is not `embedding_dim` long.
    OutputSize {
        /// Length expected.
        expected: usize,
        /// Length given.
        found: usize,
    },
}

impl core::fmt::Display for EngineError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            EngineError::ArenaTooSmall { needed, given } => {
                write!(
                    f,
                    "arena too small: model needs {needed} bytes, given {given}"
                )
            }
            EngineError::ImageSize { expected, found } => {
                write!(f, "image has {found} bytes, model expects {expected}")
            }
            EngineError::ArenaUnaligned => write!(f, "arena cannot be aligned to 2 bytes"),
            EngineError::OutputSize { expected, found } => {
                write!(f, "output holds {found} values, embedding has {expected}")
            }
        }
    }
}

impl core::error::Error for EngineError {}

/// What `encode` reports besides the embedding itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Encoded {
    /// `sum((q - zp)^2)` over the embedding, in int8 steps squared.
    pub norm_squared: u32,
    /// `floor(sqrt(norm_squared))`: the embedding's L2 norm in int8 steps,
    /// so a kNN head can normalise without floating point.
    pub norm: u32,
}

/// A model ready to run, borrowing its blob (e.g. straight from flash).
#[derive(Clone, Copy, Debug)]
pub struct Engine<'m> {
    blob: Blob<'m>,
}

impl<'m> Engine<'m> {
    /// Checks the blob completely (see [`Blob::parse`]) and that it expects
    /// the preprocessing this build implements.
    pub fn new(blob: &'m [u8]) -> Result<Engine<'m>, BlobError> {
        let blob = Blob::parse(blob)?;
        let found = blob.header().preprocess_id;
        if found != PREPROCESS_ID {
            return Err(BlobError::PreprocessMismatch {
                found,
                expected: PREPROCESS_ID,
            });
        }
        Ok(Engine { blob })
    }

    /// Arena bytes `encode` needs.
    pub fn arena_bytes(&self) -> usize {
        self.blob.header().arena_bytes as usize
    }

    /// Length of the int8 embedding.
    pub fn embedding_dim(&self) -> usize {
        self.blob.header().embedding_dim as usize
    }

    /// Side of the square input image.
    pub fn input_size(&self) -> usize {
        self.blob.header().input_size as usize
    }

    /// Multiply-accumulates per image.
    pub fn macs(&self) -> u32 {
        self.blob.header().macs
    }

    /// The blob header (zero points, scales, CRCs, ...).
    pub fn header(&self) -> &Header {
        self.blob.header()
    }

    /// The checked blob.
    pub fn blob(&self) -> &Blob<'m> {
        &self.blob
    }

    /// Encodes one preprocessed image (`input_size^2` gray bytes, white = 255)
    /// into `out` (`embedding_dim` int8 values at the header's output zero
    /// point and scale). Uses only `arena` for working memory.
    pub fn encode(
        &self,
        image: &[u8],
        arena: &mut [u8],
        out: &mut [i8],
    ) -> Result<Encoded, EngineError> {
        self.encode_observed(image, arena, out, |_| {})
    }

    /// [`Engine::encode`], calling `after_layer(i)` as soon as layer `i`
    /// (0-based, in blob order) has written its output: a board times or
    /// traces each layer with it (the QEMU board counts instructions per
    /// layer). The result is identical to `encode`'s.
    pub fn encode_observed(
        &self,
        image: &[u8],
        arena: &mut [u8],
        out: &mut [i8],
        mut after_layer: impl FnMut(usize),
    ) -> Result<Encoded, EngineError> {
        let size = self.input_size();
        if image.len() != size * size {
            return Err(EngineError::ImageSize {
                expected: size * size,
                found: image.len(),
            });
        }
        if out.len() != self.embedding_dim() {
            return Err(EngineError::OutputSize {
                expected: self.embedding_dim(),
                found: out.len(),
            });
        }
        if arena.len() < self.arena_bytes() {
            return Err(EngineError::ArenaTooSmall {
                needed: self.arena_bytes(),
                given: arena.len(),
            });
        }
        let plan = self.blob.plan();
        let pad = arena.as_ptr().align_offset(2).min(3);
        let scratch_len = (plan.scratch_bytes as usize).div_ceil(4) * 4;
        let act_len = plan.max_activation_bytes as usize;
        let (_, rest) = arena.split_at_mut(pad);
        let (scratch, rest) = rest.split_at_mut(scratch_len);
        let patch: &mut [i16] =
            bytemuck::try_cast_slice_mut(scratch).map_err(|_| EngineError::ArenaUnaligned)?;
        let buffers: &mut [i8] = bytemuck::cast_slice_mut(&mut rest[..2 * act_len]);
        let (mut src, mut dst) = buffers.split_at_mut(act_len);

        // Input encoding: q = 127 - p (scale 1/255, zero point -128).
        for (q, &p) in src.iter_mut().zip(image) {
            *q = (127 - p as i32) as i8;
        }
        let mut shape = Shape {
            height: size,
            width: size,
            channels: 1,
        };
        for (index, layer) in self.blob.layers().enumerate() {
            shape = match &layer {
                Layer::Conv3x3(conv) => kernels::conv3x3(conv, src, shape, patch, dst),
                Layer::GlobalAvgPool(pool) => kernels::global_avg_pool(pool, src, shape, dst),
                Layer::Linear(lin) => kernels::linear(lin, src, dst),
            };
            core::mem::swap(&mut src, &mut dst);
            after_layer(index);
        }
        let zp = self.blob.header().output_zero_point as i32;
        let mut norm_squared = 0u32;
        for (o, &q) in out.iter_mut().zip(src.iter()) {
            *o = q;
            let d = q as i32 - zp;
            norm_squared += (d * d) as u32;
        }
        Ok(Encoded {
            norm_squared,
            norm: kernels::isqrt(norm_squared),
        })
    }
}
