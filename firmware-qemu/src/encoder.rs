//! The per-frame pipeline on the board: a gray ROI through
//! `preprocess_gray`, the int8 engine (arena in static RAM) and
//! `knn::centre_embedding`, exactly as the host does, with instruction
//! counts per step and per layer from [`crate::timer`].

use crate::statics::Slot;
use crate::timer::Timer0;
use seaclr_edge::engine::{Engine, EngineError};
use seaclr_edge::knn::centre_embedding;
use seaclr_shared::blob::BlobError;
use seaclr_shared::labels::EMBEDDING_DIM;
use seaclr_shared::preprocess::{PreprocessError, preprocess_gray};

/// Arena bytes reserved in RAM (the project's arena budget, 96 KiB).
pub const ARENA_BYTES: usize = 96 * 1024;
/// Most layers a model may have for per-layer counting.
pub const MAX_LAYERS: usize = 32;
/// Largest model input side the static image buffer holds.
pub const MAX_INPUT: usize = 128;

static ARENA: Slot<[u8; ARENA_BYTES]> = Slot::new();
static IMAGE: Slot<[u8; MAX_INPUT * MAX_INPUT]> = Slot::new();

/// The committed model blob, in the flash image (`.rodata`). The blob's
/// layers are byte slices read with explicit little-endian decoding, so it
/// needs no alignment; 16 keeps the header word-aligned all the same.
#[repr(C, align(16))]
struct Aligned<B: ?Sized>(B);
static BLOB: &Aligned<[u8]> = &Aligned(*include_bytes!("../../models/seaclr-s.seaclr"));

/// The embedded model blob.
pub fn committed_blob() -> &'static [u8] {
    &BLOB.0
}

/// Why the encoder could not start or a frame could not be encoded.
#[derive(Clone, Copy, Debug)]
pub enum PipelineError {
    /// The blob was refused.
    Blob(BlobError),
    /// The model does not fit this build's static buffers.
    DoesNotFit(&'static str),
    /// The frame could not be preprocessed (e.g. a wrong size).
    Preprocess(PreprocessError),
    /// The engine refused the call.
    Engine(EngineError),
}

impl core::fmt::Display for PipelineError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Blob(e) => write!(f, "model blob refused: {e}"),
            Self::DoesNotFit(what) => write!(f, "model does not fit: {what}"),
            Self::Preprocess(e) => write!(f, "preprocessing: {e}"),
            Self::Engine(e) => write!(f, "engine: {e}"),
        }
    }
}

/// Instruction counts of one frame.
#[derive(Clone, Copy, Debug, Default)]
pub struct Counts {
    /// `preprocess_gray`.
    pub preprocess: u64,
    /// `Engine::encode_observed` (all layers, input encoding and checks).
    pub encode: u64,
    /// Per layer: from the end of the previous layer (for layer 0: from the
    /// call) to the end of this one, so the input encoding is in layer 0
    /// and each layer includes decoding its record from the blob.
    pub layers: [u64; MAX_LAYERS],
    /// `centre_embedding`.
    pub centre: u64,
}

/// The engine with its static arena and image buffer.
pub struct Encoder {
    engine: Engine<'static>,
    arena: &'static mut [u8],
    image: &'static mut [u8],
    raw: [i8; EMBEDDING_DIM],
    layers: usize,
    timer: Timer0,
}

impl Encoder {
    /// Checks `blob` and takes the static buffers (once per run).
    pub fn new(blob: &'static [u8], timer: Timer0) -> Result<Self, PipelineError> {
        let engine = Engine::new(blob).map_err(PipelineError::Blob)?;
        if engine.arena_bytes() > ARENA_BYTES {
            return Err(PipelineError::DoesNotFit("arena above ARENA_BYTES"));
        }
        if engine.embedding_dim() != EMBEDDING_DIM {
            return Err(PipelineError::DoesNotFit(
                "embedding is not EMBEDDING_DIM long",
            ));
        }
        let size = engine.input_size();
        if size > MAX_INPUT {
            return Err(PipelineError::DoesNotFit("input side above MAX_INPUT"));
        }
        let layers = engine.blob().layers().count();
        if layers > MAX_LAYERS {
            return Err(PipelineError::DoesNotFit("more than MAX_LAYERS layers"));
        }
        let arena = ARENA
            .take_zeroed()
            .ok_or(PipelineError::DoesNotFit("arena taken"))?;
        let image = IMAGE
            .take_zeroed()
            .ok_or(PipelineError::DoesNotFit("image taken"))?;
        Ok(Self {
            arena: &mut arena[..engine.arena_bytes()],
            image: &mut image[..size * size],
            engine,
            raw: [0; EMBEDDING_DIM],
            layers,
            timer,
        })
    }

    /// The engine.
    pub fn engine(&self) -> &Engine<'static> {
        &self.engine
    }

    /// Layers in the model.
    pub fn layer_count(&self) -> usize {
        self.layers
    }

    /// One gray `width x height` ROI to its centred embedding in `out`.
    pub fn run(
        &mut self,
        pixels: &[u8],
        width: usize,
        height: usize,
        out: &mut [i8; EMBEDDING_DIM],
    ) -> Result<Counts, PipelineError> {
        let timer = self.timer;
        let mut counts = Counts::default();
        let size = self.engine.input_size();

        let t0 = timer.now();
        preprocess_gray(pixels, width, height, size, self.image)
            .map_err(PipelineError::Preprocess)?;
        let t1 = timer.now();
        counts.preprocess = t0.instructions_to(t1);

        let mut last = timer.now();
        let start = last;
        let layers = &mut counts.layers;
        self.engine
            .encode_observed(self.image, self.arena, &mut self.raw, |i| {
                let now = timer.now();
                if let Some(slot) = layers.get_mut(i) {
                    *slot = last.instructions_to(now);
                }
                last = now;
            })
            .map_err(PipelineError::Engine)?;
        counts.encode = start.instructions_to(timer.now());

        let t2 = timer.now();
        let zero_point = self.engine.header().output_zero_point;
        centre_embedding(&self.raw, zero_point, out)
            .map_err(|_| PipelineError::DoesNotFit("embedding length"))?;
        counts.centre = t2.instructions_to(timer.now());
        Ok(counts)
    }
}
