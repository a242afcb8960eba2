//! [`Event`]: a flag that is set once and that tasks can wait for.
//!
//! Built on [`tokio_util::sync::CancellationToken`], whose "cancelled" state is
//! exactly a set-once event with any number of waiters; no synchronisation is
//! written here.

use std::fmt;

use tokio_util::sync::CancellationToken;

/// A flag that starts unset, is set once, and wakes every task waiting for
/// it (Trio's `Event`).
///
/// [`set`](Self::set) is idempotent and never waits; [`wait`](Self::wait)
/// returns at once if the event is already set. An event cannot be reset:
/// make a new one instead (Trio's reasoning: a reset races with the waiters
/// it should have woken). An `Event` is a cheap handle: clones share the same
/// flag, so give one to every task that sets or waits.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use trellis::sync::Event;
///
/// let started = Event::new();
/// let task = tokio::spawn({
///     let started = started.clone();
///     async move {
///         started.set();
///         "running"
///     }
/// });
/// started.wait().await;
/// assert!(started.is_set());
/// assert_eq!(task.await.unwrap(), "running");
/// # }
/// ```
#[derive(Clone, Default)]
pub struct Event {
    token: CancellationToken,
}

impl Event {
    /// Creates an unset event.
    ///
    /// # Examples
    ///
    /// ```
    /// let event = trellis::sync::Event::new();
    /// assert!(!event.is_set());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the event, waking every task waiting for it.
    ///
    /// Setting an event that is already set does nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// let event = trellis::sync::Event::new();
    /// event.set();
    /// event.set();
    /// assert!(event.is_set());
    /// ```
    pub fn set(&self) {
        self.token.cancel();
    }

    /// Returns whether the event has been set.
    ///
    /// # Examples
    ///
    /// ```
    /// let event = trellis::sync::Event::new();
    /// let clone = event.clone();
    /// clone.set();
    /// assert!(event.is_set());
    /// ```
    pub fn is_set(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Waits until the event is set; returns at once if it already is.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use std::time::Duration;
    /// use trellis::sync::Event;
    ///
    /// let event = Event::new();
    /// // Not set yet: waiting times out.
    /// let waited = tokio::time::timeout(Duration::from_secs(1), event.wait()).await;
    /// assert!(waited.is_err());
    /// event.set();
    /// event.wait().await;
    /// # }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future has no effect on the event or on
    /// other waiters.
    pub async fn wait(&self) {
        self.token.cancelled().await;
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("is_set", &self.is_set())
            .finish()
    }
}
