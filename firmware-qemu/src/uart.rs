//! CMSDK APB UART0 of the mps2-an500 (0x4000_4000): polled TX for logs and
//! replies, polled RX for console input. QEMU connects it to `-serial`
//! (stdio under `-nographic`).

use core::ptr::{read_volatile, write_volatile};

const BASE: usize = 0x4000_4000;
const DATA: usize = BASE;
const STATE: usize = BASE + 0x04;
const CTRL: usize = BASE + 0x08;
const BAUDDIV: usize = BASE + 0x10;

const STATE_TX_FULL: u32 = 1 << 0;
const STATE_RX_FULL: u32 = 1 << 1;
const CTRL_TX_EN: u32 = 1 << 0;
const CTRL_RX_EN: u32 = 1 << 1;

/// UART0, polled. Zero-sized: every method reads or writes the registers.
#[derive(Clone, Copy)]
pub struct Uart0;

impl Uart0 {
    /// Enables TX and RX (the baud divisor only has to be >= 16 in QEMU).
    pub fn init() -> Self {
        // SAFETY: BAUDDIV and CTRL are this board's UART0 registers
        // (memory-mapped I/O, always present); nothing else drives UART0.
        unsafe {
            write_volatile(BAUDDIV as *mut u32, 16);
            write_volatile(CTRL as *mut u32, CTRL_TX_EN | CTRL_RX_EN);
        }
        Uart0
    }

    fn state() -> u32 {
        // SAFETY: STATE is a read-only UART0 register; reading has no side effect.
        unsafe { read_volatile(STATE as *const u32) }
    }

    /// Sends one byte, waiting while the TX buffer is full.
    pub fn write_byte(self, byte: u8) {
        while Self::state() & STATE_TX_FULL != 0 {}
        // SAFETY: DATA is UART0's data register; TX has room (checked above).
        unsafe { write_volatile(DATA as *mut u32, byte as u32) }
    }

    /// Sends bytes.
    pub fn write_bytes(self, bytes: &[u8]) {
        for &b in bytes {
            self.write_byte(b);
        }
    }

    /// One received byte, if one is waiting (never blocks).
    pub fn read_byte(self) -> Option<u8> {
        if Self::state() & STATE_RX_FULL == 0 {
            return None;
        }
        // SAFETY: DATA is UART0's data register; reading it takes the byte
        // that STATE says is waiting.
        Some(unsafe { read_volatile(DATA as *const u32) } as u8)
    }
}

impl core::fmt::Write for Uart0 {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.write_bytes(s.as_bytes());
        Ok(())
    }
}

/// `print!` over UART0.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => {{
        use core::fmt::Write as _;
        let _ = write!($crate::uart::Uart0, $($arg)*);
    }};
}

/// `println!` over UART0.
#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($arg:tt)*) => {{
        use core::fmt::Write as _;
        let _ = writeln!($crate::uart::Uart0, $($arg)*);
    }};
}
