//! `buoy FLASH FRAMES [SCRIPT]`: the buoy application (`seaclr_device`) on
//! this board, the same code the host simulator runs.
//!
//! - Flash: the flash image file FLASH (written by `seaclr-buoy flash`, the
//!   host's layout: partition table, model slot, label store) as a NOR
//!   flash over semihosting, written through on every operation.
//! - Model: the model slot is read into a static buffer, standing for the
//!   memory-mapped flash a board with XIP flash would borrow it from.
//! - Camera: the frame stream FRAMES (`seaclr-buoy frames`), one ROI at a
//!   time into the application's camera buffer.
//! - Console: UART0 (lines typed or piped into QEMU's stdin) and, for a
//!   repeatable run, the console script SCRIPT (`@N command` lines run after
//!   frame N, others before the first frame), read over semihosting.
//! - Clock: TIMER0 under `-icount shift=0`, i.e. virtual time (1 ms = 1 M
//!   instructions).
//! - Display: an embedded-graphics target that discards the pixels (QEMU
//!   models no panel for this board); the drawing code still runs.
//! - Uplink: telemetry messages printed as hex lines.
//!
//! Prints each frame's log line, the console replies, the telemetry and a
//! summary with instruction counts per frame. Fails (exit 1) when the boot
//! is refused, classification is off, or the frame stream is damaged.

use core::convert::Infallible;
use embedded_graphics::pixelcolor::Rgb565;
use embedded_graphics::prelude::*;
use seaclr_device::buoy::{Buoy, Config, FrameInfo, Hex};
use seaclr_device::ram::DeviceRam;

use crate::frames;
use crate::println;
use crate::semihost::{HostFile, Mode};
use crate::semihost_flash::SemihostFlash;
use crate::statics::Slot;
use crate::timer::Timer0;
use crate::uart::Uart0;

/// The model slot's mapping: the blob budget (256 KiB).
const MODEL_BUFFER: usize = 256 * 1024;
/// How long the console stays open after the last frame once no byte
/// arrives (virtual milliseconds).
const CONSOLE_QUIET_MS: u64 = 200;
/// Largest console script read.
const SCRIPT_BUFFER: usize = 64 * 1024;

static RAM: Slot<DeviceRam> = Slot::new();

// `device_ram` writes every field by name: a field added to `DeviceRam`
// and not written there would be left uninitialised. The fields it writes
// must account for the whole struct (up to alignment padding).
const _: () = {
    use core::mem::{align_of, size_of};
    use seaclr_device::ram::{ARENA_CAPACITY, MAX_INPUT_SIDE, MAX_ROI_SIDE, RECENT_FRAMES, Recent};
    let written = size_of::<seaclr_edge::knn::KnnHead>()
        + ARENA_CAPACITY
        + MAX_ROI_SIDE * MAX_ROI_SIDE
        + MAX_INPUT_SIDE * MAX_INPUT_SIDE
        + size_of::<heapless::Deque<Recent, RECENT_FRAMES>>();
    assert!(size_of::<DeviceRam>() - written < align_of::<DeviceRam>());
};
static MODEL: Slot<[u8; MODEL_BUFFER]> = Slot::new();
static SCRIPT: Slot<[u8; SCRIPT_BUFFER]> = Slot::new();

/// The application's RAM, built field by field in its static slot so the
/// 400 KiB value never passes through the stack (`p.write(DeviceRam::new())`
/// costs about 90 KB of stack here).
fn device_ram() -> Option<&'static mut DeviceRam> {
    RAM.take(|p| {
        // SAFETY: `p` points at the slot's storage for one DeviceRam; each
        // field is written completely through its own raw pointer (no
        // reference to uninitialised memory is made), the byte buffers as
        // zeros, which is their valid initial value.
        unsafe {
            core::ptr::addr_of_mut!((*p).head).write(seaclr_edge::knn::KnnHead::new());
            core::ptr::addr_of_mut!((*p).arena).write_bytes(0, 1);
            core::ptr::addr_of_mut!((*p).roi).write_bytes(0, 1);
            core::ptr::addr_of_mut!((*p).input).write_bytes(0, 1);
            core::ptr::addr_of_mut!((*p).recent).write(heapless::Deque::new());
        }
    })
}

/// A display with no panel behind it: pixels are counted, not shown.
struct NoPanel {
    pixels: u64,
}

impl OriginDimensions for NoPanel {
    fn size(&self) -> Size {
        Size::new(seaclr_device::screen::WIDTH, seaclr_device::screen::HEIGHT)
    }
}

impl DrawTarget for NoPanel {
    type Color = Rgb565;
    type Error = Infallible;
    fn draw_iter<I: IntoIterator<Item = Pixel<Rgb565>>>(
        &mut self,
        pixels: I,
    ) -> Result<(), Infallible> {
        self.pixels += pixels.into_iter().count() as u64;
        Ok(())
    }
}

/// The console script: `@N command` lines (after frame N) or plain lines
/// (before the first frame), in file order.
struct Script<'s> {
    lines: core::iter::Peekable<core::str::Lines<'s>>,
}

impl<'s> Script<'s> {
    /// The commands due after frame `after` (0: before the first frame);
    /// lines due earlier than `after` are run too, in order.
    fn due(&mut self, after: u64) -> impl Iterator<Item = &'s str> + '_ {
        core::iter::from_fn(move || {
            let line = *self.lines.peek()?;
            let (at, cmd) = match line.trim().strip_prefix('@') {
                Some(rest) => {
                    let (n, cmd) = rest.split_once(' ').unwrap_or((rest, ""));
                    (n.parse::<u64>().unwrap_or(u64::MAX), cmd)
                }
                None => (0, line),
            };
            (at <= after).then(|| {
                self.lines.next();
                cmd
            })
        })
    }
}

fn read_script(path: &str) -> Result<&'static str, &'static str> {
    let buf = SCRIPT.take_zeroed().ok_or("script buffer taken")?;
    let mut file =
        HostFile::open(path, Mode::Read).map_err(|_| "cannot open the console script")?;
    let mut have = 0;
    loop {
        match file.read(&mut buf[have..]) {
            Ok(0) => break,
            Ok(n) => have += n,
            Err(_) => return Err("cannot read the console script"),
        }
        if have == buf.len() {
            return Err("console script longer than 64 KiB");
        }
    }
    core::str::from_utf8(&buf[..have]).map_err(|_| "console script is not UTF-8")
}

/// Runs one console line (as typed) and prints it with its replies.
fn console_line<F: embedded_storage::nor_flash::NorFlash>(buoy: &mut Buoy<'_, F>, line: &str) {
    println!("> {line}");
    let _ = buoy.handle_line(line, &mut Uart0);
}

/// Serves whatever the UART received since the last call; returns whether
/// anything came.
fn serve_uart<F: embedded_storage::nor_flash::NorFlash>(buoy: &mut Buoy<'_, F>) -> bool {
    let mut bytes = [0u8; 64];
    let mut any = false;
    loop {
        let mut n = 0;
        while n < bytes.len() {
            match Uart0.read_byte() {
                Some(b) => {
                    bytes[n] = b;
                    n += 1;
                }
                None => break,
            }
        }
        if n == 0 {
            return any;
        }
        any = true;
        let _ = buoy.console_input(&bytes[..n], &mut Uart0);
    }
}

/// Instruction counts over frames.
#[derive(Default)]
struct Spread {
    n: u64,
    sum: u64,
    min: u64,
    max: u64,
}

impl Spread {
    fn add(&mut self, v: u64) {
        self.min = if self.n == 0 { v } else { self.min.min(v) };
        self.max = self.max.max(v);
        self.sum += v;
        self.n += 1;
    }
}

/// The `buoy` program.
pub fn run(flash_path: &str, frames_path: &str, script_path: Option<&str>, timer: Timer0) -> bool {
    let boot_start = timer.now();
    let capacity = match HostFile::open(flash_path, Mode::Read).and_then(|mut f| f.file_len()) {
        Ok(n) => n,
        Err(e) => {
            println!("FAIL {flash_path}: {e} (write one with `seaclr-buoy flash --out FILE`)");
            return false;
        }
    };
    let flash = match SemihostFlash::open(flash_path, capacity) {
        Ok((f, _)) => f,
        Err(e) => {
            println!("FAIL {flash_path}: {e}");
            return false;
        }
    };
    let (Some(ram), Some(model)) = (device_ram(), MODEL.take_zeroed()) else {
        println!("FAIL static RAM already taken");
        return false;
    };
    let config = Config::default();
    let mut buoy = match Buoy::boot(config, flash, model, ram) {
        Ok(b) => b,
        Err(e) => {
            println!("FAIL {flash_path}: {e}");
            return false;
        }
    };
    let boot = boot_start.instructions_to(timer.now());
    println!("boot: flash image {flash_path} ({boot} instructions)");
    let _ = buoy.boot_report(&mut Uart0);

    let script_text = match script_path.map(read_script) {
        None => "",
        Some(Ok(t)) => t,
        Some(Err(e)) => {
            println!("FAIL {}: {e}", script_path.unwrap_or(""));
            return false;
        }
    };
    let mut script = Script {
        lines: script_text.lines().peekable(),
    };
    for cmd in script.due(0) {
        console_line(&mut buoy, cmd);
    }
    let mut decoder = match frames::open(frames_path) {
        Ok(d) => d,
        Err(e) => {
            println!("FAIL {frames_path}: {e}");
            return false;
        }
    };
    let Some(record) = frames::record_buffer() else {
        return false;
    };
    let mut display = NoPanel { pixels: 0 };
    let mut spread = Spread::default();
    let mut stream_ok = true;
    loop {
        let _ = serve_uart(&mut buoy);
        let frame = match decoder.next_frame(record) {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                println!("frame stream {frames_path}: {e}; no further frames");
                stream_ok = false;
                break;
            }
        };
        let (w, h) = (frame.width, frame.height);
        if let Some(dst) = buoy.roi_buffer().get_mut(..w * h) {
            dst.copy_from_slice(frame.pixels);
        }
        let t = timer.now();
        let now_ms = boot_start.instructions_to(t) / 1_000_000;
        let info = FrameInfo {
            width: w,
            height: h,
            id: frame.id_str(),
        };
        let (result, closed) = buoy.process(info, now_ms, &mut display);
        spread.add(t.instructions_to(timer.now()));
        println!("{result}");
        if let Some(report) = closed {
            buoy.class_table_update(|part| {
                println!(
                    "telemetry class table ({} bytes): {}",
                    part.len(),
                    Hex(part)
                )
            });
            println!(
                "telemetry #{} ({} bytes): {}",
                report.message.sequence,
                report.bytes.len(),
                Hex(&report.bytes)
            );
        }
        for cmd in script.due(result.number) {
            console_line(&mut buoy, cmd);
        }
    }
    // The stream is over: the console stays open until it has been quiet
    // for CONSOLE_QUIET_MS of virtual time, so piped-in lines are served.
    let mut last_byte = timer.now();
    loop {
        if serve_uart(&mut buoy) {
            last_byte = timer.now();
        } else if last_byte.instructions_to(timer.now()) > CONSOLE_QUIET_MS * 1_000_000 {
            break;
        }
    }
    buoy.class_table_update(|part| {
        println!(
            "telemetry class table ({} bytes): {}",
            part.len(),
            Hex(part)
        )
    });
    let last = buoy.close_window();
    println!(
        "telemetry #{} ({} bytes): {}",
        last.message.sequence,
        last.bytes.len(),
        Hex(&last.bytes)
    );
    println!();
    println!("== summary ==");
    println!("frames: {}", buoy.frames());
    println!(
        "labelled examples in the flash store: {}",
        buoy.labelled_examples()
    );
    let _ = buoy.resources(&mut Uart0, "");
    if let Some(mean) = spread.sum.checked_div(spread.n) {
        println!(
            "instructions per frame (preprocess, encode, classify, draw): mean {mean} min {} max {} over {} frames",
            spread.min, spread.max, spread.n
        );
    }
    let classifying = buoy.model_problem().is_none();
    if !classifying {
        println!("classification was OFF");
    }
    classifying && stream_ok
}
