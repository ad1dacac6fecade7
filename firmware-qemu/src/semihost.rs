//! Semihosting: the host's files, command line and exit code, reached with
//! `bkpt 0xAB` (QEMU `-semihosting-config enable=on,target=native`).
//! Only files, the command line and exit are used: the clock calls read
//! host time, so instruction counts come from [`crate::timer`] instead.

use cortex_m_semihosting::{debug, nr};

/// A semihosting call failed (the host's errno is not fetched).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostError {
    /// The path is longer than [`MAX_PATH`] bytes.
    PathTooLong,
    /// SYS_OPEN failed (missing file, no permission).
    Open,
    /// SYS_SEEK failed.
    Seek,
    /// SYS_READ / SYS_WRITE moved fewer bytes than asked.
    Short,
    /// SYS_FLEN failed.
    Length,
    /// SYS_GET_CMDLINE failed.
    CommandLine,
}

impl core::fmt::Display for HostError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::PathTooLong => "path too long",
            Self::Open => "cannot open the host file",
            Self::Seek => "seek failed",
            Self::Short => "short read or write",
            Self::Length => "cannot read the file length",
            Self::CommandLine => "cannot read the command line",
        })
    }
}

/// Longest host path.
pub const MAX_PATH: usize = 255;

/// How to open a host file (the semihosting fopen modes used here).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// "rb": read an existing file.
    Read,
    /// "r+b": read and write an existing file.
    ReadWrite,
    /// "w+b": create or truncate, read and write.
    Create,
}

/// One semihosting call with an argument block (`r1` points at `args`).
fn call(op: usize, args: &mut [usize]) -> isize {
    // SAFETY: `op` is a semihosting operation whose argument block is
    // `args` (the callers build it as the operation defines); the host
    // reads it and writes only inside it or inside the buffers it names,
    // which the callers own for the duration of the call.
    unsafe { cortex_m_semihosting::syscall1(op, args.as_mut_ptr() as usize) as isize }
}

/// An open host file.
pub struct HostFile {
    handle: usize,
}

impl HostFile {
    /// Opens `path` (relative to QEMU's working directory).
    pub fn open(path: &str, mode: Mode) -> Result<Self, HostError> {
        let mut name = [0u8; MAX_PATH + 1];
        if path.len() > MAX_PATH {
            return Err(HostError::PathTooLong);
        }
        name[..path.len()].copy_from_slice(path.as_bytes());
        let mode = match mode {
            Mode::Read => nr::open::R_BINARY,
            Mode::ReadWrite => nr::open::RW_BINARY,
            Mode::Create => nr::open::RW_TRUNC_BINARY,
        };
        let mut args = [name.as_ptr() as usize, mode, path.len()];
        let handle = call(nr::OPEN, &mut args);
        if handle < 0 {
            return Err(HostError::Open);
        }
        Ok(Self {
            handle: handle as usize,
        })
    }

    /// Moves to absolute byte `offset`.
    pub fn seek(&mut self, offset: usize) -> Result<(), HostError> {
        let mut args = [self.handle, offset];
        match call(nr::SEEK, &mut args) {
            0 => Ok(()),
            _ => Err(HostError::Seek),
        }
    }

    /// Writes all of `bytes` at the current position.
    pub fn write_all(&mut self, bytes: &[u8]) -> Result<(), HostError> {
        let mut args = [self.handle, bytes.as_ptr() as usize, bytes.len()];
        // The call returns the number of bytes NOT written.
        match call(nr::WRITE, &mut args) {
            0 => Ok(()),
            _ => Err(HostError::Short),
        }
    }

    /// Reads up to `buf.len()` bytes; returns how many (0 at the end).
    pub fn read(&mut self, buf: &mut [u8]) -> Result<usize, HostError> {
        let mut args = [self.handle, buf.as_mut_ptr() as usize, buf.len()];
        // The call returns the number of bytes NOT read.
        let left = call(nr::READ, &mut args);
        if left < 0 || left as usize > buf.len() {
            return Err(HostError::Short);
        }
        Ok(buf.len() - left as usize)
    }

    /// Length of the file in bytes.
    pub fn file_len(&mut self) -> Result<usize, HostError> {
        let mut args = [self.handle];
        let n = call(nr::FLEN, &mut args);
        if n < 0 {
            return Err(HostError::Length);
        }
        Ok(n as usize)
    }
}

impl Drop for HostFile {
    fn drop(&mut self) {
        let mut args = [self.handle];
        call(nr::CLOSE, &mut args);
    }
}

/// The command line QEMU was given (`-semihosting-config ...,arg=...`,
/// space-separated), copied into `buf`.
pub fn command_line(buf: &mut [u8]) -> Result<&str, HostError> {
    let mut args = [buf.as_mut_ptr() as usize, buf.len()];
    if call(nr::GET_CMDLINE, &mut args) != 0 {
        return Err(HostError::CommandLine);
    }
    // The host rewrote args[1] with the length it wrote.
    let len = args[1].min(buf.len());
    core::str::from_utf8(&buf[..len]).map_err(|_| HostError::CommandLine)
}

/// Ends the QEMU run: exit status 0 on success, 1 on failure.
pub fn exit(success: bool) -> ! {
    debug::exit(if success {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    // Only reached if a debugger resumed us: stop here, never run on.
    loop {
        cortex_m::asm::wfi();
    }
}
