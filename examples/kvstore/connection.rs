//! One client connection: a [`Protocol`] that parses RESP requests as bytes
//! arrive, and an executor task that runs them against the shards and writes
//! the replies, in order.
//!
//! `data_received` is synchronous (the asyncio shape), so it only parses:
//! the requests of every read go, as one message, to the connection's
//! executor, a task of the connection's own nursery, which plans them as one
//! [`Batch`] (with the connection's [`Session`]: its transaction, its
//! watched keys). Pipelined requests therefore cost one shard call per
//! shard per read, not one per request.
//!
//! A request that arrives in many small reads is parsed incrementally: the
//! parser remembers how far it got ([`Progress`]), so each read costs what
//! it brings, not the size of the request so far.
//!
//! Back-pressure, in bytes: reading pauses while too many reads wait for
//! the executor or while the client does not read its replies
//! (`pause_writing`); and the executor hands replies to the transport in
//! parts of 64 KiB, waiting while more than [`WRITE_CEILING`] bytes are
//! unsent. A slow reader therefore holds at most about that much of reply
//! data in this process (plus references to values still stored), and
//! holds back only itself: shard locks are released before replies are
//! written.

use std::io;
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use tokio::sync::{Notify, mpsc};
use trellis::protocol::{Loop, Protocol, Transport};

use crate::commands::{Batch, Router, Session, Shards};
use crate::resp::{self, Limits, Progress};

/// Reads that may wait for the executor before reading pauses.
const MAX_QUEUED: usize = 16;

/// Unsent reply bytes above which the executor waits for the client.
pub(crate) const WRITE_CEILING: usize = 256 * 1024;

/// The input buffer's size when idle; a larger one (left by a large
/// request) is given back once it is empty.
const IDLE_INPUT: usize = 4 * 1024;

/// Why reading is paused; shared by the protocol and its executor.
#[derive(Default)]
struct Flow {
    queued: usize,
    writing_paused: bool,
    reading_paused: bool,
}

impl Flow {
    /// Pauses or resumes reading to match the state (under the lock, so two
    /// updates cannot cross).
    fn apply(&mut self, transport: &Transport) {
        let pause = self.queued >= MAX_QUEUED || self.writing_paused;
        if pause != self.reading_paused {
            self.reading_paused = pause;
            if pause {
                transport.pause_reading();
            } else {
                transport.resume_reading();
            }
        }
    }
}

/// The requests of one read (their arguments in one vector), and the
/// protocol error that ended it, if any. It travels boxed: the channel to
/// the executor holds its slots in blocks of 32 per connection, so the
/// size of its item is idle memory of every connection.
struct Read {
    args: Vec<Bytes>,
    /// Where each request but the last ends in `args` (the last ends at its
    /// end): a read of one request allocates nothing here.
    ends: Vec<usize>,
    /// How many requests.
    requests: usize,
    error: Option<String>,
}

/// The per-connection state of the protocol.
pub(crate) struct RespConnection {
    input: BytesMut,
    progress: Progress,
    limits: Limits,
    router: Router,
    transport: Option<Transport>,
    reads: Option<mpsc::UnboundedSender<Box<Read>>>,
    flow: Arc<Mutex<Flow>>,
    /// Woken when the transport's buffer drains (or the connection ends).
    drained: Arc<Notify>,
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
            router,
            transport: None,
            reads: None,
            flow: Arc::default(),
            drained: Arc::default(),
            done: false,
        }
    }

    fn queue(&mut self, read: Box<Read>) {
        let (Some(reads), Some(transport)) = (&self.reads, &self.transport) else {
            return;
        };
        let mut flow = self.flow.lock().unwrap();
        flow.queued += 1;
        flow.apply(transport);
        drop(flow);
        let _ = reads.send(read);
    }
}

impl Protocol for RespConnection {
    fn connection_made(&mut self, transport: Transport) {
        let (tx, rx) = mpsc::unbounded_channel();
        let info = transport.extra_info();
        let show = |addr: &Option<trellis::protocol::SocketAddress>| {
            addr.as_ref()
                .and_then(|a| a.as_inet())
                .map_or_else(String::new, |a| a.to_string())
        };
        let session = Session::new(&self.router, show(&info.peer_addr), show(&info.local_addr));
        let executor = execute(
            rx,
            self.router.clone(),
            session,
            transport.clone(),
            self.flow.clone(),
            self.drained.clone(),
        );
        match Loop::current().map(|l| l.spawn(executor)) {
            Some(Ok(_)) => {
                self.reads = Some(tx);
                self.transport = Some(transport);
            }
            _ => transport.abort(),
        }
    }

    fn data_received(&mut self, data: &[u8]) {
        if self.done {
            return;
        }
        self.input.extend_from_slice(data);
        let mut read = Box::new(Read {
            args: Vec::new(),
            ends: Vec::new(),
            requests: 0,
            error: None,
        });
        loop {
            let start = read.args.len();
            match resp::parse_request_into(
                &mut self.input,
                &self.limits,
                &mut self.progress,
                &mut read.args,
            ) {
                Ok(true) => {
                    let quit = read
                        .args
                        .get(start)
                        .is_some_and(|a| a.eq_ignore_ascii_case(b"QUIT"));
                    if read.requests > 0 {
                        read.ends.push(start);
                    }
                    read.requests += 1;
                    if quit {
                        self.done = true;
                        break;
                    }
                }
                Ok(false) => break,
                Err(error) => {
                    // Answer what came before, then the error, then close.
                    read.error = Some(error.to_string());
                    self.done = true;
                    break;
                }
            }
        }
        if read.requests > 0 || read.error.is_some() {
            self.queue(read);
        }
        if self.input.is_empty() {
            // No request in progress (its bytes would still be here): an
            // idle connection keeps no argument spans.
            self.progress = Progress::default();
        }
        if self.done || (self.input.is_empty() && self.input.capacity() > IDLE_INPUT) {
            // Nothing pending: a large buffer left by a large request goes.
            self.input = BytesMut::new();
        }
    }

    fn eof_received(&mut self) -> bool {
        // Keep writing until the executor has answered what was asked; it
        // closes the transport when its queue ends.
        self.reads = None;
        true
    }

    fn connection_lost(&mut self, _error: Option<io::Error>) {
        self.reads = None;
        self.drained.notify_one();
    }

    fn pause_writing(&mut self) {
        if let Some(transport) = &self.transport {
            let mut flow = self.flow.lock().unwrap();
            flow.writing_paused = true;
            flow.apply(transport);
        }
    }

    fn resume_writing(&mut self) {
        if let Some(transport) = &self.transport {
            let mut flow = self.flow.lock().unwrap();
            flow.writing_paused = false;
            flow.apply(transport);
        }
        self.drained.notify_one();
    }
}

/// Hands `out` to the transport; the future waits while more than
/// [`WRITE_CEILING`] bytes are unsent (or until the connection ends).
fn flush(
    transport: &Transport,
    drained: &Arc<Notify>,
    out: &mut BytesMut,
) -> impl Future<Output = ()> + use<> {
    let failed = !out.is_empty() && transport.write(out).is_err();
    out.clear();
    let transport = transport.clone();
    let drained = drained.clone();
    async move {
        if failed {
            return;
        }
        while transport.write_buffer_size() > WRITE_CEILING && !transport.is_closing() {
            drained.notified().await;
        }
    }
}

/// Runs the connection's reads in order and writes their replies.
async fn execute(
    mut reads: mpsc::UnboundedReceiver<Box<Read>>,
    router: Router,
    mut session: Session,
    transport: Transport,
    flow: Arc<Mutex<Flow>>,
    drained: Arc<Notify>,
) {
    let mut shards = Shards::new(&router);
    let mut out = BytesMut::new();
    while let Some(read) = reads.recv().await {
        let mut batch = Batch::new(router.count());
        let Read {
            mut args,
            ends,
            requests,
            error,
        } = *read;
        let last = (requests > 0).then_some(args.len());
        let mut start = 0;
        for end in ends.into_iter().chain(last) {
            batch.add(&router, &mut session, &mut args[start..end]);
            start = end;
        }
        if let Some(error) = error {
            batch.protocol_error(&error);
        }
        let quit = batch.quit;
        batch
            .run(&router, &mut shards, &mut session, &mut out, |out| {
                flush(&transport, &drained, out)
            })
            .await;
        {
            let mut flow = flow.lock().unwrap();
            flow.queued -= 1;
            flow.apply(&transport);
        }
        flush(&transport, &drained, &mut out).await;
        if transport.is_closing() && !quit {
            break;
        }
        if out.capacity() > IDLE_INPUT {
            out = BytesMut::new();
        }
        if quit {
            break;
        }
    }
    session.end(&router, &mut shards).await;
    // The client quit, sent a malformed request, or closed its side: flush
    // and close.
    transport.close();
}
