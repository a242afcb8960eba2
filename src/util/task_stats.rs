//! [`TaskStats`]: an opt-in instrument that finds slow polls, long waits
//! between a wake and the poll it asks for, and scheduling storms among the
//! tasks of a nursery (trio-util's `TaskStats` instrument).
//!
//! The measuring happens in the nursery's task driver (the private
//! `nursery::stats` module); this is the public handle. Every number is read
//! from tokio's clock ([`tokio::time::Instant`]), so under a paused clock a
//! test decides exactly how long a poll or a wait took.
//!
//! For a whole-runtime view (every tokio task, busy ratios, queue depths) use
//! tokio's own `RuntimeMetrics` or `tokio-console`; this instrument is
//! scoped to the tasks you choose, and names them with Trellis task names.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::NurseryOptions;
use crate::nursery::stats::{Recorder, Thresholds};

/// An instrument for the tasks of a nursery: the slowest single poll and
/// which task made it, the longest wait between a task being woken and
/// being polled, the highest rate of task polls, and per task the slow
/// steps and busy windows above the [`TaskStatsOptions`] thresholds.
///
/// Enable it with [`instrument`](Self::instrument) on the
/// [`NurseryOptions`] of a nursery: every task spawned in that nursery, and
/// in nurseries opened inside it, is measured. When that nursery ends, the
/// numbers are logged through `tracing` (event `"task stats"` at `INFO`,
/// target `trellis::task_stats`), followed, when there are any, by the
/// lists trio-util prints: "slow task steps (> 10ms):" with each task's
/// slow steps, longest first, and "high task schedule rates" with each
/// task's busy windows. The nursery's body itself is not a task and is not
/// measured.
///
/// Each task counts on its own and adds its numbers to the shared ones
/// when it ends (and when its rate window changes), so
/// [`stats`](Self::stats) and [`task_reports`](Self::task_reports) are
/// complete once the instrumented nursery has ended; read while it runs,
/// they leave out what running tasks have not flushed yet.
///
/// | number | meaning |
/// |---|---|
/// | [`slowest_poll`](TaskStatsReport::slowest_poll) | the longest time one `poll` of a task took: code that blocks the thread between two `.await`s |
/// | [`longest_wake_to_poll`](TaskStatsReport::longest_wake_to_poll) | the longest time from a wake (or the spawn) to the poll: how far behind the runtime is |
/// | [`highest_polls_per_window`](TaskStatsReport::highest_polls_per_window) | the most task polls in one window (1 s by default): a scheduling storm |
/// | [`TaskReport::slow_steps`] | per task name, every poll longer than the slow-step threshold (10 ms by default) |
/// | [`TaskReport::busy_windows`] | per task name, every window in which it was polled at the high-rate threshold or more (100 polls/s by default) |
///
/// # Cost
///
/// Disabled (the default), a task driver pays one predictable branch per
/// poll: the `spawn` benchmark shows no difference. Enabled: two small
/// allocations per task (the probe and its waker wrapper), two clock reads
/// per poll (one more for a wake from outside an instrumented poll, such as
/// tokio's deferred `yield_now` wakes), and no shared write per poll: each
/// task counts on its own and flushes when it ends. On the reference VM
/// that is about 150 ns of CPU per task poll, most of it the clock reads
/// and the probe's cold cache lines: about 2× for tasks that do nothing but
/// yield (the `task_stats` benchmark), small for tasks that do work between
/// `.await`s. See `BENCHMARKS.md`.
///
/// A wake made from inside an instrumented poll on the same thread is
/// stamped with that poll's start rather than the exact moment (one clock
/// read less): the wake-to-poll figure may overstate by up to the waker's
/// own poll time.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use std::time::Duration;
/// use trellis::{nursery_with, NurseryOptions, SpawnOptions};
/// use trellis::util::TaskStats;
///
/// let stats = TaskStats::new();
/// nursery_with(stats.instrument(NurseryOptions::new()), |n| async move {
///     n.spawn_with(SpawnOptions::new().name("sleeper"), async {
///         tokio::time::sleep(Duration::from_secs(1)).await;
///     });
/// })
/// .await
/// .unwrap();
/// let report = stats.stats();
/// assert_eq!(report.polls, 2); // the first poll, and the one after the sleep
/// assert_eq!(report.slowest_poll, Duration::ZERO); // the paused clock never moved inside a poll
/// assert_eq!(stats.slowest_poll_task().as_deref(), Some("sleeper"));
/// # }
/// ```
#[derive(Clone)]
pub struct TaskStats {
    recorder: Arc<Recorder>,
}

impl fmt::Debug for TaskStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TaskStats").field(&self.stats()).finish()
    }
}

impl Default for TaskStats {
    fn default() -> Self {
        Self::new()
    }
}

impl TaskStats {
    /// An instrument with the default [`TaskStatsOptions`]: a rate window of
    /// one second, slow steps above 10 ms, busy windows at 100 polls per
    /// second or more.
    pub fn new() -> Self {
        Self::with_options(TaskStatsOptions::new())
    }

    /// An instrument that counts polls in windows of `window` (at least one
    /// millisecond; a shorter one is raised to that), with the other
    /// defaults of [`TaskStatsOptions`].
    pub fn with_rate_window(window: Duration) -> Self {
        Self::with_options(TaskStatsOptions::new().rate_window(window))
    }

    /// An instrument with these thresholds.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use trellis::util::{TaskStats, TaskStatsOptions};
    ///
    /// let stats = TaskStats::with_options(
    ///     TaskStatsOptions::new()
    ///         .slow_step(Duration::from_millis(50))
    ///         .high_rate(1_000.0),
    /// );
    /// assert!(stats.task_reports().is_empty());
    /// ```
    pub fn with_options(options: TaskStatsOptions) -> Self {
        let window = options.rate_window.max(Duration::from_millis(1));
        let per_window = (options.high_rate * window.as_secs_f64()).ceil();
        TaskStats {
            recorder: Arc::new(Recorder::new(Thresholds {
                window,
                slow_step: options.slow_step,
                // NaN or infinite: never busy; zero or less: every window
                // with a poll (`as` saturates).
                busy_polls: if per_window.is_nan() {
                    u64::MAX
                } else {
                    (per_window as u64).max(1)
                },
            })),
        }
    }

    /// Turns the instrument on for the nursery opened with `options` (and
    /// for nurseries opened inside it); that nursery logs the numbers when it
    /// ends.
    ///
    /// One instrument may serve several nurseries: their numbers add up.
    pub fn instrument(&self, options: NurseryOptions) -> NurseryOptions {
        options.with_recorder(Arc::clone(&self.recorder))
    }

    /// The numbers so far.
    pub fn stats(&self) -> TaskStatsReport {
        let s = self.recorder.snapshot();
        TaskStatsReport {
            polls: s.polls,
            slowest_poll: s.slowest_poll,
            longest_wake_to_poll: s.longest_wake,
            highest_polls_per_window: s.busiest_window_polls,
            window: self.recorder.thresholds.window,
        }
    }

    /// Per task name, the slow steps and the busy rate windows recorded so
    /// far (trio-util's "slow task step events" and "high task schedule
    /// rates"); tasks with neither are left out.
    ///
    /// A task's numbers are added when it ends (and its windows as they
    /// close), so read this after the instrumented nursery: that is when
    /// they are complete. Tasks of the same name share one entry; entries
    /// come in the order their first task ended. The instrumented nursery
    /// logs the same lists when it ends.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use std::time::Duration;
    /// use futures_util::FutureExt as _;
    /// use trellis::{nursery_with, NurseryOptions, SpawnOptions};
    /// use trellis::util::{TaskStats, TaskStatsOptions};
    ///
    /// let stats = TaskStats::with_options(TaskStatsOptions::new().slow_step(Duration::from_millis(10)));
    /// nursery_with(stats.instrument(NurseryOptions::new()), |n| async move {
    ///     n.spawn_with(SpawnOptions::new().name("blocking"), async {
    ///         // A poll that holds the thread for 30 ms (the paused clock
    ///         // moves inside the poll).
    ///         let _ = tokio::time::advance(Duration::from_millis(30)).now_or_never();
    ///     });
    /// })
    /// .await
    /// .unwrap();
    /// let reports = stats.task_reports();
    /// assert_eq!(reports.len(), 1);
    /// assert_eq!(reports[0].task, "blocking");
    /// assert_eq!(reports[0].slow_steps, [Duration::from_millis(30)]);
    /// # }
    /// ```
    pub fn task_reports(&self) -> Vec<TaskReport> {
        let window = self.recorder.thresholds.window;
        self.recorder
            .flagged()
            .into_iter()
            .map(|(task, flagged)| {
                let mut slow_steps = flagged.slow_steps;
                slow_steps.sort_unstable_by(|a, b| b.cmp(a));
                let mut busy_windows: Vec<BusyWindow> = flagged
                    .busy_windows
                    .into_iter()
                    .map(|(start, polls)| BusyWindow {
                        start,
                        polls,
                        rate: polls as f64 / window.as_secs_f64(),
                    })
                    .collect();
                busy_windows.sort_by_key(|w| w.start);
                TaskReport {
                    task,
                    slow_steps,
                    busy_windows,
                }
            })
            .collect()
    }

    /// The name of the task that made the slowest poll.
    pub fn slowest_poll_task(&self) -> Option<String> {
        let s = self.recorder.snapshot();
        s.slowest_poll_task.map(|name| name.into_owned())
    }

    /// The name of the task that waited longest between a wake and its
    /// poll.
    pub fn longest_wake_to_poll_task(&self) -> Option<String> {
        let s = self.recorder.snapshot();
        s.longest_wake_task.map(|name| name.into_owned())
    }

    /// Logs the numbers now, as an instrumented nursery does when it ends.
    pub fn log(&self, scope: &str) {
        self.recorder.log(scope);
    }
}

/// The numbers of a [`TaskStats`], as [`TaskStats::stats`] reads them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TaskStatsReport {
    /// Task polls measured.
    pub polls: u64,
    /// The longest single poll.
    pub slowest_poll: Duration,
    /// The longest time between a task being woken (or spawned) and polled.
    pub longest_wake_to_poll: Duration,
    /// The most polls in one rate window.
    pub highest_polls_per_window: u64,
    /// The rate window.
    pub window: Duration,
}

impl TaskStatsReport {
    /// The highest scheduling rate seen, in task polls per second.
    pub fn highest_rate(&self) -> f64 {
        self.highest_polls_per_window as f64 / self.window.as_secs_f64()
    }
}

/// The thresholds of a [`TaskStats`], after trio-util's
/// `TaskStats(slow_task_threshold=…, high_rate_task_threshold=…)`.
///
/// | option | default | meaning |
/// |---|---|---|
/// | [`slow_step`](Self::slow_step) | 10 ms | a poll longer than this is a slow step, listed per task |
/// | [`high_rate`](Self::high_rate) | 100 polls/s | a task polled at this rate or more within a rate window has that window listed |
/// | [`rate_window`](Self::rate_window) | 1 s | the windows in which rates are counted (trio-util: 0.25 s) |
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use trellis::util::{TaskStats, TaskStatsOptions};
///
/// // trio-util's defaults, with its quarter-second windows.
/// let options = TaskStatsOptions::new().rate_window(Duration::from_millis(250));
/// let stats = TaskStats::with_options(options);
/// assert_eq!(stats.stats().window, Duration::from_millis(250));
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TaskStatsOptions {
    slow_step: Duration,
    high_rate: f64,
    rate_window: Duration,
}

impl Default for TaskStatsOptions {
    fn default() -> Self {
        TaskStatsOptions {
            slow_step: Duration::from_millis(10),
            high_rate: 100.0,
            rate_window: Duration::from_secs(1),
        }
    }
}

impl TaskStatsOptions {
    /// The defaults (see the table above).
    pub fn new() -> Self {
        Self::default()
    }

    /// Polls longer than `threshold` are slow steps.
    #[must_use]
    pub fn slow_step(mut self, threshold: Duration) -> Self {
        self.slow_step = threshold;
        self
    }

    /// A task's window is busy when the task is polled `polls_per_second`
    /// times a second or more in it (at least once per window).
    #[must_use]
    pub fn high_rate(mut self, polls_per_second: f64) -> Self {
        self.high_rate = polls_per_second;
        self
    }

    /// Rates are counted in windows of `window` (at least one millisecond).
    #[must_use]
    pub fn rate_window(mut self, window: Duration) -> Self {
        self.rate_window = window;
        self
    }
}

/// One task name's slow steps and busy windows; see
/// [`TaskStats::task_reports`].
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct TaskReport {
    /// The task name (tasks of the same name share a report).
    pub task: String,
    /// Every poll longer than the slow-step threshold, longest first.
    pub slow_steps: Vec<Duration>,
    /// Every rate window in which the task reached the high-rate threshold,
    /// in time order.
    pub busy_windows: Vec<BusyWindow>,
}

/// A rate window in which one task was polled at a high rate.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct BusyWindow {
    /// When the window started, measured from the instrument's creation.
    pub start: Duration,
    /// The task's polls in the window.
    pub polls: u64,
    /// The same, per second.
    pub rate: f64,
}
