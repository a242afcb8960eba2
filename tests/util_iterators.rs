//! `iter_move_on_after` and `iter_fail_after`: a time limit per stream item.

use std::time::Duration;

use futures_util::StreamExt as _;
use tokio::time::{Instant, sleep};
use trellis::util::{iter_fail_after, iter_move_on_after};

const SEC: Duration = Duration::from_secs(1);

/// A stream of `0..n` whose items each take `gap` to arrive.
fn spaced(gaps: Vec<Duration>) -> impl futures_core::Stream<Item = usize> + Send {
    futures_util::stream::iter(gaps.into_iter().enumerate()).then(|(i, gap)| async move {
        sleep(gap).await;
        i
    })
}

#[tokio::test(start_paused = true)]
async fn the_limit_applies_to_each_item_not_to_the_whole_stream() {
    let start = Instant::now();
    let got: Vec<_> = iter_move_on_after(2 * SEC, spaced(vec![SEC * 3 / 2; 5]))
        .collect()
        .await;
    assert_eq!(got, [0, 1, 2, 3, 4]);
    assert_eq!(start.elapsed(), SEC * 15 / 2);
}

#[tokio::test(start_paused = true)]
async fn iter_move_on_after_ends_at_the_first_slow_item() {
    let start = Instant::now();
    let got: Vec<_> = iter_move_on_after(2 * SEC, spaced(vec![SEC, 3 * SEC, SEC]))
        .collect()
        .await;
    assert_eq!(got, [0]);
    assert_eq!(start.elapsed(), 3 * SEC); // 1 s, then 2 s of waiting
}

#[tokio::test(start_paused = true)]
async fn the_consumers_own_time_between_items_does_not_count() {
    let mut items = iter_move_on_after(2 * SEC, spaced(vec![SEC, SEC]));
    assert_eq!(items.next().await, Some(0));
    sleep(10 * SEC).await; // busy in the loop body
    assert_eq!(items.next().await, Some(1));
    assert_eq!(items.next().await, None);
}

#[tokio::test(start_paused = true)]
async fn iter_fail_after_yields_too_slow_then_ends() {
    let mut items = iter_fail_after(2 * SEC, spaced(vec![SEC, 5 * SEC]));
    assert_eq!(items.next().await.unwrap(), Ok(0));
    let asked = Instant::now();
    let err = items.next().await.unwrap().unwrap_err();
    assert_eq!(err.deadline(), asked + 2 * SEC);
    assert!(items.next().await.is_none());
}

#[tokio::test(start_paused = true)]
async fn iter_fail_after_ends_cleanly_with_its_stream() {
    let got: Vec<_> = iter_fail_after(2 * SEC, spaced(vec![SEC, SEC]))
        .collect()
        .await;
    assert_eq!(got, [Ok(0), Ok(1)]);
}
