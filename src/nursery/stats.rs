//! The recorder behind [`util::TaskStats`](crate::util::TaskStats): what a
//! task driver measures when its nursery is instrumented.
//!
//! It lives here, below `util`, because the task driver calls it. A driver
//! of an uninstrumented nursery holds `None` and pays one branch per poll.
//! An instrumented driver wraps its waker (to stamp the moment of the first
//! wake since its last poll) and reads the clock twice per poll.
//!
//! Counting is batched per task: each task's [`Probe`] (owned by its driver,
//! so touched by one thread at a time) keeps its own poll count, slow steps
//! and rate window, and writes the shared [`Recorder`] only when it beats a
//! shared record (a relaxed load otherwise), when its rate window changes,
//! and when it ends (the probe is dropped with the task, right after its
//! last poll). So a poll writes no cache line that another worker writes.
//!
//! Times are kept as nanoseconds since the recorder's creation (`origin`),
//! plus one, so that zero can mean "none".

use crate::loom::lock;
use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{
    AtomicBool, AtomicU64, Ordering::Acquire, Ordering::Relaxed, Ordering::Release,
};
use std::sync::{Arc, Mutex};
use std::task::{Wake, Waker};
use std::time::Duration;

use tokio::time::Instant;

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

/// What the recorder flags per task name: slow steps and busy windows.
#[derive(Clone, Debug, Default)]
pub(crate) struct Flagged {
    /// Every poll longer than the slow-step threshold.
    pub(crate) slow_steps: Vec<Duration>,
    /// `(window start since the recorder's creation, polls in it)` for
    /// every window in which the task's rate reached the threshold.
    pub(crate) busy_windows: Vec<(Duration, u64)>,
}

/// The thresholds of a recorder.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Thresholds {
    pub(crate) window: Duration,
    pub(crate) slow_step: Duration,
    /// Polls per window at or above which a task's window is flagged.
    pub(crate) busy_polls: u64,
}

/// Closed rate windows kept for late flushes (a task that flushes its
/// count for a window after the grid has moved on).
const RECENT_WINDOWS: usize = 16;

/// Shared by every task of the instrumented nurseries.
#[derive(Debug)]
pub(crate) struct Recorder {
    pub(crate) thresholds: Thresholds,
    window_nanos: u64,
    slow_nanos: u64,
    origin: Instant,
    /// Slowest poll in nanoseconds, plus one (zero: no poll yet).
    slowest: AtomicU64,
    /// Longest wake-to-poll in nanoseconds, plus one (zero: none yet).
    longest_wake: AtomicU64,
    /// What tasks write as they flush, on a cache line of its own so that
    /// the fields every poll reads above stay shared between the workers.
    counts: Counts,
    /// The names of the record holders, and the closed windows.
    names: Mutex<Names>,
    /// Slow steps and busy windows, per task name.
    flagged: Mutex<FlaggedTasks>,
}

#[derive(Debug, Default)]
#[repr(align(64))]
struct Counts {
    polls: AtomicU64,
    window_id: AtomicU64,
    window_polls: AtomicU64,
}

#[derive(Debug, Default)]
struct Names {
    slowest_poll: Option<Cow<'static, str>>,
    longest_wake: Option<Cow<'static, str>>,
    /// The last closed windows: `(id, polls)`.
    recent: VecDeque<(u64, u64)>,
    busiest_closed: u64,
}

#[derive(Debug, Default)]
struct FlaggedTasks {
    /// In the order the names were first flushed (as their tasks ended).
    order: Vec<Cow<'static, str>>,
    by_name: HashMap<Cow<'static, str>, Flagged>,
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX - 1)
}

impl Recorder {
    pub(crate) fn new(thresholds: Thresholds) -> Self {
        Recorder {
            window_nanos: nanos(thresholds.window).max(1),
            slow_nanos: nanos(thresholds.slow_step),
            thresholds,
            origin: Instant::now(),
            slowest: AtomicU64::new(0),
            longest_wake: AtomicU64::new(0),
            counts: Counts::default(),
            names: Mutex::default(),
            flagged: Mutex::default(),
        }
    }

    /// The numbers of the tasks that have ended, and of the running ones up
    /// to their last flush.
    pub(crate) fn snapshot(&self) -> Snapshot {
        let names = lock(&self.names);
        let stored = |a: &AtomicU64| Duration::from_nanos(a.load(Relaxed).saturating_sub(1));
        Snapshot {
            polls: self.counts.polls.load(Relaxed),
            slowest_poll: stored(&self.slowest),
            slowest_poll_task: names.slowest_poll.clone(),
            longest_wake: stored(&self.longest_wake),
            longest_wake_task: names.longest_wake.clone(),
            busiest_window_polls: names
                .busiest_closed
                .max(self.counts.window_polls.load(Relaxed)),
        }
    }

    /// The flagged task names, in the order they were first flushed.
    pub(crate) fn flagged(&self) -> Vec<(String, Flagged)> {
        let flagged = lock(&self.flagged);
        flagged
            .order
            .iter()
            .map(|name| (name.to_string(), flagged.by_name[name].clone()))
            .collect()
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

    /// Adds a task's `polls` in window `id` to the shared grid.
    fn add_window(&self, id: u64, polls: u64) {
        if polls == 0 {
            return;
        }
        self.counts.polls.fetch_add(polls, Relaxed);
        if id == self.counts.window_id.load(Relaxed) {
            self.counts.window_polls.fetch_add(polls, Relaxed);
            return;
        }
        let mut names = lock(&self.names);
        let current = self.counts.window_id.load(Relaxed);
        if id > current {
            let closed = self.counts.window_polls.swap(polls, Relaxed);
            self.counts.window_id.store(id, Relaxed);
            names.busiest_closed = names.busiest_closed.max(closed);
            if names.recent.len() == RECENT_WINDOWS {
                names.recent.pop_front();
            }
            names.recent.push_back((current, closed));
        } else if id == current {
            self.counts.window_polls.fetch_add(polls, Relaxed);
        } else {
            // A late flush for a closed window.
            let total = match names.recent.iter_mut().find(|(w, _)| *w == id) {
                Some((_, count)) => {
                    *count += polls;
                    *count
                }
                None => polls, // older than the ones kept: counted alone
            };
            names.busiest_closed = names.busiest_closed.max(total);
        }
    }

    #[allow(clippy::ptr_arg)] // as `beat`
    fn add_flagged(&self, task: &Cow<'static, str>, local: Flagged) {
        let mut flagged = lock(&self.flagged);
        let FlaggedTasks { order, by_name } = &mut *flagged;
        let entry = by_name.entry(task.clone()).or_insert_with(|| {
            order.push(task.clone());
            Flagged::default()
        });
        entry.slow_steps.extend(local.slow_steps);
        entry.busy_windows.extend(local.busy_windows);
    }

    /// Logs the numbers through `tracing` (at `INFO`, target
    /// `trellis::task_stats`) as the instrumented `scope` ends, then the slow
    /// steps and the busy windows per task, as trio-util prints them.
    pub(crate) fn log(&self, scope: &str) {
        let s = self.snapshot();
        let t = self.thresholds;
        tracing::info!(
            target: "trellis::task_stats",
            scope,
            polls = s.polls,
            slowest_poll = ?s.slowest_poll,
            slowest_poll_task = s.slowest_poll_task.as_deref().unwrap_or("-"),
            longest_wake_to_poll = ?s.longest_wake,
            longest_wake_to_poll_task = s.longest_wake_task.as_deref().unwrap_or("-"),
            highest_polls_per_window = s.busiest_window_polls,
            window = ?t.window,
            "task stats"
        );
        let flagged = self.flagged();
        let mut slow: Vec<_> = flagged
            .iter()
            .filter(|(_, f)| !f.slow_steps.is_empty())
            .map(|(name, f)| {
                let mut steps = f.slow_steps.clone();
                steps.sort_unstable_by(|a, b| b.cmp(a));
                (name, steps)
            })
            .collect();
        if !slow.is_empty() {
            slow.sort_by(|a, b| b.1[0].cmp(&a.1[0]));
            let mut text = format!("slow task steps (> {:?}):", t.slow_step);
            for (name, steps) in slow {
                let steps: Vec<String> = steps.iter().map(|d| format!("{d:?}")).collect();
                text.push_str(&format!("\n  {name}: {}", steps.join(", ")));
            }
            tracing::info!(target: "trellis::task_stats", scope, "{text}");
        }
        let secs = t.window.as_secs_f64();
        let mut busy: Vec<_> = flagged
            .iter()
            .filter(|(_, f)| !f.busy_windows.is_empty())
            .map(|(name, f)| {
                let mut windows = f.busy_windows.clone();
                windows.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
                (name, windows)
            })
            .collect();
        if !busy.is_empty() {
            busy.sort_by(|a, b| b.1[0].1.cmp(&a.1[0].1));
            let mut text = format!(
                "high task schedule rates (>= {:.0} Hz, {:?} windows):",
                t.busy_polls as f64 / secs,
                t.window
            );
            for (name, windows) in busy {
                let windows: Vec<String> = windows
                    .iter()
                    .map(|(start, polls)| {
                        format!(
                            "{:.0} Hz at +{:.2}s",
                            *polls as f64 / secs,
                            start.as_secs_f64()
                        )
                    })
                    .collect();
                text.push_str(&format!("\n  {name}: {}", windows.join(", ")));
            }
            tracing::info!(target: "trellis::task_stats", scope, "{text}");
        }
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

/// One task's instrument: the waker wrapper and the task's own counts,
/// flushed to the recorder when it is dropped.
///
/// Kept small (64 bytes: a poll touches about one cache line of it, and
/// one of the [`WakeSlot`]); an over-aligned allocation was tried and cost
/// more in `malloc` than it saved.
#[derive(Debug)]
pub(crate) struct Probe {
    recorder: Arc<Recorder>,
    /// The wake slot and the waker wrapping it, made at the first poll.
    wake: Option<(Arc<WakeSlot>, Waker)>,
    /// When the task was spawned (ns since `origin`, plus one; zero once
    /// polled): the spawn counts as its first wake.
    spawned_at: u64,
    /// The rate window this task's polls are being counted in.
    window_id: u64,
    window_polls: u64,
    /// Slow steps, busy windows and the task's name: rarely there.
    cold: Option<Box<Cold>>,
}

#[derive(Debug, Default)]
struct Cold {
    flagged: Flagged,
    name: Option<Cow<'static, str>>,
}

/// What a wake touches: one cache line (with the `Arc` counts in front).
#[derive(Debug)]
#[repr(C)]
struct WakeSlot {
    /// When the task was first woken since its last poll (nanoseconds since
    /// `origin`, plus one; zero: not woken).
    woken_at: AtomicU64,
    /// The runtime's waker for the task, from its first poll, woken by
    /// reference: a wake takes no lock and clones nothing.
    first: Waker,
    /// Set if the runtime ever hands the task another waker (never, for a
    /// tokio task): then `other` is the one to wake.
    moved: AtomicBool,
    origin: Instant,
    other: Mutex<Option<Waker>>,
}

impl Wake for WakeSlot {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // Stamp only the first wake since the last poll: the load avoids a
        // clock read for the others.
        if self.woken_at.load(Relaxed) == 0 {
            // A wake from inside an instrumented poll on this thread is
            // stamped with that poll's start: one clock read less per wake,
            // at the price of overstating the wait by at most the waker's
            // own poll.
            let at = POLL_STARTED.get().unwrap_or_else(Instant::now);
            let now = nanos(at.saturating_duration_since(self.origin)) + 1;
            let _ = self.woken_at.compare_exchange(0, now, Relaxed, Relaxed);
        }
        if self.moved.load(Acquire) {
            if let Some(waker) = lock(&self.other).as_ref() {
                waker.wake_by_ref();
            }
        } else {
            self.first.wake_by_ref();
        }
    }
}

impl Probe {
    /// A probe for a task spawned now: the spawn counts as its first wake.
    pub(crate) fn new(recorder: Arc<Recorder>) -> Box<Self> {
        let now = recorder.since_origin(Instant::now());
        Box::new(Probe {
            window_id: now / recorder.window_nanos,
            recorder,
            wake: None,
            spawned_at: now + 1,
            window_polls: 0,
            cold: None,
        })
    }

    /// Before a poll starting `now`: remembers the runtime's waker, returns
    /// the wrapper to poll with and how long ago (ns) the task was woken.
    pub(crate) fn before_poll(
        &mut self,
        runtime_waker: &Waker,
        now: Instant,
    ) -> (&Waker, Option<u64>) {
        let recorder = &*self.recorder;
        let since_origin = recorder.since_origin(now);
        if self.wake.is_none() {
            // The first poll: the wake slot is made here, on the thread that
            // polls, rather than at the spawn (a cross-thread allocation and
            // free cost more than the rest of the probe).
            let slot = Arc::new(WakeSlot {
                woken_at: AtomicU64::new(0),
                first: runtime_waker.clone(),
                moved: AtomicBool::new(false),
                origin: recorder.origin,
                other: Mutex::new(None),
            });
            let waker = Waker::from(Arc::clone(&slot));
            // The spawn counts as the first wake.
            let spawned = std::mem::take(&mut self.spawned_at);
            let latency = since_origin.saturating_sub(spawned.saturating_sub(1));
            let (_, waker) = self.wake.insert((slot, waker));
            return (&*waker, Some(latency));
        }
        let Some((slot, waker)) = &self.wake else {
            unreachable!("made above");
        };
        let slot = &**slot;
        let same = if slot.moved.load(Relaxed) {
            lock(&slot.other)
                .as_ref()
                .is_some_and(|w| w.will_wake(runtime_waker))
        } else {
            slot.first.will_wake(runtime_waker)
        };
        if !same {
            *lock(&slot.other) = Some(runtime_waker.clone());
            slot.moved.store(true, Release);
        }
        // Most polls follow a wake; the swap is skipped when none came.
        let woken_at = match slot.woken_at.load(Relaxed) {
            0 => 0,
            _ => slot.woken_at.swap(0, Relaxed),
        };
        let latency = (woken_at != 0).then(|| since_origin.saturating_sub(woken_at - 1));
        (waker, latency)
    }

    /// After a poll that started at `started`.
    #[allow(clippy::ptr_arg)] // as `Recorder::beat`
    pub(crate) fn after_poll(
        &mut self,
        task: &Cow<'static, str>,
        latency: Option<u64>,
        started: Instant,
    ) {
        let Probe {
            recorder,
            window_id,
            window_polls,
            cold,
            ..
        } = self;
        let recorder = &**recorder;
        let start = recorder.since_origin(started);
        let took = recorder.since_origin(Instant::now()).saturating_sub(start);
        // The shared records are read (a relaxed load of a line that is
        // rarely written) and written only when beaten.
        recorder.beat(&recorder.slowest, took, task, |n| &mut n.slowest_poll);
        if took > recorder.slow_nanos {
            let cold = cold.get_or_insert_with(Box::default);
            cold.flagged.slow_steps.push(Duration::from_nanos(took));
            keep_name(&mut cold.name, task);
        }
        if let Some(latency) = latency {
            recorder.beat(&recorder.longest_wake, latency, task, |n| {
                &mut n.longest_wake
            });
        }
        // Polls are counted in windows of a fixed grid from `origin`; a poll
        // in a later window closes this task's current one.
        let id = start / recorder.window_nanos;
        if id != *window_id {
            close_window(recorder, *window_id, window_polls, cold);
            *window_id = id;
        }
        *window_polls += 1;
        if *window_polls == recorder.thresholds.busy_polls {
            // This window will be flagged.
            keep_name(&mut cold.get_or_insert_with(Box::default).name, task);
        }
    }
}

#[allow(clippy::ptr_arg)] // as `Recorder::beat`
fn keep_name(name: &mut Option<Cow<'static, str>>, task: &Cow<'static, str>) {
    if name.is_none() {
        *name = Some(task.clone());
    }
}

/// Flushes a task's count for window `id` and flags the window if it was
/// busy.
fn close_window(recorder: &Recorder, id: u64, polls: &mut u64, cold: &mut Option<Box<Cold>>) {
    let polls = std::mem::take(polls);
    if polls > 0 && polls >= recorder.thresholds.busy_polls {
        let start = Duration::from_nanos(id.saturating_mul(recorder.window_nanos));
        let cold = cold.get_or_insert_with(Box::default);
        cold.flagged.busy_windows.push((start, polls));
    }
    recorder.add_window(id, polls);
}

impl Drop for Probe {
    fn drop(&mut self) {
        // The task has ended (or was dropped): its last window counts as it
        // stands (a partial window is flagged only if it already reached the
        // threshold).
        close_window(
            &self.recorder,
            self.window_id,
            &mut self.window_polls,
            &mut self.cold,
        );
        if let Some(cold) = self.cold.take() {
            let Cold { flagged, name } = *cold;
            if !(flagged.slow_steps.is_empty() && flagged.busy_windows.is_empty()) {
                let name = name.unwrap_or(Cow::Borrowed("task"));
                self.recorder.add_flagged(&name, flagged);
            }
        }
    }
}
