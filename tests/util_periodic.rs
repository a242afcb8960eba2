//! `periodic`: ticks account for the loop body; overruns tick at once.

use std::time::Duration;

use futures_util::StreamExt as _;
use tokio::time::{Instant, sleep};
use trellis::util::periodic;

const S: Duration = Duration::from_secs(1);

#[tokio::test(start_paused = true)]
async fn first_tick_is_immediate_with_no_delta() {
    let start = Instant::now();
    let mut ticks = periodic(S);
    assert_eq!(ticks.next().await, Some((Duration::ZERO, None)));
    assert_eq!(start.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn ticks_come_one_period_after_the_previous_tick_body_time_included() {
    let start = Instant::now();
    let mut ticks = periodic(S);
    ticks.next().await;
    for n in 1..=3u32 {
        sleep(Duration::from_millis(400)).await; // the body
        let (elapsed, delta) = ticks.next().await.unwrap();
        assert_eq!(elapsed, S * n);
        assert_eq!(delta, Some(S));
        assert_eq!(start.elapsed(), S * n);
    }
}

#[tokio::test(start_paused = true)]
async fn an_overrun_ticks_at_once_and_shows_in_delta() {
    let mut ticks = periodic(S);
    ticks.next().await;
    sleep(Duration::from_millis(2500)).await; // overruns the period
    let before = Instant::now();
    let (elapsed, delta) = ticks.next().await.unwrap();
    assert_eq!(before.elapsed(), Duration::ZERO); // no wait
    assert_eq!(elapsed, Duration::from_millis(2500));
    assert_eq!(delta, Some(Duration::from_millis(2500)));
    // The next period counts from the late tick.
    let (elapsed, delta) = ticks.next().await.unwrap();
    assert_eq!(elapsed, Duration::from_millis(3500));
    assert_eq!(delta, Some(S));
}
