//! One client connection: a [`Protocol`] that parses RESP requests as bytes
//! arrive, and an executor task that runs them against the shards and writes
//! the replies, in order.
//!
//! `data_received` is synchronous (the asyncio shape), so it only parses:
//! every read becomes one [`Batch`] queued to the connection's executor, a
//! task of the connection's own nursery. Pipelined requests therefore cost
//! one shard call per shard per read, not one per request.
//!
//! Back-pressure: reading pauses while too many batches wait or while the
//! client does not read its replies (`pause_writing`), and resumes when both
//! clear — a slow reader holds its own connection back, nobody else's.

use std::io;
use std::sync::{Arc, Mutex};

use bytes::BytesMut;
use tokio::sync::mpsc;
use trellis::protocol::{Loop, Protocol, Transport};

use crate::commands::{Batch, Router, Shards};
use crate::resp::{self, Limits};

/// Batches that may wait for the executor before reading pauses.
const MAX_QUEUED: usize = 16;

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

/// The per-connection state of the protocol.
pub(crate) struct RespConnection {
    input: BytesMut,
    limits: Limits,
    router: Router,
    transport: Option<Transport>,
    batches: Option<mpsc::UnboundedSender<Batch>>,
    flow: Arc<Mutex<Flow>>,
    /// A protocol error was answered: ignore the rest.
    done: bool,
}

impl RespConnection {
    /// A connection routing keys with `router`.
    pub(crate) fn new(router: Router, limits: Limits) -> Self {
        RespConnection {
            input: BytesMut::with_capacity(16 * 1024),
            limits,
            router,
            transport: None,
            batches: None,
            flow: Arc::default(),
            done: false,
        }
    }

    fn queue(&mut self, batch: Batch) {
        let (Some(batches), Some(transport)) = (&self.batches, &self.transport) else {
            return;
        };
        let mut flow = self.flow.lock().unwrap();
        flow.queued += 1;
        flow.apply(transport);
        drop(flow);
        let _ = batches.send(batch);
    }
}

impl Protocol for RespConnection {
    fn connection_made(&mut self, transport: Transport) {
        let (tx, rx) = mpsc::unbounded_channel();
        let shards = Shards::new(&self.router);
        let executor = execute(rx, shards, transport.clone(), self.flow.clone());
        match Loop::current().map(|l| l.spawn(executor)) {
            Some(Ok(_)) => {
                self.batches = Some(tx);
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
        let mut batch = Batch::new(self.router.count());
        loop {
            match resp::parse_request(&mut self.input, &self.limits) {
                Ok(Some(args)) => {
                    batch.add(&self.router, args);
                    if batch.quit {
                        self.done = true;
                        break;
                    }
                }
                Ok(None) => break,
                Err(error) => {
                    // Answer what came before, then the error, then close.
                    batch.protocol_error(&error.to_string());
                    self.done = true;
                    break;
                }
            }
        }
        if !batch.is_empty() {
            self.queue(batch);
        }
        if self.done {
            self.input = BytesMut::new();
        }
    }

    fn eof_received(&mut self) -> bool {
        // Keep writing until the executor has answered what was asked; it
        // closes the transport when its queue ends.
        self.batches = None;
        true
    }

    fn connection_lost(&mut self, _error: Option<io::Error>) {
        self.batches = None;
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
    }
}

/// Runs the connection's batches in order and writes their replies.
async fn execute(
    mut batches: mpsc::UnboundedReceiver<Batch>,
    mut shards: Shards,
    transport: Transport,
    flow: Arc<Mutex<Flow>>,
) {
    let mut out = BytesMut::with_capacity(16 * 1024);
    while let Some(batch) = batches.recv().await {
        let quit = batch.quit;
        batch.run(&mut shards, &mut out).await;
        {
            let mut flow = flow.lock().unwrap();
            flow.queued -= 1;
            flow.apply(&transport);
        }
        if transport.write(&out).is_err() {
            return;
        }
        out.clear();
        if quit {
            break;
        }
    }
    // The client quit, sent a malformed request, or closed its side: flush
    // and close.
    transport.close();
}
