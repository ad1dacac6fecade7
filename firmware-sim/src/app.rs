//! The buoy firmware's main loop, on simulated hardware.
//!
//! Boot: read the model from the flash image (a missing or corrupt model
//! turns classification off with a clear message and leaves the label store
//! untouched), check the RAM plan against the budget (over budget: refuse to
//! boot), mount the label store and replay it into the kNN head.
//!
//! Per frame: preprocess (the no_std path from `shared`) -> encode (int8
//! engine) -> classify (kNN head) -> count per class in the current time
//! window -> one log line; the screen is redrawn and saved as PNG now and then.
//!
//! Console: label updates are written to the flash store FIRST and applied
//! to the head only once the write completed; only then is `ok` replied. So
//! every acknowledged label survives a power cut, and a label whose write was
//! cut is neither acknowledged nor in the head.
//!
//! The engine, head and store are reached through the small traits below,
//! implemented by adapters over `seaclr_edge` (see `edge_adapters`).

use crate::console::{self, Command};
use crate::display::{self, Framebuffer, Screen};
use crate::flash_file::FlashFile;
use crate::frames::Frame;
use crate::resources::{self, RamInputs, RamPlan};
use seaclr_shared::telemetry::{ClassCounts, FORMAT_VERSION, SBD_MAX_BYTES, Telemetry};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::Instant;

/// The int8 encoder as the firmware uses it.
pub trait Encoder {
    /// Side of the preprocessed input image.
    fn input_size(&self) -> usize;
    /// Embedding length.
    fn embedding_dim(&self) -> usize;
    /// Activation arena the model needs.
    fn arena_bytes(&self) -> usize;
    /// Multiply-accumulates per image, when the model states it.
    fn macs_per_image(&self) -> Option<u64>;
    /// Model version from the blob header.
    fn model_version(&self) -> u32;
    /// Encodes one preprocessed image.
    fn encode(&mut self, image: &[u8], out: &mut [i8]) -> Result<(), String>;
}

/// What the head says about one embedding.
#[derive(Debug, Clone, PartialEq)]
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

/// Identifies one stored example.
pub type ExampleId = u32;

/// The few-shot kNN head as the firmware uses it.
pub trait Head {
    /// Adds a class, returning its index.
    fn add_class(&mut self, name: &str) -> Result<u16, String>;
    /// Class names by index (removed classes keep their slot as `None`).
    fn classes(&self) -> Vec<Option<String>>;
    /// Adds a labelled example.
    fn add_example(&mut self, id: ExampleId, class: u16, embedding: &[i8]) -> Result<(), String>;
    /// Removes one example; `false` if it was not there.
    fn forget_example(&mut self, id: ExampleId) -> bool;
    /// Removes a class and its examples.
    fn forget_class(&mut self, class: u16) -> Result<(), String>;
    /// Classifies against the stored examples.
    fn classify(&self, embedding: &[i8], threshold: f32) -> Classification;
    /// Stored examples.
    fn examples(&self) -> usize;
    /// Capacity in examples (for the RAM plan).
    fn capacity(&self) -> usize;
    /// RAM the head occupies.
    fn ram_bytes(&self) -> usize;
}

/// One persistent label operation, replayed in order at boot.
#[derive(Debug, Clone, PartialEq)]
pub enum LabelOp {
    /// A class was declared.
    AddClass {
        /// Its name.
        name: String,
    },
    /// An example was labelled.
    AddExample {
        /// Its id.
        id: ExampleId,
        /// Class index.
        class: u16,
        /// The int8 embedding.
        embedding: Vec<i8>,
    },
    /// An example was forgotten.
    ForgetExample {
        /// Its id.
        id: ExampleId,
    },
    /// A class was forgotten.
    ForgetClass {
        /// Class index.
        class: u16,
    },
    /// The unknown threshold changed.
    SetThreshold {
        /// New threshold.
        threshold: f32,
    },
}

/// The label store on the flash's store region.
pub trait LabelStore {
    /// Persists one operation; `Ok` only once it is durable.
    fn append(&mut self, op: &LabelOp) -> Result<(), String>;
    /// Every durable operation, in order.
    fn replay(&mut self) -> Result<Vec<LabelOp>, String>;
}

/// Builds the engine from the model bytes (the blob may be rejected).
pub type EncoderFactory = Box<dyn Fn(Vec<u8>) -> Result<Box<dyn Encoder>, String>>;

/// Run settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Buoy id in telemetry.
    pub buoy_id: u16,
    /// Unknown threshold until the store sets one.
    pub threshold: f32,
    /// Counting window, seconds.
    pub window_s: u32,
    /// Frames per second of the camera; 0 = as fast as possible (wall clock).
    pub fps: f32,
    /// Recent frames remembered for `label`.
    pub recent_frames: usize,
    /// Largest ROI side; bigger ROIs are binned down by the camera.
    pub max_roi_side: usize,
    /// RAM budget.
    pub ram_budget: usize,
    /// Where screen PNGs go.
    pub png_dir: Option<PathBuf>,
    /// Save a PNG every this many frames (and the last one).
    pub png_every: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            buoy_id: 1,
            threshold: 0.5,
            window_s: 60,
            fps: 0.0,
            recent_frames: 256,
            max_roi_side: 320,
            ram_budget: resources::DEFAULT_RAM_BUDGET,
            png_dir: None,
            png_every: 25,
        }
    }
}

struct Recent {
    number: u64,
    id: String,
    embedding: Vec<i8>,
}

/// What happened to one frame.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameResult {
    /// Frame number since boot (1-based).
    pub number: u64,
    /// Frame id.
    pub id: String,
    /// Classification, `None` when the model is off or the frame was unusable.
    pub classification: Option<Classification>,
    /// Class name of the classification, if any.
    pub class_name: Option<String>,
    /// The log line.
    pub log: String,
}

/// A closed counting window.
#[derive(Debug, Clone)]
pub struct WindowReport {
    /// The telemetry message.
    pub message: Telemetry,
    /// Encoded bytes.
    pub bytes: Vec<u8>,
}

/// The firmware state.
pub struct Buoy {
    config: Config,
    flash: FlashFile,
    encoder: Result<Box<dyn Encoder>, String>,
    head: Box<dyn Head>,
    store: Box<dyn LabelStore>,
    threshold: f32,
    ram: Option<RamPlan>,
    recent: VecDeque<Recent>,
    /// (example id, frame number, frame id, class)
    labelled: Vec<(ExampleId, u64, String, u16)>,
    next_example: ExampleId,
    frames: u64,
    started: Instant,
    window_index: u64,
    window_counts: Vec<u32>,
    window_unknown: u32,
    window_frames: u32,
    telemetry_sequence: u32,
    recent_classes: VecDeque<Option<u16>>,
    framebuffer: Framebuffer,
    pngs: Vec<PathBuf>,
    last_frame_time: Option<Instant>,
    fps_measured: f32,
}

/// Why the buoy refused to boot at all.
#[derive(Debug)]
pub struct BootError(pub String);

impl std::fmt::Display for BootError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BootError {}

impl Buoy {
    /// Boots from the flash image. A missing/corrupt model is not a boot
    /// failure (the buoy still runs and says why it cannot classify); an
    /// over-budget RAM plan or an unreadable store is.
    pub fn boot(
        config: Config,
        flash: FlashFile,
        make_encoder: &EncoderFactory,
        head: Box<dyn Head>,
        store: Box<dyn LabelStore>,
    ) -> Result<Self, BootError> {
        let encoder = match flash.model() {
            Err(e) => Err(format!("refusing to classify: {e} (flash image {})", flash.path().display())),
            Ok(bytes) => make_encoder(bytes).map_err(|e| format!("refusing to classify: model rejected: {e}")),
        };
        let mut buoy = Self {
            threshold: config.threshold,
            config,
            flash,
            encoder,
            head,
            store,
            ram: None,
            recent: VecDeque::new(),
            labelled: Vec::new(),
            next_example: 1,
            frames: 0,
            started: Instant::now(),
            window_index: 0,
            window_counts: Vec::new(),
            window_unknown: 0,
            window_frames: 0,
            telemetry_sequence: 0,
            recent_classes: VecDeque::new(),
            framebuffer: Framebuffer::new(display::WIDTH, display::HEIGHT),
            pngs: Vec::new(),
            last_frame_time: None,
            fps_measured: 0.0,
        };
        if let Ok(enc) = &buoy.encoder {
            let plan = resources::plan_ram(RamInputs {
                arena: enc.arena_bytes(),
                embedding_dim: enc.embedding_dim(),
                input_size: enc.input_size(),
                max_roi_side: buoy.config.max_roi_side,
                max_examples: buoy.head.capacity(),
                recent_frames: buoy.config.recent_frames,
                budget: buoy.config.ram_budget,
            });
            let plan = RamPlan { knn: buoy.head.ram_bytes().max(plan.knn), ..plan };
            plan.check().map_err(|e| BootError(format!("boot refused: {e}")))?;
            buoy.ram = Some(plan);
            // Only a usable model lets the store be mounted (and ever written).
            let ops = buoy.store.replay().map_err(|e| BootError(format!("boot refused: label store unreadable: {e}")))?;
            for op in ops {
                buoy.apply(&op).map_err(|e| BootError(format!("boot refused: label store replay failed: {e}")))?;
            }
        }
        Ok(buoy)
    }

    /// Why classification is off, if it is.
    pub fn model_problem(&self) -> Option<&str> {
        self.encoder.as_ref().err().map(String::as_str)
    }

    /// The RAM plan (when a model is loaded).
    pub fn ram_plan(&self) -> Option<&RamPlan> {
        self.ram.as_ref()
    }

    /// Class names by index.
    pub fn class_names(&self) -> Vec<Option<String>> {
        self.head.classes()
    }

    /// Labelled examples held by the head.
    pub fn labelled_examples(&self) -> usize {
        self.head.examples()
    }

    /// Current unknown threshold.
    pub fn threshold(&self) -> f32 {
        self.threshold
    }

    /// PNGs written so far.
    pub fn pngs(&self) -> &[PathBuf] {
        &self.pngs
    }

    /// Frames processed.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    fn class_index(&self, name: &str) -> Option<u16> {
        self.head.classes().iter().position(|c| c.as_deref() == Some(name)).map(|i| i as u16)
    }

    /// Applies a durable operation to the in-RAM state.
    fn apply(&mut self, op: &LabelOp) -> Result<(), String> {
        match op {
            LabelOp::AddClass { name } => {
                self.head.add_class(name)?;
            }
            LabelOp::AddExample { id, class, embedding } => {
                self.head.add_example(*id, *class, embedding)?;
                self.next_example = self.next_example.max(id + 1);
            }
            LabelOp::ForgetExample { id } => {
                self.head.forget_example(*id);
                self.labelled.retain(|l| l.0 != *id);
            }
            LabelOp::ForgetClass { class } => {
                self.head.forget_class(*class)?;
                self.labelled.retain(|l| l.3 != *class);
            }
            LabelOp::SetThreshold { threshold } => self.threshold = *threshold,
        }
        Ok(())
    }

    /// Persists, then applies. Errors leave the state unchanged.
    fn commit(&mut self, op: LabelOp) -> Result<(), String> {
        if self.encoder.is_err() {
            return Err("no usable model, label updates are refused (the label store is left untouched)".into());
        }
        self.store.append(&op).map_err(|e| format!("not stored: {e}"))?;
        self.apply(&op)
    }

    fn sim_time_s(&self) -> f64 {
        if self.config.fps > 0.0 {
            self.frames as f64 / self.config.fps as f64
        } else {
            self.started.elapsed().as_secs_f64()
        }
    }

    /// Processes one camera frame. Returns the result and, when this frame
    /// opened a new window, the report of the window that closed.
    pub fn process(&mut self, frame: Frame) -> (FrameResult, Option<WindowReport>) {
        let now = Instant::now();
        if let Some(t) = self.last_frame_time {
            let dt = now.duration_since(t).as_secs_f32();
            if dt > 0.0 {
                let inst = 1.0 / dt;
                self.fps_measured = if self.fps_measured == 0.0 { inst } else { 0.8 * self.fps_measured + 0.2 * inst };
            }
        }
        self.last_frame_time = Some(now);
        self.frames += 1;
        let number = self.frames;
        let window = (self.sim_time_s() / self.config.window_s.max(1) as f64) as u64;
        let closed = if window != self.window_index && self.window_frames > 0 { Some(self.close_window()) } else { None };
        self.window_index = window;

        let size = self.encoder.as_ref().map(|e| e.input_size()).unwrap_or(seaclr_shared::preprocess::DEFAULT_SIZE);
        let (w, h, gray) = bin_to_fit(frame.width as usize, frame.height as usize, frame.gray, self.config.max_roi_side);
        let mut pre = vec![0u8; size * size];
        if let Err(e) = seaclr_shared::preprocess::preprocess_gray(&gray, w, h, size, &mut pre) {
            let log = format!("frame {number} {} skipped: preprocessing failed: {e}", frame.id);
            return (FrameResult { number, id: frame.id, classification: None, class_name: None, log }, closed);
        }
        let mut result = FrameResult { number, id: frame.id.clone(), classification: None, class_name: None, log: String::new() };
        match &mut self.encoder {
            Err(why) => {
                result.log = format!("frame {number} {}: not classified ({why})", frame.id);
            }
            Ok(enc) => {
                let mut emb = vec![0i8; enc.embedding_dim()];
                match enc.encode(&pre, &mut emb) {
                    Err(e) => result.log = format!("frame {number} {}: encode failed: {e}", frame.id),
                    Ok(()) => {
                        let c = self.head.classify(&emb, self.threshold);
                        let name = c.class.and_then(|i| self.head.classes().get(i as usize).cloned().flatten());
                        self.window_frames += 1;
                        if c.unknown {
                            self.window_unknown += 1;
                        } else if let Some(i) = c.class {
                            let i = i as usize;
                            if self.window_counts.len() <= i {
                                self.window_counts.resize(i + 1, 0);
                            }
                            self.window_counts[i] += 1;
                        }
                        self.recent_classes.push_back(if c.unknown { None } else { c.class });
                        if self.recent_classes.len() > 100 {
                            self.recent_classes.pop_front();
                        }
                        result.log = format!(
                            "frame {number} {}: {} conf {:.2} sim {:.2}{}",
                            frame.id,
                            name.as_deref().unwrap_or("-"),
                            c.confidence,
                            c.similarity,
                            if c.unknown { " UNKNOWN" } else { "" }
                        );
                        self.recent.push_back(Recent { number, id: frame.id.clone(), embedding: emb });
                        if self.recent.len() > self.config.recent_frames {
                            self.recent.pop_front();
                        }
                        result.class_name = name;
                        result.classification = Some(c);
                    }
                }
            }
        }
        self.draw(&result, &pre, size);
        (result, closed)
    }

    fn draw(&mut self, r: &FrameResult, pre: &[u8], size: usize) {
        let names = self.head.classes();
        let mut hist: Vec<(String, u32)> = names
            .iter()
            .enumerate()
            .filter_map(|(i, n)| n.as_ref().map(|n| (n.clone(), self.recent_classes.iter().filter(|c| **c == Some(i as u16)).count() as u32)))
            .collect();
        hist.push(("unk".into(), self.recent_classes.iter().filter(|c| c.is_none()).count() as u32));
        let highlight = match &r.classification {
            Some(c) if c.unknown => Some(hist.len() - 1),
            Some(c) => c.class.and_then(|ci| names.get(ci as usize).cloned().flatten()).and_then(|n| hist.iter().position(|(h, _)| *h == n)),
            None => None,
        };
        let c = r.classification.clone();
        let model_version = self.encoder.as_ref().ok().map(|e| e.model_version());
        let screen = Screen {
            frame_number: r.number,
            frame_id: &r.id,
            thumbnail: pre,
            thumb_side: size,
            class: r.class_name.as_deref(),
            confidence: c.as_ref().map_or(0.0, |c| c.confidence),
            unknown: c.as_ref().is_none_or(|c| c.unknown),
            histogram: &hist,
            highlight,
            fps: if self.config.fps > 0.0 { self.config.fps } else { self.fps_measured },
            model_version,
            labelled: self.head.examples(),
            threshold: self.threshold,
            alert: self.encoder.as_ref().err().map(String::as_str),
        };
        let _ = display::draw_screen(&mut self.framebuffer, &screen);
        if self.config.png_every > 0 && r.number % self.config.png_every == 1 {
            self.save_png();
        }
    }

    /// Saves the current screen as `screen-<frame>.png` in the PNG folder.
    pub fn save_png(&mut self) -> Option<PathBuf> {
        let dir = self.config.png_dir.clone()?;
        let path = dir.join(format!("screen-{:05}.png", self.frames));
        match self.framebuffer.save_png(&path) {
            Ok(()) => {
                self.pngs.push(path.clone());
                Some(path)
            }
            Err(e) => {
                eprintln!("warning: {e}");
                None
            }
        }
    }

    /// The current window's telemetry message (not closing it).
    pub fn telemetry(&self) -> WindowReport {
        let mut counts = self.window_counts.clone();
        counts.resize(self.head.classes().len(), 0);
        counts.truncate(seaclr_shared::telemetry::MAX_CLASSES);
        let message = Telemetry {
            version: FORMAT_VERSION,
            buoy_id: self.config.buoy_id,
            sequence: self.telemetry_sequence,
            interval_start_s: (self.window_index * self.config.window_s as u64) as u32,
            interval_len_s: self.config.window_s,
            model_version: self.encoder.as_ref().map_or(0, |e| e.model_version()),
            frames: self.window_frames,
            unknown: self.window_unknown,
            counts: ClassCounts::from_slice(&counts).unwrap_or_else(|_| ClassCounts::from_slice(&[]).expect("empty counts fit")),
        };
        let mut buf = [0u8; SBD_MAX_BYTES];
        let bytes = message.encode(&mut buf).map(<[u8]>::to_vec).unwrap_or_default();
        WindowReport { message, bytes }
    }

    /// Closes the current window and returns its report.
    pub fn close_window(&mut self) -> WindowReport {
        let report = self.telemetry();
        self.telemetry_sequence += 1;
        self.window_counts.clear();
        self.window_unknown = 0;
        self.window_frames = 0;
        report
    }

    fn resolve_frame(&self, key: &str) -> Option<&Recent> {
        if let Ok(n) = key.parse::<u64>() {
            return self.recent.iter().find(|r| r.number == n);
        }
        self.recent.iter().rev().find(|r| r.id == key || r.id.ends_with(&format!("/{key}")))
    }

    /// Handles one console line; returns the reply lines (`ok ...` or `error: ...`).
    pub fn handle_line(&mut self, line: &str) -> Vec<String> {
        match console::parse(line) {
            Ok(None) => Vec::new(),
            Err(e) => vec![format!("error: {e}")],
            Ok(Some(cmd)) => match self.execute(cmd) {
                Ok(lines) => lines,
                Err(e) => vec![format!("error: {e}")],
            },
        }
    }

    fn execute(&mut self, cmd: Command) -> Result<Vec<String>, String> {
        match cmd {
            Command::Help => Ok(vec![format!("ok {}", console::HELP)]),
            Command::AddClass(name) => {
                if self.class_index(&name).is_some() {
                    return Err(format!("class '{name}' already exists"));
                }
                self.commit(LabelOp::AddClass { name: name.clone() })?;
                Ok(vec![format!("ok class '{name}' added as #{}", self.class_index(&name).unwrap_or(0))])
            }
            Command::Label { frame, class } => {
                let class_idx = self.class_index(&class).ok_or_else(|| format!("no class '{class}' (addclass it first)"))?;
                let recent = self.resolve_frame(&frame).ok_or_else(|| {
                    format!("frame '{frame}' is not among the last {} frames", self.config.recent_frames)
                })?;
                let (number, id, embedding) = (recent.number, recent.id.clone(), recent.embedding.clone());
                let ex = self.next_example;
                self.commit(LabelOp::AddExample { id: ex, class: class_idx, embedding })?;
                self.labelled.push((ex, number, id.clone(), class_idx));
                Ok(vec![format!("ok frame {number} ({id}) labelled '{class}' as example #{ex}; {} examples", self.head.examples())])
            }
            Command::ForgetFrame(frame) => {
                let found = self
                    .labelled
                    .iter()
                    .rev()
                    .find(|l| frame.parse::<u64>().ok() == Some(l.1) || l.2 == frame)
                    .map(|l| l.0)
                    .ok_or_else(|| format!("frame '{frame}' has no label from this session"))?;
                self.commit(LabelOp::ForgetExample { id: found })?;
                Ok(vec![format!("ok example #{found} forgotten; {} examples", self.head.examples())])
            }
            Command::ForgetClass(name) => {
                let idx = self.class_index(&name).ok_or_else(|| format!("no class '{name}'"))?;
                self.commit(LabelOp::ForgetClass { class: idx })?;
                Ok(vec![format!("ok class '{name}' forgotten; {} examples", self.head.examples())])
            }
            Command::Threshold(x) => {
                self.commit(LabelOp::SetThreshold { threshold: x })?;
                Ok(vec![format!("ok threshold {x:.3}")])
            }
            Command::Status => Ok(self.status_lines()),
            Command::Counts => {
                let names = self.head.classes();
                let mut parts: Vec<String> = names
                    .iter()
                    .enumerate()
                    .filter_map(|(i, n)| n.as_ref().map(|n| format!("{n}={}", self.window_counts.get(i).copied().unwrap_or(0))))
                    .collect();
                parts.push(format!("unknown={}", self.window_unknown));
                Ok(vec![format!("ok window {} frames {}: {}", self.window_index, self.window_frames, parts.join(" "))])
            }
            Command::Telemetry => {
                let r = self.telemetry();
                let hex: String = r.bytes.iter().map(|b| format!("{b:02x}")).collect();
                Ok(vec![format!("ok telemetry {} bytes: {hex}", r.bytes.len())])
            }
        }
    }

    /// The `status` reply.
    pub fn status_lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        match &self.encoder {
            Ok(e) => out.push(format!(
                "ok model v{} input {}x{} embedding {} arena {}",
                e.model_version(),
                e.input_size(),
                e.input_size(),
                e.embedding_dim(),
                resources::kib(e.arena_bytes())
            )),
            Err(why) => out.push(format!("ok model OFF: {why}")),
        }
        let classes = self.head.classes().iter().flatten().count();
        out.push(format!(
            "ok frames {} fps {:.1} classes {classes} examples {} threshold {:.2}",
            self.frames, self.fps_measured, self.head.examples(), self.threshold
        ));
        out.extend(self.resource_report().into_iter().map(|l| format!("ok {l}")));
        out
    }

    /// The resource report: flash, RAM, compute.
    pub fn resource_report(&self) -> Vec<String> {
        let h = self.flash.header();
        let mut out = vec![format!(
            "flash: model {} of {} region, label store {} used of {} region",
            resources::kib(h.model_len as usize),
            resources::kib(h.layout.model_capacity as usize),
            resources::kib(self.flash.store_bytes_used()),
            resources::kib(h.layout.store_capacity as usize)
        )];
        match &self.ram {
            Some(p) => out.push(format!("RAM: {p}")),
            None => out.push("RAM: no model loaded, no plan".into()),
        }
        if let Ok(e) = &self.encoder {
            match e.macs_per_image() {
                Some(m) => out.push(format!(
                    "compute: {:.2} M MACs per frame, about {:.1} ms on a {} MHz Cortex-M4F at {} MAC/cycle",
                    m as f64 / 1e6,
                    resources::mcu_ms_per_frame(m),
                    resources::REFERENCE_CLOCK_HZ / 1_000_000,
                    resources::MACS_PER_CYCLE
                )),
                None => out.push("compute: the model does not state its MACs".into()),
            }
        }
        out
    }
}

/// Camera-side binning: halves the ROI (2x2 average) until its longer side
/// fits `max_side`, as a sensor's binning mode would before the ROI reaches RAM.
pub fn bin_to_fit(mut w: usize, mut h: usize, mut gray: Vec<u8>, max_side: usize) -> (usize, usize, Vec<u8>) {
    while w.max(h) > max_side.max(1) && w >= 2 && h >= 2 {
        let (nw, nh) = (w / 2, h / 2);
        let mut out = vec![0u8; nw * nh];
        for y in 0..nh {
            for x in 0..nw {
                let s = gray[2 * y * w + 2 * x] as u32
                    + gray[2 * y * w + 2 * x + 1] as u32
                    + gray[(2 * y + 1) * w + 2 * x] as u32
                    + gray[(2 * y + 1) * w + 2 * x + 1] as u32;
                out[y * nw + x] = ((s + 2) / 4) as u8;
            }
        }
        (w, h, gray) = (nw, nh, out);
    }
    (w, h, gray)
}
