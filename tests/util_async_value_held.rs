//! `AsyncValue::wait_value_held` and `eventual_values_held`: a predicate that
//! must stay true for a while.

use std::time::Duration;

use futures_util::{FutureExt as _, StreamExt as _};
use tokio::time::{Instant, sleep};
use trellis::util::AsyncValue;

const SEC: Duration = Duration::from_secs(1);

#[tokio::test(start_paused = true)]
async fn wait_value_held_returns_after_the_hold_when_already_true() {
    let v = AsyncValue::new(5);
    let start = Instant::now();
    assert_eq!(v.wait_value_held(|x| *x > 3, 2 * SEC).await, 5);
    assert_eq!(start.elapsed(), 2 * SEC);
    assert_eq!(v.waiters(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_change_that_breaks_the_predicate_restarts_the_hold() {
    let v = AsyncValue::new(5);
    let setter = tokio::spawn({
        let v = v.clone();
        async move {
            sleep(SEC).await;
            v.set(6); // still true: the hold goes on
            sleep(SEC).await;
            v.set(0); // broken at 2 s
            sleep(SEC).await;
            v.set(9); // true again at 3 s
        }
    });
    let start = Instant::now();
    assert_eq!(v.wait_value_held(|x| *x > 3, 3 * SEC).await, 9);
    assert_eq!(start.elapsed(), 6 * SEC);
    setter.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn wait_value_held_with_zero_duration_is_wait_value() {
    let v = AsyncValue::new(1);
    let start = Instant::now();
    assert_eq!(v.wait_value_held(|x| *x == 1, Duration::ZERO).await, 1);
    assert_eq!(start.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_wait_value_held_unregisters() {
    let v = AsyncValue::new(5);
    let mut held = Box::pin(v.wait_value_held(|x| *x > 3, SEC));
    assert!((&mut held).now_or_never().is_none());
    drop(held);
    assert_eq!(v.waiters(), 0);
}

#[tokio::test(start_paused = true)]
async fn eventual_values_held_yields_values_that_held_and_skips_flickers() {
    let v = AsyncValue::new(0);
    let mut settled = v.eventual_values_held(|x| *x > 0, SEC);
    let setter = tokio::spawn({
        let v = v.clone();
        async move {
            v.set(1); // held for half a second only
            sleep(SEC / 2).await;
            v.set(0);
            sleep(SEC / 2).await;
            v.set(2); // at 1 s, held
        }
    });
    let start = Instant::now();
    assert_eq!(settled.next().await, Some(2));
    assert_eq!(start.elapsed(), 2 * SEC);
    setter.await.unwrap();
    // Unchanged: nothing more, however long we look.
    assert_eq!(trellis::move_on_after(10 * SEC, settled.next()).await, None);
}
