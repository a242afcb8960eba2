//! One client connection: a [`Protocol`] that parses RESP requests as bytes
//! arrive, runs them on the shards' tables and writes the replies, in order,
//! all in the connection's one task (the protocol driver's), within its
//! callbacks — no executor task, no message to a shard, no wake-up.
//!
//! The requests of every read are planned as one [`Batch`] (with the
//! connection's [`Session`]: its transaction, its watched keys), which locks
//! the tables it touches, runs its operations, and unlocks them before any
//! reply is written. Pipelined requests therefore cost one lock per shard
//! per read, not one per request.
//!
//! Nothing is copied or counted per argument: the parser finds the
//! arguments of a read's complete requests as spans of the input buffer,
//! the batch's operations borrow those bytes while it runs, and the input
//! moves on only once it has. What outlives the batch is copied: a command
//! queued by `MULTI`, a `WATCH`ed key, a client's name, a stored key and
//! value. An `EXEC` ends its batch (the transaction it runs leaves the
//! session for the batch to borrow).
//!
//! A request that arrives in many small reads is parsed incrementally: the
//! parser remembers how far it got ([`Progress`]), so each read costs what
//! it brings, not the size of the request so far.
//!
//! Back-pressure, in bytes, as asyncio does it: replies are handed to the
//! transport in parts of 64 KiB, and once more than [`WRITE_CEILING`] bytes
//! are unsent the connection stops — it pauses reading, keeps the replies
//! not yet encoded ([`Replies`]) and the requests not yet run (its input
//! buffer), and goes on when the transport says the client has caught up
//! (`resume_writing`). A slow reader therefore holds at most about that
//! much of reply data in this process (plus references to values still
//! stored), and holds back only itself: the tables' locks are released
//! before replies are written.

use std::io;

use bytes::{Buf, BytesMut};
use trellis::protocol::{Protocol, Transport};

use crate::commands::{Batch, Replies, Router, Session, Tables, reuse};
use crate::resp::{self, Limits, Progress, Span};

/// Unsent reply bytes above which the connection waits for the client.
pub(crate) const WRITE_CEILING: usize = 256 * 1024;

/// Largest guess of a batch's size taken from the previous one.
const MAX_GUESS: usize = 256;

/// The input buffer's size when idle; a larger one (left by a large
/// request) is given back once it is empty.
const IDLE_INPUT: usize = 4 * 1024;

/// The per-connection state of the protocol.
pub(crate) struct RespConnection {
    input: BytesMut,
    progress: Progress,
    limits: Limits,
    router: Router,
    tables: Tables,
    transport: Option<Transport>,
    session: Option<Session>,
    /// Replies of a batch not yet all encoded (the client fell behind).
    pending: Option<Replies>,
    out: BytesMut,
    /// The transport's buffer is above its high-water mark.
    writing_paused: bool,
    /// Reading was paused here (by `serve`).
    reading_paused: bool,
    /// The size of the previous batch (operations, requests), as a guess
    /// for the next: pipelines tend to repeat.
    sizes: (usize, usize),
    /// The client closed its side: close once everything is answered.
    eof: bool,
    /// A protocol error or `QUIT` was seen: ignore the rest.
    done: bool,
}

impl RespConnection {
    /// A connection routing keys with `router`.
    pub(crate) fn new(router: Router, limits: Limits) -> Self {
        RespConnection {
            input: BytesMut::new(),
            progress: Progress::default(),
            limits,
            tables: Tables::new(&router),
            router,
            transport: None,
            session: None,
            pending: None,
            out: BytesMut::new(),
            writing_paused: false,
            reading_paused: false,
            sizes: (0, 0),
            eof: false,
            done: false,
        }
    }

    /// Runs what the input holds and writes the replies, until the input is
    /// used up or the client has to catch up.
    fn serve(&mut self) {
        let RespConnection {
            input,
            progress,
            limits,
            router,
            tables,
            transport: Some(transport),
            session: Some(session),
            pending,
            out,
            writing_paused,
            reading_paused,
            sizes,
            eof,
            done,
        } = self
        else {
            return;
        };
        loop {
            if let Some(replies) = pending {
                let finished = replies.encode(out, |out| {
                    let _ = transport.write(out);
                    out.clear();
                    transport.write_buffer_size() <= WRITE_CEILING && !transport.is_closing()
                });
                if !finished {
                    // Written inside a callback, the bytes wait in the
                    // transport's buffer until it returns, so its own
                    // pause may never be signalled (the socket may take
                    // them all at once). Marks of zero make sure of the
                    // pause now and of `resume_writing` once the buffer
                    // is empty.
                    let _ = transport.set_write_buffer_limits(Some(0), Some(0));
                    if !*reading_paused {
                        *reading_paused = true;
                        transport.pause_reading();
                    }
                    break;
                }
                let quit = replies.quit;
                *pending = None;
                if quit {
                    *done = true;
                    break;
                }
            }
            if *done || *writing_paused {
                break;
            }
            let Some(replies) = run_read(
                input, limits, progress, router, tables, session, done, sizes,
            ) else {
                break;
            };
            *pending = Some(replies);
        }
        if !out.is_empty() {
            let _ = transport.write(out);
            out.clear();
        }
        if out.capacity() > IDLE_INPUT {
            *out = BytesMut::new();
        }
        if pending.is_none() && (*done || *eof) {
            // The client quit, sent a malformed request, or closed its
            // side, and everything asked is answered: flush and close.
            transport.close();
        } else if *reading_paused && pending.is_none() && !*writing_paused {
            *reading_paused = false;
            transport.resume_reading();
        }
        if input.is_empty() {
            // No request in progress (its bytes would still be here): an
            // idle connection keeps no argument spans.
            *progress = Progress::default();
        }
        if *done || (input.is_empty() && input.capacity() > IDLE_INPUT) {
            // Nothing pending: a large buffer left by a large request goes.
            *input = BytesMut::new();
        }
    }
}

/// The vectors of one read's parse, kept for the next read of the same
/// worker thread (per thread, so that an idle connection holds none).
#[derive(Default)]
struct Spare {
    spans: Vec<Span>,
    ends: Vec<usize>,
    /// Kept empty, for slices of any read ([`reuse`]).
    args: Vec<&'static [u8]>,
}

thread_local! {
    static SPARE: std::cell::RefCell<Spare> = std::cell::RefCell::default();
}

/// Most elements a spare vector keeps.
const SPARE_MAX: usize = 1024;

/// What [`scan`] found at the front of the input.
struct Scan {
    /// The bytes the complete requests take (and the blank lines after).
    consumed: usize,
    /// The protocol error that ended the scan.
    error: Option<resp::ProtocolError>,
    /// The last request is an `EXEC`.
    exec_last: bool,
}

/// Finds the complete requests at the front of `input`, without copying:
/// their arguments' spans, and where each request's spans end. An `EXEC`
/// ends the scan (its transaction, taken out of the session, is borrowed
/// by the batch that runs it, so it comes last).
fn scan(
    input: &mut [u8],
    limits: &Limits,
    progress: &mut Progress,
    spans: &mut Vec<Span>,
    ends: &mut Vec<usize>,
) -> Scan {
    let mut at = 0;
    loop {
        let before = spans.len();
        match resp::parse_request_at(input, at, limits, progress, spans) {
            Ok(Some(next)) => {
                ends.push(spans.len());
                at = next;
                let name = spans.get(before).map(|&(start, end)| &input[start..end]);
                if name.is_some_and(|name| name.eq_ignore_ascii_case(b"EXEC")) {
                    return Scan {
                        consumed: at,
                        error: None,
                        exec_last: true,
                    };
                }
            }
            Ok(None) => break,
            Err(error) => {
                return Scan {
                    consumed: at,
                    error: Some(error),
                    exec_last: false,
                };
            }
        }
    }
    if !progress.in_request() {
        // Lines without a request are ignored: they go too.
        at = resp::skip_empty_lines(input, at);
    }
    Scan {
        consumed: at,
        error: None,
        exec_last: false,
    }
}

/// Plans every complete request in `input` as one batch and runs it: the
/// operations borrow the input's bytes, which are let go of once the batch
/// has run. `None` if no request is complete. Sets `done` at `QUIT` or a
/// protocol error (answered last).
#[allow(clippy::too_many_arguments)]
fn run_read(
    input: &mut BytesMut,
    limits: &Limits,
    progress: &mut Progress,
    router: &Router,
    tables: &mut Tables,
    session: &mut Session,
    done: &mut bool,
    sizes: &mut (usize, usize),
) -> Option<Replies> {
    let (mut spans, mut ends, args) = SPARE.with_borrow_mut(|spare| {
        (
            std::mem::take(&mut spare.spans),
            std::mem::take(&mut spare.ends),
            std::mem::take(&mut spare.args),
        )
    });
    let found = scan(input, limits, progress, &mut spans, &mut ends);
    let mut replies = None;
    let mut args: Vec<&[u8]> = reuse(args);
    if !ends.is_empty() || found.error.is_some() {
        let bytes: &[u8] = input;
        args.extend(spans.iter().map(|&(start, end)| &bytes[start..end]));
        let mut batch = Batch::with_capacity(router.count(), sizes.0, sizes.1);
        let plain = ends.len() - usize::from(found.exec_last);
        let mut start = 0;
        for &end in &ends[..plain] {
            batch.add(router, session, &args[start..end]);
            start = end;
            if batch.quit {
                break;
            }
        }
        // The transaction an `EXEC` runs leaves the session for the batch
        // (and comes back if that was no `EXEC` to run).
        let held = if found.exec_last && !batch.quit {
            session.multi.take()
        } else {
            None
        };
        if found.exec_last && !batch.quit {
            if let Some(queue) = &held {
                batch.set_exec_queue(queue);
            }
            batch.add(router, session, &args[start..]);
        }
        if let Some(error) = &found.error {
            if !batch.quit {
                // Answer what came before, then the error, then close.
                batch.protocol_error(&error.to_string());
            }
        }
        *done |= batch.quit;
        let (items, steps) = batch.size();
        *sizes = (items.min(MAX_GUESS), steps.min(MAX_GUESS));
        let used = batch.exec_queue_used();
        replies = Some(batch.run(router, tables, session));
        if !used {
            session.multi = held;
        }
    }
    let args = reuse(args);
    spans.clear();
    ends.clear();
    SPARE.with_borrow_mut(|spare| {
        if spans.capacity() <= SPARE_MAX {
            spare.spans = spans;
            spare.ends = ends;
            spare.args = args;
        }
    });
    input.advance(found.consumed);
    replies
}

impl Protocol for RespConnection {
    fn connection_made(&mut self, transport: Transport) {
        let info = transport.extra_info();
        let show = |addr: &Option<trellis::protocol::SocketAddress>| {
            addr.as_ref()
                .and_then(|a| a.as_inet())
                .map_or_else(String::new, |a| a.to_string())
        };
        self.session = Some(Session::new(
            &self.router,
            show(&info.peer_addr),
            show(&info.local_addr),
        ));
        // `pause_writing` past the ceiling, `resume_writing` at a quarter.
        if transport
            .set_write_buffer_limits(Some(WRITE_CEILING), None)
            .is_err()
        {
            transport.abort();
            return;
        }
        self.transport = Some(transport);
    }

    fn data_received(&mut self, data: &[u8]) {
        if self.done {
            return;
        }
        self.input.extend_from_slice(data);
        self.serve();
    }

    fn eof_received(&mut self) -> bool {
        // Keep writing until what was asked is answered; `serve` closes
        // the transport then.
        self.eof = true;
        self.serve();
        true
    }

    fn connection_lost(&mut self, _error: Option<io::Error>) {
        self.pending = None;
        if let Some(mut session) = self.session.take() {
            session.end(&self.router, &mut self.tables);
        }
    }

    fn pause_writing(&mut self) {
        self.writing_paused = true;
        if let Some(transport) = &self.transport {
            if !self.reading_paused {
                self.reading_paused = true;
                transport.pause_reading();
            }
        }
    }

    fn resume_writing(&mut self) {
        self.writing_paused = false;
        if let Some(transport) = &self.transport {
            let _ = transport.set_write_buffer_limits(Some(WRITE_CEILING), None);
        }
        self.serve();
    }
}
