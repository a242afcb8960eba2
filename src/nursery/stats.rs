//! The recorder behind [`util::TaskStats`](crate::util::TaskStats): what a
//! task driver measures when its nursery is instrumented.
//!
//! It lives here, below `util`, because the task driver calls it. A driver
//! of an uninstrumented nursery holds `None` and pays one branch per poll.
//! An instrumented driver wraps its waker (to stamp the moment of the first
//! wake since its last poll), reads the clock twice per poll, and updates the
//! shared recorder with relaxed atomics; the recorder's lock is taken only
//! when a maximum is beaten (to record the task's name) or a rate window
//! closes.
//!
//! Times are kept as nanoseconds since the recorder's creation (`origin`),
//! plus one, so that zero can mean "none".

use crate::loom::lock;
use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::task::{Wake, Waker};
use std::time::Duration;

use tokio::time::Instant;

use crate::cancel::WakerRegistration;

/// The numbers, as [`Recorder::snapshot`] reads them.
#[derive(Clone, Debug, Default)]
pub(crate) struct Snapshot {
    pub(crate) polls: u64,
    pub(crate) slowest_poll: Duration,
    pub(crate) slowest_poll_task: Option<Cow<'static, str>>,
    pub(crate) longest_wake: Duration,
    pub(crate) longest_wake_task: Option<Cow<'static, str>>,
    pub(crate) busiest_window_polls: u64,
}

/// Shared by every task of the instrumented nurseries.
#[derive(Debug)]
pub(crate) struct Recorder {
    pub(crate) window: Duration,
    window_nanos: u64,
    origin: Instant,
    polls: AtomicU64,
    /// Slowest poll in nanoseconds, plus one (zero: no poll yet).
    slowest: AtomicU64,
    /// Longest wake-to-poll in nanoseconds, plus one (zero: none yet).
    longest_wake: AtomicU64,
    window_id: AtomicU64,
    window_polls: AtomicU64,
    busiest_window_polls: AtomicU64,
    /// The names of the record holders; also serialises window roll-overs.
    names: Mutex<Names>,
}

#[derive(Debug, Default)]
struct Names {
    slowest_poll: Option<Cow<'static, str>>,
    longest_wake: Option<Cow<'static, str>>,
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX - 1)
}

impl Recorder {
    pub(crate) fn new(window: Duration) -> Self {
        Recorder {
            window,
            window_nanos: nanos(window).max(1),
            origin: Instant::now(),
            polls: AtomicU64::new(0),
            slowest: AtomicU64::new(0),
            longest_wake: AtomicU64::new(0),
            window_id: AtomicU64::new(0),
            window_polls: AtomicU64::new(0),
            busiest_window_polls: AtomicU64::new(0),
            names: Mutex::default(),
        }
    }

    pub(crate) fn snapshot(&self) -> Snapshot {
        let names = lock(&self.names);
        let stored = |a: &AtomicU64| Duration::from_nanos(a.load(Relaxed).saturating_sub(1));
        Snapshot {
            polls: self.polls.load(Relaxed),
            slowest_poll: stored(&self.slowest),
            slowest_poll_task: names.slowest_poll.clone(),
            longest_wake: stored(&self.longest_wake),
            longest_wake_task: names.longest_wake.clone(),
            busiest_window_polls: self
                .busiest_window_polls
                .load(Relaxed)
                .max(self.window_polls.load(Relaxed)),
        }
    }

    fn since_origin(&self, at: Instant) -> u64 {
        nanos(at.saturating_duration_since(self.origin))
    }

    /// Raises `record` to `value + 1` if that beats it, naming `task`.
    #[allow(clippy::ptr_arg)] // `&Cow`: cloning a borrowed name allocates nothing
    fn beat(
        &self,
        record: &AtomicU64,
        value: u64,
        task: &Cow<'static, str>,
        name: fn(&mut Names) -> &mut Option<Cow<'static, str>>,
    ) {
        let value = value.saturating_add(1);
        if value <= record.load(Relaxed) {
            return;
        }
        let mut names = lock(&self.names);
        if value > record.load(Relaxed) {
            record.store(value, Relaxed);
            *name(&mut names) = Some(task.clone());
        }
    }

    #[allow(clippy::ptr_arg)] // as `beat`
    fn record(
        &self,
        task: &Cow<'static, str>,
        wake_latency: Option<u64>,
        started: Instant,
        ended: Instant,
    ) {
        self.polls.fetch_add(1, Relaxed);
        let took = nanos(ended.saturating_duration_since(started));
        self.beat(&self.slowest, took, task, |n| &mut n.slowest_poll);
        if let Some(latency) = wake_latency {
            self.beat(&self.longest_wake, latency, task, |n| &mut n.longest_wake);
        }
        // Polls are counted in windows of a fixed grid from `origin`; a poll
        // that starts in a later window closes the current one.
        let id = self.since_origin(started) / self.window_nanos;
        if id > self.window_id.load(Relaxed) {
            let _serialise = lock(&self.names);
            if id > self.window_id.load(Relaxed) {
                let closed = self.window_polls.swap(0, Relaxed);
                self.busiest_window_polls.fetch_max(closed, Relaxed);
                self.window_id.store(id, Relaxed);
            }
        }
        self.window_polls.fetch_add(1, Relaxed);
    }

    /// Logs the numbers through `tracing` (at `INFO`, target
    /// `trellis::task_stats`) as the instrumented `scope` ends.
    pub(crate) fn log(&self, scope: &str) {
        let s = self.snapshot();
        tracing::info!(
            target: "trellis::task_stats",
            scope,
            polls = s.polls,
            slowest_poll = ?s.slowest_poll,
            slowest_poll_task = s.slowest_poll_task.as_deref().unwrap_or("-"),
            longest_wake_to_poll = ?s.longest_wake,
            longest_wake_to_poll_task = s.longest_wake_task.as_deref().unwrap_or("-"),
            highest_polls_per_window = s.busiest_window_polls,
            window = ?self.window,
            "task stats"
        );
    }
}

std::thread_local! {
    /// The start of the instrumented poll running on this thread, if any.
    static POLL_STARTED: std::cell::Cell<Option<Instant>> = const { std::cell::Cell::new(None) };
}

/// Marks an instrumented poll as running on this thread until dropped.
pub(crate) struct InPoll(Option<Instant>);

impl InPoll {
    pub(crate) fn enter(started: Instant) -> Self {
        InPoll(POLL_STARTED.replace(Some(started)))
    }
}

impl Drop for InPoll {
    fn drop(&mut self) {
        POLL_STARTED.set(self.0);
    }
}

/// One task's instrument: the waker wrapper and the recorder.
#[derive(Debug)]
pub(crate) struct Probe {
    recorder: Arc<Recorder>,
    slot: Arc<WakeSlot>,
    waker: Waker,
    /// The runtime waker last stored in the slot: while the runtime hands
    /// the task the same one (it does, for the task's life), a poll stores
    /// nothing.
    stored: WakerRegistration,
}

#[derive(Debug)]
struct WakeSlot {
    /// The runtime's waker for the task, woken by reference (never taken),
    /// so it is stored once, not at every poll.
    waker: Mutex<Option<Waker>>,
    origin: Instant,
    /// When the task was first woken since its last poll (nanoseconds since
    /// `origin`, plus one; zero: not woken).
    woken_at: AtomicU64,
}

impl Wake for WakeSlot {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // A wake from inside an instrumented poll on this thread is stamped
        // with that poll's start: one clock read less per wake, at the price
        // of overstating the wait by at most the waker's own poll.
        let at = POLL_STARTED.get().unwrap_or_else(Instant::now);
        let now = nanos(at.saturating_duration_since(self.origin)) + 1;
        let _ = self.woken_at.compare_exchange(0, now, Relaxed, Relaxed);
        let waker = lock(&self.waker).clone();
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl Probe {
    /// A probe for a task spawned now: the spawn counts as its first wake.
    pub(crate) fn new(recorder: Arc<Recorder>) -> Box<Self> {
        let origin = recorder.origin;
        let slot = Arc::new(WakeSlot {
            waker: Mutex::new(None),
            origin,
            woken_at: AtomicU64::new(recorder.since_origin(Instant::now()) + 1),
        });
        Box::new(Probe {
            recorder,
            waker: Waker::from(Arc::clone(&slot)),
            slot,
            stored: WakerRegistration::default(),
        })
    }

    /// Before a poll starting `now`: remembers the runtime's waker, returns
    /// the wrapper to poll with and how long ago (ns) the task was woken.
    pub(crate) fn before_poll(
        &mut self,
        runtime_waker: &Waker,
        now: Instant,
    ) -> (&Waker, Option<u64>) {
        let slot = &self.slot;
        self.stored
            .update_with(runtime_waker, |w| *lock(&slot.waker) = Some(w.clone()));
        let woken_at = self.slot.woken_at.swap(0, Relaxed);
        let latency =
            (woken_at != 0).then(|| self.recorder.since_origin(now).saturating_sub(woken_at - 1));
        (&self.waker, latency)
    }

    /// After a poll that started at `started`.
    #[allow(clippy::ptr_arg)] // as `Recorder::beat`
    pub(crate) fn after_poll(
        &self,
        task: &Cow<'static, str>,
        latency: Option<u64>,
        started: Instant,
    ) {
        self.recorder.record(task, latency, started, Instant::now());
    }
}
