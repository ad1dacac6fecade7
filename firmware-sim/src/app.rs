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
    /// Identifies the model (e.g. the blob payload CRC-32).
    fn model_id(&self) -> u32;
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

/// Identifies one stored example (ids are never reused).
pub type ExampleId = u32;

/// One label update, as the console asks for it.
#[derive(Debug, Clone, PartialEq)]
pub enum Update {
    /// Declare a class.
    AddClass(String),
    /// Store a labelled example.
    AddExample {
        /// Class index.
        class: u16,
        /// The int8 embedding.
        embedding: Vec<i8>,
    },
    /// Drop one example.
    ForgetExample(ExampleId),
    /// Drop a class and its examples.
    ForgetClass(u16),
    /// Change the open-set threshold (cosine similarity, 0..1).
    SetThreshold(f32),
}

/// What an accepted update did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// The new class's index (`AddClass`).
    pub class: Option<u16>,
    /// The new example's id (`AddExample`).
    pub example: Option<ExampleId>,
    /// The example evicted to make room, if the memory was full.
    pub evicted: Option<ExampleId>,
}

/// The few-shot label memory: the kNN head in RAM plus its label store in
/// flash. Implemented over `seaclr_edge::knn` and `seaclr_edge::store`.
pub trait LabelMemory {
    /// Mounts the flash store and rebuilds the head from it.
    fn mount(&mut self) -> Result<(), String>;
    /// Class names by index (a forgotten class's slot is `None`).
    fn classes(&self) -> Vec<Option<String>>;
    /// Stored examples.
    fn examples(&self) -> usize;
    /// Stored examples per class index (same indexing as `classes`).
    fn examples_per_class(&self) -> Vec<usize>;
    /// Capacity in examples.
    fn capacity(&self) -> usize;
    /// RAM the head occupies.
    fn ram_bytes(&self) -> usize;
    /// Current open-set threshold.
    fn threshold(&self) -> f32;
    /// Classifies one embedding.
    fn classify(&self, embedding: &[i8]) -> Classification;
    /// Validates, persists to flash, and only then applies the update.
    /// `Err` means nothing changed (a half-written record is ignored at mount).
    fn update(&mut self, update: Update) -> Result<Applied, String>;
}

/// Builds the engine from the model bytes (the blob may be rejected).
pub type EncoderFactory = Box<dyn Fn(Vec<u8>) -> Result<Box<dyn Encoder>, String>>;

/// Run settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Buoy id in telemetry.
    pub buoy_id: u16,
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
    memory: Box<dyn LabelMemory>,
    ram: Option<RamPlan>,
    recent: VecDeque<Recent>,
    /// Labels given this session: (example id, frame number, frame id, class).
    labelled: Vec<(ExampleId, u64, String, u16)>,
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
        memory: Box<dyn LabelMemory>,
    ) -> Result<Self, BootError> {
        let encoder = match flash.model() {
            Err(e) => Err(format!(
                "refusing to classify: {e} (flash image {})",
                flash.path().display()
            )),
            Ok(bytes) => make_encoder(bytes)
                .map_err(|e| format!("refusing to classify: model rejected: {e}")),
        };
        let mut buoy = Self {
            config,
            flash,
            encoder,
            memory,
            ram: None,
            recent: VecDeque::new(),
            labelled: Vec::new(),
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
                max_examples: buoy.memory.capacity(),
                recent_frames: buoy.config.recent_frames,
                budget: buoy.config.ram_budget,
            });
            let plan = RamPlan {
                knn: buoy.memory.ram_bytes().max(plan.knn),
                ..plan
            };
            plan.check()
                .map_err(|e| BootError(format!("boot refused: {e}")))?;
            buoy.ram = Some(plan);
            // Only a usable model lets the store be mounted (and ever written).
            buoy.memory.mount().map_err(|e| {
                BootError(format!("boot refused: label store cannot be mounted: {e}"))
            })?;
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
        self.memory.classes()
    }

    /// Labelled examples held by the head.
    pub fn labelled_examples(&self) -> usize {
        self.memory.examples()
    }

    /// Labelled examples per class index.
    pub fn examples_per_class(&self) -> Vec<usize> {
        self.memory.examples_per_class()
    }

    /// Current unknown threshold.
    pub fn threshold(&self) -> f32 {
        self.memory.threshold()
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
        self.memory
            .classes()
            .iter()
            .position(|c| c.as_deref() == Some(name))
            .map(|i| i as u16)
    }

    /// Persists, then applies (through the label memory). Errors leave the state unchanged.
    fn commit(&mut self, update: Update) -> Result<Applied, String> {
        if self.encoder.is_err() {
            return Err(
                "no usable model, label updates are refused (the label store is left untouched)"
                    .into(),
            );
        }
        let applied = self.memory.update(update)?;
        if let Some(ev) = applied.evicted {
            self.labelled.retain(|l| l.0 != ev);
        }
        Ok(applied)
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
                self.fps_measured = if self.fps_measured == 0.0 {
                    inst
                } else {
                    0.8 * self.fps_measured + 0.2 * inst
                };
            }
        }
        self.last_frame_time = Some(now);
        self.frames += 1;
        let number = self.frames;
        let window = (self.sim_time_s() / self.config.window_s.max(1) as f64) as u64;
        let closed = if window != self.window_index && self.window_frames > 0 {
            Some(self.close_window())
        } else {
            None
        };
        self.window_index = window;

        let size = self
            .encoder
            .as_ref()
            .map(|e| e.input_size())
            .unwrap_or(seaclr_shared::preprocess::DEFAULT_SIZE);
        let (w, h, gray) = bin_to_fit(
            frame.width as usize,
            frame.height as usize,
            frame.gray,
            self.config.max_roi_side,
        );
        let mut pre = vec![0u8; size * size];
        if let Err(e) = seaclr_shared::preprocess::preprocess_gray(&gray, w, h, size, &mut pre) {
            let log = format!(
                "frame {number} {} skipped: preprocessing failed: {e}",
                frame.id
            );
            return (
                FrameResult {
                    number,
                    id: frame.id,
                    classification: None,
                    class_name: None,
                    log,
                },
                closed,
            );
        }
        let mut result = FrameResult {
            number,
            id: frame.id.clone(),
            classification: None,
            class_name: None,
            log: String::new(),
        };
        match &mut self.encoder {
            Err(why) => {
                result.log = format!("frame {number} {}: not classified ({why})", frame.id);
            }
            Ok(enc) => {
                let mut emb = vec![0i8; enc.embedding_dim()];
                match enc.encode(&pre, &mut emb) {
                    Err(e) => {
                        result.log = format!("frame {number} {}: encode failed: {e}", frame.id)
                    }
                    Ok(()) => {
                        let c = self.memory.classify(&emb);
                        let name = c
                            .class
                            .and_then(|i| self.memory.classes().get(i as usize).cloned().flatten());
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
                        self.recent_classes
                            .push_back(if c.unknown { None } else { c.class });
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
                        self.recent.push_back(Recent {
                            number,
                            id: frame.id.clone(),
                            embedding: emb,
                        });
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
        let names = self.memory.classes();
        let mut hist: Vec<(String, u32)> = names
            .iter()
            .enumerate()
            .filter_map(|(i, n)| {
                n.as_ref().map(|n| {
                    (
                        n.clone(),
                        self.recent_classes
                            .iter()
                            .filter(|c| **c == Some(i as u16))
                            .count() as u32,
                    )
                })
            })
            .collect();
        hist.push((
            "unk".into(),
            self.recent_classes.iter().filter(|c| c.is_none()).count() as u32,
        ));
        let highlight = match &r.classification {
            Some(c) if c.unknown => Some(hist.len() - 1),
            Some(c) => c
                .class
                .and_then(|ci| names.get(ci as usize).cloned().flatten())
                .and_then(|n| hist.iter().position(|(h, _)| *h == n)),
            None => None,
        };
        let c = r.classification.clone();
        let model_id = self.encoder.as_ref().ok().map(|e| e.model_id());
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
            fps: if self.config.fps > 0.0 {
                self.config.fps
            } else {
                self.fps_measured
            },
            model_id,
            labelled: self.memory.examples(),
            threshold: self.memory.threshold(),
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
        counts.resize(self.memory.classes().len(), 0);
        counts.truncate(seaclr_shared::telemetry::MAX_CLASSES);
        let message = Telemetry {
            version: FORMAT_VERSION,
            buoy_id: self.config.buoy_id,
            sequence: self.telemetry_sequence,
            interval_start_s: (self.window_index * self.config.window_s as u64) as u32,
            interval_len_s: self.config.window_s,
            model_id: self.encoder.as_ref().map_or(0, |e| e.model_id()),
            frames: self.window_frames,
            unknown: self.window_unknown,
            counts: ClassCounts::from_slice(&counts)
                .unwrap_or_else(|_| ClassCounts::from_slice(&[]).expect("empty counts fit")),
        };
        let mut buf = [0u8; SBD_MAX_BYTES];
        let bytes = message
            .encode(&mut buf)
            .map(<[u8]>::to_vec)
            .unwrap_or_default();
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
        self.recent
            .iter()
            .rev()
            .find(|r| r.id == key || r.id.ends_with(&format!("/{key}")))
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
                let applied = self.commit(Update::AddClass(name.clone()))?;
                Ok(vec![format!(
                    "ok class '{name}' added as #{}",
                    applied.class.unwrap_or(0)
                )])
            }
            Command::Label { frame, class } => {
                let class_idx = self
                    .class_index(&class)
                    .ok_or_else(|| format!("no class '{class}' (addclass it first)"))?;
                let recent = self.resolve_frame(&frame).ok_or_else(|| {
                    format!(
                        "frame '{frame}' is not among the last {} classified frames",
                        self.config.recent_frames
                    )
                })?;
                let (number, id, embedding) =
                    (recent.number, recent.id.clone(), recent.embedding.clone());
                let applied = self.commit(Update::AddExample {
                    class: class_idx,
                    embedding,
                })?;
                let Some(ex) = applied.example else {
                    return Ok(vec![format!(
                        "ok frame {number} not stored: the memory is full and it is the most redundant example of its class"
                    )]);
                };
                self.labelled.push((ex, number, id.clone(), class_idx));
                let evicted = applied
                    .evicted
                    .map(|e| format!(" (memory full: example #{e} evicted)"))
                    .unwrap_or_default();
                Ok(vec![format!(
                    "ok frame {number} ({id}) labelled '{class}' as example #{ex}; {} examples{evicted}",
                    self.memory.examples()
                )])
            }
            Command::ForgetFrame(frame) => {
                let found = self
                    .labelled
                    .iter()
                    .rev()
                    .find(|l| frame.parse::<u64>().ok() == Some(l.1) || l.2 == frame)
                    .map(|l| l.0)
                    .ok_or_else(|| format!("frame '{frame}' has no label from this session"))?;
                self.commit(Update::ForgetExample(found))?;
                self.labelled.retain(|l| l.0 != found);
                Ok(vec![format!(
                    "ok example #{found} forgotten; {} examples",
                    self.memory.examples()
                )])
            }
            Command::ForgetClass(name) => {
                let idx = self
                    .class_index(&name)
                    .ok_or_else(|| format!("no class '{name}'"))?;
                self.commit(Update::ForgetClass(idx))?;
                self.labelled.retain(|l| l.3 != idx);
                Ok(vec![format!(
                    "ok class '{name}' forgotten; {} examples",
                    self.memory.examples()
                )])
            }
            Command::Threshold(x) => {
                self.commit(Update::SetThreshold(x))?;
                Ok(vec![format!("ok threshold {:.3}", self.memory.threshold())])
            }
            Command::Status => Ok(self.status_lines()),
            Command::Counts => {
                let names = self.memory.classes();
                let mut parts: Vec<String> = names
                    .iter()
                    .enumerate()
                    .filter_map(|(i, n)| {
                        n.as_ref().map(|n| {
                            format!("{n}={}", self.window_counts.get(i).copied().unwrap_or(0))
                        })
                    })
                    .collect();
                parts.push(format!("unknown={}", self.window_unknown));
                Ok(vec![format!(
                    "ok window {} frames {}: {}",
                    self.window_index,
                    self.window_frames,
                    parts.join(" ")
                )])
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
                "ok model {:08x} input {}x{} embedding {} arena {}",
                e.model_id(),
                e.input_size(),
                e.input_size(),
                e.embedding_dim(),
                resources::kib(e.arena_bytes())
            )),
            Err(why) => out.push(format!("ok model OFF: {why}")),
        }
        let classes = self.memory.classes().iter().flatten().count();
        out.push(format!(
            "ok frames {} fps {:.1} classes {classes} examples {} threshold {}",
            self.frames,
            self.fps_measured,
            self.memory.examples(),
            threshold_text(self.memory.threshold())
        ));
        out.extend(
            self.resource_report()
                .into_iter()
                .map(|l| format!("ok {l}")),
        );
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
                    "compute: {:.2} M MACs per frame, about {:.0} ms on a {} MHz Cortex-M4F at {} cycles/MAC",
                    m as f64 / 1e6,
                    resources::mcu_ms_per_frame(m),
                    resources::REFERENCE_CLOCK_HZ / 1_000_000,
                    resources::CYCLES_PER_MAC
                )),
                None => out.push("compute: the model does not state its MACs".into()),
            }
        }
        out
    }
}

/// The threshold for people: "off" when every match counts (similarity >= -1).
pub fn threshold_text(t: f32) -> String {
    if t <= -1.0 {
        "off".into()
    } else {
        format!("{t:.2}")
    }
}

/// Camera-side binning: halves the ROI (2x2 average) until its longer side
/// fits `max_side`, as a sensor's binning mode would before the ROI reaches RAM.
pub fn bin_to_fit(
    mut w: usize,
    mut h: usize,
    mut gray: Vec<u8>,
    max_side: usize,
) -> (usize, usize, Vec<u8>) {
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

#[cfg(test)]
mod tests {
    //! The firmware loop against small stand-ins for the engine and the
    //! label memory (the real ones are exercised by the scenario test).
    use super::*;
    use crate::flash_file::Layout;
    use std::cell::RefCell;
    use std::rc::Rc;

    /// 4x4 block means of the darkness (127 - p) of a 16x16 image.
    struct BlockEncoder;
    impl Encoder for BlockEncoder {
        fn input_size(&self) -> usize {
            16
        }
        fn embedding_dim(&self) -> usize {
            16
        }
        fn arena_bytes(&self) -> usize {
            1024
        }
        fn macs_per_image(&self) -> Option<u64> {
            Some(256)
        }
        fn model_id(&self) -> u32 {
            7
        }
        fn encode(&mut self, image: &[u8], out: &mut [i8]) -> Result<(), String> {
            for (b, o) in out.iter_mut().enumerate() {
                let (bx, by) = (b % 4, b / 4);
                let mut s = 0i32;
                for y in 0..4 {
                    for x in 0..4 {
                        s += 127 - image[(by * 4 + y) * 16 + bx * 4 + x] as i32;
                    }
                }
                *o = (s / 16) as i8;
            }
            Ok(())
        }
    }

    /// A durable log shared across "reboots", with a switch that makes the
    /// next write fail as a power cut would.
    #[derive(Default)]
    struct Log {
        updates: Vec<Update>,
        fail_next: bool,
        mounts: usize,
    }

    struct NearestMemory {
        log: Rc<RefCell<Log>>,
        classes: Vec<Option<String>>,
        examples: Vec<(ExampleId, u16, Vec<i8>)>,
        next_id: ExampleId,
        threshold: f32,
    }

    impl NearestMemory {
        fn boxed(log: Rc<RefCell<Log>>) -> Box<dyn LabelMemory> {
            Box::new(Self {
                log,
                classes: Vec::new(),
                examples: Vec::new(),
                next_id: 1,
                threshold: 0.5,
            })
        }
        fn apply(&mut self, u: &Update) -> Applied {
            match u {
                Update::AddClass(n) => {
                    self.classes.push(Some(n.clone()));
                    Applied {
                        class: Some(self.classes.len() as u16 - 1),
                        ..Applied::default()
                    }
                }
                Update::AddExample { class, embedding } => {
                    let id = self.next_id;
                    self.next_id += 1;
                    self.examples.push((id, *class, embedding.clone()));
                    Applied {
                        example: Some(id),
                        ..Applied::default()
                    }
                }
                Update::ForgetExample(id) => {
                    self.examples.retain(|e| e.0 != *id);
                    Applied::default()
                }
                Update::ForgetClass(c) => {
                    self.classes[*c as usize] = None;
                    self.examples.retain(|e| e.1 != *c);
                    Applied::default()
                }
                Update::SetThreshold(t) => {
                    self.threshold = *t;
                    Applied::default()
                }
            }
        }
    }

    fn cosine(a: &[i8], b: &[i8]) -> f32 {
        let dot: f32 = a.iter().zip(b).map(|(x, y)| *x as f32 * *y as f32).sum();
        let na: f32 = a.iter().map(|x| (*x as f32).powi(2)).sum::<f32>().sqrt();
        let nb: f32 = b.iter().map(|x| (*x as f32).powi(2)).sum::<f32>().sqrt();
        if na == 0.0 || nb == 0.0 {
            0.0
        } else {
            dot / (na * nb)
        }
    }

    impl LabelMemory for NearestMemory {
        fn mount(&mut self) -> Result<(), String> {
            let updates = {
                let mut log = self.log.borrow_mut();
                log.mounts += 1;
                log.updates.clone()
            };
            for u in &updates {
                self.apply(u);
            }
            Ok(())
        }
        fn classes(&self) -> Vec<Option<String>> {
            self.classes.clone()
        }
        fn examples(&self) -> usize {
            self.examples.len()
        }
        fn examples_per_class(&self) -> Vec<usize> {
            (0..self.classes.len())
                .map(|c| self.examples.iter().filter(|e| e.1 as usize == c).count())
                .collect()
        }
        fn capacity(&self) -> usize {
            100
        }
        fn ram_bytes(&self) -> usize {
            100 * 24
        }
        fn threshold(&self) -> f32 {
            self.threshold
        }
        fn classify(&self, e: &[i8]) -> Classification {
            let best = self
                .examples
                .iter()
                .map(|(_, c, x)| (*c, cosine(e, x)))
                .max_by(|a, b| a.1.total_cmp(&b.1));
            match best {
                None => Classification {
                    class: None,
                    confidence: 0.0,
                    similarity: 0.0,
                    unknown: true,
                },
                Some((c, s)) => Classification {
                    class: Some(c),
                    confidence: s.max(0.0),
                    similarity: s,
                    unknown: s < self.threshold,
                },
            }
        }
        fn update(&mut self, u: Update) -> Result<Applied, String> {
            {
                let mut log = self.log.borrow_mut();
                if log.fail_next {
                    log.fail_next = false;
                    return Err("flash write failed: power cut".into());
                }
                log.updates.push(u.clone());
            }
            Ok(self.apply(&u))
        }
    }

    fn factory() -> EncoderFactory {
        Box::new(|bytes: Vec<u8>| {
            if bytes.starts_with(b"TESTMODEL") {
                Ok(Box::new(BlockEncoder) as Box<dyn Encoder>)
            } else {
                Err("bad magic".into())
            }
        })
    }

    fn flash(name: &str, model: Option<&[u8]>) -> FlashFile {
        let dir = std::env::temp_dir().join(format!("seaclr-app-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = FlashFile::create(
            &dir.join(name),
            Layout {
                model_capacity: 8192,
                store_capacity: 8192,
            },
        )
        .unwrap();
        if let Some(m) = model {
            f.install_model(m).unwrap();
        }
        f
    }

    /// A dark shape on white: a horizontal bar (kind 0) or a vertical bar (kind 1).
    fn frame(kind: usize, n: usize) -> Frame {
        let (w, h) = (40usize, 40usize);
        let mut gray = vec![255u8; w * h];
        for y in 0..h {
            for x in 0..w {
                let on = if kind == 0 {
                    (16..24).contains(&y)
                } else {
                    (16..24).contains(&x)
                };
                if on {
                    gray[y * w + x] = (10 + n % 5) as u8;
                }
            }
        }
        Frame {
            id: format!("k{kind}-{n}.png"),
            width: w as u32,
            height: h as u32,
            gray,
            truth: Some(format!("k{kind}")),
        }
    }

    fn boot(f: &FlashFile, log: &Rc<RefCell<Log>>) -> Buoy {
        Buoy::boot(
            Config::default(),
            f.clone(),
            &factory(),
            NearestMemory::boxed(log.clone()),
        )
        .unwrap()
    }

    #[test]
    fn missing_or_corrupt_model_refuses_to_classify_and_never_touches_the_store() {
        for (name, model) in [("none.img", None), ("bad.img", Some(&b"NOT A MODEL"[..]))] {
            let f = flash(name, model);
            let log = Rc::new(RefCell::new(Log::default()));
            let mut b = boot(&f, &log);
            let why = b.model_problem().unwrap().to_string();
            assert!(why.contains("refusing to classify"), "{why}");
            let (r, _) = b.process(frame(0, 0));
            assert!(
                r.classification.is_none() && r.log.contains("not classified"),
                "{}",
                r.log
            );
            let reply = b.handle_line("addclass a");
            assert!(
                reply[0].starts_with("error:") && reply[0].contains("untouched"),
                "{reply:?}"
            );
            assert_eq!(log.borrow().mounts, 0);
            assert!(log.borrow().updates.is_empty());
            assert_eq!(f.store_bytes_used(), 0);
        }
        // A corrupted model region is named as such.
        let f = flash("crc.img", Some(b"TESTMODEL v1"));
        let path = f.path();
        drop(f);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[crate::flash_file::ERASE_SIZE + 2] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        let f = FlashFile::open(&path, crate::power::PowerSupply::steady()).unwrap();
        let b = boot(&f, &Rc::new(RefCell::new(Log::default())));
        assert!(b.model_problem().unwrap().contains("corrupt"));
    }

    #[test]
    fn ram_over_budget_refuses_to_boot() {
        let f = flash("ram.img", Some(b"TESTMODEL"));
        let cfg = Config {
            ram_budget: 64 * 1024,
            ..Config::default()
        };
        let err = Buoy::boot(cfg, f, &factory(), NearestMemory::boxed(Rc::default()))
            .err()
            .unwrap();
        assert!(err.0.contains("RAM budget exceeded"), "{err}");
    }

    #[test]
    fn labels_improve_classification_survive_reboot_and_bad_commands_change_nothing() {
        let f = flash("labels.img", Some(b"TESTMODEL"));
        let log = Rc::new(RefCell::new(Log::default()));
        let mut b = boot(&f, &log);
        let (r, _) = b.process(frame(0, 0));
        assert!(
            r.classification.as_ref().unwrap().unknown,
            "no labels yet: unknown"
        );
        b.process(frame(1, 0));
        for line in ["addclass horizontal", "addclass vertical"] {
            assert!(b.handle_line(line)[0].starts_with("ok"), "{line}");
        }
        assert!(b.handle_line("label 1 horizontal")[0].starts_with("ok"));
        assert!(b.handle_line("label k1-0.png vertical")[0].starts_with("ok"));
        // Bad commands: an error reply each, and no state change.
        let before = (
            log.borrow().updates.len(),
            b.class_names(),
            b.labelled_examples(),
            b.threshold(),
        );
        for bad in [
            "label 99 horizontal",
            "label 1 nosuch",
            "addclass horizontal",
            "threshold 7",
            "forget class nosuch",
            "forget 55",
            "jump",
        ] {
            let reply = b.handle_line(bad);
            assert!(
                reply.len() == 1 && reply[0].starts_with("error:"),
                "{bad}: {reply:?}"
            );
        }
        assert_eq!(
            before,
            (
                log.borrow().updates.len(),
                b.class_names(),
                b.labelled_examples(),
                b.threshold()
            )
        );
        // Classification of new frames now follows the labels.
        for n in 1..6 {
            for kind in 0..2 {
                let (r, _) = b.process(frame(kind, n));
                assert_eq!(
                    r.class_name.as_deref(),
                    Some(["horizontal", "vertical"][kind]),
                    "{}",
                    r.log
                );
            }
        }
        // A write cut by power loss is reported, not acknowledged, not applied.
        log.borrow_mut().fail_next = true;
        let reply = b.handle_line("label 3 horizontal");
        assert!(
            reply[0].starts_with("error:") && reply[0].contains("power cut"),
            "{reply:?}"
        );
        assert_eq!(b.labelled_examples(), 2);
        assert!(b.handle_line("threshold 0.8")[0].starts_with("ok"));
        // Reboot: everything acknowledged is back.
        drop(b);
        let mut b = boot(&f, &log);
        assert_eq!(b.labelled_examples(), 2);
        assert_eq!(
            b.class_names(),
            vec![Some("horizontal".to_string()), Some("vertical".to_string())]
        );
        assert_eq!(b.threshold(), 0.8);
        let (r, _) = b.process(frame(1, 9));
        assert_eq!(r.class_name.as_deref(), Some("vertical"));
        // Forgetting a class removes its examples.
        assert!(b.handle_line("forget class vertical")[0].starts_with("ok"));
        assert_eq!(b.labelled_examples(), 1);
    }

    #[test]
    fn counts_and_telemetry_follow_the_classifications() {
        let f = flash("telemetry.img", Some(b"TESTMODEL"));
        let log = Rc::new(RefCell::new(Log::default()));
        let cfg = Config {
            fps: 1.0,
            window_s: 10,
            ..Config::default()
        };
        let mut b = Buoy::boot(cfg, f, &factory(), NearestMemory::boxed(log)).unwrap();
        b.process(frame(0, 0));
        b.handle_line("addclass horizontal");
        b.handle_line("addclass vertical");
        b.handle_line("label 1 horizontal");
        let mut closed = Vec::new();
        // Frames 2..=12: 1 fps, windows of 10 s, so frame 10 opens window 1.
        for n in 2..=12u64 {
            let (_, report) = b.process(frame(0, n as usize));
            closed.extend(report);
        }
        assert_eq!(closed.len(), 1);
        let first = &closed[0];
        let decoded = Telemetry::decode(&first.bytes).unwrap();
        assert_eq!(decoded, first.message);
        // Window 0 held frames 1..=9: frame 1 unknown (no labels), 2..=9 horizontal.
        assert_eq!((decoded.frames, decoded.unknown), (9, 1));
        assert_eq!(decoded.counts.as_slice(), &[8, 0]);
        let counts = b.handle_line("counts");
        assert!(
            counts[0].contains("horizontal=3") && counts[0].contains("unknown=0"),
            "{counts:?}"
        );
        let tele = b.handle_line("telemetry");
        let hex = tele[0].rsplit(' ').next().unwrap();
        let text = seaclr_shared::telemetry::host::decode_to_text(hex, &[]).unwrap();
        assert!(
            text.contains("message #1") && text.contains("frames: 3"),
            "{text}"
        );
        let status = b.handle_line("status").join("\n");
        assert!(
            status.contains("model 00000007") && status.contains("RAM:") && status.contains("MACs"),
            "{status}"
        );
    }

    #[test]
    fn binning_halves_until_the_roi_fits() {
        let (w, h, g) = bin_to_fit(4, 2, vec![0, 2, 4, 6, 0, 2, 4, 6], 2);
        assert_eq!((w, h, g), (2, 1, vec![1, 5]));
        let (w, h, g) = bin_to_fit(3, 3, vec![9; 9], 3);
        assert_eq!((w, h, g.len()), (3, 3, 9));
    }
}
