//! Repeated events: wake one listener loop again and again
//! ([`UnqueuedRepeatedEvent`], [`MailboxRepeatedEvent`]).
//!
//! Unlike [`sync::Event`](crate::sync::Event), which is set once, these are
//! set any number of times, and one listener iterates them as a
//! [`Stream`]. They differ in what happens to a `set()` while the listener is
//! busy in its loop body:
//!
//! | type | `set()` while the listener is busy | use it for |
//! |---|---|---|
//! | [`UnqueuedRepeatedEvent`] | dropped | "something happened; react if you are looking" |
//! | [`MailboxRepeatedEvent`] | kept, at most one (later ones merge into it) | "state changed; look again" — nothing is missed, bursts collapse |
//!
//! For values rather than signals use a [`channel`](crate::channel()) or an
//! [`AsyncValue`](super::AsyncValue).

use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use futures_core::Stream;

use super::UtilError;

struct Inner {
    state: Mutex<State>,
    /// `true` for the mailbox flavour: a `set()` is kept while nobody waits.
    queued: bool,
}

#[derive(Default)]
struct State {
    listening: bool,
    /// The listener is parked in `poll_next`, not busy in its loop body.
    waiting: bool,
    pending: bool,
    waker: Option<Waker>,
}

impl Inner {
    fn new(queued: bool) -> Arc<Self> {
        Arc::new(Inner {
            state: Mutex::default(),
            queued,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        crate::loom::lock(&self.state)
    }

    fn set(&self) {
        let waker = {
            let mut state = self.lock();
            if !(self.queued || state.waiting) {
                return; // unqueued and nobody looking: dropped
            }
            state.pending = true;
            state.waiting = false;
            state.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    fn events(self: &Arc<Self>) -> Result<RepeatedEvents, UtilError> {
        let mut state = self.lock();
        if state.listening {
            return Err(UtilError::AlreadyListening);
        }
        state.listening = true;
        Ok(RepeatedEvents {
            inner: Arc::clone(self),
        })
    }
}

/// A repeated event whose `set()` is dropped unless the listener is waiting
/// for it (trio-util's `UnqueuedRepeatedEvent`).
///
/// One listener at a time iterates [`events`](Self::events); any task may
/// [`set`](Self::set). A `set()` wakes the listener if it is waiting in
/// `next()`; while it is busy in its loop body (or before it first waits),
/// a `set()` is lost. Several `set()`s before the listener runs again wake
/// it once. Clones share the event.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use futures_util::StreamExt as _;
/// use trellis::util::UnqueuedRepeatedEvent;
///
/// let event = UnqueuedRepeatedEvent::new();
/// event.set(); // nobody listening: dropped
/// let mut events = event.events().unwrap();
/// let listener = tokio::spawn(async move { events.next().await });
/// tokio::task::yield_now().await; // the listener waits now
/// event.set();
/// assert_eq!(listener.await.unwrap(), Some(()));
/// # }
/// ```
#[derive(Clone)]
pub struct UnqueuedRepeatedEvent {
    inner: Arc<Inner>,
}

impl Default for UnqueuedRepeatedEvent {
    fn default() -> Self {
        UnqueuedRepeatedEvent {
            inner: Inner::new(false),
        }
    }
}

impl fmt::Debug for UnqueuedRepeatedEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnqueuedRepeatedEvent")
            .field("listening", &self.inner.lock().listening)
            .finish()
    }
}

impl UnqueuedRepeatedEvent {
    /// A new event with no listener.
    pub fn new() -> Self {
        Self::default()
    }

    /// Wakes the listener if it is waiting; otherwise does nothing.
    pub fn set(&self) {
        self.inner.set();
    }

    /// The stream of events, for the one listener.
    ///
    /// # Errors
    ///
    /// [`UtilError::AlreadyListening`] while another [`RepeatedEvents`] of
    /// this event is alive.
    pub fn events(&self) -> Result<RepeatedEvents, UtilError> {
        self.inner.events()
    }
}

/// A repeated event that keeps at most one `set()` for its listener
/// (trio-util's `MailboxRepeatedEvent`).
///
/// Like [`UnqueuedRepeatedEvent`], but a `set()` while the listener is busy
/// (or before it first listens) is kept: its next `next()` returns at once.
/// Any number of `set()`s in that time count as one.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use futures_util::{FutureExt as _, StreamExt as _};
/// use trellis::util::MailboxRepeatedEvent;
///
/// let event = MailboxRepeatedEvent::new();
/// let mut events = event.events().unwrap();
/// event.set();
/// event.set(); // merges with the first
/// assert_eq!(events.next().await, Some(()));
/// assert_eq!(events.next().now_or_never(), None); // nothing more queued
/// # }
/// ```
#[derive(Clone)]
pub struct MailboxRepeatedEvent {
    inner: Arc<Inner>,
}

impl Default for MailboxRepeatedEvent {
    fn default() -> Self {
        MailboxRepeatedEvent {
            inner: Inner::new(true),
        }
    }
}

impl fmt::Debug for MailboxRepeatedEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.inner.lock();
        f.debug_struct("MailboxRepeatedEvent")
            .field("listening", &state.listening)
            .field("pending", &state.pending)
            .finish()
    }
}

impl MailboxRepeatedEvent {
    /// A new event with no listener and nothing queued.
    pub fn new() -> Self {
        Self::default()
    }

    /// Queues one event for the listener (merging with one already queued)
    /// and wakes it if it waits.
    pub fn set(&self) {
        self.inner.set();
    }

    /// The stream of events, for the one listener.
    ///
    /// # Errors
    ///
    /// [`UtilError::AlreadyListening`] while another [`RepeatedEvents`] of
    /// this event is alive.
    pub fn events(&self) -> Result<RepeatedEvents, UtilError> {
        self.inner.events()
    }
}

/// The listener's stream of a repeated event: yields `()` per event, never
/// ends. Dropping it lets another listener in.
///
/// # Cancel safety
///
/// `next()` is cancel safe for [`MailboxRepeatedEvent`] (a queued event stays
/// queued). For [`UnqueuedRepeatedEvent`], an event that arrives while a
/// dropped `next()` was the one waiting is kept for the next `next()`.
#[must_use = "streams do nothing unless polled"]
pub struct RepeatedEvents {
    inner: Arc<Inner>,
}

impl fmt::Debug for RepeatedEvents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RepeatedEvents")
            .field("queued", &self.inner.queued)
            .finish()
    }
}

impl Stream for RepeatedEvents {
    type Item = ();

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<()>> {
        let mut state = self.inner.lock();
        if state.pending {
            state.pending = false;
            state.waiting = false;
            return Poll::Ready(Some(()));
        }
        state.waiting = true;
        match &state.waker {
            Some(old) if old.will_wake(cx.waker()) => {}
            _ => state.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl Drop for RepeatedEvents {
    fn drop(&mut self) {
        let mut state = self.inner.lock();
        state.listening = false;
        state.waiting = false;
        state.waker = None;
        if !self.inner.queued {
            state.pending = false;
        }
    }
}
