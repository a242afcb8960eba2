//! Helpers shared by the test files: an event log, a drop marker, a
//! `tracing` capture, and a slow gen_server. A test file uses them with
//! `mod support;`.
//!
//! Each test file is its own crate and uses only some of these, hence the
//! `dead_code` allowance.
#![allow(dead_code)]

use std::io;
use std::sync::{Arc, Mutex};

use tracing::subscriber::DefaultGuard;

/// A shared, ordered list of events: clone it into tasks, `push` from them,
/// read it back with `entries`.
#[derive(Clone, Debug, Default)]
pub(crate) struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    /// Appends one event.
    pub(crate) fn push(&self, entry: impl Into<String>) {
        self.0.lock().unwrap().push(entry.into());
    }

    /// Every event so far, in order.
    pub(crate) fn entries(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

/// Logs `dropped <name>` when dropped: marks where a task was cancelled.
pub(crate) struct OnDrop(pub(crate) Log, pub(crate) &'static str);

impl Drop for OnDrop {
    fn drop(&mut self) {
        self.0.push(format!("dropped {}", self.1));
    }
}

/// What a [`capture_logs`] subscriber wrote, as text.
#[derive(Clone, Debug, Default)]
pub(crate) struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    /// Everything written so far.
    pub(crate) fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Installs a plain-text `tracing` subscriber as this thread's default until
/// the guard drops, and returns what it writes.
///
/// On a current-thread runtime every task logs on this thread. Keep such a
/// test alone in its file: `tracing` caches each callsite's interest for the
/// whole process, computed by whichever thread reaches it first, so a
/// sibling test without a subscriber could make this one miss events.
pub(crate) fn capture_logs() -> (Captured, DefaultGuard) {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    (captured, tracing::subscriber::set_default(subscriber))
}

/// A gen_server whose every call sleeps the asked milliseconds (on tokio's
/// clock: paused in the tests) and answers them.
pub(crate) struct Slow;

impl trellis::gen_server::GenServer for Slow {
    type Arg = ();
    type Call = u64;
    type Reply = u64;
    type Cast = ();
    type Info = ();

    async fn init(
        &mut self,
        (): (),
        _: &mut trellis::gen_server::Context<Self>,
    ) -> Result<trellis::gen_server::Init, trellis::BoxError> {
        Ok(trellis::gen_server::Init::Ready)
    }

    async fn handle_call(
        &mut self,
        millis: u64,
        _: &mut trellis::gen_server::Context<Self>,
    ) -> Result<trellis::gen_server::Response<u64>, trellis::BoxError> {
        tokio::time::sleep(std::time::Duration::from_millis(millis)).await;
        Ok(trellis::gen_server::Response::Reply(millis))
    }
}
