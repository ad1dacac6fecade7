//! The buoy application: boot, the per-frame pipeline, counting windows,
//! console commands and the screen, on any board.
//!
//! Boot: read the partition table (two copies; a damaged one is rewritten
//! from the other), check the model slot's length and CRC, let the engine
//! check the blob, check the RAM plan against the budget, mount the label
//! store and replay it into the kNN head. A missing or corrupt model turns
//! classification off with a clear reason and leaves the label store
//! unmounted, so nothing can write to it; an over-budget RAM plan, an
//! unreadable table or an unmountable store refuse the boot.
//!
//! Per frame: preprocess (`seaclr_shared::preprocess`) -> encode (int8
//! engine) -> classify (kNN head) -> count in the current window -> draw.
//!
//! Console: a label update is written to the flash store FIRST and applied
//! to the head only once the write completed; only then is `ok` replied.
//! So every acknowledged label survives a power cut, and a label whose
//! write was cut is neither acknowledged nor in the head.

use core::fmt::{self, Write};
use embedded_graphics::pixelcolor::Rgb565;
use embedded_graphics::prelude::DrawTarget;
use embedded_storage::nor_flash::NorFlash;
use seaclr_edge::engine::{Engine, EngineError};
use seaclr_edge::knn::{Evicted, Q15_ONE, centre_embedding};
use seaclr_edge::store::{LabelStore, MountReport, StoreError, Usage};
use seaclr_shared::labels::{ClassId, EMBEDDING_DIM, ExampleId, MAX_CLASSES};
use seaclr_shared::partition::{CopyError, Table};
use seaclr_shared::preprocess::PreprocessError;
use seaclr_shared::telemetry::{ClassCounts, FORMAT_VERSION, SBD_MAX_BYTES, Telemetry};

use crate::console::{self, Command, Line, LineAssembler};
use crate::flash::{self, FlashError, ModelSlotError, Region, RegionError};
use crate::ram::{
    ARENA_CAPACITY, DeviceRam, FrameId, Kib, MAX_INPUT_SIDE, MAX_ROI_SIDE, RECENT_FRAMES, RamPlan,
    Recent, frame_id,
};
use crate::screen::{self, Screen};

/// Labels given since boot that `forget <frame>` can still take back.
pub const SESSION_LABELS: usize = 64;
/// Recent classifications the screen's histogram shows.
pub const HISTOGRAM_FRAMES: usize = 100;

/// Run settings.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// Buoy id in telemetry.
    pub buoy_id: u16,
    /// Counting window, seconds.
    pub window_s: u32,
    /// RAM budget the plan is checked against.
    pub ram_budget: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            buoy_id: 1,
            window_s: 60,
            ram_budget: 512 * 1024,
        }
    }
}

/// The label store as the application holds it.
type Store<F> = LabelStore<Region<F>>;
/// A label-store error over the board's flash.
pub type StoreFault<F> =
    StoreError<RegionError<<F as embedded_storage::nor_flash::ErrorType>::Error>>;

/// Why the buoy refused to boot at all.
#[derive(Debug)]
pub enum BootError<E> {
    /// The partition table cannot be read or used.
    Table(FlashError<E>),
    /// The RAM plan exceeds the budget.
    RamBudget(RamPlan),
    /// The label store cannot be mounted (or formatted).
    Store(StoreError<RegionError<E>>),
}

impl<E: fmt::Debug> fmt::Display for BootError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Table(e) => write!(f, "boot refused: {e}"),
            Self::RamBudget(plan) => write!(
                f,
                "boot refused: RAM budget exceeded: need {} but the budget is {} ({plan}); raise --ram-kib",
                Kib(plan.total()),
                Kib(plan.budget)
            ),
            Self::Store(e) => write!(f, "boot refused: label store cannot be mounted: {e}"),
        }
    }
}

/// Why classification is off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelProblem {
    /// The model slot is empty, corrupt or holds a blob the engine refuses.
    Slot(ModelSlotError),
    /// The model's embedding does not fit the kNN head.
    EmbeddingDim(usize),
    /// The model needs a bigger arena than this firmware has.
    Arena(usize),
    /// The model's input is bigger than this firmware's input buffer.
    InputSize(usize),
}

impl fmt::Display for ModelProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("refusing to classify: ")?;
        match self {
            Self::Slot(e) => write!(f, "{e}"),
            Self::EmbeddingDim(d) => write!(
                f,
                "model embedding has {d} values, this firmware's kNN head is built for {EMBEDDING_DIM}"
            ),
            Self::Arena(n) => write!(
                f,
                "model needs a {n}-byte arena, this firmware has {ARENA_CAPACITY}"
            ),
            Self::InputSize(s) => write!(
                f,
                "model input is {s}x{s}, this firmware's input buffer holds {MAX_INPUT_SIDE}x{MAX_INPUT_SIDE}"
            ),
        }
    }
}

/// What the head says about one embedding.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Classification {
    /// Best class, `None` when the head holds no examples.
    pub class: Option<u16>,
    /// Confidence in 0..1.
    pub confidence: f32,
    /// Best cosine similarity in -1..1.
    pub similarity: f32,
    /// Below the threshold (open set) or no examples.
    pub unknown: bool,
}

/// A frame the board put in [`Buoy::roi_buffer`].
#[derive(Debug, Clone, Copy)]
pub struct FrameInfo<'i> {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Where it came from (file path, ROI id).
    pub id: &'i str,
}

/// What happened to one frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Classified (possibly as unknown).
    Classified(Classification),
    /// Classification is off (no usable model).
    ModelOff,
    /// The frame's size does not fit the camera buffer.
    BadSize,
    /// Preprocessing refused the frame.
    Preprocess(PreprocessError),
    /// The engine failed.
    Encode(EngineError),
}

/// One frame's result; its `Display` is the log line.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameResult {
    /// Frame number since boot (1-based).
    pub number: u64,
    /// Frame id.
    pub id: FrameId,
    /// What happened.
    pub outcome: Outcome,
    /// Class name of the classification, if any.
    pub class_name: Option<heapless::String<32>>,
    /// Frame size as given.
    pub size: (usize, usize),
}

impl FrameResult {
    /// The classification, when the frame was classified.
    pub fn classification(&self) -> Option<&Classification> {
        match &self.outcome {
            Outcome::Classified(c) => Some(c),
            _ => None,
        }
    }
}

impl fmt::Display for FrameResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (n, id) = (self.number, &self.id);
        match &self.outcome {
            Outcome::Classified(c) => write!(
                f,
                "frame {n} {id}: {} conf {:.2} sim {:.2}{}",
                self.class_name.as_deref().unwrap_or("-"),
                c.confidence,
                c.similarity,
                if c.unknown { " UNKNOWN" } else { "" }
            ),
            Outcome::ModelOff => write!(f, "frame {n} {id}: not classified (no usable model)"),
            Outcome::BadSize => write!(
                f,
                "frame {n} {id} skipped: {}x{} does not fit the {MAX_ROI_SIDE}x{MAX_ROI_SIDE} camera buffer",
                self.size.0, self.size.1
            ),
            Outcome::Preprocess(e) => {
                write!(f, "frame {n} {id} skipped: preprocessing failed: {e}")
            }
            Outcome::Encode(e) => write!(f, "frame {n} {id}: encode failed: {e}"),
        }
    }
}

/// A closed counting window.
#[derive(Debug, Clone)]
pub struct WindowReport {
    /// The telemetry message.
    pub message: Telemetry,
    /// Encoded bytes.
    pub bytes: heapless::Vec<u8, SBD_MAX_BYTES>,
}

/// The unknown threshold for people: "off" when every match counts.
#[derive(Debug, Clone, Copy)]
pub struct Threshold(pub f32);

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 <= -1.0 {
            f.write_str("off")
        } else {
            write!(f, "{:.2}", self.0)
        }
    }
}

/// What mounting the label store found, for people.
pub struct MountSummary(pub MountReport);

impl fmt::Display for MountSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = &self.0;
        if r.formatted {
            return f.write_str("formatted: no store was found in its region");
        }
        write!(
            f,
            "mounted: half {}, generation {}, {} records replayed",
            r.half, r.generation, r.records
        )?;
        if r.dirty_tail {
            f.write_str("; a torn or damaged record after the last good one was ignored (the next write compacts)")?;
        }
        if r.fell_back {
            f.write_str(
                "; the other half was damaged or incomplete, the older complete half is used",
            )?;
        }
        Ok(())
    }
}

/// Bytes as lowercase hex (re-exported from `seaclr_shared::hex`).
pub use seaclr_shared::hex::Hex;

struct SessionLabel {
    example: ExampleId,
    frame: u64,
    class: ClassId,
    id: FrameId,
}

/// The model side: the engine over the model slot, or why it is off.
enum Model<'r> {
    On(Engine<'r>),
    Off(ModelProblem),
}

/// The label side: mounted only when a model is usable.
enum Labels<F: NorFlash> {
    Mounted(Store<F>, MountReport),
    /// Held, never written: without a model no label update is accepted.
    Unmounted {
        _flash: F,
    },
}

/// The firmware state.
pub struct Buoy<'r, F: NorFlash> {
    config: Config,
    table: Table,
    table_repaired: Option<CopyError>,
    model: Model<'r>,
    ram: &'r mut DeviceRam,
    labels: Labels<F>,
    plan: RamPlan,
    console: LineAssembler,
    session_labels: heapless::Vec<SessionLabel, SESSION_LABELS>,
    histogram: heapless::Deque<u8, HISTOGRAM_FRAMES>,
    frames: u64,
    window_index: u64,
    window_counts: [u32; MAX_CLASSES],
    window_unknown: u32,
    window_frames: u32,
    telemetry_sequence: u32,
    /// Changes with the classes; the class table is due again when it does.
    class_table_id: u32,
    class_table_due: bool,
    last_ms: Option<u64>,
    fps: f32,
}

const UNKNOWN_BAR: u8 = u8::MAX;
const _: () = assert!(MAX_CLASSES <= seaclr_shared::telemetry::MAX_CLASSES);

fn q15(x: i32) -> f32 {
    x as f32 / Q15_ONE as f32
}

fn check_model(blob: &[u8]) -> Result<Engine<'_>, ModelProblem> {
    let engine = Engine::new(blob).map_err(|e| ModelProblem::Slot(ModelSlotError::Rejected(e)))?;
    if engine.embedding_dim() != EMBEDDING_DIM {
        return Err(ModelProblem::EmbeddingDim(engine.embedding_dim()));
    }
    if engine.arena_bytes() > ARENA_CAPACITY {
        return Err(ModelProblem::Arena(engine.arena_bytes()));
    }
    if engine.input_size() > MAX_INPUT_SIDE {
        return Err(ModelProblem::InputSize(engine.input_size()));
    }
    Ok(engine)
}

impl<'r, F: NorFlash> Buoy<'r, F> {
    /// Boots from `flash`; `model_buffer` is where the model slot is mapped
    /// (memory-mapped flash on a board with XIP), `ram` all other RAM.
    pub fn boot(
        config: Config,
        mut flash: F,
        model_buffer: &'r mut [u8],
        ram: &'r mut DeviceRam,
    ) -> Result<Self, BootError<F::Error>> {
        let chosen = flash::read_table(&mut flash).map_err(BootError::Table)?;
        let table_repaired = chosen.damaged;
        flash::repair_table(&mut flash, &chosen).map_err(BootError::Table)?;
        let table = chosen.table;
        let model = match flash::read_model(&mut flash, &table, model_buffer)
            .map_err(ModelProblem::Slot)
            .and_then(check_model)
        {
            Ok(engine) => Model::On(engine),
            Err(problem) => Model::Off(problem),
        };
        let plan = DeviceRam::plan(config.ram_budget);
        plan.check().map_err(BootError::RamBudget)?;
        let labels = match model {
            // Only a usable model lets the store be mounted (and ever written).
            Model::On(_) => {
                let region = Region::store(flash, &table.layout);
                let (store, report) =
                    LabelStore::mount_or_format(region, &mut ram.head).map_err(BootError::Store)?;
                Labels::Mounted(store, report)
            }
            Model::Off(_) => Labels::Unmounted { _flash: flash },
        };
        Ok(Self {
            config,
            table,
            table_repaired,
            model,
            ram,
            labels,
            plan,
            console: LineAssembler::new(),
            session_labels: heapless::Vec::new(),
            histogram: heapless::Deque::new(),
            frames: 0,
            window_index: 0,
            window_counts: [0; MAX_CLASSES],
            window_unknown: 0,
            window_frames: 0,
            telemetry_sequence: 0,
            class_table_id: 0,
            class_table_due: true,
            last_ms: None,
            fps: 0.0,
        })
    }

    /// Why classification is off, if it is.
    pub fn model_problem(&self) -> Option<ModelProblem> {
        match &self.model {
            Model::On(_) => None,
            Model::Off(p) => Some(*p),
        }
    }

    /// The engine, when a model is usable.
    pub fn engine(&self) -> Option<&Engine<'r>> {
        match &self.model {
            Model::On(e) => Some(e),
            Model::Off(_) => None,
        }
    }

    /// The partition table in use.
    pub fn table(&self) -> &Table {
        &self.table
    }

    /// A damaged table copy found (and rewritten) at boot, and why.
    pub fn table_repaired(&self) -> Option<CopyError> {
        self.table_repaired
    }

    /// What mounting the label store found (`None` when not mounted).
    pub fn mount_report(&self) -> Option<MountReport> {
        match &self.labels {
            Labels::Mounted(_, r) => Some(*r),
            Labels::Unmounted { .. } => None,
        }
    }

    /// Space use of the label store (`None` when not mounted).
    pub fn store_usage(&self) -> Option<Usage> {
        match &self.labels {
            Labels::Mounted(s, _) => Some(s.usage()),
            Labels::Unmounted { .. } => None,
        }
    }

    /// The RAM plan.
    pub fn ram_plan(&self) -> &RamPlan {
        &self.plan
    }

    /// Class names by index (a forgotten class's slot is `None`), up to the
    /// last class in use.
    pub fn class_names(&self) -> impl Iterator<Item = Option<&str>> + Clone + '_ {
        let head = &self.ram.head;
        let last = (0..MAX_CLASSES)
            .rev()
            .find(|&i| head.class_name(ClassId(i as u8)).is_some())
            .map_or(0, |i| i + 1);
        (0..last).map(move |i| head.class_name(ClassId(i as u8)))
    }

    /// Labelled examples held by the head.
    pub fn labelled_examples(&self) -> usize {
        self.ram.head.len()
    }

    /// Labelled examples of class `index`.
    pub fn examples_of(&self, index: usize) -> usize {
        u8::try_from(index).map_or(0, |c| self.ram.head.class_count(ClassId(c)))
    }

    /// Current unknown threshold (cosine similarity).
    pub fn threshold(&self) -> f32 {
        q15(self.ram.head.threshold_q15())
    }

    /// Frames processed.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Where the board puts the next ROI (gray, row-major, `width * height`
    /// bytes at the start), as a camera's DMA would.
    pub fn roi_buffer(&mut self) -> &mut [u8] {
        &mut self.ram.roi
    }

    fn class_index(&self, name: &str) -> Option<ClassId> {
        self.ram.head.find_class(name)
    }

    /// Processes the frame in [`Buoy::roi_buffer`] at time `now_ms`, draws
    /// the screen, and returns the result and, when this frame opened a new
    /// counting window, the report of the window that closed.
    pub fn process<D: DrawTarget<Color = Rgb565>>(
        &mut self,
        frame: FrameInfo<'_>,
        now_ms: u64,
        display: &mut D,
    ) -> (FrameResult, Option<WindowReport>) {
        if let Some(last) = self.last_ms {
            let dt = now_ms.saturating_sub(last);
            if dt > 0 {
                let inst = 1000.0 / dt as f32;
                self.fps = if self.fps == 0.0 {
                    inst
                } else {
                    0.8 * self.fps + 0.2 * inst
                };
            }
        }
        self.last_ms = Some(now_ms);
        self.frames += 1;
        let window = now_ms / (u64::from(self.config.window_s.max(1)) * 1000);
        let closed =
            (window != self.window_index && self.window_frames > 0).then(|| self.close_window());
        self.window_index = window;

        let outcome = self.classify_roi(frame);
        let class_name = match &outcome {
            Outcome::Classified(c) => c.class.and_then(|i| {
                let name = self.ram.head.class_name(ClassId(i as u8))?;
                heapless::String::try_from(name).ok()
            }),
            _ => None,
        };
        let result = FrameResult {
            number: self.frames,
            id: frame_id(frame.id),
            outcome,
            class_name,
            size: (frame.width, frame.height),
        };
        if let Outcome::Classified(c) = &result.outcome {
            self.count(c);
        }
        self.draw(&result, display);
        (result, closed)
    }

    fn classify_roi(&mut self, frame: FrameInfo<'_>) -> Outcome {
        let (w, h) = (frame.width, frame.height);
        if w == 0 || h == 0 || w > MAX_ROI_SIDE || h > MAX_ROI_SIDE {
            return Outcome::BadSize;
        }
        let engine = match &self.model {
            Model::On(e) => *e,
            Model::Off(_) => return Outcome::ModelOff,
        };
        let side = engine.input_size();
        let ram = &mut *self.ram;
        let input = &mut ram.input[..side * side];
        if let Err(e) =
            seaclr_shared::preprocess::preprocess_gray(&ram.roi[..w * h], w, h, side, input)
        {
            return Outcome::Preprocess(e);
        }
        let mut raw = [0i8; EMBEDDING_DIM];
        if let Err(e) = engine.encode(input, &mut ram.arena, &mut raw) {
            return Outcome::Encode(e);
        }
        let mut embedding = [0i8; EMBEDDING_DIM];
        // Cannot fail: both are EMBEDDING_DIM long (checked at boot).
        let _ = centre_embedding(&raw, engine.header().output_zero_point, &mut embedding);
        let c = match ram.head.classify(&embedding) {
            Ok(c) => Classification {
                class: c.class.or(c.vote_winner).map(|c| u16::from(c.0)),
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
        };
        if ram.recent.is_full() {
            ram.recent.pop_front();
        }
        let recent = Recent {
            number: self.frames,
            id: frame_id(frame.id),
            embedding,
        };
        // Cannot fail: a slot was freed above.
        let _ = ram.recent.push_back(recent);
        Outcome::Classified(c)
    }

    fn count(&mut self, c: &Classification) {
        self.window_frames += 1;
        let bar = match c.class {
            Some(i) if !c.unknown => {
                if let Some(n) = self.window_counts.get_mut(i as usize) {
                    *n += 1;
                }
                i as u8
            }
            _ => {
                self.window_unknown += 1;
                UNKNOWN_BAR
            }
        };
        if self.histogram.is_full() {
            self.histogram.pop_front();
        }
        let _ = self.histogram.push_back(bar);
    }

    fn draw<D: DrawTarget<Color = Rgb565>>(&self, r: &FrameResult, display: &mut D) {
        let mut bars: heapless::Vec<(&str, u32), { screen::MAX_BARS }> = heapless::Vec::new();
        let mut highlight = None;
        let this_class = r
            .classification()
            .and_then(|c| (!c.unknown).then_some(c.class).flatten());
        for (i, name) in self.class_names().enumerate() {
            if let Some(name) = name {
                let n = self.histogram.iter().filter(|&&b| b as usize == i).count();
                if this_class == Some(i as u16) {
                    highlight = Some(bars.len());
                }
                let _ = bars.push((name, n as u32));
            }
        }
        if r.classification().is_some_and(|c| c.unknown) {
            highlight = Some(bars.len());
        }
        let unknown = self.histogram.iter().filter(|&&b| b == UNKNOWN_BAR).count();
        let _ = bars.push(("unk", unknown as u32));
        let side = self.engine().map_or(0, Engine::input_size);
        let thumbnail = match r.outcome {
            Outcome::Classified(_) | Outcome::Encode(_) => &self.ram.input[..side * side],
            _ => &[],
        };
        let mut alert: heapless::String<160> = heapless::String::new();
        if let Some(p) = self.model_problem() {
            let _ = write!(alert, "{p}");
        }
        let c = r.classification();
        let screen = Screen {
            frame_number: r.number,
            frame_id: &r.id,
            thumbnail,
            thumb_side: if thumbnail.is_empty() { 0 } else { side },
            class: r.class_name.as_deref(),
            confidence: c.map_or(0.0, |c| c.confidence),
            unknown: c.is_none_or(|c| c.unknown),
            histogram: &bars,
            highlight,
            fps: self.fps,
            model_id: self.engine().map(|e| e.header().payload_crc32),
            labelled: self.labelled_examples(),
            threshold: self.threshold(),
            alert: (!alert.is_empty()).then_some(alert.as_str()),
        };
        let _ = screen::draw_screen(display, &screen);
    }

    /// The current window's telemetry message (not closing it).
    pub fn telemetry(&self) -> WindowReport {
        let classes = self.class_names().count();
        let Ok(counts) = ClassCounts::from_slice(&self.window_counts[..classes]) else {
            unreachable!("the head's class limit is within the message's (checked at compile time)")
        };
        let message = Telemetry {
            version: FORMAT_VERSION,
            buoy_id: self.config.buoy_id,
            sequence: self.telemetry_sequence,
            interval_start_s: (self.window_index * u64::from(self.config.window_s)) as u32,
            interval_len_s: self.config.window_s,
            model_id: self.engine().map_or(0, |e| e.header().payload_crc32),
            frames: self.window_frames,
            unknown: self.window_unknown,
            counts,
        };
        let mut buf = [0u8; SBD_MAX_BYTES];
        let bytes = message
            .encode(&mut buf)
            .ok()
            .and_then(|b| heapless::Vec::from_slice(b).ok())
            .unwrap_or_default();
        WindowReport { message, bytes }
    }

    /// The class table as telemetry parts (`emit` gets each, at most one SBD
    /// message), when it is due: after boot and after every class change.
    /// A board sends it before the next counts message, so the names
    /// travel with the counts. Returns the parts emitted (0: not due, or no
    /// model).
    pub fn class_table_update(&mut self, emit: impl FnMut(&[u8])) -> usize {
        let Some(model_id) = self.engine().map(|e| e.header().payload_crc32) else {
            return 0;
        };
        if !self.class_table_due {
            return 0;
        }
        self.class_table_due = false;
        // Cannot fail: at most 64 classes of at most 32 bytes (the head's limits).
        seaclr_shared::telemetry::encode_class_table(
            self.config.buoy_id,
            model_id,
            self.class_table_id,
            self.class_names(),
            emit,
        )
        .unwrap_or(0)
    }

    fn classes_changed(&mut self) {
        self.class_table_id = self.class_table_id.wrapping_add(1);
        self.class_table_due = true;
    }

    /// Closes the current window and returns its report.
    pub fn close_window(&mut self) -> WindowReport {
        let report = self.telemetry();
        self.telemetry_sequence += 1;
        self.window_counts = [0; MAX_CLASSES];
        self.window_unknown = 0;
        self.window_frames = 0;
        report
    }

    /// Console bytes from the board's byte stream: each complete line is
    /// executed and answered on `out`; over-long and non-UTF-8 lines get an
    /// error and run nothing.
    pub fn console_input<W: Write>(&mut self, bytes: &[u8], out: &mut W) -> fmt::Result {
        // The line is copied out of the assembler so `self` is free to execute it.
        let mut line: heapless::String<{ console::MAX_LINE }> = heapless::String::new();
        for &b in bytes {
            match self.console.push(b) {
                None => continue,
                Some(Line::TooLong(_)) => {
                    writeln!(
                        out,
                        "error: line longer than {} bytes ignored",
                        console::MAX_LINE
                    )?;
                    continue;
                }
                Some(Line::NotUtf8) => {
                    writeln!(out, "error: line ignored: not UTF-8 text")?;
                    continue;
                }
                Some(Line::Text(t)) => {
                    line.clear();
                    // Cannot fail: the assembler holds at most MAX_LINE bytes.
                    let _ = line.push_str(t);
                }
            }
            self.handle_line(&line, out)?;
        }
        Ok(())
    }

    /// Handles one console line; writes the reply lines (`ok ...` or
    /// `error: ...`, each ending in a newline) to `out`.
    pub fn handle_line<W: Write>(&mut self, line: &str, out: &mut W) -> fmt::Result {
        match console::parse(line) {
            Ok(None) => Ok(()),
            Err(e) => writeln!(out, "error: {e}"),
            Ok(Some(cmd)) => self.execute(cmd, out),
        }
    }

    fn store(&mut self) -> Result<(&mut Store<F>, &mut DeviceRam), &'static str> {
        match &mut self.labels {
            Labels::Mounted(store, _) => Ok((store, &mut *self.ram)),
            Labels::Unmounted { .. } => Err(
                "no usable model, label updates are refused (the label store is left untouched)",
            ),
        }
    }

    fn execute<W: Write>(&mut self, cmd: Command<'_>, out: &mut W) -> fmt::Result {
        macro_rules! fail {
            ($($t:tt)*) => {
                return writeln!(out, "error: {}", format_args!($($t)*))
            };
        }
        match cmd {
            Command::Help => writeln!(out, "ok {}", console::HELP),
            Command::AddClass(name) => {
                if self.class_index(name).is_some() {
                    fail!("class '{name}' already exists");
                }
                let (store, ram) = match self.store() {
                    Ok(s) => s,
                    Err(e) => fail!("{e}"),
                };
                match store.add_class(&mut ram.head, name) {
                    Ok(c) => {
                        self.classes_changed();
                        writeln!(out, "ok class '{name}' added as #{}", c.0)
                    }
                    Err(e) => fail!("{e}"),
                }
            }
            Command::Label { frame, class } => {
                let Some(class_id) = self.class_index(class) else {
                    fail!("no class '{class}' (addclass it first)");
                };
                let Some(index) = self.resolve_frame(frame) else {
                    fail!(
                        "frame '{}' is not among the last {RECENT_FRAMES} classified frames",
                        console::clip(frame, 40)
                    );
                };
                let (store, ram) = match self.store() {
                    Ok(s) => s,
                    Err(e) => fail!("{e}"),
                };
                let Some(recent) = ram.recent.iter().nth(index) else {
                    fail!("frame '{frame}' is gone");
                };
                let (number, id, embedding) = (recent.number, recent.id.clone(), recent.embedding);
                let added = match store.add_example(&mut ram.head, class_id, &embedding) {
                    Ok(a) => a,
                    Err(e) => fail!("{e}"),
                };
                let evicted = match added.evicted {
                    Some(Evicted::Incoming) => {
                        return writeln!(
                            out,
                            "ok frame {number} not stored: the memory is full and it is the most redundant example of its class"
                        );
                    }
                    Some(Evicted::Stored { id, .. }) => Some(id),
                    None => None,
                };
                if let Some(ev) = evicted {
                    self.session_labels.retain(|l| l.example != ev);
                }
                if self.session_labels.is_full() {
                    self.session_labels.remove(0);
                }
                let _ = self.session_labels.push(SessionLabel {
                    example: added.id,
                    frame: number,
                    class: class_id,
                    id: id.clone(),
                });
                write!(
                    out,
                    "ok frame {number} ({id}) labelled '{class}' as example #{}; {} examples",
                    added.id.0,
                    self.labelled_examples()
                )?;
                if let Some(ev) = evicted {
                    write!(out, " (memory full: example #{} evicted)", ev.0)?;
                }
                writeln!(out)
            }
            Command::ForgetFrame(frame) => {
                let number = frame.parse::<u64>().ok();
                let found = self
                    .session_labels
                    .iter()
                    .rev()
                    .find(|l| number == Some(l.frame) || id_matches(&l.id, frame))
                    .map(|l| l.example);
                let Some(example) = found else {
                    fail!(
                        "frame '{}' has no label among the last {SESSION_LABELS} given since boot",
                        console::clip(frame, 40)
                    );
                };
                let (store, ram) = match self.store() {
                    Ok(s) => s,
                    Err(e) => fail!("{e}"),
                };
                if let Err(e) = store.forget_example(&mut ram.head, example) {
                    fail!("{e}");
                }
                self.session_labels.retain(|l| l.example != example);
                writeln!(
                    out,
                    "ok example #{} forgotten; {} examples",
                    example.0,
                    self.labelled_examples()
                )
            }
            Command::ForgetClass(name) => {
                let Some(class) = self.class_index(name) else {
                    fail!("no class '{name}'");
                };
                let (store, ram) = match self.store() {
                    Ok(s) => s,
                    Err(e) => fail!("{e}"),
                };
                if let Err(e) = store.forget_class(&mut ram.head, class) {
                    fail!("{e}");
                }
                self.classes_changed();
                self.session_labels.retain(|l| l.class != class);
                writeln!(
                    out,
                    "ok class '{name}' forgotten; {} examples",
                    self.labelled_examples()
                )
            }
            Command::Threshold(x) => {
                let (store, ram) = match self.store() {
                    Ok(s) => s,
                    Err(e) => fail!("{e}"),
                };
                // 0 <= x <= 1 (the parser checks), so adding 0.5 rounds.
                let q = (x * Q15_ONE as f32 + 0.5) as i32;
                if let Err(e) = store.set_threshold(&mut ram.head, q) {
                    fail!("{e}");
                }
                writeln!(out, "ok threshold {:.3}", self.threshold())
            }
            Command::Status => self.status(out),
            Command::Counts => {
                write!(
                    out,
                    "ok window {} frames {}:",
                    self.window_index, self.window_frames
                )?;
                for (i, name) in self.class_names().enumerate() {
                    if let Some(name) = name {
                        write!(out, " {name}={}", self.window_counts[i])?;
                    }
                }
                writeln!(out, " unknown={}", self.window_unknown)
            }
            Command::Telemetry => {
                let r = self.telemetry();
                writeln!(
                    out,
                    "ok telemetry {} bytes: {}",
                    r.bytes.len(),
                    Hex(&r.bytes)
                )
            }
        }
    }

    fn resolve_frame(&self, key: &str) -> Option<usize> {
        let recent = &self.ram.recent;
        if let Ok(n) = key.parse::<u64>() {
            return recent.iter().position(|r| r.number == n);
        }
        let last = recent.iter().rev().position(|r| id_matches(&r.id, key))?;
        Some(recent.len() - 1 - last)
    }

    /// What boot found, one `boot: ` line each: a repaired table copy, the
    /// label store mount, the model (or why classification is off), and
    /// the resources. Every board prints it after its own first line.
    pub fn boot_report<W: Write>(&self, out: &mut W) -> fmt::Result {
        if let Some(why) = self.table_repaired {
            writeln!(
                out,
                "boot: one partition table copy was damaged ({why}) and has been rewritten from the other"
            )?;
        }
        if let Some(report) = self.mount_report() {
            writeln!(out, "boot: label store {}", MountSummary(report))?;
        }
        match self.model_problem() {
            Some(why) => writeln!(out, "boot: {why}")?,
            None => writeln!(
                out,
                "boot: model ok; {} classes, {} labelled examples in the store",
                self.class_names().flatten().count(),
                self.labelled_examples()
            )?,
        }
        self.resources(out, "boot: ")
    }

    /// The `status` reply.
    pub fn status<W: Write>(&self, out: &mut W) -> fmt::Result {
        match &self.model {
            Model::On(e) => writeln!(
                out,
                "ok model {:08x} input {}x{} embedding {} arena {}",
                e.header().payload_crc32,
                e.input_size(),
                e.input_size(),
                e.embedding_dim(),
                Kib(e.arena_bytes())
            )?,
            Model::Off(why) => writeln!(out, "ok model OFF: {why}")?,
        }
        writeln!(
            out,
            "ok frames {} fps {:.1} classes {} examples {} threshold {}",
            self.frames,
            self.fps,
            self.class_names().flatten().count(),
            self.labelled_examples(),
            Threshold(self.threshold())
        )?;
        self.resources(out, "ok ")
    }

    /// The resource report (flash, RAM, compute), one line each, each
    /// line starting with `prefix`.
    pub fn resources<W: Write>(&self, out: &mut W, prefix: &str) -> fmt::Result {
        let l = &self.table.layout;
        write!(
            out,
            "{prefix}flash: model {} of {} region, label store ",
            Kib(self.table.model_len as usize),
            Kib(l.model_capacity as usize)
        )?;
        match self.store_usage() {
            Some(u) => writeln!(
                out,
                "{} used of a {} half ({} region)",
                Kib(u.used),
                Kib(u.half_size),
                Kib(l.store_capacity as usize)
            )?,
            None => writeln!(
                out,
                "not mounted ({} region)",
                Kib(l.store_capacity as usize)
            )?,
        }
        writeln!(out, "{prefix}RAM: {}", self.plan)?;
        if let Some(e) = self.engine() {
            let macs = e.macs();
            let hundredths = (macs + 5_000) / 10_000;
            writeln!(
                out,
                "{prefix}compute: {}.{:02} M MACs per frame",
                hundredths / 100,
                hundredths % 100
            )?;
        }
        Ok(())
    }
}

/// A frame id matches a console key when equal or when the key is its
/// last path component(s).
fn id_matches(id: &str, key: &str) -> bool {
    id == key
        || (id.len() > key.len()
            && id.ends_with(key)
            && id.as_bytes()[id.len() - key.len() - 1] == b'/')
}
