//! The reading side of the fan-out's clients: every connected socket on one thread's epoll
//! (mio), one read per readiness, WebSocket frames parsed in place.
//!
//! The clients share the machine's two cores with the streamer, so whatever they spend per
//! frame is taken from the streamer and shows up as its latency. A task per client on Tokio
//! cost about 9 µs per frame (a wake-up, a task poll and a second read that finds the socket
//! empty): 40% of the CPU of a fan-out. Here a frame costs one read and a scan for the mark.
//! The handshake stays with tokio-tungstenite, the client library; only reading moves here.

use std::io::{ErrorKind, Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

/// How often the reading thread looks for frames that arrived.
const POLL_EVERY: Duration = Duration::from_millis(1);

/// What the clients record, shared with the run that publishes and reports.
pub struct Shared {
    /// Nanoseconds after `base` at which event n was published (0: not yet).
    pub sent: Vec<AtomicU64>,
    /// Microseconds from publish to receipt of event n at client i, in slot
    /// `i * events + n` (0: not received).
    pub slots: Vec<AtomicU64>,
    pub delivered: AtomicU64,
    /// Clients that got at least one probe: subscribed.
    pub probed: AtomicU64,
    /// Connections the server closed or that failed.
    pub closed: AtomicU64,
    /// How the first connection that ended did end, for the notes.
    pub ending: Mutex<Option<String>>,
    pub base: Instant,
    pub events: usize,
}

impl Shared {
    pub fn new(clients: usize, events: usize) -> Shared {
        let zeros = |n: usize| (0..n).map(|_| AtomicU64::new(0)).collect();
        Shared {
            sent: zeros(events),
            slots: zeros(clients * events),
            delivered: AtomicU64::new(0),
            probed: AtomicU64::new(0),
            closed: AtomicU64::new(0),
            ending: Mutex::new(None),
            base: Instant::now(),
            events,
        }
    }
}

/// What a frame's text says.
#[derive(Debug, PartialEq, Eq)]
pub enum Seen {
    Event(usize),
    Probe,
    Other,
}

/// The reading thread; it stops when the returned flag is set.
pub fn start(
    sockets: Vec<std::net::TcpStream>,
    shared: Arc<Shared>,
    classify: fn(&str) -> Seen,
) -> anyhow::Result<(Arc<AtomicBool>, std::thread::JoinHandle<()>)> {
    let poll = Poll::new().context("epoll")?;
    let mut clients = Vec::with_capacity(sockets.len());
    for (i, socket) in sockets.into_iter().enumerate() {
        socket.set_nonblocking(true)?;
        let mut stream = TcpStream::from_std(socket);
        poll.registry()
            .register(&mut stream, Token(i), Interest::READABLE)?;
        clients.push(Client {
            stream,
            pending: Vec::new(),
            probed: false,
            open: true,
        });
    }
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let thread = std::thread::Builder::new()
        .name("ws-readers".into())
        .spawn(move || read_all(poll, clients, &shared, classify, &flag))?;
    Ok((stop, thread))
}

struct Client {
    stream: TcpStream,
    /// Bytes of a frame not complete yet.
    pending: Vec<u8>,
    probed: bool,
    open: bool,
}

fn read_all(
    mut poll: Poll,
    mut clients: Vec<Client>,
    shared: &Shared,
    classify: fn(&str) -> Seen,
    stop: &AtomicBool,
) {
    let mut events = Events::with_capacity(1024);
    // Events are well under a kilobyte: one read takes all a socket holds.
    let mut buffer = vec![0u8; 64 * 1024];
    while !stop.load(Ordering::Relaxed) {
        // Polled, not waited on: a thread asleep in epoll_wait is woken by each frame's
        // arrival, and on loopback the sender pays for that wake-up inside its send (an
        // interrupt to the other core, 13% of the streamer's CPU in a fan-out). A reader
        // that looks every millisecond is never waited for, and reads what arrived
        // meanwhile in one go; a receipt is stamped up to 1 ms late, never early.
        if events.is_empty() {
            std::thread::sleep(POLL_EVERY);
        }
        if let Err(e) = poll.poll(&mut events, Some(Duration::ZERO)) {
            if e.kind() == ErrorKind::Interrupted {
                continue;
            }
            end(shared, format!("epoll failed: {e}"));
            return;
        }
        for event in &events {
            let i = event.token().0;
            let client = &mut clients[i];
            if !client.open {
                continue;
            }
            // Readiness is edge-triggered: read until a read comes back short.
            loop {
                let n = match client.stream.read(&mut buffer) {
                    Ok(0) => {
                        close(client, &mut poll, shared, "end of stream".into());
                        break;
                    }
                    Ok(n) => n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(e) => {
                        close(client, &mut poll, shared, format!("error: {e}"));
                        break;
                    }
                };
                let at = shared.base.elapsed().as_nanos() as u64;
                let outcome = if client.pending.is_empty() {
                    take_frames(client, i, &buffer[..n], at, shared, classify)
                } else {
                    let mut joined = std::mem::take(&mut client.pending);
                    joined.extend_from_slice(&buffer[..n]);
                    take_frames(client, i, &joined, at, shared, classify)
                };
                if let Err(why) = outcome {
                    close(client, &mut poll, shared, why);
                    break;
                }
                if n < buffer.len() {
                    break;
                }
            }
        }
    }
}

/// Handles the complete frames of `bytes` and keeps the rest in `client.pending`.
fn take_frames(
    client: &mut Client,
    i: usize,
    mut bytes: &[u8],
    at: u64,
    shared: &Shared,
    classify: fn(&str) -> Seen,
) -> Result<(), String> {
    while let Some(frame) = parse_frame(bytes)? {
        let payload = &bytes[frame.payload.clone()];
        match frame.opcode {
            // Text (whole or a fragment's start) and continuation frames.
            0x1 | 0x0 => {
                let text = std::str::from_utf8(payload).unwrap_or("");
                record(client, i, classify(text), at, shared);
            }
            0x8 => return Err(format!("close frame ({} bytes)", payload.len())),
            0x9 => pong(client, payload),
            _ => {}
        }
        bytes = &bytes[frame.len..];
    }
    client.pending.extend_from_slice(bytes);
    Ok(())
}

fn record(client: &mut Client, i: usize, seen: Seen, at: u64, shared: &Shared) {
    match seen {
        Seen::Event(n) if n < shared.events => {
            let published = shared.sent[n].load(Ordering::Acquire);
            if published > 0 {
                // At least 1 µs, so that a received event never reads as missing; a
                // duplicate delivery counts once.
                let us = (at.saturating_sub(published) / 1000).max(1);
                if shared.slots[i * shared.events + n].swap(us, Ordering::Relaxed) == 0 {
                    shared.delivered.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        Seen::Probe if !client.probed => {
            client.probed = true;
            shared.probed.fetch_add(1, Ordering::Relaxed);
        }
        _ => {}
    }
}

/// Answers the server's ping (every 30 s, Mastodon's rule: unanswered, the connection is
/// dropped). A client's frames are masked; a zero mask leaves the payload as it is.
fn pong(client: &mut Client, payload: &[u8]) {
    let mut frame = Vec::with_capacity(payload.len() + 6);
    frame.push(0x8A);
    frame.push(0x80 | payload.len().min(125) as u8);
    frame.extend_from_slice(&[0, 0, 0, 0]);
    frame.extend_from_slice(&payload[..payload.len().min(125)]);
    // A few bytes into an empty send buffer: written whole or the connection is gone,
    // which the next read reports.
    let _ = client.stream.write(&frame);
}

fn close(client: &mut Client, poll: &mut Poll, shared: &Shared, why: String) {
    client.open = false;
    let _ = poll.registry().deregister(&mut client.stream);
    end(shared, why);
}

fn end(shared: &Shared, why: String) {
    shared.closed.fetch_add(1, Ordering::Relaxed);
    shared.ending.lock().unwrap().get_or_insert(format!(
        "{why} ({:.1} s after the start)",
        shared.base.elapsed().as_secs_f64()
    ));
}

#[derive(Debug, PartialEq, Eq)]
struct Frame {
    opcode: u8,
    payload: std::ops::Range<usize>,
    /// Header and payload.
    len: usize,
}

/// The frame at the start of `bytes`, `None` until it is complete. A server's frames are
/// not masked (RFC 6455, 5.1): a masked one is refused.
fn parse_frame(bytes: &[u8]) -> Result<Option<Frame>, String> {
    let [first, second, rest @ ..] = bytes else {
        return Ok(None);
    };
    if second & 0x80 != 0 {
        return Err("a masked frame from the server".into());
    }
    let (length, header) = match second & 0x7F {
        126 => match rest {
            [a, b, ..] => (u16::from_be_bytes([*a, *b]) as usize, 4),
            _ => return Ok(None),
        },
        127 => match rest.get(..8) {
            Some(b) => (
                u64::from_be_bytes(b.try_into().expect("8 bytes")) as usize,
                10,
            ),
            None => return Ok(None),
        },
        short => (short as usize, 2),
    };
    if bytes.len() < header + length {
        return Ok(None);
    }
    Ok(Some(Frame {
        opcode: first & 0x0F,
        payload: header..header + length,
        len: header + length,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_parsed_whole_or_not_at_all() {
        let short = [0x81, 3, b'a', b'b', b'c', 0x89];
        let f = parse_frame(&short).unwrap().unwrap();
        assert_eq!((f.opcode, f.payload.clone(), f.len), (1, 2..5, 5));
        assert_eq!(parse_frame(&short[5..]).unwrap(), None);
        assert_eq!(parse_frame(&short[..4]).unwrap(), None);

        let mut medium = vec![0x81, 126, 0x01, 0x00];
        medium.extend(std::iter::repeat_n(b'x', 256));
        let f = parse_frame(&medium).unwrap().unwrap();
        assert_eq!((f.payload.clone(), f.len), (4..260, 260));
        assert_eq!(parse_frame(&medium[..259]).unwrap(), None);

        let mut long = vec![0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0];
        long.extend(std::iter::repeat_n(0u8, 65536));
        let f = parse_frame(&long).unwrap().unwrap();
        assert_eq!((f.opcode, f.payload.clone()), (2, 10..65546));

        assert!(parse_frame(&[0x81, 0x83, 0, 0, 0, 0]).is_err());
    }
}
