//! The host board's console transports: stdin and a loopback TCP port
//! (like a serial-over-TCP bridge). The protocol itself is the device
//! application's (`seaclr_device::console`).
//!
//! Each line becomes a [`Request`] with a way to answer whoever typed it.
//! A TCP client that disconnects before its lines were served is marked
//! gone, and the board skips its queued lines instead of executing
//! commands nobody will see acknowledged.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};

/// A console line with a way to send the reply back to whoever typed it.
pub struct Request {
    /// The raw line (at most `seaclr_device::console::MAX_LINE` bytes kept;
    /// a longer one is answered with an error by the device).
    pub line: Vec<u8>,
    /// Where reply lines go.
    pub reply: Sender<String>,
    /// False once the client has disconnected (TCP); its lines are skipped.
    connected: Arc<AtomicBool>,
}

impl Request {
    /// Whether whoever typed the line can still read the reply.
    pub fn client_connected(&self) -> bool {
        self.connected.load(Ordering::SeqCst)
    }
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
        // The end of stdin is not a disconnect: a piped script's lines all run.
        let always = Arc::new(AtomicBool::new(true));
        forward_lines(std::io::stdin().lock(), &tx, &reply_tx, &always);
    });
    rx
}

/// Turns each line read from a console transport into a request whose
/// replies go to `reply`; stops at the end of input or when the buoy is gone.
fn forward_lines(
    mut input: impl BufRead,
    tx: &Sender<Request>,
    reply: &Sender<String>,
    connected: &Arc<AtomicBool>,
) {
    // Byte lines, bounded: a line longer than the device accepts keeps
    // only its first bytes and one more, so the device reports it too long.
    let limit = seaclr_device::console::MAX_LINE + 1;
    loop {
        let mut line = Vec::new();
        match input
            .by_ref()
            .take(limit as u64)
            .read_until(b'\n', &mut line)
        {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        if line.last() != Some(&b'\n') {
            // Over the limit: drop the rest of the line.
            let mut rest = Vec::new();
            loop {
                rest.clear();
                match input.by_ref().take(1 << 16).read_until(b'\n', &mut rest) {
                    Ok(0) | Err(_) => break,
                    Ok(_) if rest.last() == Some(&b'\n') => break,
                    Ok(_) => {}
                }
            }
        } else {
            line.pop();
        }
        let request = Request {
            line,
            reply: reply.clone(),
            connected: connected.clone(),
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
                let connected = Arc::new(AtomicBool::new(true));
                forward_lines(BufReader::new(stream), &tx, &reply_tx, &connected);
                connected.store(false, Ordering::SeqCst);
            });
        }
    });
    Ok((rx, bound))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_console_delivers_lines_and_replies() {
        let (rx, port) = spawn_tcp(0).unwrap();
        let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        writeln!(conn, "status").unwrap();
        let req = rx.recv().unwrap();
        assert_eq!(req.line, b"status");
        assert!(req.client_connected());
        req.reply.send("ok fine".into()).unwrap();
        let mut reader = BufReader::new(conn);
        let mut reply = String::new();
        reader.read_line(&mut reply).unwrap();
        assert_eq!(reply.trim(), "ok fine");
    }

    #[test]
    fn a_gone_client_is_marked_and_long_lines_are_cut() {
        let (rx, port) = spawn_tcp(0).unwrap();
        let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let mut long = vec![b'x'; 1 << 20];
        long.extend_from_slice(b"\naddclass late\n");
        conn.write_all(&long).unwrap();
        drop(conn);
        let first = rx.recv().unwrap();
        assert_eq!(first.line.len(), seaclr_device::console::MAX_LINE + 1);
        let second = rx.recv().unwrap();
        assert_eq!(second.line, b"addclass late");
        // The reader saw the end of the connection: both are from a gone client.
        for _ in 0..100 {
            if !second.client_connected() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(!second.client_connected());
    }
}
