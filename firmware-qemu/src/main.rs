//! SeaCLR on a Cortex-M7 board: QEMU's `mps2-an500`.
//!
//! Board pieces: [`uart`] (UART0 console and logs), [`timer`] (TIMER0 as an
//! instruction counter under `-icount shift=0`), [`semihost`] (host files,
//! command line, exit code), [`semihost_flash`] (a NOR flash in a host
//! file), [`frames`] (frame streams from host files), [`stack`] (painted
//! stack high-water mark), [`statics`] (big buffers in static RAM; there is
//! no heap). Programs: [`selfcheck`] (the default), [`buoy`] (the buoy
//! application, `seaclr_device`, on this board), `frames`, the
//! power-cut writer and checker ([`powercut`]), and fault/panic/echo probes.
//!
//! The command line comes over semihosting: `qemu-run.sh ELF MODE ARGS...`
//! (`cargo run --release -- MODE ARGS...`); see README.md.
#![no_std]
#![no_main]

mod buoy;
mod encoder;
mod frames;
mod powercut;
mod selfcheck;
mod semihost;
mod semihost_flash;
mod stack;
mod statics;
mod timer;
mod uart;

use cortex_m_rt::{ExceptionFrame, entry, exception};
use seaclr_shared::labels::EMBEDDING_DIM;
use timer::Timer0;
use uart::Uart0;

#[entry]
fn main() -> ! {
    Uart0::init();
    let timer = Timer0::start();
    let boot = timer.now();
    let mut line = [0u8; 512];
    let cmdline = match semihost::command_line(&mut line) {
        Ok(c) => c,
        Err(e) => {
            println!("FAIL command line: {e}");
            semihost::exit(false);
        }
    };
    let mut args = cmdline.split_ascii_whitespace().skip(1);
    let mode = args.next().unwrap_or("selfcheck");
    let ok = match (mode, args.next(), args.next()) {
        ("selfcheck", None, _) => selfcheck::run(timer),
        ("buoy", Some(flash), Some(frames)) => buoy::run(flash, frames, args.next(), timer),
        ("frames", Some(path), None) => run_frames(path, timer),
        ("labels-write", Some(path), Some(n)) => match n.parse() {
            Ok(n) => powercut::write(path, n),
            Err(_) => usage(cmdline),
        },
        ("labels-check", Some(path), None) => powercut::check(path),
        ("echo", None, _) => echo(),
        ("panic", None, _) => panic!("panic requested on the command line"),
        ("fault", None, _) => fault(),
        _ => usage(cmdline),
    };
    let run = boot.instructions_to(timer.now());
    let (used, size) = stack::high_water();
    println!("stack high-water: {used} of {size} bytes; run {run} instructions");
    println!("{}", if ok { "PASS" } else { "FAIL" });
    semihost::exit(ok)
}

fn usage(cmdline: &str) -> bool {
    println!("FAIL unknown command line '{cmdline}'");
    println!(
        "usage: [selfcheck] | buoy FLASH FRAMES [SCRIPT] | frames STREAM | labels-write FLASH N | labels-check FLASH | echo | panic | fault"
    );
    false
}

/// `frames STREAM`: every frame of a frame-stream file through the
/// pipeline; prints its size, instruction count and embedding.
fn run_frames(path: &str, timer: Timer0) -> bool {
    let mut encoder = match encoder::Encoder::new(encoder::committed_blob(), timer) {
        Ok(e) => e,
        Err(e) => {
            println!("FAIL {e}");
            return false;
        }
    };
    let mut decoder = match frames::open(path) {
        Ok(d) => d,
        Err(e) => {
            println!("FAIL {path}: {e}");
            return false;
        }
    };
    let Some(record) = frames::record_buffer() else {
        return false;
    };
    let mut ok = true;
    let mut out = [0i8; EMBEDDING_DIM];
    loop {
        match decoder.next_frame(record) {
            Ok(Some(f)) => match encoder.run(f.pixels, f.width, f.height, &mut out) {
                Ok(c) => {
                    print!(
                        "frame {} {}x{} {} instructions {}:",
                        f.index,
                        f.width,
                        f.height,
                        c.preprocess + c.encode + c.centre,
                        f.id_str()
                    );
                    for v in out {
                        print!(" {v}");
                    }
                    println!();
                }
                Err(e) => {
                    println!("frame {} ({}) skipped: {e}", f.index, f.id_str());
                    ok = false;
                }
            },
            Ok(None) => break,
            Err(e) => {
                println!("FAIL {path}: {e}");
                ok = false;
                break;
            }
        }
    }
    println!("{} frames", decoder.next_index());
    ok
}

/// `echo`: the UART console's RX path; echoes lines until `exit`.
fn echo() -> bool {
    let uart = Uart0;
    let mut line = [0u8; 128];
    let mut len = 0;
    println!("echo: type lines, 'exit' ends");
    loop {
        let Some(b) = uart.read_byte() else {
            continue;
        };
        match b {
            b'\r' | b'\n' => {
                let text = core::str::from_utf8(&line[..len]).unwrap_or("<not UTF-8>");
                if text == "exit" {
                    return true;
                }
                if len > 0 {
                    println!("echo: {text}");
                }
                len = 0;
            }
            _ if len < line.len() => {
                line[len] = b;
                len += 1;
            }
            _ => {}
        }
    }
}

/// `fault`: a load from unmapped memory, to show the HardFault path.
fn fault() -> bool {
    // SAFETY: deliberately invalid: 0x3000_0000 is unmapped on this board,
    // so the load raises a bus fault (escalated to HardFault), whose
    // handler reports it and ends the run. Nothing is read.
    let v = unsafe { core::ptr::read_volatile(0x3000_0000 as *const u32) };
    println!("FAIL the fault probe read {v:#x} instead of faulting");
    false
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    Uart0::init();
    println!("\nPANIC: {info}");
    semihost::exit(false)
}

#[exception]
unsafe fn HardFault(frame: &ExceptionFrame) -> ! {
    Uart0::init();
    // SAFETY: the System Control Block's fault status and address registers
    // (CFSR, HFSR, MMFAR, BFAR) are always present on a Cortex-M7; reading
    // them has no side effect.
    let (cfsr, hfsr, mmfar, bfar) = unsafe {
        (
            core::ptr::read_volatile(0xE000_ED28 as *const u32),
            core::ptr::read_volatile(0xE000_ED2C as *const u32),
            core::ptr::read_volatile(0xE000_ED34 as *const u32),
            core::ptr::read_volatile(0xE000_ED38 as *const u32),
        )
    };
    println!(
        "\nHARDFAULT at pc {:#010x} (lr {:#010x}): CFSR {cfsr:#010x} HFSR {hfsr:#010x} MMFAR {mmfar:#010x} BFAR {bfar:#010x}",
        frame.pc(),
        frame.lr()
    );
    semihost::exit(false)
}

#[exception]
unsafe fn DefaultHandler(irq: i16) -> ! {
    Uart0::init();
    println!("\nUNEXPECTED exception or interrupt {irq}");
    semihost::exit(false)
}
