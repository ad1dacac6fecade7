//! The serial console: a line protocol, as an operator types it over a UART
//! (or a loopback TCP port on the host board).
//!
//! One command per line; the buoy answers each with lines starting `ok` or
//! `error:`. Parsing is separate from execution so that a malformed line is
//! rejected before anything changes. [`LineAssembler`] turns the raw byte
//! stream into lines in a fixed buffer: an over-long line or one that is not
//! UTF-8 is answered with an error and never executed or echoed.
//!
//! ```text
//! label <frame> <class>     label a recent frame (frame number or frame id)
//! addclass <name>           declare a class (at most 64 classes)
//! forget <frame>            drop the label of a frame
//! forget class <name>       drop a class and all its labels
//! status                    model, store, rates, resources
//! counts                    counts per class in the current window
//! threshold <x>             similarity below x (0..1) reports "unknown"
//! telemetry                 the current interval's message, hex
//! help                      this list
//! ```
//!
//! ```
//! use seaclr_device::console::{parse, Command};
//! assert_eq!(parse("label 12 Tripos").unwrap(), Some(Command::Label { frame: "12", class: "Tripos" }));
//! assert!(parse("threshold 7").unwrap_err().to_string().contains("outside 0..1"));
//! ```

use core::fmt;
use seaclr_shared::labels::{MAX_CLASS_NAME, MAX_CLASSES};

/// Longest console line accepted (bytes, without the newline).
pub const MAX_LINE: usize = 160;

/// One parsed console command, borrowing from the line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Command<'l> {
    /// Label a recent frame with a class.
    Label {
        /// Frame number (as logged) or frame id (file name / ROI id).
        frame: &'l str,
        /// Class name (must have been added).
        class: &'l str,
    },
    /// Declare a new class.
    AddClass(&'l str),
    /// Forget one frame's label.
    ForgetFrame(&'l str),
    /// Forget a class and every label of it.
    ForgetClass(&'l str),
    /// Report state.
    Status,
    /// Report current counts.
    Counts,
    /// Set the unknown threshold.
    Threshold(f32),
    /// Print the current telemetry message.
    Telemetry,
    /// List commands.
    Help,
}

/// Why a line is not a command; the reply names the problem.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ParseError<'l> {
    /// Wrong number of words; the usage.
    Usage(&'static str),
    /// A class name of the wrong length.
    NameLength(usize),
    /// A class name with other characters.
    NameCharacters(&'l str),
    /// A threshold that is not a number.
    NotANumber(&'l str),
    /// A threshold outside 0..1 (NaN included).
    ThresholdRange(f32),
    /// An unknown command word (at most 32 bytes of it are kept).
    Unknown(&'l str),
}

/// The help text listed by `help`.
pub const HELP: &str = "commands: label <frame> <class> | addclass <name> (1-32 of A-Z a-z 0-9 _ - ., at most 64 classes) | forget <frame> | forget class <name> | status | counts | threshold <0..1> | telemetry | help";

impl fmt::Display for ParseError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Usage(u) => write!(f, "usage: {u}"),
            Self::NameLength(n) => write!(
                f,
                "class name must be 1 to {MAX_CLASS_NAME} characters, got {n}"
            ),
            Self::NameCharacters(w) => write!(
                f,
                "class name '{w}' may only use letters, digits, '_', '-', '.'"
            ),
            Self::NotANumber(w) => write!(f, "threshold '{w}' is not a number"),
            Self::ThresholdRange(x) => write!(f, "threshold {x} is outside 0..1"),
            Self::Unknown(w) => write!(f, "unknown command '{w}' (type help)"),
        }
    }
}

/// Most classes the head (and so the console) accepts.
pub const CLASS_LIMIT: usize = MAX_CLASSES;

fn class_name(word: &str) -> Result<&str, ParseError<'_>> {
    if word.is_empty() || word.len() > MAX_CLASS_NAME {
        return Err(ParseError::NameLength(word.len()));
    }
    if !word
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        return Err(ParseError::NameCharacters(clip(word, 40)));
    }
    Ok(word)
}

/// At most `n` bytes of `s`, cut at a character boundary.
pub fn clip(s: &str, n: usize) -> &str {
    if s.len() <= n {
        return s;
    }
    let mut end = n;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Parses one line. Blank lines and `#` comments give `Ok(None)`.
pub fn parse(line: &str) -> Result<Option<Command<'_>>, ParseError<'_>> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let mut words: [&str; 4] = [""; 4];
    let mut n = 0;
    for w in line.split_whitespace() {
        if n == words.len() {
            n += 1;
            break;
        }
        words[n] = w;
        n += 1;
    }
    let arity = |k: usize, usage: &'static str| {
        if n == k + 1 {
            Ok(())
        } else {
            Err(ParseError::Usage(usage))
        }
    };
    let head = words[0];
    let is = |name: &str| head.eq_ignore_ascii_case(name);
    let cmd = if is("label") {
        arity(2, "label <frame> <class>")?;
        Command::Label {
            frame: words[1],
            class: class_name(words[2])?,
        }
    } else if is("addclass") {
        arity(1, "addclass <name>")?;
        Command::AddClass(class_name(words[1])?)
    } else if is("forget") {
        if words[1] == "class" {
            arity(2, "forget class <name>")?;
            Command::ForgetClass(class_name(words[2])?)
        } else {
            arity(1, "forget <frame> | forget class <name>")?;
            Command::ForgetFrame(words[1])
        }
    } else if is("status") {
        arity(0, "status")?;
        Command::Status
    } else if is("counts") {
        arity(0, "counts")?;
        Command::Counts
    } else if is("telemetry") {
        arity(0, "telemetry")?;
        Command::Telemetry
    } else if is("help") || head == "?" {
        Command::Help
    } else if is("threshold") {
        arity(1, "threshold <x> (0..1)")?;
        let x: f32 = words[1]
            .parse()
            .map_err(|_| ParseError::NotANumber(clip(words[1], 40)))?;
        if !(0.0..=1.0).contains(&x) {
            return Err(ParseError::ThresholdRange(x));
        }
        Command::Threshold(x)
    } else {
        return Err(ParseError::Unknown(clip(head, 32)));
    };
    Ok(Some(cmd))
}

/// What [`LineAssembler::push`] found at a newline.
#[derive(Debug, PartialEq, Eq)]
pub enum Line<'b> {
    /// A complete line (without the newline or a trailing `\r`).
    Text(&'b str),
    /// The line was longer than [`MAX_LINE`]; its bytes were dropped.
    TooLong(usize),
    /// The line is not UTF-8.
    NotUtf8,
}

/// Collects console bytes into lines in a fixed buffer.
pub struct LineAssembler {
    buf: [u8; MAX_LINE],
    len: usize,
    overflow: usize,
}

impl Default for LineAssembler {
    fn default() -> Self {
        Self::new()
    }
}

impl LineAssembler {
    /// An empty assembler.
    pub const fn new() -> Self {
        Self {
            buf: [0; MAX_LINE],
            len: 0,
            overflow: 0,
        }
    }

    /// Takes one byte; returns a line when `byte` ends one.
    pub fn push(&mut self, byte: u8) -> Option<Line<'_>> {
        if byte != b'\n' {
            if self.len < MAX_LINE {
                self.buf[self.len] = byte;
                self.len += 1;
            } else {
                self.overflow += 1;
            }
            return None;
        }
        let (len, overflow) = (self.len, self.overflow);
        self.len = 0;
        self.overflow = 0;
        if overflow > 0 {
            return Some(Line::TooLong(len + overflow));
        }
        let mut bytes = &self.buf[..len];
        if let [rest @ .., b'\r'] = bytes {
            bytes = rest;
        }
        Some(match core::str::from_utf8(bytes) {
            Ok(s) => Line::Text(s),
            Err(_) => Line::NotUtf8,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;

    #[test]
    fn parses_every_command() {
        assert_eq!(
            parse("label 12 Tripos").unwrap(),
            Some(Command::Label {
                frame: "12",
                class: "Tripos"
            })
        );
        assert_eq!(
            parse("  ADDCLASS copepod_a ").unwrap(),
            Some(Command::AddClass("copepod_a"))
        );
        assert_eq!(parse("forget 7").unwrap(), Some(Command::ForgetFrame("7")));
        assert_eq!(
            parse("forget class diatom").unwrap(),
            Some(Command::ForgetClass("diatom"))
        );
        assert_eq!(parse("status").unwrap(), Some(Command::Status));
        assert_eq!(parse("counts").unwrap(), Some(Command::Counts));
        assert_eq!(
            parse("threshold 0.35").unwrap(),
            Some(Command::Threshold(0.35))
        );
        assert_eq!(parse("telemetry").unwrap(), Some(Command::Telemetry));
        assert_eq!(parse("help").unwrap(), Some(Command::Help));
        assert_eq!(parse("").unwrap(), None);
        assert_eq!(parse("# a comment").unwrap(), None);
    }

    #[test]
    fn bad_lines_are_errors_that_say_why() {
        let long_word = "x".repeat(100);
        let cases = [
            ("fly away", "unknown command 'fly'"),
            ("label 12", "usage: label"),
            ("label 12 a b", "usage: label"),
            ("label 12 a b c d e", "usage: label"),
            ("label 12 bad/name", "may only use"),
            ("addclass", "usage: addclass"),
            (
                "addclass aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                "1 to 32",
            ),
            ("threshold high", "not a number"),
            ("threshold 1.5", "outside 0..1"),
            ("threshold NaN", "outside 0..1"),
            ("forget", "usage: forget"),
            ("forget class", "usage: forget class"),
            ("status now", "usage: status"),
            (long_word.as_str(), "unknown command"),
        ];
        for (line, expected) in cases {
            let err = parse(line).unwrap_err().to_string();
            assert!(
                err.contains(expected),
                "'{line}' gave '{err}', expected '{expected}'"
            );
            // A reply never repeats a long input whole.
            assert!(err.len() < 120, "'{line}' gave a {}-byte reply", err.len());
        }
    }

    #[test]
    fn the_help_names_the_class_limit() {
        assert!(HELP.contains("64 classes") && CLASS_LIMIT == 64);
    }

    #[test]
    fn lines_are_assembled_and_garbage_is_contained() {
        let mut a = LineAssembler::new();
        let mut lines = std::vec::Vec::new();
        let mut feed = |a: &mut LineAssembler, bytes: &[u8]| {
            for &b in bytes {
                if let Some(l) = a.push(b) {
                    lines.push(match l {
                        Line::Text(t) => std::format!("text:{t}"),
                        Line::TooLong(n) => std::format!("long:{n}"),
                        Line::NotUtf8 => "utf8".to_string(),
                    });
                }
            }
        };
        feed(&mut a, b"status\r\n");
        feed(&mut a, &[b'x'; 1_000_000]);
        feed(&mut a, b"\n");
        feed(&mut a, b"label 1 \xff\xfe\n");
        feed(&mut a, b"counts\n");
        assert_eq!(
            lines,
            ["text:status", "long:1000000", "utf8", "text:counts"]
        );
    }
}
