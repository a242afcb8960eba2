//! [`periodic`]: a loop that runs every `period`, its body's time included.
//!
//! Unlike [`tokio::time::interval`], which ticks on a fixed grid and has
//! policies for missed ticks, `periodic` schedules each tick one `period`
//! after the previous one *started*, and reports how much time really passed
//! — trio-util's `periodic`. For a plain timeout use
//! [`move_on_after`](crate::move_on_after).

use std::fmt;
use std::future::Future as _;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;
use tokio::time::{Instant, Sleep};

/// A stream that yields `(elapsed, delta)` at once, then every `period`:
/// `elapsed` since the first tick, `delta` since the previous one (`None`
/// the first time).
///
/// The next tick is due `period` after the previous tick was *yielded*, so
/// the time the loop body takes counts towards the period. If the body
/// overruns, the next tick comes at once (it still goes through the timer,
/// so it is a checkpoint), and `delta` shows the overrun. The stream never
/// ends.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use std::time::Duration;
/// use futures_util::StreamExt as _;
/// use trellis::util::periodic;
///
/// let mut ticks = periodic(Duration::from_secs(1));
/// assert_eq!(ticks.next().await, Some((Duration::ZERO, None)));
/// tokio::time::sleep(Duration::from_millis(300)).await; // the loop body
/// let (elapsed, delta) = ticks.next().await.unwrap();
/// assert_eq!((elapsed, delta), (Duration::from_secs(1), Some(Duration::from_secs(1))));
/// # }
/// ```
///
/// # Panics
///
/// Never: a zero `period` makes every tick due at once.
///
/// # Cancel safety
///
/// `next()` is cancel safe: dropping it loses no tick; the next `next()`
/// waits for the same deadline.
pub fn periodic(period: Duration) -> Periodic {
    Periodic {
        period,
        start: None,
        last: None,
        sleep: None,
    }
}

/// The stream returned by [`periodic`]. `Unpin` (its timer is boxed), so
/// `ticks.next().await` works without pinning.
#[must_use = "streams do nothing unless polled"]
pub struct Periodic {
    period: Duration,
    start: Option<Instant>,
    last: Option<Instant>,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl fmt::Debug for Periodic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Periodic")
            .field("period", &self.period)
            .field("start", &self.start)
            .field("last", &self.last)
            .finish()
    }
}

impl Stream for Periodic {
    type Item = (Duration, Option<Duration>);

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Some(sleep) = this.sleep.as_mut() {
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
        let now = Instant::now();
        let start = *this.start.get_or_insert(now);
        let delta = this.last.map(|last| now - last);
        this.last = Some(now);
        // A period too long to add is "never" (about 30 years, as tokio does).
        let next = now
            .checked_add(this.period)
            .unwrap_or_else(|| now + Duration::from_secs(86_400 * 365 * 30));
        match this.sleep.as_mut() {
            Some(sleep) => sleep.as_mut().reset(next),
            None => this.sleep = Some(Box::pin(tokio::time::sleep_until(next))),
        }
        Poll::Ready(Some((now - start, delta)))
    }
}
