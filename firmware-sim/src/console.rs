//! The serial console: a line protocol, as an operator would type it over a
//! UART or a loopback TCP port.
//!
//! One command per line; the buoy answers each with lines starting `ok` or
//! `error:`. Parsing is separate from execution so that a malformed line is
//! rejected before anything changes.
//!
//! ```text
//! label <frame> <class>     label a recent frame (frame number or frame id)
//! addclass <name>           declare a class
//! forget <frame>            drop the label of a frame
//! forget class <name>       drop a class and all its labels
//! status                    model, store, rates, resources
//! counts                    counts per class in the current window
//! threshold <x>             similarity below x (0..1) reports "unknown"
//! telemetry                 the current interval's message, hex
//! help                      this list
//! ```

use std::fmt;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::mpsc::{Receiver, Sender, channel};

/// Longest class name: it has to fit the display and the flash record.
pub const MAX_CLASS_NAME: usize = 32;

/// One parsed console command.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Label a recent frame with a class.
    Label {
        /// Frame number (as logged) or frame id (file path / ROI id).
        frame: String,
        /// Class name (must have been added).
        class: String,
    },
    /// Declare a new class.
    AddClass(String),
    /// Forget one frame's label.
    ForgetFrame(String),
    /// Forget a class and every label of it.
    ForgetClass(String),
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub String);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The help text listed by `help`.
pub const HELP: &str = "commands: label <frame> <class> | addclass <name> | forget <frame> | forget class <name> | status | counts | threshold <0..1> | telemetry | help";

fn class_name(word: &str) -> Result<String, ParseError> {
    if word.is_empty() || word.len() > MAX_CLASS_NAME {
        return Err(ParseError(format!(
            "class name must be 1 to {MAX_CLASS_NAME} characters, got {}",
            word.len()
        )));
    }
    if !word
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        return Err(ParseError(format!(
            "class name '{word}' may only use letters, digits, '_', '-', '.'"
        )));
    }
    Ok(word.to_string())
}

fn arity(words: &[&str], n: usize, usage: &str) -> Result<(), ParseError> {
    if words.len() != n + 1 {
        return Err(ParseError(format!("usage: {usage}")));
    }
    Ok(())
}

/// Parses one line. Blank lines and `#` comments give `Ok(None)`.
pub fn parse(line: &str) -> Result<Option<Command>, ParseError> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let words: Vec<&str> = line.split_whitespace().collect();
    let cmd = match words[0].to_ascii_lowercase().as_str() {
        "label" => {
            arity(&words, 2, "label <frame> <class>")?;
            Command::Label {
                frame: words[1].to_string(),
                class: class_name(words[2])?,
            }
        }
        "addclass" => {
            arity(&words, 1, "addclass <name>")?;
            Command::AddClass(class_name(words[1])?)
        }
        "forget" => match words.get(1) {
            Some(&"class") => {
                arity(&words, 2, "forget class <name>")?;
                Command::ForgetClass(class_name(words[2])?)
            }
            _ => {
                arity(&words, 1, "forget <frame> | forget class <name>")?;
                Command::ForgetFrame(words[1].to_string())
            }
        },
        "status" => {
            arity(&words, 0, "status")?;
            Command::Status
        }
        "counts" => {
            arity(&words, 0, "counts")?;
            Command::Counts
        }
        "telemetry" => {
            arity(&words, 0, "telemetry")?;
            Command::Telemetry
        }
        "help" | "?" => Command::Help,
        "threshold" => {
            arity(&words, 1, "threshold <x> (0..1)")?;
            let x: f32 = words[1]
                .parse()
                .map_err(|_| ParseError(format!("threshold '{}' is not a number", words[1])))?;
            if !(0.0..=1.0).contains(&x) {
                return Err(ParseError(format!("threshold {x} is outside 0..1")));
            }
            Command::Threshold(x)
        }
        other => return Err(ParseError(format!("unknown command '{other}' ({HELP})"))),
    };
    Ok(Some(cmd))
}

/// A console line with a way to send the reply back to whoever typed it.
pub struct Request {
    /// The raw line.
    pub line: String,
    /// Where reply lines go.
    pub reply: Sender<String>,
}

/// Starts a thread reading stdin lines; replies are printed to stdout.
/// Returns the request channel (closed when stdin ends).
pub fn spawn_stdin() -> Receiver<Request> {
    let (tx, rx) = channel();
    let (reply_tx, reply_rx) = channel::<String>();
    std::thread::spawn(move || {
        for reply in reply_rx {
            println!("{reply}");
        }
    });
    std::thread::spawn(move || {
        forward_lines(std::io::stdin().lock(), &tx, &reply_tx);
    });
    rx
}

/// Turns each line read from a console transport into a request whose
/// replies go to `reply`; stops at the end of input or when the buoy is gone.
fn forward_lines(input: impl BufRead, tx: &Sender<Request>, reply: &Sender<String>) {
    for line in input.lines() {
        let Ok(line) = line else { break };
        let request = Request {
            line,
            reply: reply.clone(),
        };
        if tx.send(request).is_err() {
            break;
        }
    }
}

/// Serves the console on a loopback TCP port (like a serial-over-TCP
/// bridge): each connection's lines become requests; replies go back on it.
/// Returns the request channel and the bound port (`port` 0 picks one).
pub fn spawn_tcp(port: u16) -> std::io::Result<(Receiver<Request>, u16)> {
    let listener = TcpListener::bind(("127.0.0.1", port))?;
    let bound = listener.local_addr()?.port();
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let tx = tx.clone();
            std::thread::spawn(move || {
                let Ok(mut writer) = stream.try_clone() else {
                    return;
                };
                let (reply_tx, reply_rx) = channel::<String>();
                std::thread::spawn(move || {
                    for reply in reply_rx {
                        if writeln!(writer, "{reply}").is_err() {
                            break;
                        }
                    }
                });
                forward_lines(BufReader::new(stream), &tx, &reply_tx);
            });
        }
    });
    Ok((rx, bound))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_command() {
        assert_eq!(
            parse("label 12 Tripos").unwrap(),
            Some(Command::Label {
                frame: "12".into(),
                class: "Tripos".into()
            })
        );
        assert_eq!(
            parse("  ADDCLASS copepod_a ").unwrap(),
            Some(Command::AddClass("copepod_a".into()))
        );
        assert_eq!(
            parse("forget 7").unwrap(),
            Some(Command::ForgetFrame("7".into()))
        );
        assert_eq!(
            parse("forget class diatom").unwrap(),
            Some(Command::ForgetClass("diatom".into()))
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
        let cases = [
            ("fly away", "unknown command"),
            ("label 12", "usage: label"),
            ("label 12 a b", "usage: label"),
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
        ];
        for (line, expected) in cases {
            let err = parse(line).unwrap_err();
            assert!(
                err.0.contains(expected),
                "'{line}' gave '{err}', expected '{expected}'"
            );
        }
    }

    #[test]
    fn tcp_console_delivers_lines_and_replies() {
        let (rx, port) = spawn_tcp(0).unwrap();
        let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        writeln!(conn, "status").unwrap();
        let req = rx.recv().unwrap();
        assert_eq!(req.line, "status");
        req.reply.send("ok fine".into()).unwrap();
        let mut reader = BufReader::new(conn);
        let mut reply = String::new();
        reader.read_line(&mut reply).unwrap();
        assert_eq!(reply.trim(), "ok fine");
    }
}
