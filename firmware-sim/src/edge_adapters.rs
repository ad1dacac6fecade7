//! The firmware's real parts behind the app's traits: the int8 engine
//! (`seaclr_edge::engine`) and the kNN head with its flash label store
//! (`seaclr_edge::knn`, `seaclr_edge::store`) on the flash image's store region.

use crate::app::{Applied, Classification, Encoder, EncoderFactory, LabelMemory, Update};
use crate::flash_file::FlashRegion;
use seaclr_edge::engine::Engine;
use seaclr_edge::knn::{Evicted, KnnHead, Q15_ONE, centre_embedding};
use seaclr_edge::store::{LabelStore, MountReport};
use seaclr_shared::labels::{ClassId, EMBEDDING_DIM, ExampleId, MAX_CLASSES};

/// The int8 engine with its arena.
pub struct EdgeEncoder {
    engine: Engine<'static>,
    arena: Vec<u8>,
    raw: Vec<i8>,
}

impl EdgeEncoder {
    /// Checks the blob and allocates the arena its header asks for. The
    /// blob is kept for the life of the process, as memory-mapped flash is
    /// on the device (the engine borrows its weights in place).
    pub fn new(blob: Vec<u8>) -> Result<Self, String> {
        let blob: &'static [u8] = Box::leak(blob.into_boxed_slice());
        let engine = Engine::new(blob).map_err(|e| e.to_string())?;
        if engine.embedding_dim() != EMBEDDING_DIM {
            return Err(format!(
                "model embedding has {} values, this firmware's kNN head is built for {EMBEDDING_DIM}",
                engine.embedding_dim()
            ));
        }
        Ok(Self {
            arena: vec![0; engine.arena_bytes()],
            raw: vec![0; engine.embedding_dim()],
            engine,
        })
    }

    /// A factory for `Buoy::boot`.
    pub fn factory() -> EncoderFactory {
        Box::new(|blob| Self::new(blob).map(|e| Box::new(e) as Box<dyn Encoder>))
    }
}

impl Encoder for EdgeEncoder {
    fn input_size(&self) -> usize {
        self.engine.input_size()
    }
    fn embedding_dim(&self) -> usize {
        self.engine.embedding_dim()
    }
    fn arena_bytes(&self) -> usize {
        self.engine.arena_bytes()
    }
    fn macs_per_image(&self) -> Option<u64> {
        Some(self.engine.macs() as u64)
    }
    fn model_id(&self) -> u32 {
        self.engine.header().payload_crc32
    }
    /// Encodes and centres on the output zero point (`knn::centre_embedding`,
    /// as the host does), so the kNN head's cosine sees the real direction.
    fn encode(&mut self, image: &[u8], out: &mut [i8]) -> Result<(), String> {
        self.engine
            .encode(image, &mut self.arena, &mut self.raw)
            .map_err(|e| e.to_string())?;
        centre_embedding(&self.raw, self.engine.header().output_zero_point, out)
            .map_err(|e| e.to_string())?;
        Ok(())
    }
}

/// The kNN head plus its label store on the flash's store region.
pub struct EdgeMemory {
    head: Box<KnnHead>,
    region: Option<FlashRegion>,
    store: Option<LabelStore<FlashRegion>>,
    mount_report: Option<MountReport>,
}

impl EdgeMemory {
    /// A head over `region`; nothing is read or written until `mount`.
    pub fn new(region: FlashRegion) -> Self {
        Self {
            head: Box::new(KnnHead::new()),
            region: Some(region),
            store: None,
            mount_report: None,
        }
    }

    /// What the last mount found (torn tail, fallback, formatted).
    pub fn mount_report(&self) -> Option<MountReport> {
        self.mount_report
    }
}

fn q15(x: i32) -> f32 {
    x as f32 / Q15_ONE as f32
}

impl LabelMemory for EdgeMemory {
    fn mount(&mut self) -> Result<(), String> {
        let region = self.region.take().ok_or("label store already mounted")?;
        let (store, report) =
            LabelStore::mount_or_format(region, &mut *self.head).map_err(|e| e.to_string())?;
        self.store = Some(store);
        self.mount_report = Some(report);
        Ok(())
    }

    fn classes(&self) -> Vec<Option<String>> {
        let mut out: Vec<Option<String>> = (0..MAX_CLASSES)
            .map(|i| self.head.class_name(ClassId(i as u8)).map(str::to_string))
            .collect();
        while out.last().is_some_and(Option::is_none) {
            out.pop();
        }
        out
    }

    fn examples(&self) -> usize {
        self.head.len()
    }

    fn examples_per_class(&self) -> Vec<usize> {
        (0..self.classes().len())
            .map(|c| self.head.class_count(ClassId(c as u8)))
            .collect()
    }

    fn capacity(&self) -> usize {
        1000
    }

    fn ram_bytes(&self) -> usize {
        std::mem::size_of::<KnnHead>()
    }

    fn threshold(&self) -> f32 {
        q15(self.head.threshold_q15())
    }

    fn classify(&self, embedding: &[i8]) -> Classification {
        match self.head.classify(embedding) {
            Ok(c) => Classification {
                class: c.class.or(c.vote_winner).map(|c| c.0 as u16),
                confidence: q15(c.confidence_q15).clamp(0.0, 1.0),
                similarity: q15(c.best_similarity_q15),
                unknown: c.class.is_none(),
            },
            Err(_) => Classification {
                class: None,
                confidence: 0.0,
                similarity: 0.0,
                unknown: true,
            },
        }
    }

    fn update(&mut self, update: Update) -> Result<Applied, String> {
        let store = self.store.as_mut().ok_or("label store not mounted")?;
        let head = &mut *self.head;
        let class = |c: u16| {
            u8::try_from(c)
                .map(ClassId)
                .map_err(|_| format!("class index {c} out of range"))
        };
        let applied = match update {
            Update::AddClass(name) => {
                let c = store.add_class(head, &name).map_err(|e| e.to_string())?;
                Applied {
                    class: Some(c.0 as u16),
                    ..Applied::default()
                }
            }
            Update::AddExample {
                class: c,
                embedding,
            } => {
                let added = store
                    .add_example(head, class(c)?, &embedding)
                    .map_err(|e| e.to_string())?;
                match added.evicted {
                    Some(Evicted::Incoming) => Applied::default(),
                    Some(Evicted::Stored { id, .. }) => Applied {
                        example: Some(added.id.0),
                        evicted: Some(id.0),
                        ..Applied::default()
                    },
                    None => Applied {
                        example: Some(added.id.0),
                        ..Applied::default()
                    },
                }
            }
            Update::ForgetExample(id) => {
                store
                    .forget_example(head, ExampleId(id))
                    .map_err(|e| e.to_string())?;
                Applied::default()
            }
            Update::ForgetClass(c) => {
                store
                    .forget_class(head, class(c)?)
                    .map_err(|e| e.to_string())?;
                Applied::default()
            }
            Update::SetThreshold(x) => {
                let q = (x.clamp(-1.0, 1.0) * Q15_ONE as f32).round() as i32;
                store.set_threshold(head, q).map_err(|e| e.to_string())?;
                Applied::default()
            }
        };
        Ok(applied)
    }
}
