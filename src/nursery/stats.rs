//! The recorder behind [`util::TaskStats`](crate::util::TaskStats): what a
//! task driver measures when its nursery is instrumented.
//!
//! It lives here, below `util`, because the task driver calls it. A driver
//! of an uninstrumented nursery holds `None` and pays one branch per poll.
//! An instrumented driver wraps its waker (to stamp the moment of the wake),
//! reads the clock before and after each poll, and takes the recorder's lock
//! once per poll.

use std::borrow::Cow;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Wake, Waker};
use std::time::Duration;

use tokio::time::Instant;

/// The numbers, as the recorder keeps them.
#[derive(Clone, Debug, Default)]
pub(crate) struct Snapshot {
    pub(crate) polls: u64,
    pub(crate) slowest_poll: Duration,
    pub(crate) slowest_poll_task: Option<Cow<'static, str>>,
    pub(crate) longest_wake: Duration,
    pub(crate) longest_wake_task: Option<Cow<'static, str>>,
    pub(crate) window_start: Option<Instant>,
    pub(crate) window_polls: u64,
    pub(crate) busiest_window_polls: u64,
}

/// Shared by every task of the instrumented nurseries.
#[derive(Debug)]
pub(crate) struct Recorder {
    pub(crate) window: Duration,
    state: Mutex<Snapshot>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Recorder {
    pub(crate) fn new(window: Duration) -> Self {
        Recorder {
            window,
            state: Mutex::default(),
        }
    }

    pub(crate) fn snapshot(&self) -> Snapshot {
        lock(&self.state).clone()
    }

    // `&Cow`, not `&str`: a new maximum clones the name, which for the
    // usual `Cow::Borrowed` names costs no allocation.
    #[allow(clippy::ptr_arg)]
    fn record(
        &self,
        task: &Cow<'static, str>,
        wake_latency: Option<Duration>,
        started: Instant,
        ended: Instant,
    ) {
        let mut s = lock(&self.state);
        s.polls += 1;
        let took = ended.saturating_duration_since(started);
        if took > s.slowest_poll || s.slowest_poll_task.is_none() {
            s.slowest_poll = took;
            s.slowest_poll_task = Some(task.clone());
        }
        if let Some(latency) = wake_latency {
            if latency > s.longest_wake || s.longest_wake_task.is_none() {
                s.longest_wake = latency;
                s.longest_wake_task = Some(task.clone());
            }
        }
        match s.window_start {
            Some(start) if started.saturating_duration_since(start) < self.window => {}
            _ => {
                s.busiest_window_polls = s.busiest_window_polls.max(s.window_polls);
                s.window_start = Some(started);
                s.window_polls = 0;
            }
        }
        s.window_polls += 1;
    }
}

/// One task's instrument: the waker wrapper and the recorder.
#[derive(Debug)]
pub(crate) struct Probe {
    recorder: Arc<Recorder>,
    slot: Arc<WakeSlot>,
    waker: Waker,
}

#[derive(Debug)]
struct WakeSlot {
    state: Mutex<WakeState>,
}

#[derive(Debug)]
struct WakeState {
    /// The runtime's waker for the task.
    waker: Option<Waker>,
    /// When the task was first woken since its last poll.
    woken_at: Option<Instant>,
}

impl Wake for WakeSlot {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let waker = {
            let mut state = lock(&self.state);
            state.woken_at.get_or_insert_with(Instant::now);
            state.waker.clone()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl Probe {
    /// A probe for a task spawned now: the spawn counts as its first wake.
    pub(crate) fn new(recorder: Arc<Recorder>) -> Box<Self> {
        let slot = Arc::new(WakeSlot {
            state: Mutex::new(WakeState {
                waker: None,
                woken_at: Some(Instant::now()),
            }),
        });
        Box::new(Probe {
            recorder,
            waker: Waker::from(Arc::clone(&slot)),
            slot,
        })
    }

    /// Before a poll: remembers the runtime's waker, returns the wrapper to
    /// poll with and how long ago the task was woken.
    pub(crate) fn before_poll(&self, runtime_waker: &Waker) -> (&Waker, Option<Duration>) {
        let mut state = lock(&self.slot.state);
        match &state.waker {
            Some(old) if old.will_wake(runtime_waker) => {}
            _ => state.waker = Some(runtime_waker.clone()),
        }
        let latency = state
            .woken_at
            .take()
            .map(|at| Instant::now().saturating_duration_since(at));
        (&self.waker, latency)
    }

    /// After a poll that started at `started`.
    #[allow(clippy::ptr_arg)] // as `Recorder::record`
    pub(crate) fn after_poll(
        &self,
        task: &Cow<'static, str>,
        latency: Option<Duration>,
        started: Instant,
    ) {
        self.recorder.record(task, latency, started, Instant::now());
    }
}

impl Recorder {
    /// Logs the numbers through `tracing` (at `INFO`, target
    /// `trellis::task_stats`) as the instrumented `scope` ends.
    pub(crate) fn log(&self, scope: &str) {
        let s = self.snapshot();
        let busiest = s.busiest_window_polls.max(s.window_polls);
        tracing::info!(
            target: "trellis::task_stats",
            scope,
            polls = s.polls,
            slowest_poll = ?s.slowest_poll,
            slowest_poll_task = s.slowest_poll_task.as_deref().unwrap_or("-"),
            longest_wake_to_poll = ?s.longest_wake,
            longest_wake_to_poll_task = s.longest_wake_task.as_deref().unwrap_or("-"),
            highest_polls_per_window = busiest,
            window = ?self.window,
            "task stats"
        );
    }
}
