//! The options of nurseries and of the tasks spawned in them:
//! [`NurseryOptions`] for [`nursery_with`](crate::nursery_with),
//! [`SpawnOptions`] for [`Nursery::spawn_with`](crate::Nursery::spawn_with)(crate::Nursery::spawn_with)
//! and [`Nursery::start_with`](crate::Nursery::start_with).

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::stats::Recorder;

/// Per-task options (traio's `spawn(bubble=, master=, awaited=)`), for
/// [`Nursery::spawn_with`](crate::Nursery::spawn_with) and [`Nursery::start_with`](crate::Nursery::start_with).
///
/// | option | default | meaning |
/// |---|---|---|
/// | [`name`](Self::name) | the future's type name | shown in errors, logs and the task's `tracing` span |
/// | [`bubble`](Self::bubble) | `true` | a failure cancels the nursery and is reported; `false`: only logged |
/// | [`master`](Self::master) | `false` | when this task ends, the nursery is cancelled |
/// | [`awaited`](Self::awaited) | `true` | the nursery waits for it; `false`: cancelled once the body and all awaited tasks are done |
/// | [`cancel_grace`](Self::cancel_grace) | none | on cancellation, ask it to shut down first and give it this long |
#[derive(Clone, Debug)]
#[must_use]
pub struct SpawnOptions {
    pub(super) name: Option<Cow<'static, str>>,
    pub(super) bubble: bool,
    pub(super) master: bool,
    pub(super) awaited: bool,
    pub(super) cancel_grace: Option<Duration>,
}

impl Default for SpawnOptions {
    fn default() -> Self {
        SpawnOptions {
            name: None,
            bubble: true,
            master: false,
            awaited: true,
            cancel_grace: None,
        }
    }
}

impl SpawnOptions {
    /// The default options (see the table above).
    pub fn new() -> Self {
        Self::default()
    }

    /// Names the task.
    pub fn name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Whether a failure of the task propagates to the nursery (default
    /// `true`). With `false`, the failure is logged as a `tracing` error event
    /// and the nursery carries on.
    pub fn bubble(mut self, bubble: bool) -> Self {
        self.bubble = bubble;
        self
    }

    /// Makes the task the nursery's master: when it ends, in any way, the
    /// nursery is cancelled (default `false`).
    pub fn master(mut self) -> Self {
        self.master = true;
        self
    }

    /// Whether the nursery waits for this task (default `true`). A task with
    /// `awaited(false)` is a background task: once the body and every awaited
    /// task are done, it is cancelled; its cancellation is not a failure.
    pub fn awaited(mut self, awaited: bool) -> Self {
        self.awaited = awaited;
        self
    }

    /// Gives the task a grace period when it is cancelled (traio's
    /// `cancel_timeout`): a cancellation of its nursery (or of its handle)
    /// first *asks* it to stop — its [`wait_shutdown`](crate::wait_shutdown)
    /// completes, so it can flush and say goodbye — and cancels it only
    /// `grace` later. A task that overstays its grace is dropped, and its
    /// nursery reports the failure "could not cancel task `<name>` within
    /// `<grace>`": never silently. Default: none (cancelled at once).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use std::time::Duration;
    /// use trellis::{nursery, wait_shutdown, SpawnOptions};
    ///
    /// let said = nursery(|n| async move {
    ///     let polite = n.spawn_with(
    ///         SpawnOptions::new().cancel_grace(Duration::from_secs(5)),
    ///         async {
    ///             wait_shutdown().await;
    ///             Ok::<_, std::io::Error>("goodbye") // async cleanup fits in the grace
    ///         },
    ///     );
    ///     polite.cancel();
    ///     Ok::<_, trellis::BoxError>(polite.await?)
    /// })
    /// .await
    /// .unwrap();
    /// assert_eq!(said, "goodbye");
    /// # }
    /// ```
    pub fn cancel_grace(mut self, grace: Duration) -> Self {
        self.cancel_grace = Some(grace);
        self
    }
}

/// Options of a whole nursery, for [`nursery_with`](crate::nursery_with).
///
/// | option | default |
/// |---|---|
/// | [`name`](Self::name) | `"nursery"` |
/// | [`timeout`](Self::timeout) / [`deadline`](Self::deadline) | none |
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct NurseryOptions {
    pub(super) name: Option<Cow<'static, str>>,
    pub(super) deadline: Option<Instant>,
    pub(super) timeout: Option<Duration>,
    /// Set by `util::TaskStats::instrument`.
    pub(super) recorder: Option<Arc<Recorder>>,
}

impl NurseryOptions {
    /// No name, no deadline.
    pub fn new() -> Self {
        Self::default()
    }

    /// Names the nursery (its body's failures are reported under this name).
    pub fn name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Cancels the nursery `timeout` after it starts (is first polled),
    /// reporting [`NurseryError::TimedOut`](crate::NurseryError::TimedOut) (traio's `Scope(timeout=…)`).
    /// Like every relative deadline in Trellis, the clock starts when the
    /// nursery does, not when the options are built.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Cancels the nursery at `deadline`, reporting [`NurseryError::TimedOut`](crate::NurseryError::TimedOut).
    pub fn deadline(mut self, deadline: Instant) -> Self {
        self.deadline = Some(deadline);
        self
    }

    pub(crate) fn with_recorder(mut self, recorder: Arc<Recorder>) -> Self {
        self.recorder = Some(recorder);
        self
    }
}
