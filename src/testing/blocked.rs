//! [`wait_all_tasks_blocked`]: wait until every other task of the runtime is
//! blocked (`trio.testing.wait_all_tasks_blocked`), built on tokio's paused
//! clock.
//!
//! tokio has no stable "the runtime is idle" hook. Its paused clock,
//! however, only moves on its own when the runtime has nothing to run: the
//! current-thread scheduler parks its driver only once no task is ready
//! (`has_pending_work` is false), and the time driver then, seeing the clock
//! paused, polls I/O without blocking and, if nothing woke, advances the
//! clock to the next timer (`park_thread_timeout` in tokio's
//! `runtime/time/mod.rs`). The periodic "yield to the driver" between tasks
//! parks with a zero limit, which advances the clock by zero. So a sleep
//! armed on the paused clock fires only when every task is blocked: that
//! sleep is the whole mechanism.

use std::time::Duration;

/// The smallest cushion: tokio's timer resolution. A shorter sleep may be
/// rounded down to a deadline that has already passed, and fire at once.
const RESOLUTION: Duration = Duration::from_millis(1);

/// Waits until every other task of the runtime is blocked — waiting on a
/// channel, a lock, a timer, I/O — rather than ready to run
/// (`trio.testing.wait_all_tasks_blocked`).
///
/// Use it to let a test's background tasks "settle" without counting
/// `yield_now()` calls: however many polls, wake-ups and hand-offs they need,
/// they have all run as far as they can when it returns.
///
/// It sleeps for 1 ms, tokio's timer resolution, on the paused clock, which
/// fires only once the runtime has no task to run (see
/// [`wait_all_tasks_blocked_for`] for how, and for a longer cushion). It
/// therefore **moves the paused clock forward by 1 ms**, as Trio's `cushion`
/// moves its autojump clock. Tasks that only wait for a timer count as
/// blocked unless their timer falls due within that millisecond; a task that
/// never stops being ready (a loop of `yield_now()`) keeps it waiting
/// forever, as in Trio.
///
/// # Requirements
///
/// - **tokio's paused clock**: `#[tokio::test(start_paused = true)]`,
///   `run_paused` (cargo feature `test-util`), or `tokio::time::pause()` (all need
///   tokio's `test-util` feature). The paused clock only exists on the
///   current-thread runtime, so that is required too: on a multi-thread
///   runtime "every other task is blocked" could not be observed anyway.
/// - **No `spawn_blocking` work running**: tokio holds the clock still while
///   blocking work is in flight, so the wait lasts until that work ends.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
/// use trellis::testing::wait_all_tasks_blocked;
///
/// let polls = Arc::new(AtomicUsize::new(0));
/// let p = polls.clone();
/// let worker = tokio::spawn(async move {
///     for _ in 0..100 {
///         p.fetch_add(1, Ordering::Relaxed);
///         tokio::task::yield_now().await;
///     }
///     std::future::pending::<()>().await; // then blocks for good
/// });
/// wait_all_tasks_blocked().await;
/// assert_eq!(polls.load(Ordering::Relaxed), 100);
/// worker.abort();
/// # }
/// ```
///
/// # Panics
///
/// If the runtime's clock is not paused (including when tokio's `test-util`
/// feature is off, or on a multi-thread runtime), with a message saying so,
/// rather than sleeping and hoping; if called outside a tokio runtime.
///
/// # Cancel safety
///
/// Cancel safe: dropping the future only drops its timer.
pub async fn wait_all_tasks_blocked() {
    wait_all_tasks_blocked_for(RESOLUTION).await;
}

/// Waits until every other task of the runtime has been blocked for
/// `cushion` of paused-clock time (`trio.testing.wait_all_tasks_blocked(cushion)`).
///
/// It arms a timer `cushion` ahead on the paused clock. The clock only moves
/// when no task can run, and then straight to the next timer: each time it
/// jumps, every task was blocked; timers of other tasks that fall due before
/// `cushion` wake them on the way, and the wait goes on until the runtime is
/// idle with no other timer due before this one. When it returns, the clock
/// has moved forward by exactly `cushion`. A `cushion` shorter than tokio's
/// timer resolution (1 ms) is raised to it. Timers that fall due at the very
/// instant of this one fire with it: their tasks are then ready, not
/// blocked.
///
/// [`wait_all_tasks_blocked`] is this with a 1 ms cushion.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use std::time::Duration;
/// use tokio::time::{sleep, Instant};
/// use trellis::testing::wait_all_tasks_blocked_for;
///
/// let start = Instant::now();
/// let (done, mut seen) = tokio::sync::oneshot::channel();
/// tokio::spawn(async move {
///     sleep(Duration::from_millis(5)).await; // within the cushion
///     let _ = done.send(());
/// });
/// wait_all_tasks_blocked_for(Duration::from_millis(10)).await;
/// assert!(seen.try_recv().is_ok());
/// assert_eq!(start.elapsed(), Duration::from_millis(10));
/// # }
/// ```
///
/// # Panics
///
/// As [`wait_all_tasks_blocked`]: if the clock is not paused, or outside a
/// tokio runtime.
///
/// # Cancel safety
///
/// Cancel safe: dropping the future only drops its timer.
pub async fn wait_all_tasks_blocked_for(cushion: Duration) {
    assert_clock_paused();
    tokio::time::sleep(cushion.max(RESOLUTION)).await;
}

/// Panics unless tokio's clock is paused.
///
/// tokio has no public "is the clock paused?" query, but its `Instant::now()`
/// is the paused clock's frozen reading when paused and follows the system's
/// monotonic clock otherwise. So: read it, let the monotonic clock tick
/// (a busy wait of nanoseconds), read it again. Running, the second reading
/// is strictly later (both follow the monotonic clock, which moved between
/// them); paused, it is identical, since only this thread could advance the
/// clock and it does not.
fn assert_clock_paused() {
    let before = tokio::time::Instant::now();
    let tick = std::time::Instant::now();
    while std::time::Instant::now() <= tick {
        std::hint::spin_loop();
    }
    let after = tokio::time::Instant::now();
    assert!(
        after == before,
        "wait_all_tasks_blocked needs tokio's paused clock (and so the current-thread runtime): \
         use #[tokio::test(start_paused = true)], trellis::testing::run_paused, or \
         tokio::time::pause() with tokio's `test-util` feature; on a running clock it could only \
         sleep and hope"
    );
}
