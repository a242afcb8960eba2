//! The options of nurseries and of the tasks spawned in them:
//! [`NurseryOptions`] for [`nursery_with`](crate::nursery_with),
//! [`SpawnOptions`] for [`Nursery::spawn_with`](crate::Nursery::spawn_with)
//! and [`Nursery::start_with`](crate::Nursery::start_with).

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::stats::Recorder;

/// Per-task options (traio's `spawn(bubble=, master=, awaited=)`), for
/// [`Nursery::spawn_with`] and [`Nursery::start_with`].
///
/// | option | default | meaning |
/// |---|---|---|
/// | [`name`](Self::name) | the future's type name | shown in errors, logs and the task's `tracing` span |
/// | [`bubble`](Self::bubble) | `true` | a failure cancels the nursery and is reported; `false`: only logged |
/// | [`master`](Self::master) | `false` | when this task ends, the nursery is cancelled |
/// | [`awaited`](Self::awaited) | `true` | the nursery waits for it; `false`: cancelled once the body and all awaited tasks are done |
#[derive(Clone, Debug)]
#[must_use]
pub struct SpawnOptions {
    pub(super) name: Option<Cow<'static, str>>,
    pub(super) bubble: bool,
    pub(super) master: bool,
    pub(super) awaited: bool,
}

impl Default for SpawnOptions {
    fn default() -> Self {
        SpawnOptions {
            name: None,
            bubble: true,
            master: false,
            awaited: true,
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
}

/// Options of a whole nursery, for [`nursery_with`].
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
    /// reporting [`NurseryError::TimedOut`] (traio's `Scope(timeout=…)`).
    /// Like every relative deadline in Trellis, the clock starts when the
    /// nursery does, not when the options are built.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Cancels the nursery at `deadline`, reporting [`NurseryError::TimedOut`].
    pub fn deadline(mut self, deadline: Instant) -> Self {
        self.deadline = Some(deadline);
        self
    }

    pub(crate) fn with_recorder(mut self, recorder: Arc<Recorder>) -> Self {
        self.recorder = Some(recorder);
        self
    }
}
