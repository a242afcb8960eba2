//! `run_paused`: run a future on tokio's paused clock (cargo feature `test-util`).

use std::future::Future;

/// Runs `fut` to completion on a fresh current-thread runtime whose clock is
/// paused, and returns its output.
///
/// On the paused clock time stands still while any task can run and jumps to
/// the next timer as soon as every task waits, so sleeps and timeouts finish
/// at once and measure exactly what they say. The runtime has I/O and time
/// enabled; nursery tasks run on it too. It is `#[tokio::test(start_paused =
/// true)]` for a plain `#[test]` or a doctest, and what Trellis's own tests
/// use. Read the module's note on [real I/O on a paused
/// clock](super#the-paused-clock).
///
/// Requires this crate's `test-util` feature (which enables tokio's).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tokio::time::Instant;
/// use trellis::{move_on_after, testing::run_paused};
///
/// let (waited, out) = run_paused(async {
///     let start = Instant::now();
///     let out = move_on_after(Duration::from_secs(5), tokio::time::sleep(Duration::from_secs(3600))).await;
///     (start.elapsed(), out)
/// });
/// assert_eq!(waited, Duration::from_secs(5)); // exactly, and at once
/// assert_eq!(out, None);
/// ```
///
/// # Panics
///
/// If the runtime cannot be built, or if called from inside a runtime (as
/// tokio's `block_on` does); and whenever `fut` panics.
pub fn run_paused<F: Future>(fut: F) -> F::Output {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build();
    match runtime {
        Ok(runtime) => runtime.block_on(fut),
        Err(error) => panic!("run_paused could not build a tokio runtime: {error}"),
    }
}
